"""Gradients through sg.scan (BPTT as a reverse scan): finite differences for T in {1, 5, 50}
with respect to weights, initial state, sequences and constants; truncated BPTT against a
hand-written truncation; checkpointing against the plain gradient; while loops; taps; second
order (grad of grad, Hessian-vector products, Rop) against finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import fd_grad_check

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import verify_grad


def rnn(x, h0, W, U, b, **kw):
    """A vanilla RNN with a stacked readout (a carry and a stacked output)."""
    def step(xt, h, W, U, b):
        h = T.tanh(T.dot(h, W) + T.dot(xt, U) + b)
        return h, T.sin(h).sum(axis=-1)
    (h, y), _ = sg.scan(step, sequences=[x], outputs_info=[h0, None], non_sequences=[W, U, b], **kw)
    return h, y


def _point(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, 2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(4, 4)) * 0.5,
            rng.normal(size=(3, 4)), rng.normal(size=4)]


@pytest.mark.parametrize("n", [1, 5, 50])
def test_bptt_matches_finite_differences(n):
    point = _point(n)
    if n == 50:  # every element by finite differences would take long: the weights and the state
        x = T.constant(point[0])
        verify_grad(lambda h0, W, U, b: rnn(x, h0, W, U, b)[0], point[1:])
        return
    verify_grad(lambda *a: rnn(*a)[0], point)
    verify_grad(lambda *a: rnn(*a)[1], point)


def test_the_gradient_of_the_last_state_and_of_a_final_carry():
    point = _point(4)
    verify_grad(lambda *a: rnn(*a)[0][-1], point)
    verify_grad(lambda x, h0: sg.reduce(lambda xt, acc: T.tanh(acc * xt + 1), sequences=[x],
                                        outputs_info=[h0])[0], [point[0][:, 0, :], point[1][0, :3]])


def test_truncated_bptt_equals_a_hand_written_truncation():
    """truncate_gradient=k backpropagates through the last k steps only: the same as a loop over
    those steps that starts from a constant state and whose earlier outputs are constants."""
    n, k = 6, 2
    vals = _point(n, seed=3)
    x, h0, W, U, b = [T.tensor("float64", (None,) * v.ndim) for v in vals]
    proj = np.random.default_rng(4).uniform(0.5, 1.5, size=(n, 2, 4))
    h, _ = rnn(x, h0, W, U, b, truncate_gradient=k)
    auto = sg.grad((h * proj).sum(), [x, h0, W, U, b])
    h_all, _ = rnn(x, h0, W, U, b)
    tail, _ = rnn(x[n - k:], sg.disconnected_grad(h_all[n - k - 1]), W, U, b)
    hand = sg.grad((tail * proj[n - k:]).sum() + (sg.disconnected_grad(h_all[:n - k]) * proj[:n - k]).sum(),
                   [x, h0, W, U, b], disconnected_inputs="ignore")
    got = sg.function([x, h0, W, U, b], auto + hand)(*vals)
    for a, e in zip(got[:5], got[5:]):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-13)
    assert not got[1].any() and not got[0][:n - k].any()


@pytest.mark.parametrize("n, k", [(7, 3), (6, 3), (1, 4), (0, 2)])
def test_checkpointed_gradient_equals_the_plain_one(n, k):
    vals = _point(n, seed=5)
    ins = [T.tensor("float64", (None,) * v.ndim) for v in vals]
    plain = rnn(*ins)
    ckpt = rnn(*ins, checkpoint=k)
    proj = np.random.default_rng(6).uniform(0.5, 1.5, size=(n, 2, 4))
    costs = [(h * proj).sum() + y.sum() for h, y in (plain, ckpt)]
    grads = [sg.grad(c, ins) for c in costs]
    got = sg.function(ins, grads[0] + grads[1])(*vals)
    for a, e in zip(got[:5], got[5:]):
        np.testing.assert_allclose(e, a, rtol=1e-12, atol=1e-13)


def test_while_loop_gradient_covers_the_steps_run():
    a, x0 = T.dscalar("a"), T.dscalar("x0")
    v, _ = sg.scan(lambda v, a: (v * a + 0.1, sg.until(v > 3.0)), outputs_info=[x0], non_sequences=[a], n_steps=50)
    cost = (v ** 2).sum()
    f = sg.function([a, x0], [v, *sg.grad(cost, [a, x0])])
    av, xv = 1.7, 0.5
    steps, ga, gx = f(av, xv)
    assert 1 < len(steps) < 50

    def numeric(av, xv):  # the same number of steps, differentiated by finite differences
        out, v = [], xv
        for _ in range(len(steps)):
            v = v * av + 0.1
            out.append(v)
        return (np.array(out) ** 2).sum()
    eps = 1e-6
    np.testing.assert_allclose(ga, (numeric(av + eps, xv) - numeric(av - eps, xv)) / (2 * eps), rtol=1e-6)
    np.testing.assert_allclose(gx, (numeric(av, xv + eps) - numeric(av, xv - eps)) / (2 * eps), rtol=1e-6)


def test_taps_and_sequence_taps_gradients():
    def fib(x0, w):
        out, _ = sg.scan(lambda a, b, w: T.tanh(a * w + b), outputs_info=[{"initial": x0, "taps": [-2, -1]}],
                         non_sequences=[w], n_steps=5)
        return out
    verify_grad(fib, [np.array([0.3, -0.2]), np.array(0.7)])

    def smooth(x):
        out, _ = sg.scan(lambda a, b, c: a * b + c, sequences=[{"input": x, "taps": [-1, 0, 1]}])
        return out
    verify_grad(smooth, [np.random.default_rng(7).normal(size=6)])


def test_second_order_grad_of_grad_hessian_vector_and_rop():
    def loss(W, h0, x):
        h, _ = sg.scan(lambda xt, h, W: T.tanh(T.dot(h, W) + xt), sequences=[x], outputs_info=[h0], non_sequences=[W])
        return (h[-1] ** 2).sum() + (h ** 3).sum()
    rng = np.random.default_rng(8)
    vals = [rng.normal(size=(3, 3)) * 0.5, rng.normal(size=3), rng.normal(size=(4, 3))]
    fd_grad_check(lambda W, h0, x: sg.grad(loss(W, h0, x), W), vals, tol=1e-5)  # grad of grad
    W, h0, x, v = T.dmatrix("W"), T.dvector("h0"), T.dmatrix("x"), T.dmatrix("v")
    g = sg.grad(loss(W, h0, x), W)
    hv = sg.grad((g * v).sum(), W)  # Hessian-vector product
    jv = sg.Rop(g, W, v)
    f = sg.function([W, h0, x, v], [hv, jv])
    gf = sg.function([W, h0, x], g)
    vv, eps = rng.normal(size=(3, 3)), 1e-6
    numeric = (gf(vals[0] + eps * vv, *vals[1:]) - gf(vals[0] - eps * vv, *vals[1:])) / (2 * eps)
    got_hv, got_jv = f(*vals, vv)
    np.testing.assert_allclose(got_hv, numeric, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got_jv, numeric, rtol=1e-5, atol=1e-7)


def test_integer_carries_and_sequences_get_no_gradient():
    x, idx = T.dvector("x"), T.lvector("idx")
    (k, s), _ = sg.scan(lambda i, k, s, x: (k + 1, s + x[i] * T.cast(k, "float64")), sequences=[idx],
                        outputs_info=[T.constant(np.int64(0)), T.constant(0.0)], non_sequences=[x])
    g = sg.grad(s[-1], x)
    np.testing.assert_allclose(sg.function([x, idx], g)(np.ones(3), np.array([2, 0, 2])), [1, 0, 2])
