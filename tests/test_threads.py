"""Thread safety: a compiled function called from 8 threads at once returns correct results,
and shared updates are never lost or torn (calls with updates are serialized by a lock)."""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import symgraph as sg
import symgraph.tensor as T

THREADS, CALLS = 8, 250  # 2000 calls in all


def _hammer(fn, n_threads: int = THREADS, calls: int = CALLS) -> list:
    """Run ``fn(thread, k)`` ``calls`` times on each of ``n_threads`` threads started together."""
    start = threading.Barrier(n_threads)

    def work(t):
        start.wait()
        return [fn(t, k) for k in range(calls)]
    with ThreadPoolExecutor(n_threads) as pool:
        return list(pool.map(work, range(n_threads)))


def test_counter_updates_are_never_lost(backend):
    """Each call adds its argument to a shared total and bumps a counter, returning the old
    counter: the returned tickets are exactly 0..N-1 and the totals add up."""
    x = T.dscalar("x")
    count = sg.shared(np.int64(0), "count")
    total = sg.shared(np.zeros(3), "total")
    f = sg.function([x], count, updates=[(count, count + 1), (total, total + x)], backend=backend)
    results = _hammer(lambda t, k: int(f(float(t + 1))))
    tickets = sorted(r for rs in results for r in rs)
    assert tickets == list(range(THREADS * CALLS))
    assert count.get_value() == THREADS * CALLS
    expected = CALLS * sum(range(1, THREADS + 1))
    np.testing.assert_array_equal(total.get_value(), np.full(3, float(expected)))


def test_pure_functions_give_each_thread_its_own_answer(backend):
    x, y = T.dmatrix("x"), T.dvector("y")
    f = sg.function([x, y], [T.tanh(x @ y) + 1, (x * y).sum(axis=0)], backend=backend)
    rng = np.random.default_rng(0)
    data = [(rng.normal(size=(4, 3)), rng.normal(size=3)) for _ in range(THREADS)]
    expected = [[np.tanh(a @ b) + 1, (a * b).sum(axis=0)] for a, b in data]

    def call(t, k):
        got = f(*data[t])
        for g, e in zip(got, expected[t]):
            np.testing.assert_allclose(g, e, rtol=1e-12)
        return True
    assert all(all(r) for r in _hammer(call, calls=100))


def test_training_step_matches_serial_sgd(backend):
    """SGD on a quadratic from 8 threads equals the same number of steps in one thread (the
    update reads the previous call's value every time)."""
    def make():
        w = sg.shared(np.array([4.0, -2.0]), "w")
        target = T.dvector("target")
        loss = ((w - target) ** 2).sum()
        return w, sg.function([target], loss, updates=[(w, w - 0.01 * sg.grad(loss, w))], backend=backend)
    target = np.array([1.0, 1.0])
    w_threads, f = make()
    _hammer(lambda t, k: f(target), calls=50)
    w_serial, g = make()
    for _ in range(THREADS * 50):
        g(target)
    np.testing.assert_allclose(w_threads.get_value(), w_serial.get_value(), rtol=1e-12)


def _four_kinds(t: int) -> tuple[list, list]:
    """Graph kind ``t % 4`` (two functions of each kind share the runtime's cached kernels)."""
    x, y = T.dmatrix("x"), T.dvector("y")
    outs = [[T.tanh(x @ y) + 1, (x * y).sum(axis=0)],
            [T.exp(x).sum(axis=1) * y[:2].sum(), x.T * 2],
            [T.nnet.softmax(x) + y, T.maximum(x, 0).mean()],
            [(x - y) ** 2, T.log1p(abs(x)).max(axis=0)]][t % 4]
    return [x, y], outs


def test_different_functions_in_threads_match_a_serial_run(backend):
    """Issue 22 item 4: 8 threads, each calling its own pure function (of four kinds, so kernels
    are shared), with the interpreter switching threads often, give the serial run's numbers.
    On OpenCL the shared host-buffer pool handed one buffer to two calls at once (hundreds of
    wrong results of 1600), and functions sharing a cached kernel raced on its arguments."""
    fns = [sg.function(*_four_kinds(t), backend=backend) for t in range(THREADS)]
    rng = np.random.default_rng(0)
    data = [[(rng.normal(size=(5, 3)), rng.normal(size=3)) for _ in range(3)] for _ in range(THREADS)]
    expected = [[[np.array(o, copy=True) for o in fns[t](*d)] for d in data[t]] for t in range(THREADS)]

    def call(t, k):
        got = fns[t](*data[t][k % 3])
        return all(np.array_equal(g, e) for g, e in zip(got, expected[t][k % 3]))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        results = _hammer(call, calls=60)
    finally:
        sys.setswitchinterval(interval)
    wrong = sum(not ok for rs in results for ok in rs)
    assert wrong == 0, f"{wrong} of {THREADS * 60} calls gave numbers other than the serial run's"
