"""Random draws inside the one-kernel loop (issue 15 build item 6, issue 16): a body with dropout
or noise runs every step in one OpenCL launch and draws exactly the numbers the numpy backend
draws (step t is counter word c3 = t; an element's draw is its flat index in the draw's own
shape, also where the draw broadcasts against the step's other values), in each form of the
kernel: one work-item's loop nests (CPU devices), a work-group's contiguous chunks, and its
interleaved elements (the GPU form, forced here on the CPU device)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import NO_OPENCL
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.opencl import loop_kernel, loop_source
from symgraph.backends.opencl.loop_plan import unsupported
from symgraph.scan.op import Scan

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=NO_OPENCL or "")
FORMS = [(1, True), (4, True), (4, False)]  # (work-items, contiguous chunks per item)


def _loop_sources(f) -> dict[str, str]:
    return {k: v for k, v in f.kernels.items() if k.startswith("loop") and "for (long t = start; " in v}


def _compile(inputs, outputs, backend, form=(1, True), updates=None):
    """``sg.function`` on ``backend``; on OpenCL with the loop kernel in ``form`` (its calls build it)."""
    local, chunked = form
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop_kernel, "CPU_LOCAL", local)
        mp.setattr(loop_kernel, "kernel_source",
                   lambda stem, plan, loc, _chunked: loop_source.kernel_source(stem, plan, loc, chunked))
        return sg.function(inputs, outputs, backend=backend, updates=updates)


def _draw(srng, kind: str, size: tuple, dtype: str):
    if kind == "uniform":
        return srng.uniform(size=size, low=-1.0, high=2.0, dtype=dtype)
    if kind == "normal":
        return srng.normal(size=size, avg=0.5, std=2.0, dtype=dtype)
    if kind == "binomial":
        return T.cast(srng.binomial(size=size, n=7, p=0.3), dtype)
    return T.cast(srng.integers(-5, 9, size=size), dtype)


def _noisy_walk(kind: str, dtype: str, rows: int, cols: int, row_draw: bool, seed: int):
    """c_t = c_{t-1} * 0.5 + x_t * d_t, with d_t a fresh draw of shape (rows, cols) or (1, cols)."""
    srng = sg.RandomStream(seed=seed)
    x = T.tensor3("x", dtype=dtype)
    size = (1, cols) if row_draw else (rows, cols)

    def step(xt, c):
        return c * np.asarray(0.5, dtype) + xt * _draw(srng, kind, size, dtype)
    out, _ = sg.scan(step, sequences=[x], outputs_info=[T.zeros((rows, cols), dtype=dtype)])
    return srng, x, out


@pytest.mark.parametrize("form", FORMS)
@settings(deadline=None, max_examples=6)
@given(kind=st.sampled_from(["uniform", "normal", "binomial", "integers"]),
       dtype=st.sampled_from(["float32", "float64"]), rows=st.integers(1, 4), cols=st.integers(1, 19),
       steps=st.integers(1, 7), row_draw=st.booleans(), seed=st.integers(0, 2**31))
def test_draws_in_the_loop_kernel_are_the_numpy_backends(form, kind, dtype, rows, cols, steps, row_draw, seed):
    xv = np.random.default_rng(seed).uniform(0.5, 1.5, (steps, rows, cols)).astype(dtype)
    results, sources = [], {}
    for backend in ("opencl", "numpy"):
        srng, x, out = _noisy_walk(kind, dtype, rows, cols, row_draw, seed)
        f = _compile([x], out, backend, form)
        results.append([f(xv), f(xv)])  # two calls: the call counter moves the stream on
        assert int(srng.counters[0].get_value()) == 2
        sources = sources or _loop_sources(f)
    (src,) = sources.values()
    assert "sg_philox(" in src  # the draws run inside the one kernel
    (a1, a2), (b1, b2) = results
    if kind in ("uniform", "normal"):
        assert not np.array_equal(a1, a2)
    if kind == "normal":  # sin, cos and log of the device's libm: a unit or two in the last place
        for a, b in ((a1, b1), (a2, b2)):
            np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == "float32" else 1e-13, atol=1e-12)
    else:
        np.testing.assert_array_equal(a1, b1)
        np.testing.assert_array_equal(a2, b2)


def _dropout_training(backend: str, form: tuple):
    """A 2-8-1 tanh network learning XOR with dropout on its hidden layer, 40 Adam steps in one
    call (``sg.scan_updates``): the mask is drawn, and its gradient taken, inside the loop."""
    rng = np.random.default_rng(4)
    params = [sg.shared(rng.normal(0, 1, (2, 8))), sg.shared(np.zeros(8)),
              sg.shared(rng.normal(0, 0.5, (8, 1))), sg.shared(np.zeros(1))]
    srng = sg.RandomStream(seed=21)
    x, y = T.dmatrix("x"), T.dmatrix("y")
    hidden = T.nnet.dropout(T.tanh(T.dot(x, params[0]) + params[1]), 0.25, srng)
    loss = T.mean((T.dot(hidden, params[2]) + params[3] - y) ** 2)
    losses, final = sg.scan_updates(sg.updates.adam(loss, params, learning_rate=0.05), n_steps=40, outputs=[loss])
    f = _compile([x, y], losses[0], backend, form, updates=final)
    return f, params, srng


@pytest.mark.parametrize("form", FORMS)
def test_a_dropout_training_loop_runs_in_one_kernel_as_on_the_numpy_backend(form):
    xv = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
    yv = np.array([[0], [1], [1], [0]], np.float64)
    runs = {}
    for backend in ("opencl", "numpy"):
        f, params, srng = _dropout_training(backend, form)
        losses = [f(xv, yv) for _ in range(3)]
        runs[backend] = (losses, [p.get_value() for p in params], f)
        assert int(srng.counters[0].get_value()) == 3  # one counter step a call, not one a loop step
    (lo, po, f), (ln, pn, _) = runs["opencl"], runs["numpy"]
    np.testing.assert_allclose(np.concatenate(lo), np.concatenate(ln), rtol=1e-9, atol=1e-12)
    for a, b in zip(po, pn):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert np.mean(lo[-1][-10:]) < np.mean(lo[0][:10])  # it trains
    (src,) = _loop_sources(f).values()
    assert "sg_bernoulli64(" in src and "sqrt" in src  # the mask and Adam's update in the one kernel


def test_float32_normals_need_double_precision_on_the_device():
    """A float32 normal is computed in double (as numpy does): a device without fp64 runs that
    body step by step; a float32 uniform needs no double."""
    srng = sg.RandomStream(seed=1)
    for draw, needs in ((lambda: srng.normal((3,), dtype="float32"), True),
                        (lambda: srng.uniform((3,), dtype="float32"), False)):
        out, _ = sg.scan(lambda c, d=draw: c + d(), outputs_info=[T.zeros((3,), dtype="float32")], n_steps=4)
        f = sg.function([], out, backend="opencl")
        (op,) = [n.op for n in f.graph.toposort() if isinstance(n.op, Scan)]
        why = unsupported(op, fp64=False)
        assert (why is not None and "float64" in why) == needs
        assert unsupported(op, fp64=True) is None
