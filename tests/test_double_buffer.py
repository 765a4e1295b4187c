"""Double-buffered shared-variable updates (issue 21 item 4): a call computes a shared variable's
new value into the spare buffer the previous commit kept (its value before that commit), and the
commit swaps. Checked here: the values equal the single-buffered path's and a numpy reference,
the spare is really reused, a failed call leaves every shared variable as it was, and no array
the user holds (a borrowed value, a view of one, a borrowed output, a borrowed set_value array)
is ever written into. The spare path is taken here on small arrays (the size threshold set to 0:
tests/test_pool_threshold.py checks the threshold itself)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numpy import lower_composite
from symgraph.compile.calls import take_spare
from symgraph.compile.shared import Container
from symgraph.errors import InputError

LR = 0.05


@pytest.fixture(autouse=True)
def _double_buffer_every_size(monkeypatch):
    """Small arrays take the double-buffered path too (the default threshold skips them)."""
    monkeypatch.setattr(lower_composite, "POOL_MIN_SIZE", 0)


def _mlp(backend: str, n_in: int, n_hid: int, seed: int):
    """A two-layer ReLU regression net trained by SGD (products with fused epilogues, bias sums):
    the step function and its parameters."""
    rng = np.random.default_rng(seed)
    params = [sg.shared(rng.standard_normal((n_in, n_hid)) * 0.5, "W1"), sg.shared(rng.standard_normal(n_hid), "b1"),
              sg.shared(rng.standard_normal((n_hid, 1)) * 0.5, "W2"), sg.shared(rng.standard_normal(1), "b2")]
    x, y = T.dmatrix("x"), T.dmatrix("y")
    w1, b1, w2, b2 = params
    out = T.dot(T.relu(T.dot(x, w1) + b1), w2) + b2
    loss = T.sum((out - y) ** 2) / 2
    return sg.function([x, y], loss, updates=sg.updates.sgd(loss, params, learning_rate=LR), backend=backend), params


def _numpy_step(p: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The same SGD step written by hand."""
    w1, b1, w2, b2 = p
    pre = x @ w1 + b1
    h = np.maximum(pre, 0)
    d = h @ w2 + b2 - y
    dh = (d @ w2.T) * (pre > 0)
    grads = [x.T @ dh, dh.sum(0), h.T @ d, d.sum(0)]
    return [v - LR * g for v, g in zip(p, grads)]


def test_training_matches_numpy_and_the_single_buffered_path(backend):
    @settings(max_examples=6, deadline=None)
    @given(batch=st.integers(1, 6), n_in=st.integers(1, 5), n_hid=st.integers(1, 7), seed=st.integers(0, 100))
    def check(batch, n_in, n_hid, seed):
        f, params = _mlp(backend, n_in, n_hid, seed)
        g, single = _mlp(backend, n_in, n_hid, seed)
        rng = np.random.default_rng(seed + 1)
        ref, held = [p.get_value() for p in params], []
        for _ in range(4):
            x, y = rng.standard_normal((batch, n_in)), rng.standard_normal((batch, 1))
            f(x, y)
            held += [p.get_value(borrow=True) for p in single]  # all held: g never gets a spare back
            g(x, y)
            ref = _numpy_step(ref, x, y)
            for p, q, r in zip(params, single, ref):
                np.testing.assert_array_equal(p.get_value(), q.get_value())  # bit for bit
                np.testing.assert_allclose(p.get_value(), r, rtol=1e-10, atol=1e-12)
    check()


def test_the_spare_buffer_is_reused_on_the_numpy_backend():
    f, params = _mlp("numpy", 3, 4, 0)
    x, y = np.ones((2, 3)), np.ones((2, 1))
    assert f.source.count("take_spare(") == 4  # every update, the products' and the sums' epilogues
    f(x, y)
    first = [id(p.get_value(borrow=True)) for p in params]
    f(x, y)
    second = [id(p.get_value(borrow=True)) for p in params]
    f(x, y)
    assert [id(p.get_value(borrow=True)) for p in params] == first  # the two buffers alternate
    assert all(a != b for a, b in zip(first, second))


def test_a_failed_call_leaves_every_shared_variable_and_held_value_unchanged(backend):
    """The first update is written into its spare before the second one's shape check fails."""
    w = sg.shared(np.arange(6.0).reshape(2, 3), "w")
    s = sg.shared(np.zeros(3), "s", shape=(3,))
    x, v = T.dmatrix("x"), T.dvector("v")
    f = sg.function([x, v], T.sum(x), updates=[(w, w - 0.5 * T.dot(x.T, x)[:2, :]), (s, v)], backend=backend)
    x0 = np.ones((3, 3))
    f(x0, np.ones(3))
    f(x0, np.ones(3))  # now w has a spare
    held, before_w, before_s = w.get_value(borrow=True), w.get_value(), s.get_value()
    del held
    with pytest.raises(InputError, match="shared variable s"):
        f(x0 * 7, np.ones(4))
    np.testing.assert_array_equal(w.get_value(), before_w)
    np.testing.assert_array_equal(s.get_value(), before_s)
    f(x0, np.full(3, 2.0))
    np.testing.assert_array_equal(w.get_value(), before_w - 0.5 * 3)
    np.testing.assert_array_equal(s.get_value(), np.full(3, 2.0))


def test_arrays_the_user_holds_are_never_written_into(backend):
    f, params = _mlp(backend, 3, 4, 1)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 1))
    f(x, y)
    held = params[0].get_value(borrow=True)  # the current value: the spare after the next call
    view = params[2].get_value(borrow=True)[1:]  # a view keeps its base from being reused
    mine = rng.standard_normal(4)
    params[1].set_value(mine, borrow=True)  # stored as it is: the user still holds it
    snapshots = [held.copy(), view.copy(), mine.copy()]
    for _ in range(3):
        f(x, y)
    for a, snap in zip([held, view, mine], snapshots):
        np.testing.assert_array_equal(a, snap)


def test_a_borrowed_output_of_the_old_value_is_never_overwritten(backend):
    w = sg.shared(np.arange(4.0), "w")
    x = T.dvector("x")
    f = sg.function([x], sg.Out(w, borrow=True), updates=[(w, w * 2 + x)], backend=backend)
    outs = [f(np.ones(4)) for _ in range(4)]
    expected = [np.arange(4.0)]
    for _ in range(3):
        expected.append(expected[-1] * 2 + 1)
    for o, e in zip(outs, expected):
        np.testing.assert_array_equal(o, e)


def test_take_spare_hands_out_only_memory_nothing_else_refers_to():
    c = Container(None, None, "c")
    c.spare = np.zeros(3)
    assert take_spare(c) is not None and c.spare is None  # taken
    kept = np.zeros(3)
    c.spare = kept
    assert take_spare(c) is None  # a variable refers to it
    base = np.zeros(4)
    c.spare, view = base, base[1:]
    del base
    assert take_spare(c) is None  # a view refers to it
    del view
    c.spare = np.zeros(4)[1:]
    assert take_spare(c) is None  # a view: its base may be shared
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    c.spare, frozen = frozen, None
    assert take_spare(c) is None
    c.spare = np.zeros(2)
    c.set(np.ones(2))
    assert c.spare is None  # set_value forgets the spare
