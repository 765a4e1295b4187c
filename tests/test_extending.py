"""Extending symgraph (issue 20 items 6 and 7): as_op, user rewrites (the documentation's
(x * y) / y -> x ported to node_rewriter / register_canonicalize / Mode.including), whole-graph
passes, the op-author checks check_infer_shape and check_rop_lop (and that they catch broken ops),
and Rop compiled with the wrt it does not read as inputs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GradientError, RewriteError
from symgraph.graph import Apply, Op
from symgraph.rewrite import Mode, node_rewriter, register_canonicalize, register_pass, unregister
from symgraph.testing import InferShapeError, RopLopError, check_infer_shape, check_rop_lop


# ---------------------------------------------------------------- as_op
def _dot_shape(node, shapes):
    return [shapes[0][:-1] + shapes[1][-1:]]


@sg.as_op(itypes=[T.fmatrix, T.fmatrix], otypes=[T.fmatrix], infer_shape=_dot_shape)
def numpy_dot(a, b):
    return np.dot(a, b)


@sg.compile.as_op([T.dvector], [T.dvector, T.dscalar])
def split_stats(v):
    return v - v.mean(), v.std()


def test_as_op_on_both_backends(backend):
    x, y = T.fmatrix("x"), T.fmatrix("y")
    a, b = np.random.rand(5, 4).astype("float32"), np.random.rand(4, 7).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # host fallback on OpenCL, by design
        out = sg.function([x, y], numpy_dot(x, y), backend=backend)(a, b)
        v = T.dvector("v")
        centered, std = sg.function([v], split_stats(v), backend=backend)(np.array([1.0, 3.0]))
    np.testing.assert_allclose(out, a @ b, rtol=1e-5)
    np.testing.assert_array_equal(centered, [-1.0, 1.0]) and float(std) == 1.0
    check_infer_shape(numpy_dot, [x, y], [a, b])
    assert numpy_dot.name == "FromFunctionOp{numpy_dot}"
    with pytest.raises(GradientError, match="as_op"):
        sg.grad(numpy_dot(x, y).sum(), x)
    with pytest.raises(TypeError, match="expected float32"):
        numpy_dot(T.dmatrix(), y)
    with pytest.raises(TypeError, match="not a type"):
        sg.as_op([T.dmatrix()], [T.dmatrix])


# ---------------------------------------------------------------- user rewrites
def test_the_documentations_simplification_ported(backend):
    """Theano's optimization tutorial: (x * y) / y -> x, as a public-API rewrite."""
    @node_rewriter([T.true_div])
    def local_mul_div(fgraph, node):
        x, y = node.inputs
        if x.owner and x.owner.op == T.mul:
            a, b = x.owner.inputs
            if y is a:
                return [b]
            if y is b:
                return [a]
        return None

    register_canonicalize(local_mul_div, default=False)  # off until a mode includes it by name
    try:
        x, y = T.dvectors("xy")
        expr = (x * y) / y
        plain = sg.function([x, y], expr, backend=backend)
        assert "local_mul_div" not in plain.rewrite_report()["applied"]
        f = sg.function([x, y], expr, mode=Mode("fast_run").including("local_mul_div"), backend=backend)
        assert f.rewrite_report()["applied"]["local_mul_div"] == 1
        assert [str(n.op) for n in f.graph.toposort()] == []  # x itself: nothing left to compute
        np.testing.assert_array_equal(f(np.array([1.0, 2.0]), np.array([3.0, 0.5])), [1.0, 2.0])
        g = sg.function([x, y], (y * x) / y, mode=Mode().including("local_mul_div"))
        assert g.rewrite_report()["applied"]["local_mul_div"] == 1
    finally:
        unregister("local_mul_div")


def test_theano_style_rewriters_and_replacement_checks():
    @register_canonicalize
    @node_rewriter([T.exp])
    def exp_of_log(node):  # Theano's one-argument form
        (x,) = node.inputs
        if x.owner is not None and x.owner.op == T.log:
            return [x.owner.inputs[0]]
        return False

    @node_rewriter([T.sqr])
    def wrong_type(fgraph, node):
        return [T.cast(node.inputs[0], "float32")]
    register_canonicalize(wrong_type, name="wrong_type_rule")
    try:
        x = T.dvector("x")
        f = sg.function([x], T.exp(T.log(x)))
        assert f.rewrite_report()["applied"].get("exp_of_log") == 1
        with pytest.raises(RewriteError, match=r"(?s)wrong_type_rule.*float64\[\?\] -> float32\[\?\]"):
            sg.function([x], T.sqr(x))
        with pytest.raises(ValueError, match="built-in rewrite"):
            register_canonicalize(node_rewriter([T.exp])(lambda n: None), name="log1p")
    finally:
        unregister("exp_of_log")
        unregister("wrong_type_rule")


def test_a_registered_whole_graph_pass():
    calls = []

    def count_nodes(fgraph):
        calls.append(len(fgraph.apply_nodes))
    register_pass("count_nodes", count_nodes, after="canonicalize")
    try:
        x = T.dvector("x")
        f = sg.function([x], T.exp(x) + 1)
        assert calls and [p["name"] for p in f.rewrite_report()["passes"]][:4] == [
            "merge", "constant_folding", "canonicalize", "count_nodes"]
        calls.clear()
        sg.function([x], T.exp(x), mode=Mode().excluding("count_nodes"))
        assert not calls
        with pytest.raises(ValueError, match="not a pass"):
            register_pass("p", count_nodes, after="nowhere")
    finally:
        unregister("count_nodes")


# ---------------------------------------------------------------- op-author checks
class _Scale(Op):
    """y = 2x with a configurable (possibly wrong) infer_shape and gradient."""

    __props__ = ("bad_shape", "bad_grad")

    def __init__(self, bad_shape=False, bad_grad=False):
        self.bad_shape, self.bad_grad = bad_shape, bad_grad

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs):
        return [inputs[0] * 2]

    def infer_shape(self, node, shapes):
        (s,) = shapes
        return [s[::-1] if self.bad_shape else s]

    def grad(self, inputs, grads):
        return [grads[0] * (3 if self.bad_grad else 2)]


def test_check_infer_shape_passes_and_catches():
    x = T.dmatrix("x")
    check_infer_shape(_Scale(), [x], [np.ones((3, 4))])
    with pytest.raises(InferShapeError, match=r"gives \(4, 3\).*shape \(3, 4\)"):
        check_infer_shape(_Scale(bad_shape=True), [x], [np.ones((3, 4))])
    with pytest.warns(UserWarning, match="repeats a length"):
        check_infer_shape(_Scale(bad_shape=True), [x], [np.ones((3, 3))])  # a square input hides the bug
    with pytest.raises(InferShapeError, match="no node of"):
        check_infer_shape(lambda v: v * 2, [x], [np.ones((3, 4))], op_class=_Scale)


def test_check_rop_lop_passes_and_catches():
    check_rop_lop(lambda v: _Scale()(v) * T.tanh(v), [np.random.rand(3, 2)])
    check_rop_lop(lambda v, w: T.dot(v, w) ** 2, [np.random.rand(3), np.random.rand(3, 2)])
    with pytest.raises(RopLopError, match="Rop disagrees with finite differences"):
        check_rop_lop(lambda v: _Scale(bad_grad=True)(v), [np.random.rand(4)])


# ---------------------------------------------------------------- Rop (item 7)
def test_rop_compiles_with_the_wrt_it_does_not_read(backend):
    W, V, x = T.dmatrix("W"), T.dmatrix("V"), T.dvector("x")
    JV = sg.Rop(T.dot(x, W), W, V)  # J V = x . V: W is not read
    for mode in ("fast_run", None):
        f = sg.function([W, V, x], JV, backend=backend, mode=mode)
        np.testing.assert_array_equal(f([[1, 1], [1, 1]], [[2, 2], [2, 2]], [0, 1]), [2.0, 2.0])
    f = sg.function([W, V, x], JV, backend=backend)
    assert "DependsOn" not in [type(n.op).__name__ for n in f.graph.toposort()]  # rewritten away
    v = T.dvector("v")
    Hv = sg.Rop(sg.grad((x ** 2).sum(), x), x, v)
    np.testing.assert_array_equal(sg.function([x, v], Hv, backend=backend)([4, 4], [2, 2]), [4.0, 4.0])
    VJ = sg.Lop(T.dot(x, W), W, v)
    np.testing.assert_array_equal(sg.function([v, x], VJ, backend=backend)([2, 2], [0, 1]), [[0, 0], [2, 2]])
    g = sg.grad(JV.sum(), V)  # the kept dependency passes no gradient to W
    np.testing.assert_array_equal(sg.function([W, V, x], g, on_unused_input="ignore")(np.ones((2, 2)), np.ones((2, 2)),
                                                                                      [0, 1]), [[0, 0], [1, 1]])
