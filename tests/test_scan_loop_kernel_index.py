"""Indices the loop computes, in the one-kernel loop: ``data[i]`` where ``i`` is a carry, an element
of a sequence (Theano's ``sequences=T.arange(n)`` idiom) or a value the step computes, read by
the kernel when it reaches an element (a view moved along the axis at run time). numpy's rules:
negative indices count from the end, and one out of range raises numpy's IndexError, from the
step-by-step loop that the call falls back to, leaving every shared variable as it was. Each form
of the kernel gives the numpy backend's numbers."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import NO_OPENCL
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=NO_OPENCL or "")
if NO_OPENCL is None:
    from tests.test_scan_loop_kernel_random import FORMS, _compile, _loop_sources


def _walk(rows: int, stride: int, start: int):
    """A carry index walking the rows of a matrix (``i -> (i + stride) % rows``, read before the
    step moves it, negative on odd steps), a sequence index picking columns, a computed index
    (``(i * 3 + t) % rows``, written back into the carry with set_subtensor at a run-time row)."""
    data, c0 = T.dmatrix("data"), T.dmatrix("c0")
    i0 = T.constant(np.int64(start))

    def step(t, i, c, d):
        k = T.cast((i * 3 + t) % rows, "int64")
        picked = d[i] * 0.5 + d[k][::-1] * 0.25 + d[:, t % d.shape[1]].sum() * 0.01
        row = c[-1 - (t % rows)] * 0.9 + picked
        nxt = T.set_subtensor(c[k], row)
        return [T.switch(T.eq(t % 2, 0), (i + stride) % rows, (i + stride) % rows - rows), nxt]
    (_, cs), _ = sg.scan(step, sequences=[T.arange(3 * rows)], outputs_info=[i0, c0], non_sequences=[data])
    return [data, c0], cs


@pytest.mark.parametrize("form", FORMS)
@settings(deadline=None, max_examples=4)
@given(rows=st.integers(2, 6), cols=st.integers(1, 5), stride=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_indices_the_loop_computes_run_in_one_kernel(form, rows, cols, stride, seed):
    inputs, out = _walk(rows, stride, seed % rows)
    rng = np.random.default_rng(seed)
    args = [rng.normal(size=(rows, cols)), rng.normal(size=(rows, cols))]
    f = _compile(inputs, out, "opencl", form)
    got, want = f(*args), sg.function(inputs, out, backend="numpy")(*args)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    (source,) = _loop_sources(f).values()
    assert "sg_index(" in source and "__global int *bad" in source


@pytest.mark.parametrize("form", FORMS)
def test_an_index_out_of_range_raises_numpys_error_and_loses_nothing(form):
    """i grows by one a step: past the data's length numpy raises; the kernel's flag sends the call
    to the step-by-step loop, which raises that error with the node's context, and the shared
    total keeps its value. A call in range still runs in one kernel afterwards."""
    data = T.dvector("data")
    total = sg.shared(np.float64(5.0), "total")
    (_, acc), _ = sg.scan(lambda i, a, d: [i + 1, a + d[i]], outputs_info=[T.constant(np.int64(0)), total],
                          non_sequences=[data], n_steps=4)
    f = _compile([data], acc[-1], "opencl", form, updates=[(total, acc[-1])])
    assert f(np.arange(1.0, 6.0)) == 15.0 and total.get_value() == 15.0
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 0 with size 3"):
        f(np.arange(3.0))
    assert total.get_value() == 15.0
    assert f(np.ones(4)) == 19.0
    assert len(_loop_sources(f)) == 3  # each length built a kernel; the one out of range fell back


def test_a_window_of_moving_length_still_runs_step_by_step():
    """A window d[i:2 * i] has a length only the run knows (a vector index the loop computes, by
    contrast, is a gather: in one kernel), so that body runs step by step, with numpy's numbers."""
    data, c0 = T.dvector("data"), T.dvector("c0")
    out, _ = sg.scan(lambda c, d: c + d[T.cast(c > 0, "int64")], outputs_info=[c0], non_sequences=[data],
                     n_steps=3)
    f = _compile([data, c0], out, "opencl")
    args = (np.array([1.0, 2.0]), np.array([-1.0, 0.5, 2.0]))
    np.testing.assert_allclose(f(*args), sg.function([data, c0], out, backend="numpy")(*args))
    assert _loop_sources(f)
    moving, _ = sg.scan(lambda i, d: d[i:2 * i].sum(), sequences=[T.arange(1, 5)], non_sequences=[data])
    g = _compile([data], moving, "opencl")
    np.testing.assert_allclose(g(np.arange(9.0)), [1.0, 5.0, 12.0, 22.0])
    (summary,) = [v for k, v in g.kernels.items() if k.startswith("loop")]
    assert "whose length the plan does not know" in summary


def _windows(width: int, step: int):
    """A carry ``w`` updated from a window ``d[a:a + width:step]`` whose start moves with the step
    (``a = t * shift - back``, from a sequence element), written back with set_subtensor into a
    window of the carry's history matrix at a row the carry's index picks."""
    data, w0, h0, shift, back = T.dmatrix("data"), T.dvector("w0"), T.dmatrix("h0"), T.lscalar("shift"), T.lscalar("back")

    def body(t, w, h, i, d, s, b):
        a = t * s - b
        win = d[a:a + width:step]
        w2 = w * 0.5 + win.sum(axis=0) * 0.1
        h2 = T.set_subtensor(h[i:i + 1], w2[None, :])
        return [w2, h2, (i + 1) % h.shape[0]]
    (ws, hs, _), _ = sg.scan(body, sequences=[T.arange(5)], outputs_info=[w0, h0, T.constant(np.int64(0))],
                             non_sequences=[data, shift, back])
    return [data, w0, h0, shift, back], [ws, hs[-1]]


@pytest.mark.parametrize("form", FORMS)
@settings(deadline=None, max_examples=4)
@given(width=st.integers(1, 4), step=st.integers(1, 3), shift=st.integers(0, 3), back=st.integers(-1, 2),
       seed=st.integers(0, 2**31))
def test_windows_that_move_with_the_loop_run_in_one_kernel(form, width, step, shift, back, seed):
    """In range, the window is a view of known shape whose start the kernel reads; a window that
    numpy would shorten (past the end) or wrap (a negative start) sends the call step by step,
    with numpy's numbers either way."""
    inputs, outs = _windows(width, step)
    rng = np.random.default_rng(seed)
    args = [rng.normal(size=(12, 3)), rng.normal(size=3), np.zeros((3, 3)), shift, back]
    f = _compile(inputs, outs, "opencl", form)
    got, want = f(*args), sg.function(inputs, outs, backend="numpy")(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    (source,) = _loop_sources(f).values()
    assert "sg_start(" in source


@pytest.mark.parametrize("form", FORMS[:2])
def test_a_minibatch_training_loop_runs_in_one_kernel(form):
    """Theano's minibatch loop, in one call: each step takes rows i*B:(i+1)*B of the data (i from
    T.arange) for one gradient step of a logistic regression; the parameters equal the numpy
    backend's."""
    X, y = T.dmatrix("X"), T.dvector("y")
    w0, b0 = T.dvector("w0"), T.dscalar("b0")
    B = 8

    def step(i, w, b, X, y):
        xb, yb = X[i * B:(i + 1) * B], y[i * B:(i + 1) * B]
        p = T.nnet.sigmoid(T.dot(xb, w) + b)
        loss = -T.mean(yb * T.log(p) + (1 - yb) * T.log(1 - p))
        gw, gb = sg.grad(loss, [w, b])
        return [w - 0.5 * gw, b - 0.5 * gb]
    (ws, bs), _ = sg.scan(step, sequences=[T.arange(X.shape[0] // B)], outputs_info=[w0, b0], non_sequences=[X, y])
    rng = np.random.default_rng(0)
    xv = rng.normal(size=(64, 5))
    yv = (xv @ np.arange(5.0) > 0).astype(float)
    args = [xv, yv, np.zeros(5), 0.0]
    f = _compile([X, y, w0, b0], [ws[-1], bs[-1]], "opencl", form)
    want = sg.function([X, y, w0, b0], [ws[-1], bs[-1]], backend="numpy")(*args)
    for g, w in zip(f(*args), want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    assert _loop_sources(f)


@pytest.mark.parametrize("shift, back, in_range", [(2, 0, True), (3, 0, False), (1, 2, False), (1, -1, True)])
def test_a_window_numpy_would_shorten_or_wrap_runs_step_by_step(shift, back, in_range, monkeypatch):
    from symgraph.backends.opencl import loop_kernel
    results = []
    run = loop_kernel._Spec.run
    monkeypatch.setattr(loop_kernel._Spec, "run", lambda self, *a: results.append(run(self, *a)) or results[-1])
    inputs, outs = _windows(4, 1)
    args = [np.arange(36.0).reshape(12, 3), np.ones(3), np.zeros((3, 3)), shift, back]
    got = _compile(inputs, outs, "opencl")(*args)
    for g, w in zip(got, sg.function(inputs, outs, backend="numpy")(*args)):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    assert [r is not None for r in results] == [in_range]


@pytest.mark.parametrize("form", FORMS[:2])
def test_a_while_loop_reading_past_the_end_raises_numpys_error(form):
    """In a while loop (launches of 16, 32, ... steps) an index the loop computes that runs past
    the data sends the call step by step too, which raises numpy's IndexError; in range, it stops
    where its condition says, with numpy's numbers."""
    data = T.dvector("data")

    def step(i, acc, d):
        nxt = acc + d[i]
        return [i + 1, nxt], sg.until(nxt > 10.0)
    (_, acc), _ = sg.scan(step, outputs_info=[T.constant(np.int64(0)), T.constant(0.0)], non_sequences=[data],
                          n_steps=50)
    f = _compile([data], acc, "opencl", form)
    np.testing.assert_allclose(f(np.ones(30)), np.arange(1.0, 12.0))
    assert _loop_sources(f)
    with pytest.raises(IndexError, match="index 20 is out of bounds for axis 0 with size 20"):
        f(np.full(20, 0.1))  # the sum never passes 10 before i reaches 20


@pytest.mark.parametrize("form", FORMS)
def test_gathers_and_scatters_by_index_arrays_run_in_one_kernel(form):
    """Theano's negative log-likelihood, -mean(log(p)[T.arange(n), y]) (a gather by two index
    arrays; its gradient an inc_subtensor: a scatter), trains a softmax classifier on minibatches
    in one kernel with numpy's numbers; a carry updated by set_subtensor and inc_subtensor at
    index arrays the step computes (repeated indices accumulate, negative ones wrap) too; a label
    out of range sends the call step by step, where numpy raises."""
    X, y, w0 = T.dmatrix("X"), T.lvector("y"), T.dmatrix("w0")

    def step(i, w, X, y):
        xb, yb = X[i * 4:(i + 1) * 4], y[i * 4:(i + 1) * 4]
        p = T.nnet.softmax(T.dot(xb, w))
        return w - 0.5 * sg.grad(-T.mean(T.log(p)[T.arange(yb.shape[0]), yb]), w)
    ws, _ = sg.scan(step, sequences=[T.arange(X.shape[0] // 4)], outputs_info=[w0], non_sequences=[X, y])
    rng = np.random.default_rng(4)
    args = [rng.normal(size=(16, 3)), rng.integers(0, 4, 16), np.zeros((3, 4))]
    f = _compile([X, y, w0], ws[-1], "opencl", form)
    np.testing.assert_allclose(f(*args), sg.function([X, y, w0], ws[-1], backend="numpy")(*args), rtol=1e-12)
    assert _loop_sources(f)
    with pytest.raises(IndexError, match="out of bounds"):
        f(args[0], np.where(np.arange(16) == 9, 4, args[1]), args[2])
    c0 = T.dmatrix("c0")

    def body(t, c):
        rows = (T.arange(5) * t) % c.shape[0] - 1  # repeated rows, and -1: the last
        cols = T.arange(5) % c.shape[1]
        c = T.inc_subtensor(c[rows, cols], T.tanh(c[rows, cols[::-1]]) * 0.5)
        return T.set_subtensor(c[rows[:2], cols[:2]], c[0, 0] * 0.25)
    out, _ = sg.scan(body, sequences=[T.arange(1, 7)], outputs_info=[c0])
    init = rng.normal(size=(3, 4))
    g = _compile([c0], out, "opencl", form)
    np.testing.assert_allclose(g(init), sg.function([c0], out, backend="numpy")(init), rtol=1e-12)
    assert _loop_sources(g)
