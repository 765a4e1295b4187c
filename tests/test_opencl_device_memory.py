"""The read-back path of devices without zero-copy buffers (every discrete GPU): arrays live in
device memory and ``to_host`` copies them back, also for strided, transposed, negatively strided
and empty views. pocl's CPU buffers alias host memory, so the tests force the GPU path on pocl
with a second runtime for the same device that uses neither zero-copy nor host BLAS."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st
from hypothesis.extra import numpy as hnp

pytest.importorskip("pyopencl")
from conftest import NO_OPENCL  # noqa: E402

if NO_OPENCL:
    pytest.skip(NO_OPENCL, allow_module_level=True)

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402
from symgraph.backends.opencl import TRANSFERS  # noqa: E402
from symgraph.backends.opencl import runtime as rtmod  # noqa: E402


@pytest.fixture(scope="module")
def gpu_like() -> rtmod.Runtime:
    """A runtime on the default device that keeps every array in device memory."""
    info, dev = rtmod.choose_device()
    rt = rtmod.Runtime(info, dev)
    rt.zero_copy = rt.host_blas = False
    return rt


@pytest.fixture
def on_gpu_like(gpu_like, monkeypatch) -> rtmod.Runtime:
    """sg.function(..., backend='opencl') compiles for ``gpu_like`` while the test runs."""
    info, _ = rtmod.choose_device()
    monkeypatch.setitem(rtmod._RUNTIMES, (info.platform_index, info.device_index), gpu_like)
    return gpu_like


FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15)


@FIXTURE_OK
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5))
def test_views_come_back_as_numpy_shows_them(gpu_like, data, shape):
    host = data.draw(hnp.arrays("float32", shape, elements=st.floats(-9, 9, width=32)))
    arr = gpu_like.to_device(host)
    assert arr.host is None  # in device memory: every read-back is a copy
    before = TRANSFERS["to_host"]
    np.testing.assert_array_equal(arr.to_host(), host)
    steps = tuple(data.draw(st.sampled_from([1, 2, -1, -2]), f"step {d}") for d in range(len(shape)))
    view = host[tuple(slice(None, None, s) for s in steps)]
    item = host.dtype.itemsize
    strides = [s // item for s in view.strides]
    offset = (view.__array_interface__["data"][0] - host.__array_interface__["data"][0]) // item if host.size else 0
    dev_view = arr.view(view.shape, strides, offset)
    np.testing.assert_array_equal(dev_view.to_host(), view)
    np.testing.assert_array_equal(arr.view(host.T.shape, [s // item for s in host.T.strides], 0).to_host(), host.T)
    copies = TRANSFERS["to_host"] - before
    assert copies == (3 if host.size else 0)  # empty arrays need no transfer


def test_training_step_reads_back_through_copies(on_gpu_like):
    """A small MLP step (products, reductions, updates, a transposed output) on the GPU path
    equals the numpy backend's, and its outputs come back through copies only."""
    rng = np.random.default_rng(0)
    values = {"W": rng.normal(size=(4, 3)).astype("float32"), "b": np.zeros(3, "float32")}

    def build(backend):
        W, b = sg.shared(values["W"].copy(), "W"), sg.shared(values["b"].copy(), "b")
        x = T.fmatrix("x")
        h = T.tanh(T.dot(x, W) + b)
        loss = (h ** 2).mean()
        gW, gb = sg.grad(loss, [W, b])
        f = sg.function([x], [loss, h.T, h[::2, ::-1]], updates=[(W, W - 0.1 * gW), (b, b - 0.1 * gb)],
                        backend=backend)
        return f, W, b

    f_dev, W_dev, b_dev = build("opencl")
    f_ref, W_ref, b_ref = build("numpy")
    assert f_dev._impl.runtime is on_gpu_like
    x = rng.normal(size=(5, 4)).astype("float32")
    zero_copy_before = TRANSFERS["zero_copy_out"]
    to_host_before = TRANSFERS["to_host"]
    for _ in range(3):
        got, want = f_dev(x), f_ref(x)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(W_dev.get_value(), W_ref.get_value(), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(b_dev.get_value(), b_ref.get_value(), rtol=2e-5, atol=1e-6)
    assert TRANSFERS["zero_copy_out"] == zero_copy_before
    assert TRANSFERS["to_host"] - to_host_before >= 3 * 3 + 2  # three outputs a call, then W and b
