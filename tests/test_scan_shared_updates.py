"""A scan step that updates shared variables (Theano's ``return {a: a + 1}`` and ``return outputs,
updates``): every step reads the value the previous step left, scan returns the update to the
value after the last step, and the variable changes only through ``sg.function(updates=...)``.
Checked against a plain Python loop on hypothesis data on each backend, with gradients by
finite differences, zero steps, while loops, nested loops and the errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import BACKENDS
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError


def test_theanos_documented_counter():
    """library/scan.txt, 'Using shared variables': the update is the value after 10 steps; ``a``
    itself changes only when the function runs with the updates."""
    a = sg.shared(1)
    values, updates = sg.scan(lambda: {a: a + 1}, n_steps=10)
    assert values == [] and list(updates) == [a]
    b, c = a + 1, updates[a] + 1
    f = sg.function([], [b, c], updates=updates)
    assert a.get_value() == 1
    assert [int(v) for v in f()] == [2, 12] and a.get_value() == 11
    assert [int(v) for v in f()] == [12, 22] and a.get_value() == 21


def _reference(acc0: np.ndarray, xs: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The loop by hand: each step adds its row to the accumulator and emits scale * it."""
    acc, ys = acc0.copy(), []
    for row in xs:
        acc = acc + row
        ys.append(scale * acc)
    return np.array(ys).reshape((len(xs),) + acc0.shape), acc


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=12, deadline=None)
@given(xs=hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 4)),
                     elements=st.floats(-10, 10, allow_nan=False)),
       scale=st.floats(-3, 3, allow_nan=False))
def test_each_step_reads_the_value_the_previous_step_left(backend, xs, scale):
    dt = "float32" if backend == "opencl" else "float64"
    xs = xs.astype(dt)
    acc = sg.shared(np.ones(xs.shape[1], dt), "acc")
    x = T.tensor(dt, (None, None), "x")

    def step(row):
        new = acc + row
        return new * np.asarray(scale, dt), {acc: new}

    ys, updates = sg.scan(step, sequences=[x])
    f = sg.function([x], ys, updates=updates, backend=backend)
    want_ys, want_acc = _reference(np.ones(xs.shape[1], dt), xs, scale)
    tol = 1e-5 if dt == "float32" else 1e-12
    np.testing.assert_allclose(f(xs), want_ys, rtol=tol, atol=tol)
    np.testing.assert_allclose(acc.get_value(), want_acc, rtol=tol, atol=tol)


def test_outputs_and_updates_together_with_carries_and_until(backend):
    """A while loop that counts its steps in a shared variable next to a fed-back output."""
    count = sg.shared(np.int64(0), "count")
    h0 = T.dscalar("h0") if backend == "numpy" else T.fscalar("h0")

    def step(h):
        return [h * 2], {count: count + 1}, sg.until(h * 2 > 100)

    hs, updates = sg.scan(step, outputs_info=[h0], n_steps=50)
    f = sg.function([h0], hs, updates=updates, backend=backend)
    np.testing.assert_array_equal(f(3.0), [6, 12, 24, 48, 96, 192])
    assert count.get_value() == 6
    f(100.0)
    assert count.get_value() == 7


def test_zero_steps_leave_the_value_and_a_function_without_the_updates_changes_nothing():
    acc = sg.shared(np.arange(3.0), "acc")
    x = T.dmatrix("x")
    ys, updates = sg.scan(lambda row: (acc + row, {acc: acc + row}), sequences=[x])
    f = sg.function([x], ys, updates=updates)
    assert len(f(np.zeros((0, 3)))) == 0
    np.testing.assert_array_equal(acc.get_value(), np.arange(3.0))
    g = sg.function([x], ys)  # the updates not given: acc keeps its value
    np.testing.assert_array_equal(g(np.ones((2, 3))), [np.arange(3.0) + 1, np.arange(3.0) + 2])
    np.testing.assert_array_equal(acc.get_value(), np.arange(3.0))


def test_a_nested_loop_updates_the_outer_loops_shared_variable():
    total = sg.shared(np.float64(0.0), "total")
    x = T.dmatrix("x")

    def outer(row):
        _, inner = sg.scan(lambda v: {total: total + v}, sequences=[row])
        return inner[total], inner

    sums, updates = sg.scan(outer, sequences=[x])
    f = sg.function([x], sums, updates=updates)
    xs = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(f(xs), np.cumsum(xs.ravel())[[2, 5]])
    assert total.get_value() == 15.0


def test_the_gradient_flows_through_the_carried_value():
    w = sg.shared(np.zeros(2), "w")
    x = T.dmatrix("x")
    ys, _ = sg.scan(lambda row: (T.tanh(w * row), {w: T.tanh(w * row) + 0.5}), sequences=[x])
    total = ys.sum()
    grad_w = sg.grad(total, w)
    f = sg.function([x], [total, grad_w])
    xs = np.random.default_rng(0).normal(size=(4, 2))
    w.set_value(np.array([0.3, -0.2]))
    value, g = f(xs)

    def by_hand(wv):
        out = 0.0
        for row in xs:
            y = np.tanh(wv * row)
            out += y.sum()
            wv = y + 0.5
        return out

    assert value == pytest.approx(by_hand(np.array([0.3, -0.2])))
    eps = 1e-6
    numeric = [(by_hand(np.array([0.3, -0.2]) + eps * e) - by_hand(np.array([0.3, -0.2]) - eps * e)) / (2 * eps)
               for e in np.eye(2)]
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


def test_a_streams_own_counter_update_is_not_carried():
    """Theano code returning ``srng.updates()`` from a step: the counters' default updates are
    applied by the function anyway; the draws still differ from step to step and call to call."""
    srng = sg.RandomStream(7)

    def step():
        u = srng.uniform((3,))
        return u, srng.updates()

    us, updates = sg.scan(step, n_steps=4)
    assert not updates
    f = sg.function([], us)
    first, second = f(), f()
    assert len({tuple(r) for r in first}) == 4 and not np.array_equal(first, second)


def test_bad_updates_name_the_variable_and_the_user_line():
    a = sg.shared(np.zeros(2), "a")
    x = T.dvector("x")
    with pytest.raises(GraphTypeError, match=r"(?s)not a shared variable.*test_scan_shared_updates.py"):
        sg.scan(lambda: {x: x + 1}, n_steps=2)
    with pytest.raises(GraphTypeError, match=r"updates the shared variable a .*T.cast\(value, 'float64'\)"):
        sg.scan(lambda: {a: T.cast(a, "float32") + 1}, n_steps=2)
    with pytest.raises(GraphTypeError, match="return_updates=True"):
        sg.scan(lambda: {a: a + 1}, n_steps=2, return_updates=False)
