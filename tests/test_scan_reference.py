"""sg.scan against independent references: plain numpy loops (cumulative sum, vanilla RNN, LSTM,
Fibonacci with taps, go_backwards, nested loops, ifelse in a body) on every backend, and
``jax.lax.scan`` figures (values and gradients, float64) from tests/fixtures/scan_jax.npz
(regenerate with tests/fixtures/make_scan_jax.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "scan_jax.npz")


def _dtype(backend):
    return "float32" if backend == "opencl" else "float64"


def _tol(backend):
    return {"rtol": 2e-5, "atol": 2e-5} if backend == "opencl" else {"rtol": 1e-12, "atol": 1e-12}


# --- the loops, written once for sg.scan (the fixture script writes the same ones for JAX) ----------

def rnn(x, h0, W, U, b):
    h, _ = sg.scan(lambda xt, h, W, U, b: T.tanh(T.dot(h, W) + T.dot(xt, U) + b), sequences=[x],
                   outputs_info=[h0], non_sequences=[W, U, b])
    return h


def lstm(x, h0, c0, W, U, b):
    def step(xt, h, c, W, U, b):
        n = h.shape[-1]
        z = T.dot(h, W) + T.dot(xt, U) + b
        i, f, o = T.sigmoid(z[:, :n]), T.sigmoid(z[:, n:2 * n]), T.sigmoid(z[:, 2 * n:3 * n])
        c = f * c + i * T.tanh(z[:, 3 * n:])
        return o * T.tanh(c), c
    (h, _), _ = sg.scan(step, sequences=[x], outputs_info=[h0, c0], non_sequences=[W, U, b])
    return h


def reverse_cumprod(x, c0):
    c, _ = sg.scan(lambda xt, c: c * xt + 1.0, sequences=[x], outputs_info=[c0], go_backwards=True)
    return c


MODELS = {"rnn": rnn, "lstm": lstm, "reverse_cumprod": reverse_cumprod}


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def np_lstm(x, h, c, W, U, b):
    out, n = [], h.shape[-1]
    for xt in x:
        z = h @ W + xt @ U + b
        i, f, o = _sigmoid(z[:, :n]), _sigmoid(z[:, n:2 * n]), _sigmoid(z[:, 2 * n:3 * n])
        c = f * c + i * np.tanh(z[:, 3 * n:])
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out)


# --- numpy reference loops, every backend -----------------------------------------------------------

def test_cumulative_sum(backend):
    x = T.tensor(_dtype(backend), (None, 3), "x")
    c, _ = sg.scan(lambda xt, acc: acc + xt, sequences=[x], outputs_info=[T.zeros((3,), _dtype(backend))])
    v = np.random.default_rng(0).normal(size=(6, 3)).astype(_dtype(backend))
    np.testing.assert_allclose(sg.function([x], c, backend=backend)(v), np.cumsum(v, axis=0), **_tol(backend))


def test_vanilla_rnn_and_lstm_match_numpy_loops(backend):
    rng = np.random.default_rng(1)
    dt = _dtype(backend)
    ins = [rng.normal(size=s).astype(dt) for s in [(5, 2, 3), (2, 4), (2, 4), (4, 16), (3, 16), (16,)]]
    xs = [T.tensor(dt, (None,) * v.ndim) for v in ins]
    f = sg.function(xs, lstm(*xs), backend=backend)
    np.testing.assert_allclose(f(*ins), np_lstm(*ins), **_tol(backend))
    r_ins = [ins[0], ins[1], ins[3][:, :4], ins[4][:, :4], ins[5][:4]]
    rs = [T.tensor(dt, (None,) * v.ndim) for v in r_ins]
    h, want = r_ins[1], []
    for xt in r_ins[0]:
        h = np.tanh(h @ r_ins[2] + xt @ r_ins[3] + r_ins[4])
        want.append(h)
    np.testing.assert_allclose(sg.function(rs, rnn(*rs), backend=backend)(*r_ins), np.stack(want), **_tol(backend))


def test_fibonacci_with_taps_and_sequence_taps(backend):
    n, x0 = T.lscalar("n"), T.lvector("x0")
    fib, _ = sg.scan(lambda a, b: a + b, outputs_info=[{"initial": x0, "taps": [-2, -1]}], n_steps=n)
    f = sg.function([x0, n], fib, backend=backend)
    np.testing.assert_array_equal(f(np.array([0, 1]), 10), [1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
    np.testing.assert_array_equal(f(np.array([0, 1]), 0), np.zeros(0, np.int64))
    x = T.tensor(_dtype(backend), (None,), "x")  # taps of a sequence: x[t-1], x[t], x[t+2]
    y, _ = sg.scan(lambda a, b, c: a + 10 * b + 100 * c, sequences=[{"input": x, "taps": [-1, 0, 2]}])
    v = np.arange(6, dtype=_dtype(backend))
    np.testing.assert_allclose(sg.function([x], y, backend=backend)(v), v[:3] + 10 * v[1:4] + 100 * v[3:6])


def test_go_backwards_and_negative_n_steps(backend):
    x = T.tensor(_dtype(backend), (None,), "x")
    digits = lambda xt, acc: acc * 10 + xt  # noqa: E731
    back, _ = sg.scan(digits, sequences=[x], outputs_info=[T.constant(np.zeros((), _dtype(backend)))],
                      go_backwards=True)
    v = np.array([1, 2, 3], _dtype(backend))
    np.testing.assert_allclose(sg.function([x], back, backend=backend)(v), [3, 32, 321])
    neg, _ = sg.scan(lambda acc, x: acc * 10 + x[0], outputs_info=[T.constant(np.zeros((), _dtype(backend)))],
                     non_sequences=[x], n_steps=-2)
    assert sg.function([x], neg, backend=backend)(v).shape == (2,)


def test_nested_scans_and_ifelse_in_a_body(backend):
    m = T.tensor(_dtype(backend), (None, None), "m")

    def row_sum(row):
        s, _ = sg.scan(lambda v, acc: acc + v, sequences=[row], outputs_info=[T.zeros((), _dtype(backend))])
        return s[-1]
    sums, _ = sg.map(row_sum, sequences=[m])
    absdiff, _ = sg.scan(lambda r, acc: acc + sg.ifelse(r.sum() > 0, r.sum(), -r.sum()), sequences=[m],
                         outputs_info=[T.zeros((), _dtype(backend))])
    v = np.random.default_rng(2).normal(size=(4, 3)).astype(_dtype(backend))
    got = sg.function([m], [sums, absdiff], backend=backend)(v)
    np.testing.assert_allclose(got[0], v.sum(1), **_tol(backend))
    np.testing.assert_allclose(got[1], np.cumsum(np.abs(v.sum(1))), **_tol(backend))


# --- jax.lax.scan figures -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jax_figures():
    return np.load(FIXTURE)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_values_and_gradients_match_jax(jax_figures, name):
    k = 0
    ins = []
    while f"{name}__in{k}" in jax_figures:
        ins.append(jax_figures[f"{name}__in{k}"])
        k += 1
    xs = [T.tensor("float64", (None,) * v.ndim, f"in{j}") for j, v in enumerate(ins)]
    out = MODELS[name](*xs)
    proj = jax_figures[f"{name}__proj"]
    grads = sg.grad((out * proj).sum(), xs)
    got = sg.function(xs, [out] + grads)(*ins)
    np.testing.assert_allclose(got[0], jax_figures[f"{name}__out"], rtol=1e-10, atol=1e-12)
    for j, g in enumerate(got[1:]):
        np.testing.assert_allclose(g, jax_figures[f"{name}__grad{j}"], rtol=1e-9, atol=1e-11)


def test_while_loop_matches_jax(jax_figures, backend):
    one = T.constant(np.ones((), _dtype(backend)))
    y, _ = sg.scan(lambda v: (v * 2, sg.until(v * 2 > 100)), outputs_info=[one], n_steps=1000)
    np.testing.assert_allclose(sg.function([], y, backend=backend)(), jax_figures["doubling__out"])
