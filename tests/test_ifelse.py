"""sg.ifelse: lazy on every backend and in every mode, gradients through both branches, nested and
multi-output branches, shared variables and updates, rewrites, printing, save/load, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Apply, Op
from symgraph.ifelse import IfElse, ifelse
from symgraph.testing import verify_grad
from helpers import perform_eval

MODES = ["fast_run", "fast_compile", None]
CALLS = {"count": 0}


class Counted(Op):
    """Identity that counts how often it runs (a stand-in for expensive work)."""

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node, inputs):
        CALLS["count"] += 1
        return [np.array(inputs[0], copy=True)]


def _compile(backend, *args, **kw):
    """sg.function; on OpenCL the host op (Counted) is a warned host fallback, asserted here."""
    if backend != "opencl":
        return sg.function(*args, backend=backend, **kw)
    with pytest.warns(RuntimeWarning, match="Counted.*runs on the host"):
        return sg.function(*args, backend=backend, **kw)


def _ifelse_nodes(f):
    return [n for n in f.graph.apply_nodes if isinstance(n.op, IfElse)]


@pytest.mark.parametrize("mode", MODES)
def test_values_of_both_branches(backend, mode):
    a, x, y = T.dscalar("a"), T.dvector("x"), T.dvector("y")
    z = ifelse(a > 0, T.exp(x).sum() + x, T.log(y).sum() * y)
    f = sg.function([a, x, y], z, backend=backend, mode=mode)
    vx, vy = np.array([0.5, -1.0, 2.0]), np.array([1.5, 2.0, 3.0])
    np.testing.assert_allclose(f(1.0, vx, vy), np.exp(vx).sum() + vx)
    np.testing.assert_allclose(f(-1.0, vx, vy), np.log(vy).sum() * vy)


@pytest.mark.parametrize("mode", MODES)
def test_untaken_branch_never_runs(backend, mode):
    """A branch that would raise (indexing an empty vector) and an op that counts its calls: neither
    runs when its branch is not taken, whatever the backend or mode."""
    c, x, e = T.bscalar("c"), T.dvector("x"), T.dvector("e")
    expensive = Counted()(x * 2).sum()
    z = ifelse(c, expensive, e[0] + 1)  # e[0] raises on an empty e
    f = _compile(backend, [c, x, e], z, mode=mode)
    CALLS["count"] = 0
    assert f(1, np.ones(3), np.zeros(0)) == 6.0
    assert CALLS["count"] == 1
    assert f(0, np.ones(3), np.array([4.0])) == 5.0
    assert CALLS["count"] == 1, "the untaken branch ran"
    with pytest.raises(IndexError):
        f(0, np.ones(3), np.zeros(0))


def test_branch_code_stays_in_its_branch_after_merging_and_fusion(backend):
    """Work both the outer graph and one branch need runs outside; work only a branch needs is moved in
    (merge and fusion never pull it out)."""
    c, x = T.bscalar("c"), T.dvector("x")
    shared_work = T.tanh(x) * 2
    z = ifelse(c, Counted()(shared_work + 1).sum(), shared_work.sum())
    f = _compile(backend, [c, x], [z, shared_work])
    CALLS["count"] = 0
    f(0, np.ones(2))
    assert CALLS["count"] == 0
    (node,) = _ifelse_nodes(f)
    assert any(isinstance(n.op, Counted) for n in node.op.then_graph.nodes)


def test_nested_and_multi_output(backend):
    a, b, x = T.dscalar("a"), T.dscalar("b"), T.dvector("x")
    inner = ifelse(b > 0, [x * 2, x.sum()], [x * 3, x.prod()])
    outer = ifelse(a > 0, inner, [x, T.constant(0.0)])
    f = sg.function([a, b, x], outer, backend=backend)
    v = np.array([1.0, 2.0])
    for av, bv, want in [(1, 1, (v * 2, 3.0)), (1, -1, (v * 3, 2.0)), (-1, 1, (v, 0.0))]:
        got = f(av, bv, v)
        np.testing.assert_allclose(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1])


def test_shared_variables_in_branches_and_in_updates(backend):
    """A step counter switches the update from one rule to another after 3 calls."""
    dtype = "float32" if backend == "opencl" else "float64"
    step = sg.shared(np.int64(0), "step")
    w = sg.shared(np.ones(2, dtype), "w")
    new_w = ifelse(step < 3, w * 2, w - 1)
    f = sg.function([], w.sum(), updates=[(w, new_w), (step, step + 1)], backend=backend)
    seen = [f() for _ in range(5)]
    np.testing.assert_allclose(seen, [2, 4, 8, 16, 14])
    assert step.get_value() == 5


def test_outputs_never_alias_inputs_or_each_other(backend):
    """A branch that returns an argument itself still hands out a new array."""
    c, x = T.bscalar("c"), T.dvector("x")
    f = sg.function([c, x], ifelse(c, x, x * 2), backend=backend)
    v = np.ones(3)
    out = f(1, v)
    out[0] = 5.0
    assert v[0] == 1.0


def test_gradient_through_both_branches():
    for cond in (1.0, -1.0):
        def fn(x, y, cond=cond):
            return ifelse(T.constant(cond) > 0, T.tanh(x) * y, x * T.sin(y))
        verify_grad(fn, [np.array([0.3, -0.7]), np.array([1.2, 0.4])])

    def chosen(a, x, y):  # a symbolic condition: the gradient is again an ifelse
        return ifelse(a > 0, (T.tanh(x) * y).sum(), (x * T.sin(y)).sum())
    a, x, y = T.dscalar("a"), T.dvector("x"), T.dvector("y")
    gx, gy = sg.grad(chosen(a, x, y), [x, y])
    f = sg.function([a, x, y], [gx, gy])
    vx, vy = np.array([0.3, -0.7]), np.array([1.2, 0.4])
    np.testing.assert_allclose(f(1.0, vx, vy)[0], (1 - np.tanh(vx) ** 2) * vy)
    np.testing.assert_allclose(f(-1.0, vx, vy)[1], vx * np.cos(vy))
    np.testing.assert_allclose(f(1.0, vx, vy)[1], np.tanh(vx))


def test_rop_through_ifelse():
    a, x = T.dscalar("a"), T.dvector("x")
    v = T.dvector("v")
    z = ifelse(a > 0, T.exp(x), x ** 2)
    jv = sg.Rop(z, x, v)
    f = sg.function([a, x, v], jv)
    vx, vv = np.array([0.5, -1.0]), np.array([1.0, 2.0])
    np.testing.assert_allclose(f(1.0, vx, vv), np.exp(vx) * vv)
    np.testing.assert_allclose(f(-1.0, vx, vv), 2 * vx * vv)


def test_constant_condition_becomes_its_branch():
    x = T.dvector("x")
    f = sg.function([x], ifelse(T.constant(True), x + 1, x * 2))
    assert not _ifelse_nodes(f)
    np.testing.assert_allclose(f(np.ones(2)), [2, 2])
    assert "constant_condition" in f.rewrite_report()["applied"]


def test_ifelses_on_one_condition_merge(backend):
    c, x = T.bscalar("c"), T.dvector("x")
    f = sg.function([c, x], [ifelse(c, x + 1, x - 1), ifelse(c, x * 2, x / 2)], backend=backend)
    assert len(_ifelse_nodes(f)) == 1
    np.testing.assert_allclose(f(1, np.ones(2)), [[2, 2], [2, 2]])
    np.testing.assert_allclose(f(0, np.ones(2)), [[0, 0], [0.5, 0.5]])


class Raising(Op):
    """Raises when it runs (a stand-in for an op that fails on the values it is given)."""

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node, inputs):
        raise ValueError("this branch was run")


def test_constant_folding_inside_a_branch_that_raises_does_not_fail_the_compile():
    c = T.bscalar("c")
    z = ifelse(c, Raising()(T.constant(2.0)), T.constant(1.0))
    f = sg.function([c], z)
    assert f(0) == 1.0
    with pytest.raises(ValueError, match="this branch was run"):
        f(1)


def test_error_inside_a_taken_branch_names_its_node_and_leaves_shared_state():
    c, x = T.bscalar("c"), T.dvector("x")
    w = sg.shared(np.ones(2), "w")
    bad = x[5]  # the user line the error must name
    f = sg.function([c, x], ifelse(c, bad, x.sum()), updates=[(w, w + 1)])
    with pytest.raises(IndexError, match=r"(?s)Subtensor.*test_ifelse\.py.*bad = x\[5\]"):
        f(1, np.ones(2))
    np.testing.assert_array_equal(w.get_value(), [1, 1])


def test_bad_input_names_the_types_and_the_user_line():
    x, m, i = T.dvector("x"), T.dmatrix("m"), T.lvector("i")
    with pytest.raises(GraphTypeError, match=r"(?s)float64\[\?\].*int64\[\?\].*test_ifelse\.py"):
        ifelse(T.constant(True), x, i)
    with pytest.raises(GraphTypeError, match=r"(?s)float64\[\?, \?\].*test_ifelse\.py"):
        ifelse(T.constant(True), x, m)
    with pytest.raises(GraphTypeError, match="2 values.*1"):
        ifelse(T.constant(True), [x, x], [x])
    with pytest.raises(ShapeError, match="scalar"):
        ifelse(x > 0, x, x)


def test_printing_shows_the_inner_graphs():
    c, x = T.bscalar("c"), T.dvector("x")
    f = sg.function([c, x], ifelse(c, T.exp(x), T.log(x)))
    text = sg.printing.debugprint(f, file="str")
    assert "Inner graphs:" in text and " then:" in text and " else:" in text
    assert "exp" in text.split("Inner graphs:")[1] and "log" in text.split("Inner graphs:")[1]
    assert "if " in f.source and "else:" in f.source


def test_an_ifelse_shows_the_name_it_was_given_and_keeps_it_through_save_and_load():
    """str(op) shows only a given name (an unnamed one once printed as IfElse{IfElse{IfElse}}), and
    a saved op loads back equal and printed the same, named or not."""
    c, x = T.bscalar("c"), T.dvector("x")
    unnamed, named = ifelse(c, T.exp(x), T.log(x)), ifelse(c, T.exp(x), T.log(x), name="branch")
    assert (str(unnamed.owner.op), unnamed.owner.op.name) == ("IfElse", "IfElse")
    assert (str(named.owner.op), named.owner.op.name) == ("IfElse{branch}", "branch")
    for out in (unnamed, named):
        back = sg.serialize.loads(sg.serialize.dumps(out))
        assert back.owner.op == out.owner.op and str(back.owner.op) == str(out.owner.op)
    g = T.grad(named.sum(), x)
    assert "IfElse{grad_branch}" in {str(v.owner.op) for v in sg.graph.ancestors([g]) if v.owner is not None}


def test_save_and_load_round_trip(tmp_path):
    c, x = T.bscalar("c"), T.dvector("x")
    f = sg.function([c, x], ifelse(c, T.exp(x).sum(), T.log(x).sum()))
    path = tmp_path / "f.sg"
    sg.save(f, path)
    g = sg.load(path)
    v = np.array([1.0, 2.0])
    for cv in (0, 1):
        np.testing.assert_allclose(g(cv, v), f(cv, v))


def test_opencl_condition_reads_only_the_flag(backend):
    """A condition computed on the device costs one tiny read; a host condition (a scalar argument,
    or work on scalar arguments) none: neither the scalar nor the flag moves."""
    if backend != "opencl":
        pytest.skip("placement exists on OpenCL only")
    from symgraph.backends.opencl.runtime import TRANSFERS
    c, x = T.fscalar("c"), T.fvector("x")
    v = np.ones(4, "float32")
    for cond, flag_reads in ((c > 0, 0), (T.gt(c * 2 - 1, 0), 0), (x.sum() > 0, 1)):
        f = sg.function([c, x], ifelse(cond, x * 2, x * 3), backend="opencl", on_unused_input="ignore")
        for cv in (1, -1):
            np.testing.assert_array_equal(f(np.float32(cv), v), v * 2 if cv > 0 or flag_reads else v * 3)
        before = dict(TRANSFERS)
        f(np.float32(1), v)
        moved = {k: TRANSFERS[k] - before.get(k, 0) for k in TRANSFERS}
        assert moved.get("to_host", 0) + moved.get("zero_copy_out", 0) == flag_reads + 1  # (+ the output)
        assert moved.get("to_device", 0) + moved.get("zero_copy_in", 0) == 1  # x only: c stays on the host


_BRANCH_OPS = [T.exp, T.tanh, lambda v: v * 2, lambda v: v.sum() + v, T.sin, lambda v: T.maximum(v, 0.5)]


@given(st.lists(st.integers(0, len(_BRANCH_OPS) - 1), min_size=1, max_size=3),
       st.lists(st.integers(0, len(_BRANCH_OPS) - 1), min_size=1, max_size=3),
       st.sampled_from([-1.0, 0.0, 0.5, 2.0]), st.lists(st.floats(-2, 2), min_size=1, max_size=4))
def test_four_implementations_agree(then_ops, else_ops, cond, values):
    """numpy, OpenCL, no rewrites, and a plain perform interpreter, on random branch graphs."""
    from conftest import BACKENDS
    c, x = T.dscalar("c"), T.dvector("x")
    t, e = x, x * 1.5
    for k in then_ops:
        t = _BRANCH_OPS[k](t)
    for k in else_ops:
        e = _BRANCH_OPS[k](e)
    z = ifelse(c > 0, t, e)
    v = np.array(values)
    expected = perform_eval([c, x], z, [np.float64(cond), v])
    np.testing.assert_allclose(sg.function([c, x], z, mode=None)(cond, v), expected, rtol=1e-12)
    np.testing.assert_allclose(sg.function([c, x], z)(cond, v), expected, rtol=1e-12)
    if "opencl" in BACKENDS and np.all(np.abs(expected) < 1e30):  # float32 there: compare where it is finite
        c32, x32 = T.fscalar("c"), T.fvector("x")
        t, e = x32, x32 * np.float32(1.5)
        for k in then_ops:
            t = _BRANCH_OPS[k](t)
        for k in else_ops:
            e = _BRANCH_OPS[k](e)
        got = sg.function([c32, x32], ifelse(c32 > 0, t, e), backend="opencl")(np.float32(cond), v.astype("float32"))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
