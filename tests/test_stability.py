"""Gradients that are finite wherever the math is (issue 22 items 9 and 10).

``sg.grad`` differentiates the cost after the stabilize pass, so the graph it returns (run with
mode=None) and its rewritten form (fast_run) are finite at logits of +-1000, at sigmoid(+-800),
and for the hand-written forms of Theano's tutorials (1/(1+exp(-x)), log(sum(exp(x))), ...).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph.traversal import toposort
from symgraph.testing import verify_grad

MODES = [None, "fast_run"]
LOGITS = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 3.0], [0.5, 0.25, -2.0]])
TARGETS = np.array([1, 0, 2])


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(z):
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _onehot(t, n):
    return (t[:, None] == np.arange(n)).astype(float)


def _crossentropy_costs(z, t):
    sm = T.nnet.softmax(z)
    rows = T.arange(z.shape[0])
    return {"categorical_crossentropy(softmax(z), t)": T.nnet.categorical_crossentropy(sm, t).sum(),
            "categorical_crossentropy(softmax(z), onehot)": T.nnet.categorical_crossentropy(
                sm, T.cast(T.nnet.one_hot(t, z), "float64")).sum(),
            "-log(softmax(z))[t]": -T.log(sm)[rows, t].sum(),
            "hand-written -log(exp(z) / sum(exp(z)))[t]": -T.log(T.exp(z) / T.exp(z).sum(axis=1, keepdims=True))[
                rows, t].sum()}


@pytest.mark.parametrize("mode", MODES)
def test_softmax_crossentropy_gradient_is_softmax_minus_onehot(backend, mode):
    """Item 9: the cost at logits +-1000 is 2000 per row and the gradient softmax(z) - onehot(t);
    it was NaN (1/0 * 0) in both the sg.grad graph and its rewritten form."""
    z, t = T.dmatrix("z"), T.lvector("t")
    expected_grad = _softmax(LOGITS) - _onehot(TARGETS, 3)
    expected_cost = -_log_softmax(LOGITS)[np.arange(3), TARGETS].sum()
    for name, cost in _crossentropy_costs(z, t).items():
        f = sg.function([z, t], [cost, sg.grad(cost, z)], backend=backend, mode=mode)
        with np.errstate(all="ignore" if mode is None else "raise", under="ignore"):  # None: raw forward overflows
            value, grad = f(LOGITS, TARGETS)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-12, err_msg=name)
        if mode is not None:
            np.testing.assert_allclose(value, expected_cost, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
def test_sigmoid_log_and_binary_crossentropy_gradients(backend, mode):
    """Item 9: log(sigmoid(-800)) and binary_crossentropy(sigmoid(800), 0) have finite gradients."""
    x = T.dvector("x")
    points = np.array([-800.0, 800.0, 0.0, 3.0])
    s = 1 / (1 + np.exp(-np.clip(points, -700, 700)))
    cases = {"log(sigmoid(x))": (T.log(T.nnet.sigmoid(x)), 1 - s),
             "log(1 - sigmoid(x))": (T.log(1 - T.nnet.sigmoid(x)), -s),
             "binary_crossentropy(sigmoid(x), 0)": (T.nnet.binary_crossentropy(T.nnet.sigmoid(x), 0.0), s),
             "binary_crossentropy(sigmoid(x), 1)": (T.nnet.binary_crossentropy(T.nnet.sigmoid(x), 1.0), s - 1)}
    for name, (out, expected) in cases.items():
        f = sg.function([x], sg.grad(out.sum(), x), backend=backend, mode=mode)
        np.testing.assert_allclose(f(points), expected, rtol=1e-12, atol=1e-300, err_msg=name)


def _hand_written(x):
    """Hand-written forms, their stable numpy value and gradient (of the sum) at the test points."""
    return {
        "1 / (1 + exp(-x))": (lambda v: T.log(1 / (1 + T.exp(-v))),
                              lambda a: -np.logaddexp(0, -a), lambda a: 1 / (1 + np.exp(np.clip(a, -700, 700)))),
        "log(1 - 1 / (1 + exp(-x)))": (lambda v: T.log(1 - 1 / (1 + T.exp(-v))),
                                       lambda a: -np.logaddexp(0, a), lambda a: -1 / (1 + np.exp(-np.clip(a, -700, 700)))),
        "exp(x) / (1 + exp(x))": (lambda v: T.log(T.exp(v) / (1 + T.exp(v))),
                                  lambda a: -np.logaddexp(0, -a), lambda a: 1 / (1 + np.exp(np.clip(a, -700, 700)))),
        "log(1 + exp(x))": (lambda v: T.log(1 + T.exp(v)),
                            lambda a: np.logaddexp(0, a), lambda a: 1 / (1 + np.exp(-np.clip(a, -700, 700)))),
        "log(sum(exp(x)))": (lambda v: T.log(T.exp(v).sum(keepdims=True)) * T.ones_like(v) / v.shape[0],
                             lambda a: np.full_like(a, np.logaddexp.reduce(a) / a.size), lambda a: _softmax(a)),
    }


@pytest.mark.parametrize("mode", MODES)
def test_hand_written_forms_are_recognised(backend, mode):
    """Item 10: the forms Theano's tutorials write by hand have finite gradients at +-800 (and
    finite values after rewriting)."""
    x = T.dvector("x")
    points = np.array([-800.0, 800.0, 0.0, 3.0, -2.5])
    for name, (build, value, grad) in _hand_written(x).items():
        out = build(x)
        f = sg.function([x], [out, sg.grad(out.sum(), x)], backend=backend, mode=mode)
        with np.errstate(all="ignore" if mode is None else "raise", under="ignore"):
            got_value, got_grad = f(points)
        np.testing.assert_allclose(got_grad, grad(points), rtol=1e-9, atol=1e-300, err_msg=name)
        if mode is not None:
            np.testing.assert_allclose(got_value, value(points), rtol=1e-9, err_msg=name)


@given(hnp.arrays("float64", st.integers(1, 5), elements=st.floats(-30, 30)))
def test_recognised_forms_keep_the_gradient(values):
    """The rewritten forms are the same functions: their gradients match finite differences."""
    for name, (build, _, _) in _hand_written(T.dvector()).items():
        verify_grad(build, [values], rng=0)
    verify_grad(lambda v: T.nnet.categorical_crossentropy(T.nnet.softmax(v.dimshuffle("x", 0)), [0]),
                [values], rng=0)


def test_theano_tutorial_logistic_regression(backend):
    """Item 10: Theano's logistic-regression tutorial (hand-written sigmoid and crossentropy,
    400x784 standard normal data, standard normal initial weights) trained to NaN from step 0.
    Now its cost is finite and it fits the training labels exactly, as Theano's does (the
    tutorial runs 10000 steps; 300 already reach 100% here)."""
    rng = np.random.RandomState(0)
    n, feats = 400, 784
    data = (rng.randn(n, feats), rng.randint(size=n, low=0, high=2).astype(float))
    x, y = T.dmatrix("x"), T.dvector("y")
    w, b = sg.shared(rng.randn(feats), name="w"), sg.shared(0.0, name="b")
    p_1 = 1 / (1 + T.exp(-T.dot(x, w) - b))
    xent = -y * T.log(p_1) - (1 - y) * T.log(1 - p_1)
    cost = xent.mean() + 0.01 * (w ** 2).sum()
    gw, gb = sg.grad(cost, [w, b])
    train = sg.function([x, y], [cost, gw], updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)], backend=backend)
    predict = sg.function([x], p_1 > 0.5, backend=backend)
    steps = 300 if backend == "numpy" else 30  # the OpenCL run is checked against the numpy one
    w0 = w.get_value().copy()
    for _ in range(steps):
        c, g = train(*data)
        assert np.isfinite(c) and np.isfinite(g).all()
    if backend == "numpy":
        assert (predict(data[0]) == data[1]).mean() == 1.0
    else:
        w_np = sg.shared(w0)
        b_np = sg.shared(0.0)
        p_np = 1 / (1 + T.exp(-T.dot(x, w_np) - b_np))
        c_np = (-y * T.log(p_np) - (1 - y) * T.log(1 - p_np)).mean() + 0.01 * (w_np ** 2).sum()
        gw_np, gb_np = sg.grad(c_np, [w_np, b_np])
        step = sg.function([x, y], [], updates=[(w_np, w_np - 0.1 * gw_np), (b_np, b_np - 0.1 * gb_np)])
        for _ in range(steps):
            step(*data)
        np.testing.assert_allclose(w.get_value(), w_np.get_value(), rtol=1e-9, atol=1e-12)


def test_grad_leaves_the_users_graph_alone():
    """Stabilizing before differentiating works on a copy, and never looks through a variable
    the gradient is asked for (or one held constant)."""
    z, t = T.dmatrix("z"), T.lvector("t")
    sm = T.nnet.softmax(z)
    cost = -T.log(sm)[T.arange(z.shape[0]), t].sum()
    before = [(n.op, list(n.inputs)) for n in toposort([cost])]
    g_sm, g_z = sg.grad(cost, [sm, z])
    assert [(n.op, list(n.inputs)) for n in toposort([cost])] == before
    f = sg.function([z, t], [g_sm, g_z])
    a = np.array([[0.5, 1.0, -1.0], [2.0, 0.0, 0.0]])
    got_sm, got_z = f(a, np.array([2, 0]))
    expected_sm = np.zeros((2, 3))
    expected_sm[[0, 1], [2, 0]] = -1 / _softmax(a)[[0, 1], [2, 0]]
    np.testing.assert_allclose(got_sm, expected_sm, rtol=1e-12)
    np.testing.assert_allclose(got_z, _softmax(a) - _onehot(np.array([2, 0]), 3), rtol=1e-12)
    held = sg.grad(cost, z, consider_constant=[sm], disconnected_inputs="ignore")
    np.testing.assert_array_equal(sg.function([z, t], held, on_unused_input="ignore")(a, np.array([2, 0])),
                                  np.zeros((2, 3)))
