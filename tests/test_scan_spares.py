"""Double-buffered carries in loops on the numpy backend (issue 15): a next carry whose size the
compiler knows (a shared variable's initial value, or a static shape) is computed into the carry of
two steps before, when nothing else refers to it any more (``LoopSpare``, ``take_spare``), as a
training step's update is computed into its variable's spare between calls. Checked: the values
equal the undoubled loop's and the step-by-step calls' bit for bit, traces and stacked rows hold
each step's own values, and no array the user holds (the initial value) is written into."""
from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numpy import lower_composite


def _training(n_hid: int, steps: int, seed: int = 0):
    """A tanh regression net's SGD step, repeated ``steps`` times in one call (sg.scan_updates),
    and the step alone."""
    rng = np.random.default_rng(seed)
    params = [sg.shared(rng.standard_normal((3, n_hid)) * 0.5, "w1"), sg.shared(np.zeros(n_hid), "b1"),
              sg.shared(rng.standard_normal((n_hid, 1)) * 0.5, "w2")]
    x, y = T.dmatrix("x"), T.dmatrix("y")
    loss = T.mean((T.dot(T.tanh(T.dot(x, params[0]) + params[1]), params[2]) - y) ** 2)
    updates = sg.updates.sgd(loss, params, learning_rate=0.1)
    losses, final = sg.scan_updates(updates, n_steps=steps, outputs=[loss])
    return sg.function([x, y], losses[0], updates=final), sg.function([x, y], loss, updates=updates), params


def test_double_buffered_loop_carries_match_the_undoubled_loop_and_the_steps(monkeypatch):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    monkeypatch.setattr(lower_composite, "POOL_MIN_SIZE", 10 ** 9)  # no spare anywhere
    plain, _, plain_params = _training(4, 7)
    assert "_take_spare(_sp" not in plain.source
    monkeypatch.setattr(lower_composite, "POOL_MIN_SIZE", 0)
    loop, step, params = _training(4, 7)
    assert loop.source.count("_take_spare(_sp") == 3  # every carry computed by a fused program
    held = [p.get_value(borrow=True) for p in params]
    kept = [h.copy() for h in held]
    got = loop(x, y)
    np.testing.assert_array_equal(got, plain(x, y))  # every step's loss, bit for bit
    for p, q in zip(params, plain_params):
        np.testing.assert_array_equal(p.get_value(), q.get_value())
    for h, k in zip(held, kept):
        np.testing.assert_array_equal(h, k)  # the initial values are never written into
    after = [p.get_value() for p in params]
    for p, k in zip(params, kept):
        p.set_value(k)
    np.testing.assert_array_equal([step(x, y) for _ in range(7)], got)  # as the step called 7 times
    for p, a in zip(params, after):
        np.testing.assert_array_equal(p.get_value(), a)


def test_traced_carries_keep_every_step(monkeypatch):
    """A trace row is a copy, so the carry's buffer may still be reused; a carry returned as a
    stacked output too is referenced by it only through the copied row."""
    monkeypatch.setattr(lower_composite, "POOL_MIN_SIZE", 0)
    w = sg.shared(np.arange(6.0).reshape(2, 3), "w")
    (hs, ys), _ = sg.scan(lambda h: [T.tanh(h) * 2 + 1, T.tanh(h) * 2 + 1], outputs_info=[w, None], n_steps=6)
    f = sg.function([], [hs, ys])
    assert "_take_spare(_sp" in f.source
    want, h = [], np.arange(6.0).reshape(2, 3)
    for _ in range(6):
        h = np.tanh(h) * 2 + 1
        want.append(h)
    for got in f():
        np.testing.assert_allclose(got, np.stack(want), rtol=1e-15)


@pytest.mark.parametrize("n_hid, spared", [(8, 0), (20000, 1)])
def test_only_large_carries_are_double_buffered_by_default(n_hid, spared):
    loop, _, _ = _training(n_hid, 2)
    assert loop.source.count("_take_spare(_sp") == spared  # w1 (3 x n_hid) from 2^15 elements on
