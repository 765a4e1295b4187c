"""Whole training loops in one call (issue 15): ``sg.scan_updates`` repeats an optimizer's updates
inside one compiled loop. k steps in one call equal k calls of the step-by-step function (the
same parameters and losses, on both backends), per-step batches come from sequences, zero steps
change nothing, and a step failing mid-loop leaves every shared variable as it was."""
from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T


def _mlp_problem(seed=0):
    """A 1-8-1 ReLU network on a noisy sine (float32), with Adam."""
    rng = np.random.default_rng(seed)
    params = [sg.shared(rng.normal(0, 1, (1, 8)).astype(np.float32), name="W0"),
              sg.shared(np.zeros(8, np.float32), name="b0"),
              sg.shared(rng.normal(0, 0.35, (8, 1)).astype(np.float32), name="W1"),
              sg.shared(np.zeros(1, np.float32), name="b1")]
    x, y = T.fmatrix("x"), T.fmatrix("y")
    out = T.dot(T.relu(T.dot(x, params[0]) + params[1]), params[2]) + params[3]
    loss = T.mean((out - y) ** 2)
    return params, x, y, loss, sg.updates.adam(loss, params, learning_rate=0.01)


def _sine(n=40):
    x = np.linspace(0, 2 * np.pi, n, dtype=np.float32)[:, None]
    return x, (np.sin(x) + np.random.default_rng(1).normal(0, 0.2, x.shape)).astype(np.float32)


def test_k_steps_in_one_call_equal_k_step_by_step_calls(backend):
    xv, yv = _sine()
    params, x, y, loss, upd = _mlp_problem()
    step = sg.function([x, y], loss, updates=upd, backend=backend)
    by_step = [float(step(xv, yv)) for _ in range(30)]
    params2, x2, y2, loss2, upd2 = _mlp_problem()
    n = T.lscalar("n")
    losses, final = sg.scan_updates(upd2, n_steps=n, outputs=[loss2])
    run = sg.function([x2, y2, n], losses[0], updates=final, backend=backend)
    got = np.concatenate([run(xv, yv, 10) for _ in range(3)])  # three calls of 10 steps continue the same run
    tol = {"rtol": 1e-5, "atol": 1e-6} if backend == "opencl" else {"rtol": 0, "atol": 0}
    np.testing.assert_allclose(got, by_step, **tol)
    for a, b in zip(params, params2):
        np.testing.assert_allclose(a.get_value(), b.get_value(), **tol)
    assert by_step[-1] < by_step[0] / 2  # it trained


def test_minibatches_come_from_sequences_and_zero_steps_change_nothing():
    xv, yv = _sine(48)
    order = np.random.default_rng(3).permutation(48).reshape(4, 12)
    params, x, y, loss, upd = _mlp_problem()
    step = sg.function([x, y], loss, updates=upd)
    by_step = [float(step(xv[i], yv[i])) for i in order]
    params2, x2, y2, loss2, upd2 = _mlp_problem()
    xs, ys = T.ftensor3("xs"), T.ftensor3("ys")
    losses, final = sg.scan_updates(upd2, sequences={x2: xs, y2: ys}, outputs=[loss2])
    run = sg.function([xs, ys], losses[0], updates=final)
    before = [p.get_value() for p in params2]
    assert run(xv[order][:0], yv[order][:0]).shape == (0,)
    for p, v in zip(params2, before):
        np.testing.assert_array_equal(p.get_value(), v)
    np.testing.assert_array_equal(run(xv[order], yv[order]), by_step)
    for a, b in zip(params, params2):
        np.testing.assert_array_equal(a.get_value(), b.get_value())


def test_a_step_failing_mid_loop_leaves_every_shared_variable_as_it_was(backend):
    """Each step trains on the rows its index batch names; batch 2 of 3 names a row that does not
    exist: the loop raises there, after two good steps, and no parameter or optimizer state keeps
    what those steps computed."""
    xv, yv = _sine()
    rng = np.random.default_rng(0)
    params = [sg.shared(rng.normal(0, 1, (1, 4)).astype(np.float32)), sg.shared(np.zeros((4, 1), np.float32))]
    idx = T.lvector("idx")
    pred = T.dot(T.tanh(T.dot(T.constant(xv)[idx], params[0])), params[1])
    loss = T.mean((pred - T.constant(yv)[idx]) ** 2)
    batches = T.lmatrix("batches")
    _, final = sg.scan_updates(sg.updates.adam(loss, params), sequences={idx: batches})
    run = sg.function([batches], [], updates=final, backend=backend)
    state = list(final)
    before = [s.get_value() for s in state]
    w0 = params[0].get_value()
    with pytest.raises(IndexError):
        run(np.array([[0, 1, 2], [3, 4, 5], [6, 7, 400]]))
    for s, v in zip(state, before):
        np.testing.assert_array_equal(s.get_value(), v)
    run(np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]]))
    assert not np.array_equal(params[0].get_value(), w0)  # the good loop does train


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="no updates"):
        sg.scan_updates({}, n_steps=3)
