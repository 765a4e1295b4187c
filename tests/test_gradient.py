"""sg.grad and friends: values against numpy, error cases, disconnected modes, consider_constant,
known_grads, stop-gradient ops, jacobian/hessian/Lop/Rop against finite differences, XOR backprop."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
import symgraph.testing.strategies as sgs
from symgraph.errors import DisconnectedInputError, GradientError
from symgraph.gradient import disconnected_grad, zero_grad
from symgraph.graph.basic import Apply, Op
from symgraph.graph.traversal import toposort
from symgraph.testing import numeric_grad


def fd(f, xs, eps=1e-6):
    """Central finite differences of a Python function of numpy arrays."""
    return numeric_grad(f, [np.array(x, dtype=np.float64) for x in xs], eps)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=sgs.arrays("float64", shape=st.tuples(st.integers(1, 4)), domain="positive"),
       a=sgs.arrays("float64", shape=st.just(()), domain="any"))
def test_grad_matches_numpy_for_several_wrt_in_one_sweep(x, a, backend):
    xv, av = T.dvector("x"), T.dscalar("a")
    cost = (T.log(xv) * av + xv * xv).sum() + av * av
    gx, ga = sg.grad(cost, [xv, av])
    f = sg.function([xv, av], [gx, ga], backend=backend)
    got_x, got_a = f(x, a)
    np.testing.assert_allclose(got_x, a / x + 2 * x, rtol=1e-12)
    np.testing.assert_allclose(got_a, np.log(x).sum() + 2 * a, rtol=1e-12)


def test_wrt_form_is_kept():
    x, y = T.dscalar("x"), T.dscalar("y")
    c = x * y
    assert isinstance(sg.grad(c, x), T.TensorVariable)
    assert isinstance(sg.grad(c, [x, y]), list) and len(sg.grad(c, [x, y])) == 2
    assert isinstance(sg.grad(c, (x, y)), tuple)


def test_gradients_accumulate_over_several_uses():
    x = T.dscalar("x")
    y = x * x
    cost = y * x + T.sin(x) + y  # x^3 + sin x + x^2
    g = sg.function([x], sg.grad(cost, x))
    np.testing.assert_allclose(g(1.3), 3 * 1.3 ** 2 + np.cos(1.3) + 2 * 1.3)


def test_grad_of_the_cost_itself_is_one():
    x = T.dscalar("x")
    c = T.exp(x)
    assert sg.function([x], sg.grad(c, c), on_unused_input="ignore")(0.3) == 1.0


def test_intermediate_wrt():
    x = T.dscalar("x")
    h = T.sin(x)
    cost = h * h + x
    gh, gx = sg.grad(cost, [h, x])
    f = sg.function([x], [gh, gx])
    got_h, got_x = f(0.7)
    np.testing.assert_allclose(got_h, 2 * np.sin(0.7))
    np.testing.assert_allclose(got_x, 2 * np.sin(0.7) * np.cos(0.7) + 1)


def test_long_chain_is_iterative_and_correct():
    x = T.dscalar("x")
    z = x
    for _ in range(3000):
        z = T.tanh(z) * 0.999 + 0.01
    g = sg.function([x], sg.grad(z, x), mode="fast_compile")
    v, dv = 0.4, 1.0
    for _ in range(3000):
        dv *= (1 - np.tanh(v) ** 2) * 0.999
        v = np.tanh(v) * 0.999 + 0.01
    np.testing.assert_allclose(g(0.4), dv, rtol=1e-9)


@pytest.mark.parametrize("cost, match", [
    (lambda x: x * 2, "scalar"),
    (lambda x: T.cast(x.sum(), "int64"), "float dtype"),
    (lambda x: 3.0, "symbolic variable"),
])
def test_bad_cost_is_a_clear_error(cost, match):
    x = T.dvector("x")
    with pytest.raises(GradientError, match=match):
        sg.grad(cost(x), x)


def test_no_cost_and_no_known_grads():
    with pytest.raises(GradientError, match="known_grads"):
        sg.grad(None, T.dscalar())


def test_bad_mode_names():
    x = T.dscalar()
    with pytest.raises(ValueError, match="disconnected_inputs"):
        sg.grad(x * 2, x, disconnected_inputs="maybe")


def test_integer_wrt_gets_float_zeros():
    i, x = T.lvector("i"), T.dvector("x")
    cost = (T.cast(i, "float64") * x).sum()
    gi, gx = sg.grad(cost, [i, x])
    assert gi.dtype == sg.config.floatX
    got_i, got_x = sg.function([i, x], [gi, gx])(np.array([1, 2]), np.array([3.0, 4.0]))
    np.testing.assert_array_equal(got_i, [0.0, 0.0])
    np.testing.assert_array_equal(got_x, [1.0, 2.0])


def test_piecewise_constant_paths_give_zero_not_an_error():
    x = T.dvector("x")
    cost = T.floor(x).sum() + T.cast(T.gt(x, 0), "float64").sum() + T.cast(x.argmax(), "float64")
    g = sg.function([x], sg.grad(cost, x))
    np.testing.assert_array_equal(g(np.array([0.3, -1.2, 2.5])), [0.0, 0.0, 0.0])


class NoGrad(Op):
    """An op with a forward pass and no gradient."""

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node, inputs):
        return [inputs[0] * 2]


def test_undefined_gradient_names_op_and_user_line():
    x = T.dvector("x")
    y = NoGrad()(x)  # the line the error must point at
    with pytest.raises(GradientError) as info:
        sg.grad(T.exp(y).sum(), x)
    msg = str(info.value)
    assert "NoGrad does not define a gradient" in msg and "test_gradient.py" in msg and "float64[?]" in msg


def test_only_nodes_between_cost_and_wrt_are_visited():
    a, b = T.dscalar("a"), T.dscalar("b")
    cost = a * 3 + NoGrad()(b)  # NoGrad is not on a path from a: never asked for a gradient
    assert sg.function([a, b], sg.grad(cost, a), on_unused_input="ignore")(1.0, 2.0) == 3.0


def test_disconnected_raise_names_the_variable():
    x, y = T.dscalar("x"), T.dscalar("lonely")
    with pytest.raises(DisconnectedInputError, match="lonely"):
        sg.grad(x * 2, [x, y])


def test_disconnected_warn_and_ignore_give_zeros():
    x, y = T.dscalar("x"), T.dvector("y")
    with pytest.warns(UserWarning, match="does not depend"):
        gx, gy = sg.grad(x * 2, [x, y], disconnected_inputs="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gy2 = sg.grad(x * 2, y, disconnected_inputs="ignore")
    f = sg.function([x, y], [gy, gy2], on_unused_input="ignore")
    for got in f(1.0, np.ones(3)):
        np.testing.assert_array_equal(got, np.zeros(3))
    assert sg.grad(x * 2, y, disconnected_inputs="ignore", return_disconnected="none") is None


def test_consider_constant_stops_the_gradient_there():
    x = T.dscalar("x")
    sq = x * x
    cost = sq * x  # d/dx with x*x held constant is x*x
    g = sg.function([x], sg.grad(cost, x, consider_constant=[sq]))
    assert g(3.0) == 9.0
    with pytest.raises(DisconnectedInputError):
        sg.grad(T.exp(sq), x, consider_constant=[sq])


def test_known_grads_alone_and_with_a_cost():
    x = T.dvector("x")
    h = T.sin(x)
    v = T.dvector("v")
    lop = sg.grad(None, x, known_grads={h: v})
    both = sg.grad(x.sum(), x, known_grads={h: v})
    f = sg.function([x, v], [lop, both])
    xv, vv = np.array([0.1, 0.2]), np.array([2.0, -1.0])
    got_lop, got_both = f(xv, vv)
    np.testing.assert_allclose(got_lop, np.cos(xv) * vv)
    np.testing.assert_allclose(got_both, np.cos(xv) * vv + 1)
    with pytest.raises(GradientError, match="dimensions"):
        sg.grad(None, x, known_grads={h: T.dmatrix()})


def test_zero_grad_is_identity_forward_and_zero_backward(backend):
    x = T.dvector("x")
    z = zero_grad(x)
    cost = (z * x).sum()  # d/dx = z = x
    f = sg.function([x], [z, sg.grad(cost, x), sg.grad(z.sum(), x)], backend=backend)
    xv = np.array([1.0, -2.0])
    out, g, g0 = f(xv)
    np.testing.assert_array_equal(out, xv)
    np.testing.assert_array_equal(g, xv)
    np.testing.assert_array_equal(g0, [0.0, 0.0])  # connected: zeros, no DisconnectedInputError
    assert T.zero_grad is zero_grad and T.disconnected_grad is disconnected_grad


def test_disconnected_grad_stops_the_gradient(backend):
    x = T.dvector("x")
    d = disconnected_grad(x)
    f = sg.function([x], [d, sg.grad((d * x).sum(), x)], backend=backend)
    out, g = f(np.array([1.0, 3.0]))
    np.testing.assert_array_equal(out, [1.0, 3.0])
    np.testing.assert_array_equal(g, [1.0, 3.0])
    with pytest.raises(DisconnectedInputError):
        sg.grad(T.exp(d).sum(), x)


def test_gradient_graph_only_grows_linearly():
    x = T.dscalar("x")
    z = x
    for _ in range(200):
        z = T.sin(z) * 1.01
    n_fwd = len(toposort([z]))
    n_grad = len(toposort([sg.grad(z, x)]))
    assert n_grad < 4 * n_fwd


# --- jacobian, hessian, Lop, Rop ------------------------------------------------------------------

def _f(xv):
    return np.tanh(np.array([[1.0, 2.0, -1.0], [0.5, -0.3, 2.0]]) @ xv) * xv[0]


def test_jacobian_against_finite_differences():
    x = T.tensor("float64", shape=(3,), name="x")
    W = T.constant(np.array([[1.0, 2.0, -1.0], [0.5, -0.3, 2.0]]))
    y = T.tanh(T.dot(W, x)) * x[0]
    J = sg.function([x], sg.jacobian(y, x))(np.array([0.2, -0.4, 0.3]))
    x0 = np.array([0.2, -0.4, 0.3])
    num = np.stack([fd(lambda v, i=i: _f(v)[i], [x0])[0] for i in range(2)])
    assert J.shape == (2, 3)
    np.testing.assert_allclose(J, num, atol=1e-7)


def test_jacobian_of_a_matrix_expression_and_several_wrt():
    x = T.tensor("float64", shape=(2,), name="x")
    s = T.dscalar("s")
    y = T.outer(x, x) * s  # 2x2
    Jx, Js = sg.jacobian(y, [x, s])
    f = sg.function([x, s], [Jx, Js])
    xv, sv = np.array([0.5, -2.0]), 1.5
    got_x, got_s = f(xv, sv)
    expect_x = np.zeros((2, 2, 2))
    for i in range(2):
        for j in range(2):
            expect_x[i, j, i] += xv[j] * sv
            expect_x[i, j, j] += xv[i] * sv
    np.testing.assert_allclose(got_x, expect_x)
    np.testing.assert_allclose(got_s, np.outer(xv, xv))


def test_jacobian_of_an_empty_expression_is_empty():
    x, w = T.tensor("float64", shape=(0,), name="x"), T.dvector("w")
    J = sg.function([x, w], sg.jacobian(x * w.sum(), w), on_unused_input="ignore")(np.zeros(0), np.ones(3))
    assert J.shape == (0, 3)


def test_jacobian_and_hessian_of_dynamic_shape_are_scans():
    """Without a static shape the Jacobian is a scan over the flattened expression (as in Theano)."""
    x, W = T.dvector("x"), T.dmatrix("W")
    J = sg.jacobian(T.tanh(T.dot(W, x)) * x[0], x)
    H = sg.hessian((T.exp(x[0] * x[1]) + T.sin(x) * x[2]).sum(), x)
    f = sg.function([x, W], [J, H])
    wv, x0 = np.array([[1.0, 2.0, -1.0], [0.5, -0.3, 2.0]]), np.array([0.2, -0.4, 0.3])
    got_j, got_h = f(x0, wv)
    num = np.stack([fd(lambda v, i=i: _f(v)[i], [x0])[0] for i in range(2)])
    np.testing.assert_allclose(got_j, num, atol=1e-7)
    assert got_h.shape == (3, 3)
    np.testing.assert_allclose(got_h, got_h.T, atol=1e-12)
    empty = sg.function([x, W], sg.jacobian(T.dot(W, x), x))(np.zeros(0), np.zeros((2, 0)))
    assert empty.shape == (2, 0)


def test_hessian_against_finite_differences():
    x = T.tensor("float64", shape=(3,), name="x")
    cost = (T.exp(x[0] * x[1]) + T.sin(x) * x[2]).sum()
    H = sg.function([x], sg.hessian(cost, x))
    x0 = np.array([0.3, -0.5, 0.8])
    grad_f = sg.function([x], sg.grad(cost, x))
    num = np.stack([fd(lambda v, i=i: grad_f(v)[i], [x0])[0] for i in range(3)])
    got = H(x0)
    np.testing.assert_allclose(got, num, atol=1e-6)
    np.testing.assert_allclose(got, got.T, atol=1e-12)


def test_lop_is_vector_jacobian_product():
    x = T.tensor("float64", shape=(3,), name="x")
    W = T.constant(np.array([[1.0, 2.0, -1.0], [0.5, -0.3, 2.0]]))
    y = T.tanh(T.dot(W, x)) * x[0]
    v = T.dvector("v")
    f = sg.function([x, v], sg.Lop(y, x, v))
    J = sg.function([x], sg.jacobian(y, x))
    x0, v0 = np.array([0.2, -0.4, 0.3]), np.array([1.5, -0.7])
    np.testing.assert_allclose(f(x0, v0), v0 @ J(x0), rtol=1e-12)


@given(sgs.arrays("float64", shape=(3,), domain="unit"), sgs.arrays("float64", shape=(3,), domain="any"))
def test_rop_against_finite_differences(x0, v0):
    x, v = T.dvector("x"), T.dvector("v")
    y = T.exp(x) * T.sin(x.sum()) + x * x  # non-diagonal Jacobian
    f = sg.function([x, v], sg.Rop(y, x, v))

    def fwd(xv):
        return np.exp(xv) * np.sin(xv.sum()) + xv * xv
    eps = 1e-6
    num = (fwd(x0 + eps * v0) - fwd(x0 - eps * v0)) / (2 * eps)
    np.testing.assert_allclose(f(x0, v0), num, atol=1e-6 * (1 + np.abs(num).max()))


def test_rop_with_several_wrt_and_outputs():
    a, b = T.dvector("a"), T.dscalar("b")
    y1, y2 = a * b, T.sin(a).sum()
    va, vb = T.dvector("va"), T.dscalar("vb")
    r1, r2 = sg.Rop([y1, y2], [a, b], [va, vb])
    f = sg.function([a, b, va, vb], [r1, r2])
    a0, b0, va0, vb0 = np.array([0.5, 1.0]), 2.0, np.array([1.0, -1.0]), 0.5
    got1, got2 = f(a0, b0, va0, vb0)
    np.testing.assert_allclose(got1, va0 * b0 + a0 * vb0)
    np.testing.assert_allclose(got2, (np.cos(a0) * va0).sum())


def test_rop_disconnected_output():
    x, y = T.dvector("x"), T.dvector("y")
    with pytest.raises(DisconnectedInputError):
        sg.Rop(y * 2, x, x)
    r = sg.Rop(y * 2, x, x, disconnected_outputs="ignore")
    f = sg.function([x, y], r, on_unused_input="ignore")
    np.testing.assert_array_equal(f(np.ones(2), np.ones(2)), [0.0, 0.0])


# --- the XOR network of the classic numpy tutorial -------------------------------------------------

def test_xor_network_gradient_equals_handwritten_backprop():
    """3-4-1 sigmoid net, no biases, loss = sum((y - yhat)^2). The tutorial computes
        d_weights2 = layer1.T @ (2 (y - yhat) * yhat (1 - yhat))
        d_weights1 = X.T @ ((2 (y - yhat) * yhat (1 - yhat)) @ W2.T * layer1 (1 - layer1))
    and ADDS them to the weights, so they are the NEGATIVE gradient: grad(loss, W) = -d_weights."""
    X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float64)
    y = np.array([[0], [1], [1], [0]], dtype=np.float64)
    rng = np.random.default_rng(1)
    W1, W2 = rng.random((3, 4)), rng.random((4, 1))

    def sig(z):
        return 1 / (1 + np.exp(-z))
    layer1 = sig(X @ W1)
    out = sig(layer1 @ W2)
    delta2 = 2 * (y - out) * out * (1 - out)
    d_weights2 = layer1.T @ delta2
    d_weights1 = X.T @ (delta2 @ W2.T * layer1 * (1 - layer1))

    tX, ty, tW1, tW2 = T.dmatrix("X"), T.dmatrix("y"), T.dmatrix("W1"), T.dmatrix("W2")
    yhat = T.sigmoid(T.dot(T.sigmoid(T.dot(tX, tW1)), tW2))
    loss = ((ty - yhat) ** 2).sum()
    g1, g2 = sg.function([tX, ty, tW1, tW2], sg.grad(loss, [tW1, tW2]))(X, y, W1, W2)
    np.testing.assert_allclose(g1, -d_weights1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(g2, -d_weights2, rtol=0, atol=1e-12)


def test_theano_spellings_on_the_tensor_namespace():
    """Theano code calls T.grad, T.Rop, T.Lop, T.jacobian and T.hessian: they are sg.grad and friends."""
    x = T.tensor("float64", shape=(2,), name="x")
    cost = (x ** 3).sum()
    assert T.grad is sg.grad and T.Rop is sg.Rop and T.Lop is sg.Lop
    f = sg.function([x], [T.grad(cost, x), T.jacobian(x ** 2, x), T.hessian(cost, x),
                          T.Rop(x ** 2, x, T.ones_like(x)), T.Lop(x ** 2, x, T.ones_like(x))])
    v = np.array([1.0, 2.0])
    g, j, h, r, lo = f(v)
    np.testing.assert_allclose(g, 3 * v ** 2)
    np.testing.assert_allclose(j, np.diag(2 * v))
    np.testing.assert_allclose(h, np.diag(6 * v))
    np.testing.assert_allclose(r, 2 * v)
    np.testing.assert_allclose(lo, 2 * v)
