"""The numpy backend's size threshold for buffer bookkeeping (issue 21): arrays under
``POOL_MIN_SIZE`` elements are allocated plainly (no pooled intermediate buffers, no spare buffer
for a shared variable's update), larger ones keep both. Checked: which path a function takes, that
both paths give the same numbers bit for bit, and that a failed call leaves every shared variable as
it was on both."""
from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numpy import lower_composite
from symgraph.errors import InputError

BIG = 200  # a 200 x 200 weight: 40000 elements, above the threshold; its 200-element bias is below


def _step(n: int, seed: int = 0):
    """An SGD step of a one-layer tanh regression with an n x n weight and a bias; a shape-checked
    third update ``s`` fails when the call gives ``v`` of the wrong length."""
    rng = np.random.default_rng(seed)
    w, b = sg.shared(rng.standard_normal((n, n)) * 0.1, "w"), sg.shared(np.zeros(n), "b")
    s = sg.shared(np.zeros(3), "s", shape=(3,))
    x, y, v = T.dmatrix("x"), T.dmatrix("y"), T.dvector("v")
    loss = T.sum((T.tanh(T.dot(x, w) + b) - y) ** 2)
    updates = list(sg.updates.sgd(loss, [w, b], learning_rate=0.01).items()) + [(s, v)]
    return sg.function([x, y, v], loss, updates=updates), [w, b, s]


def test_small_updates_allocate_and_large_ones_use_their_spare():
    assert lower_composite.POOL_MIN_SIZE > BIG and BIG * BIG >= lower_composite.POOL_MIN_SIZE
    small, _ = _step(8)
    assert "take_spare(" not in small.source
    big, (w, b, _) = _step(BIG)
    assert big.source.count("take_spare(") == 1  # the weight's update, not the bias's
    x, y = np.ones((4, BIG)), np.zeros((4, BIG))
    for _ in range(2):
        big(x, y, np.ones(3))
    first = id(w.get_value(borrow=True))
    big(x, y, np.ones(3))
    big(x, y, np.ones(3))
    assert id(w.get_value(borrow=True)) == first  # the weight's two buffers alternate


def test_helpers_pool_only_large_intermediates():
    x = T.dmatrix("x")
    f = sg.function([x], T.tanh(x * 2) + T.exp(x) * x)  # one intermediate-only buffer
    helper = next(v for k, v in f._impl._compile_env[0].items() if k.startswith("_composite"))
    pool = helper.__globals__["_pool0"]
    a = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(f(a), np.tanh(a * 2) + np.exp(a) * a)
    assert not pool
    a = np.random.default_rng(1).standard_normal((BIG, BIG))
    np.testing.assert_array_equal(f(a), np.tanh(a * 2) + np.exp(a) * a)
    assert len(pool) == 1 and pool[0].shape == (BIG, BIG)


@pytest.mark.parametrize("n", [8, BIG])
def test_both_paths_give_the_same_numbers_and_commit_all_or_nothing(n, monkeypatch):
    plain, plain_params = _step(n)
    monkeypatch.setattr(lower_composite, "POOL_MIN_SIZE", 0)  # every size double-buffered
    pooled, pooled_params = _step(n)
    assert "take_spare(" in pooled.source
    rng = np.random.default_rng(2)
    for _ in range(3):
        x, y = rng.standard_normal((5, n)), rng.standard_normal((5, n))
        assert plain(x, y, np.ones(3)) == pooled(x, y, np.ones(3))
        for p, q in zip(plain_params, pooled_params):
            np.testing.assert_array_equal(p.get_value(), q.get_value())
    for f, params in [(plain, plain_params), (pooled, pooled_params)]:
        before = [p.get_value() for p in params]
        with pytest.raises(InputError, match="shared variable s"):
            f(x * 7, y, np.ones(4))  # the weight's new value is computed before s's check fails
        for p, old in zip(params, before):
            np.testing.assert_array_equal(p.get_value(), old)
