"""sg.OpFromGraph (Theano's theano.OpFromGraph, issue 20): a graph applied as an op, inlined by
canonicalize in rewriting modes and run through its inner graph without rewrites, on every
backend; nested ops, gradients by finite differences, equal ops, bad input naming the line."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError
from symgraph.opfromgraph import OpFromGraph
from symgraph.testing import check_infer_shape, verify_grad

HERE = __file__.rsplit("/", 1)[-1]
FLOATS = st.floats(-3, 3, allow_nan=False)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _compile(backend, *args, **kw):
    with warnings.catch_warnings():  # without rewrites, OpenCL runs the op as a warned host fallback
        warnings.simplefilter("ignore", RuntimeWarning)
        return sg.function(*args, backend=backend, **kw)


@pytest.mark.parametrize("mode", ["fast_run", "none"])
def test_the_d3viz_pages_op_matches_numpy(backend, mode):
    x, y, z = T.dvector("x"), T.dvector("y"), T.dscalar("z")
    op = OpFromGraph([x, y, z], [T.sigmoid((x + y + z) ** 2)])
    f = _compile(backend, [x, y, z], op(x, y, z) + op(y, x, z), mode=mode)
    kept = any("OpFromGraph" in str(n.op) for n in f.maker.fgraph.toposort())  # (in a HostFallback too)
    assert kept == (mode == "none")  # inlined by canonicalize, kept (and performed) without rewrites

    @given(a=arrays("float64", 3, elements=FLOATS), b=arrays("float64", 3, elements=FLOATS), c=FLOATS)
    def check(a, b, c):
        np.testing.assert_allclose(f(a, b, c), 2 * _sigmoid((a + b + c) ** 2), rtol=1e-12)
    check()


def test_nested_ops_several_outputs_and_save_load(backend, tmp_path):
    x, y, z = T.dscalars("x", "y", "z")
    op = OpFromGraph([x, y], [x * y])
    op2 = OpFromGraph([x, y, z], [op(x, y) + z, x - z], name="outer")
    e3, d = op2(x, y, z)
    assert str(e3.owner.op) == "OpFromGraph{outer}"
    sg.save([x, y, z, e3, d], tmp_path / "g.sg")
    x2, y2, z2, e32, d2 = sg.load(tmp_path / "g.sg")
    for mode in ("fast_run", "none"):
        f = _compile(backend, [x, y, z], [e3 + z, d], mode=mode)
        assert [float(v) for v in f(2.0, 3.0, 4.0)] == [14.0, -2.0]
        g = _compile(backend, [x2, y2, z2], [e32, d2], mode=mode)
        assert [float(v) for v in g(2.0, 3.0, 4.0)] == [10.0, -2.0]


def test_equal_graphs_make_equal_ops_and_static_lengths_follow_the_inputs():
    x = T.dvector("x")
    a, b = OpFromGraph([x], [T.exp(x)]), OpFromGraph([x], [T.exp(x)])
    assert a == b and hash(a) == hash(b) and a != OpFromGraph([x], [T.log(x)])
    fixed = T.TensorType("float64", shape=(3,))("fixed")
    assert a(fixed).type.shape == (3,)
    m = T.dmatrix("m")
    check_infer_shape(OpFromGraph([m], [m.T[1:], m.sum(0)]), [m], [np.ones((3, 4))])


def test_gradient_is_the_inner_graphs():
    x, w = T.dvector("x"), T.dmatrix("w")
    layer = OpFromGraph([x, w], [T.tanh(T.dot(w, x))])
    verify_grad(lambda a, m: layer(a, m) * 2, [np.array([0.3, -0.7]), np.array([[1.2, 0.4], [0.1, -0.5]])])
    i = T.ivector("i")
    mixed = OpFromGraph([x, i], [x * T.cast(i, "float64")])
    gx = sg.grad(mixed(x, i).sum(), x)  # the integer input carries no gradient
    np.testing.assert_array_equal(sg.function([x, i], gx)(np.ones(2), np.array([2, 3], "int32")), [2.0, 3.0])


def _at_this_line(match):
    return "(?s)" + match + ".*" + re.escape(HERE)


def test_bad_input_names_what_and_the_line():
    x, y = T.dvector("x"), T.dvector("y")
    with pytest.raises(GraphTypeError, match=_at_this_line(r"read y, which is not among the inputs; pass it as an input")):
        OpFromGraph([x], [x + y])
    op = OpFromGraph([x], [x * 2])
    with pytest.raises(GraphTypeError, match=_at_this_line(r"input 0 is .* of type float32\[\?\].*reads float64")):
        op(T.fvector("f"))
    with pytest.raises(GraphTypeError, match=_at_this_line("takes 1 inputs, got 2")):
        op(x, y)
    with pytest.raises(TypeError, match=_at_this_line("grad_overrides not supported")):
        OpFromGraph([x], [x * 2], grad_overrides=lambda *a: a)
    with pytest.raises(GraphTypeError, match="inputs must be symbolic variables"):
        OpFromGraph([T.constant(1.0)], [x])
