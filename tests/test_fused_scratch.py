"""Fused elementwise programs on the numpy backend keep their intermediate-only buffers for the
next call (issue 21 item 4: fresh multi-MB temporaries cost page faults on every training step),
and ``switch(c, a, 0)`` into a buffer selects a's bits by one integer multiply. Checked: exact
values (NaN, Inf and -0.0 included) against numpy on both backends, calls whose shapes change,
and threads sharing one compiled program."""
from __future__ import annotations

import threading

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numpy import lower_composite
from symgraph.backends.numpy.lower_composite import give_back, take_scratch
from symgraph.scalar import _where

SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.5, -2.25, 1e30])


def test_relu_gradient_select_is_exact(backend):
    """switch(x > 0, y, 0) fused after a product: a's bits or +0.0, bit for bit numpy.where."""
    @settings(max_examples=10, deadline=None)
    @given(hnp.arrays("float32", st.tuples(st.integers(1, 5), st.integers(1, 6)),
                      elements=st.one_of(SPECIAL, st.floats(-9, 9, width=32))),
           st.integers(0, 2 ** 16))
    def check(y, seed):
        x = np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32)
        xs, ys = T.fmatrix("x"), T.fmatrix("y")
        f = sg.function([xs, ys], T.switch(T.exp(xs) * 2 > 2, ys * 1, 0), backend=backend)
        got, want = f(x, y), np.where(np.exp(x) * 2 > 2, y, np.float32(0))
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    check()


def test_where_into_a_buffer_matches_numpy_for_every_dtype_and_fill():
    rng = np.random.default_rng(1)
    for dt in (np.float32, np.float64, np.int32, np.int64, np.uint32, np.float16):
        a = (rng.standard_normal((4, 6)) * 100).astype(dt)
        if np.dtype(dt).kind == "f":
            a[0, :3] = [np.nan, np.inf, -0.0]
        c = rng.standard_normal((4, 6)) > 0
        fills = [dt(0), dt(3), (rng.standard_normal(6) * 5).astype(dt)]
        fills += [dt(-0.0)] if np.dtype(dt).kind == "f" else []
        for b in fills:
            got = _where(c, a, b, out=np.empty((4, 6), dt))
            assert got.tobytes() == np.where(c, a, b).astype(dt).tobytes(), (dt, b)
        got = _where(c[0], a[0], dt(0), out=np.empty((4, 6), dt))  # broadcast condition and value
        assert got.tobytes() == np.broadcast_to(np.where(c[0], a[0], dt(0)), (4, 6)).astype(dt).tobytes()


def test_scratch_buffers_follow_changing_shapes_and_threads(monkeypatch):
    monkeypatch.setattr(lower_composite, "POOL_MIN_SIZE", 0)  # pooled at every size here
    x, y = T.dmatrix("x"), T.dmatrix("y")
    expr = T.switch(x > 0, T.tanh(x * y) + y, x - y) * 2  # several intermediates per call
    f = sg.function([x, y], expr)
    ref = lambda a, b: np.where(a > 0, np.tanh(a * b) + b, a - b) * 2  # noqa: E731
    rng = np.random.default_rng(3)
    for shape in [(3, 4), (3, 4), (5, 2), (1, 1), (5, 2), (3, 4)]:
        a, b = rng.standard_normal(shape), rng.standard_normal(shape)
        first = f(a, b)
        np.testing.assert_array_equal(first, ref(a, b))
        f(b, a)
        np.testing.assert_array_equal(first, ref(a, b))  # a returned array is never a scratch buffer
    data = [(rng.standard_normal((60, 70)), rng.standard_normal((60, 70))) for _ in range(4)]
    bad: list = []

    def run(a: np.ndarray, b: np.ndarray) -> None:
        want = ref(a, b)
        for _ in range(40):
            if not np.array_equal(f(a, b), want):
                bad.append(True)
    threads = [threading.Thread(target=run, args=d) for d in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_take_scratch_reuses_only_a_matching_buffer():
    pool: list = []
    a = take_scratch(pool, (3,), np.dtype("float64"))
    give_back(pool, a)
    assert take_scratch(pool, (3,), np.dtype("float64")) is a and not pool
    give_back(pool, a)
    assert take_scratch(pool, (4,), np.dtype("float64")) is not a  # other shape: a new one
    give_back(pool, a)
    assert take_scratch(pool, (3,), np.dtype("float32")) is not a  # other dtype: a new one
    for _ in range(5):
        give_back(pool, np.empty(2))
    assert len(pool) == 2  # bounded
