"""sg.updates: each rule against a hand-written numpy version over several steps."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph import updates as U
from symgraph.errors import GraphTypeError, InputError

SHAPES = [(3, 2), (4,), ()]
STEPS = 6


# --- hand-written numpy versions: state dict in, new param out ---------------------------------

def np_sgd(p, g, s, lr):
    return p - lr * g


def np_momentum(p, g, s, lr, mu=0.9):
    s["v"] = mu * s.get("v", 0 * p) - lr * g
    return p + s["v"]


def np_nesterov(p, g, s, lr, mu=0.9):
    s["v"] = mu * s.get("v", 0 * p) - lr * g
    return p + mu * s["v"] - lr * g


def np_adagrad(p, g, s, lr=1.0, eps=1e-6):
    s["a"] = s.get("a", 0 * p) + g * g
    return p - lr * g / np.sqrt(s["a"] + eps)


def np_rmsprop(p, g, s, lr=1.0, rho=0.9, eps=1e-6):
    s["a"] = rho * s.get("a", 0 * p) + (1 - rho) * g * g
    return p - lr * g / np.sqrt(s["a"] + eps)


def np_adam(p, g, s, lr=0.001, b1=0.9, b2=0.999, eps=1e-8):
    t = s["t"] = s.get("t", 0) + 1
    s["m"] = b1 * s.get("m", 0 * p) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0 * p) + (1 - b2) * g * g
    m_hat, v_hat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


# (rule, numpy version, keyword arguments for both)
CASES = [
    (U.sgd, np_sgd, {"learning_rate": 0.1}, {"lr": 0.1}),
    (U.momentum, np_momentum, {"learning_rate": 0.05, "momentum": 0.8}, {"lr": 0.05, "mu": 0.8}),
    (U.nesterov_momentum, np_nesterov, {"learning_rate": 0.05, "momentum": 0.7}, {"lr": 0.05, "mu": 0.7}),
    (U.adagrad, np_adagrad, {}, {}),
    (U.adagrad, np_adagrad, {"learning_rate": 0.3, "epsilon": 1e-4}, {"lr": 0.3, "eps": 1e-4}),
    (U.rmsprop, np_rmsprop, {}, {}),
    (U.rmsprop, np_rmsprop, {"learning_rate": 0.01, "rho": 0.5, "epsilon": 1e-3},
     {"lr": 0.01, "rho": 0.5, "eps": 1e-3}),
    (U.adam, np_adam, {}, {}),
    (U.adam, np_adam, {"learning_rate": 0.01, "beta1": 0.5, "beta2": 0.9, "epsilon": 1e-7},
     {"lr": 0.01, "b1": 0.5, "b2": 0.9, "eps": 1e-7}),
]
IDS = [f"{rule.__name__}-{k}" for k, (rule, *_) in enumerate(CASES)]


def _run(rule, kwargs, dtype, backend, values, grads_seq):
    """Apply the symbolic rule for len(grads_seq) steps, feeding gradients as inputs."""
    params = [sg.shared(v, name=f"p{k}") for k, v in enumerate(values)]
    g_in = [T.tensor(dtype, (None,) * v.ndim, name=f"g{k}") for k, v in enumerate(values)]
    step = sg.function(g_in, [], updates=rule(g_in, params, **kwargs), backend=backend)
    for grads in grads_seq:
        step(*grads)
    return [p.get_value() for p in params]


def _reference(np_rule, np_kwargs, values, grads_seq):
    """The numpy version in float64, starting from the same values."""
    ps = [v.astype(np.float64) for v in values]
    states = [{} for _ in values]
    for grads in grads_seq:
        ps = [np_rule(p, g.astype(np.float64), s, **np_kwargs) for p, g, s in zip(ps, grads, states)]
    return ps


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rule,np_rule,kwargs,np_kwargs", CASES, ids=IDS)
def test_rule_matches_numpy(rule, np_rule, kwargs, np_kwargs, dtype, backend):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads_seq = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    got = _run(rule, kwargs, dtype, backend, values, grads_seq)
    want = _reference(np_rule, np_kwargs, values, grads_seq)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for g, w in zip(got, want):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@given(st.sampled_from(list(range(len(CASES)))), st.sampled_from(["float32", "float64"]),
       st.lists(st.integers(0, 3), min_size=0, max_size=2), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_rule_matches_numpy_on_generated_shapes(case, dtype, shape, steps, seed):
    rule, np_rule, kwargs, np_kwargs = CASES[case]
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(shape).astype(dtype)]
    grads_seq = [[rng.standard_normal(shape).astype(dtype)] for _ in range(steps)]
    got = _run(rule, kwargs, dtype, "numpy", values, grads_seq)
    want = _reference(np_rule, np_kwargs, values, grads_seq)
    tol = 5e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got[0], want[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("rule", [U.sgd, U.momentum, U.nesterov_momentum, U.adagrad, U.rmsprop, U.adam])
def test_symbolic_float64_learning_rate_keeps_float32_params(rule, backend):
    p = sg.shared(np.ones(3, np.float32), name="p")
    g, lr = T.fvector("g"), T.dscalar("lr")
    updates = rule([g], [p], learning_rate=lr)
    assert all(new.dtype == var.dtype == "float32" for var, new in updates.items())
    step = sg.function([g, lr], [], updates=updates, backend=backend)
    step(np.ones(3, np.float32), 0.5)
    assert p.get_value().dtype == np.float32
    assert np.all(p.get_value() < 1)


def test_state_is_shared_and_ordered():
    p = sg.shared(np.zeros((2, 2), np.float32), name="W")
    updates = U.adam([T.fmatrix("g")], [p])
    keys = list(updates)
    assert keys[-1] is p  # the parameter comes after its state
    assert [k.name for k in keys] == ["adam_t", "W_m", "W_v", "W"]
    assert all(isinstance(k, sg.SharedVariable) and k.dtype == "float32" for k in keys)


def test_loss_is_differentiated(backend):
    x = T.fvector("x")
    w = sg.shared(np.array([1.0, -2.0], np.float32), name="w")
    loss = ((w - x) ** 2).sum()
    step = sg.function([x], loss, updates=U.sgd(loss, [w], learning_rate=0.25), backend=backend)
    target = np.array([3.0, 0.5], np.float32)
    first = step(target)
    np.testing.assert_allclose(w.get_value(), [1 + 0.5 * 2, -2 + 0.5 * 2.5], rtol=1e-6)
    for _ in range(3):
        last = step(target)
    assert last < first


def test_adam_minimises_a_quadratic(backend):
    x = T.dvector("x")
    w = sg.shared(np.zeros(3), name="w")
    loss = ((w - x) ** 2).sum()
    step = sg.function([x], loss, updates=U.adam(loss, [w], learning_rate=0.1), backend=backend)
    target = np.array([1.0, -1.0, 0.5])
    for _ in range(300):
        step(target)
    np.testing.assert_allclose(w.get_value(), target, atol=1e-2)


def test_bad_arguments_are_named():
    p = sg.shared(np.zeros(3), name="p")
    with pytest.raises(InputError, match="sg.shared"):
        U.sgd([T.dvector()], [T.dvector("notshared")], learning_rate=0.1)
    with pytest.raises(InputError, match="2 gradients for 1 parameters"):
        U.sgd([T.dvector(), T.dvector()], [p], learning_rate=0.1)
    with pytest.raises(GraphTypeError, match="2 dimensions"):
        U.adam([T.dmatrix()], [p])
    with pytest.raises(GraphTypeError, match="floating-point"):
        U.sgd([T.lvector()], [sg.shared(np.zeros(3, np.int64))], learning_rate=1)


@pytest.mark.parametrize("names", [(None, None), ("W", "b")])
def test_adam_on_a_loss_matches_numpy_with_unnamed_params(names, backend):
    """Several parameters, gradients from a loss, state variables all distinct (regression: unnamed
    parameters once gave their state the same name, and the generated code mixed them up)."""
    rng = np.random.default_rng(3)
    xv, yv = rng.standard_normal((8, 3)), rng.standard_normal(8)
    w0, b0 = rng.standard_normal(3), np.array(0.5)
    w, b = sg.shared(w0, name=names[0]), sg.shared(b0, name=names[1])
    x, y = T.dmatrix("x"), T.dvector("y")
    loss = T.mean((T.dot(x, w) + b - y) ** 2)
    step = sg.function([x, y], loss, updates=U.adam(loss, [w, b], learning_rate=0.1), backend=backend)
    ps, states = [w0.copy(), b0.copy()], [{}, {}]
    for _ in range(STEPS):
        step(xv, yv)
        r = xv @ ps[0] + ps[1] - yv
        grads = [2 * xv.T @ r / len(r), np.array(2 * r.mean())]
        ps = [np_adam(p, g, s, lr=0.1) for p, g, s in zip(ps, grads, states)]
    np.testing.assert_allclose(w.get_value(), ps[0], rtol=1e-10)
    np.testing.assert_allclose(b.get_value(), ps[1], rtol=1e-10)
