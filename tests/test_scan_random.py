"""Random streams inside scan bodies (issue 16 item 5): the step index is counter word c3, so
every step draws fresh numbers, step t equals the same site drawn outside a loop with c3 = t, the
numbers are the same on every backend and with fusion off, the outer call counter advances once
per call (no per-step update leaks in: Aesara 910), a failed call advances nothing, nested loops
differ across outer steps, and gradients through in-loop dropout reuse the forward masks."""
from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.random import distributions as D
from symgraph.rewrite import Mode
from symgraph.tensor.random_ops import Words

NO_FUSION = Mode("fast_run").excluding("fusion")


def _site_draw(srng, site, call, step, size, kind="uniform"):
    """What site ``site`` of ``srng`` draws at call ``call`` and loop step ``step``, built outside any loop."""
    key = srng.key.get_value()
    words = Words(*[T.constant(np.uint64(w)) for w in (key[0], key[1], call, site, step)])
    if kind == "uniform":
        return sg.function([], D.uniform(words, size, 0.0, 1.0, "float64"))()
    return sg.function([], D.binomial(words, size, 1, 0.5, "float64"))()


def _noise_walk(srng, n=5):
    """h_t = h_{t-1} + u_t with u_t a fresh uniform draw each step: the trace's differences are the draws."""
    h, _ = sg.scan(lambda h: h + srng.uniform(size=(4,), dtype="float64"), outputs_info=[T.zeros((4,))],
                   n_steps=n)
    return h


def test_each_step_draws_what_the_site_draws_with_that_step(backend):
    srng = sg.RandomStream(seed=7)
    f = sg.function([], _noise_walk(srng), backend=backend)
    for call in range(2):
        draws = np.diff(np.vstack([np.zeros(4), f()]), axis=0)
        want = np.stack([_site_draw(srng, 0, call, t, (4,)) for t in range(5)])
        np.testing.assert_allclose(draws, want, rtol=0, atol=1e-14)
        assert len({tuple(r) for r in draws}) == 5  # every step differs
        assert int(srng.counters[0].get_value()) == call + 1  # one call, one counter step (not n)


def test_same_numbers_on_both_backends_and_without_fusion():
    outs = []
    for backend in ("numpy", "opencl"):
        for mode in ("fast_run", NO_FUSION):
            srng = sg.RandomStream(seed=3)
            x = T.dmatrix("x")
            y, _ = sg.scan(lambda xt, s=srng: T.nnet.dropout(xt * 2.0, 0.5, s) + s.normal((3,), dtype="float64"),
                           sequences=[x])
            outs.append(sg.function([x], y, backend=backend, mode=mode)(np.ones((6, 3))))
    for other in outs[1:]:
        assert np.abs(outs[0].view(np.int64) - other.view(np.int64)).max() <= 2  # normals: within 2 ulp
    assert len({tuple(r) for r in outs[0]}) == 6


def test_failed_call_advances_nothing_and_no_default_updates_is_kept(backend):
    srng = sg.RandomStream(seed=5)
    x = T.dvector("x")
    y, _ = sg.scan(lambda xt: xt + srng.uniform(size=(), dtype="float64"), sequences=[x], n_steps=4)
    f = sg.function([x], y, backend=backend)
    with pytest.raises(ValueError, match="fewer than the 4 steps"):
        f(np.zeros(2))
    assert int(srng.counters[0].get_value()) == 0
    first = f(np.zeros(4))
    assert int(srng.counters[0].get_value()) == 1
    frozen = sg.function([x], y, backend=backend, no_default_updates=True)
    np.testing.assert_array_equal(frozen(np.zeros(4)), frozen(np.zeros(4)))
    assert int(srng.counters[0].get_value()) == 1
    assert not np.array_equal(first, frozen(np.zeros(4)))  # call 1, not call 0


def test_nested_loops_draw_fresh_numbers_at_every_outer_and_inner_step(backend):
    srng = sg.RandomStream(seed=11)

    def outer(acc):
        inner, _ = sg.scan(lambda a: a + srng.uniform(size=(2,), dtype="float64"), outputs_info=[acc], n_steps=3)
        return inner[-1]
    out, _ = sg.scan(outer, outputs_info=[T.zeros((2,))], n_steps=4)
    got = np.diff(np.vstack([np.zeros(2), sg.function([], out, backend=backend)()]), axis=0)
    want = np.stack([sum(_site_draw(srng, 0, 0, (s << 32) + t, (2,)) for t in range(3)) for s in range(4)])
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_a_loop_without_draws_gets_no_step_counter():
    h, _ = sg.scan(lambda h: h * 2.0, outputs_info=[T.ones((2,))], n_steps=3)
    assert h.owner.op.n_carries == 1


def test_dropout_in_an_rnn_body_backpropagates_through_the_forward_masks():
    """The gradient of an RNN with in-loop dropout equals the gradient of the same RNN unrolled by
    hand with the masks the loop drew (recomputed by the reverse loop from the forward steps)."""
    rng = np.random.default_rng(2)
    xv, wv, h0v = rng.normal(size=(4, 3)), rng.normal(size=(3, 3)) * 0.5, rng.normal(size=3)
    x, W, h0 = T.dmatrix("x"), T.dmatrix("W"), T.dvector("h0")
    srng = sg.RandomStream(seed=9)
    h, _ = sg.scan(lambda xt, h: T.nnet.dropout(T.tanh(T.dot(h, W) + xt), 0.5, srng), sequences=[x],
                   outputs_info=[h0])
    cost = (h ** 2).sum()
    f = sg.function([x, W, h0], [cost, *sg.grad(cost, [W, h0, x])], no_default_updates=True)
    got = f(xv, wv, h0v)
    masks = [_site_draw(srng, 0, 0, t, (3,), "binomial") for t in range(4)]
    hs, hand = h0, []
    for t in range(4):
        hs = T.tanh(T.dot(hs, W) + x[t]) * T.constant(masks[t]) * 2.0
        hand.append(hs)
    cost_hand = (T.stack(hand) ** 2).sum()
    want = sg.function([x, W, h0], [cost_hand, *sg.grad(cost_hand, [W, h0, x])])(xv, wv, h0v)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert any(m.sum() not in (0, 3) for m in masks)  # the masks really drop some units


def test_save_and_load_keep_the_in_loop_stream(tmp_path):
    """A saved function with draws in a loop body continues the stream where the saved one was."""
    srng = sg.RandomStream(seed=13)
    f = sg.function([], _noise_walk(srng))
    f()
    sg.save(f, tmp_path / "walk.sg")
    g = sg.load(tmp_path / "walk.sg")
    np.testing.assert_array_equal(g(), f())  # both at call 1 now
    np.testing.assert_array_equal(g(), f())


def test_a_draw_built_before_the_loop_is_drawn_anew_each_step_unless_passed_as_a_non_sequence(backend):
    """Theano's rule (its loop tutorial's dropout mask): a draw the step closes over is redrawn
    at every step (step t: the site's numbers with c3 = t); one passed in non_sequences is
    computed once, the same numbers in every step (a mask shared by the steps)."""
    srng = sg.RandomStream(seed=11)
    closed, shared = srng.uniform(size=(4,), dtype="float64"), srng.uniform(size=(4,), dtype="float64")
    x = T.dmatrix("x")
    per_step, _ = sg.scan(lambda xt: xt + closed, sequences=[x])
    once, _ = sg.scan(lambda xt, m: xt + m, sequences=[x], non_sequences=[shared])
    f = sg.function([x], [per_step, once, closed, shared], backend=backend)
    for call in range(2):
        a, b, closed_value, shared_value = f(np.zeros((3, 4)))
        np.testing.assert_allclose(a, [_site_draw(srng, 0, call, t, (4,)) for t in range(3)], rtol=0, atol=1e-14)
        np.testing.assert_array_equal(a[0], closed_value)  # step 0 reads c3 = 0, as the draw outside does
        np.testing.assert_array_equal(b, np.tile(shared_value, (3, 1)))
        assert len({tuple(r) for r in a}) == 3


def test_the_gradient_reuses_each_steps_redrawn_mask():
    srng = sg.RandomStream(seed=5)
    mask = srng.binomial(size=(3,), p=0.5, dtype="float64")
    w = sg.shared(np.array([0.5, -1.0, 2.0]), "w")
    x = T.dmatrix("x")
    ys, _ = sg.scan(lambda xt, h: T.tanh(h * w * mask + xt), sequences=[x], outputs_info=[T.zeros((3,))])
    masks, _ = sg.scan(lambda xt: mask + 0 * xt, sequences=[x])
    f = sg.function([x], [ys.sum(), sg.grad(ys.sum(), w), masks])
    xs = np.random.default_rng(1).normal(size=(5, 3))
    total, grad, m = f(xs)

    def by_hand(wv):
        h, out = np.zeros(3), 0.0
        for xt, mt in zip(xs, m):
            h = np.tanh(h * wv * mt + xt)
            out += h.sum()
        return out

    assert len({tuple(r) for r in m}) > 1
    assert total == pytest.approx(by_hand(w.get_value()), rel=1e-12)
    numeric = [(by_hand(w.get_value() + 1e-6 * e) - by_hand(w.get_value() - 1e-6 * e)) / 2e-6 for e in np.eye(3)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
