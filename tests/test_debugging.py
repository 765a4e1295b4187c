"""Printing and debugging modes (issue 20 item 5): Print, pydotprint's Theano keyword arguments,
mode='DebugMode' (backend vs perform per node, rewrites re-checked, infer_shape, inputs left
unmodified, NaN/Inf), MonitorMode and NanGuardMode, on both backends."""
from __future__ import annotations

import os

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.compile import DebugMode, DebugModeError, MonitorMode, NanGuardMode
from symgraph.graph import Apply, Op
from symgraph.printing import Print, pydotprint
from symgraph.rewrite import Mode, node_rewriter, register_canonicalize, unregister


# ---------------------------------------------------------------- Print
def test_print_prints_every_call_and_is_kept_by_rewrites(backend, capsys):
    x = T.dvector("x")
    shown = Print("x is", attrs=("shape", "__str__"))(x)
    f = sg.function([x], shown * 5 + Print("const")(T.constant(2.0)), backend=backend)  # never folded away
    np.testing.assert_array_equal(f(np.array([1.0, 2.0])), [7.0, 12.0])
    f(np.array([3.0]))
    assert capsys.readouterr().out == ("x is shape = (2,)\nx is __str__ = [1. 2.]\nconst __str__ = 2.0\n"
                                       "x is shape = (1,)\nx is __str__ = [3.]\nconst __str__ = 2.0\n")
    assert sg.function([x], x * 5)(np.ones(1)) == 5.0 and capsys.readouterr().out == ""


def test_print_passes_the_gradient_and_a_custom_function():
    x = T.dvector("x")
    seen = []
    p = Print("msg", global_fn=lambda op, value: seen.append((op.message, value.copy())))
    g = sg.grad((p(x) ** 2).sum(), x)
    np.testing.assert_array_equal(sg.function([x], g)(np.array([1.0, 2.0])), [2.0, 4.0])
    assert seen and seen[0][0] == "msg"
    sg.testing.verify_grad(lambda v: p(v) * v, [np.array([0.5, -1.0])])


# ---------------------------------------------------------------- pydotprint
@pytest.mark.skipif(sg.printing.dot_binary() is None, reason="graphviz's dot is not installed")
def test_pydotprint_takes_theanos_keyword_arguments(tmp_path, capsys):
    x = T.dmatrix("x")
    y = (T.exp(x) + 1).sum()
    y.name = "total"
    out = tmp_path / "g.png"
    assert pydotprint(y, outfile=str(out), var_with_name_simple=True, compact=False, print_output_file=True,
                      high_contrast=True, with_ids=False) == str(out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out == f"The output file is available at {out}\n"
    image = pydotprint(y, return_image=True, format="svg")
    assert b"<svg" in image
    source = sg.printing.to_dot(y, every_variable=True, simple_names=True).source
    assert "total\\nfloat64" not in source and '"total"' in source.replace("label=total", '"total"')
    assert sg.printing.to_dot(y).source.count("float64") < source.count("float64") + 2
    with pytest.raises(ValueError, match="with_ids=True is not supported"):
        pydotprint(y, str(out), with_ids=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        pydotprint(y, str(out), colour="red")
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert pydotprint(y, format="dot") == "symgraph.pydotprint.dot"
    finally:
        os.chdir(cwd)


# ---------------------------------------------------------------- DebugMode
def test_debug_mode_runs_correct_graphs_and_matches_the_backend(backend):
    x, w = T.dvector("x"), sg.shared(np.ones(3), name="w")
    y = (T.exp(x) * w).sum() + T.sort(x)[0] + T.cumsum(x)[-1]
    f = sg.function([x], y, updates=[(w, w * 2)], mode="DebugMode", backend=backend)
    plain = sg.function([x], y, backend=backend)
    v = np.array([0.5, -1.0, 2.0])
    expected = plain(v)
    np.testing.assert_allclose(f(v), expected)
    np.testing.assert_array_equal(w.get_value(), [2.0, 2.0, 2.0])
    assert isinstance(sg.rewrite.as_mode("DebugMode"), DebugMode)


class _BadShape(Op):
    """An op whose infer_shape is wrong."""

    def make_node(self, x):
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs):
        return [inputs[0][::-1].copy()]

    def infer_shape(self, node, shapes):
        return [(shapes[0][0] + 1,)]


class _Destroyer(Op):
    """An op that writes into its input without saying so."""

    def make_node(self, x):
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs):
        inputs[0][0] = 99.0
        return [inputs[0] * 1]


def test_debug_mode_reports_wrong_infer_shape_and_modified_inputs():
    x = T.dvector("x")
    f = sg.function([x], _BadShape()(x) + 1, mode="DebugMode")
    with pytest.raises(DebugModeError, match=r"(?s)infer_shape gives \(4,\).*shape \(3,\).*test_debugging.py"):
        f(np.ones(3))
    g = sg.function([x], _Destroyer()(x * 2) * 3, mode="DebugMode")
    with pytest.raises(DebugModeError, match="wrote into its input 0"):
        g(np.ones(3))


def test_debug_mode_reports_a_rewrite_that_changes_values(backend):
    @register_canonicalize
    @node_rewriter([T.log1p])
    def broken_log1p(fgraph, node):  # log1p(x) -> log(x): wrong
        return [T.log(node.inputs[0])]
    try:
        x = T.dvector("x")
        f = sg.function([x], T.log1p(x) * 2, mode="DebugMode", backend=backend)
        with pytest.raises(DebugModeError, match=r"(?s)rewrite 'broken_log1p' changed the value.*test_debugging.py"):
            f(np.array([1.0, 2.0]))
        w = sg.shared(np.ones(2), name="w")
        g = sg.function([x], T.log1p(x), updates=[(w, w + T.log1p(x))], mode=DebugMode(), backend=backend)
        with pytest.raises(DebugModeError):
            g(np.array([1.0, 2.0]))
        np.testing.assert_array_equal(w.get_value(), [1.0, 1.0])  # a failed call leaves shared values as they were
        ok = sg.function([x], T.log1p(x), mode=DebugMode().excluding("broken_log1p"), backend=backend)
        np.testing.assert_allclose(ok(np.array([1.0])), np.log1p([1.0]))
    finally:
        unregister("broken_log1p")


def test_debug_mode_compares_each_node_with_the_backend():
    """A backend that disagrees with perform is caught, naming the node. The numpy backend runs
    perform itself for ops without a lowering, so the disagreement is made by hand: the node's
    compiled stand-in computes 2x while perform says 3x."""
    class Thrice(Op):
        def make_node(self, x):
            return Apply(self, [x], [x.type()])

        def perform(self, node, inputs):
            return [inputs[0] * 3]

    x = T.dvector("x")
    f = sg.function([x], Thrice()(x) + 1, mode=DebugMode())
    np.testing.assert_array_equal(f(np.ones(2)), [4.0, 4.0])
    debug = f._impl
    node = next(n for n in debug.order if isinstance(n.op, Thrice))
    i = T.dvector("i")
    debug._single[node] = sg.function([i], [i * 2])._impl
    with pytest.raises(DebugModeError, match=r"(?s)backend's result for output 0 of Thrice.*backend: \[2. 2.\]"):
        f(np.ones(2))


def test_debug_mode_check_isfinite():
    x = T.dvector("x")
    f = sg.function([x], T.log(x), mode="DebugMode")
    with pytest.raises(DebugModeError, match="holds -?Inf|holds NaN"), np.errstate(divide="ignore"):
        f(np.array([0.0, 1.0]))  # log(0): the -inf DebugMode must catch (numpy's own warning is expected)
    g = sg.function([x], T.log(x), mode=DebugMode(check_isfinite=False))
    with np.errstate(divide="ignore"):
        assert np.isneginf(g(np.array([0.0]))[0])


# ---------------------------------------------------------------- MonitorMode and NanGuardMode
def test_monitor_mode_calls_pre_and_post_with_storage_cells(backend):
    x, w = T.dscalar("x"), sg.shared(1.0, name="w")
    seen = []

    def pre(i, node, fn):
        seen.append(("pre", i, str(node.op), [c[0] for c in fn.inputs], [c[0] for c in fn.outputs]))

    def post(i, node, fn):
        seen.append(("post", i, str(node.op), [c[0] for c in fn.outputs]))
    mode = MonitorMode(pre_func=pre, post_func=post).excluding("local_elemwise_fusion", "inplace")
    f = sg.function([x], [5 * x], updates=[(w, w + x)], mode=mode, backend=backend)
    assert f(3.0) == [15.0] and w.get_value() == 4.0
    muls = [s for s in seen if s[2] == "mul"]
    assert muls[0][0] == "pre" and [float(v) for v in muls[0][3]] == [5.0, 3.0] and muls[0][4] == [None]
    assert muls[1][0] == "post" and float(muls[1][3][0]) == 15.0
    assert isinstance(mode, MonitorMode) and mode.exclude == {"fusion"}


def test_nan_guard_mode_raises_an_assertion_error_and_keeps_shared_values():
    x = T.dmatrix("x")
    w = sg.shared(np.ones((2, 2)), name="w")
    f = sg.function([x], T.dot(x, w), updates=[(w, w * 2)],
                    mode=NanGuardMode(nan_is_error=True, inf_is_error=True, big_is_error=True))
    np.testing.assert_array_equal(f(np.ones((1, 2))), [[2.0, 2.0]])
    with pytest.raises(AssertionError, match="Inf"):
        f(np.full((1, 2), np.inf))
    with pytest.raises(AssertionError, match="above 1e10"):
        f(np.full((1, 2), 1e11))
    np.testing.assert_array_equal(w.get_value(), np.full((2, 2), 2.0))
    quiet = sg.function([x], x * 2, mode=NanGuardMode(big_is_error=False))
    assert quiet(np.full((1, 1), 1e11))[0, 0] == 2e11


def test_theano_mode_names():
    assert Mode(optimizer="FAST_COMPILE").base == "fast_compile" and Mode(optimizer=None).base == "none"
    assert sg.rewrite.as_mode("FAST_RUN").base == "fast_run"
    assert Mode().excluding("inplace").exclude == frozenset()  # symgraph has no in-place rewrites to exclude
    with pytest.raises(ValueError, match="unknown rewrite 'no_such_rule'"):
        Mode().including("no_such_rule")
