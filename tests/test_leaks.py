"""No leaks: repeated training steps keep resident memory flat, and deleting a compiled
function frees it (and, on OpenCL, its device buffers)."""
from __future__ import annotations

import gc
import os
import sys
import weakref

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root
from benchmarks.memory_leak import mlp_step, rss_mib  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS read from /proc (Linux)")


def test_rss_stays_flat_over_training_steps(backend):
    step, data, _ = mlp_step(backend)
    for _ in range(300):  # warm-up: pools, caches and allocator arenas reach their steady size
        step(*data)
    gc.collect()
    before = rss_mib()
    for _ in range(2000):
        step(*data)
    gc.collect()
    growth = rss_mib() - before
    assert growth < 2.0, f"RSS grew {growth:.2f} MiB over 2000 steps on {backend}"


def test_deleting_a_function_frees_it(backend):
    step, data, params = mlp_step(backend)
    step(*data)
    ref, impl_ref = weakref.ref(step), weakref.ref(step._impl)
    del step
    gc.collect()
    assert ref() is None and impl_ref() is None, "the compiled function is still referenced"
    assert params[0].get_value().shape == (16, 32)  # shared values outlive the function


def test_many_compilations_do_not_accumulate(backend):
    """Compiling and dropping functions repeatedly leaves no compiled objects behind."""
    refs = []
    for _ in range(20):
        step, data, _ = mlp_step(backend)
        step(*data)
        refs.append(weakref.ref(step._impl))
        del step
    gc.collect()
    assert sum(r() is not None for r in refs) == 0


def test_opencl_device_buffers_are_released(backend):
    """With the function and its shared variables gone, the memory pool has no active blocks."""
    if backend != "opencl":
        pytest.skip("device buffers exist on OpenCL only")
    from symgraph.backends.opencl.runtime import get_runtime
    pool = get_runtime().pool
    gc.collect()
    baseline = pool.active_blocks
    step, data, params = mlp_step(backend)
    for _ in range(5):
        step(*data)
    assert pool.active_blocks > baseline  # shared values and constants now live on the device
    del step, params
    gc.collect()
    assert pool.active_blocks == baseline, f"{pool.active_blocks - baseline} device blocks still held"


def test_compiling_thousands_of_distinct_functions_keeps_memory_flat():
    """Every cache that compiling fills is bounded: 2,000 distinct fused programs (numpy backend)
    grow traced memory no more once the caches are full."""
    import tracemalloc

    import numpy as np

    import symgraph as sg
    import symgraph.tensor as T
    x = T.dvector("x")
    v = np.ones(3)

    def compile_and_call(k: int) -> None:
        sg.function([x], T.tanh(x * (k + 0.5)) + k)(v)  # a new Composite program each time
    for k in range(600):  # past the helper cache's size (512): it is full from here on
        compile_and_call(k)
    gc.collect()
    tracemalloc.start()
    for k in range(600, 1300):
        compile_and_call(k)
    gc.collect()
    middle = tracemalloc.get_traced_memory()[0]
    for k in range(1300, 2000):
        compile_and_call(k)
    gc.collect()
    growth = (tracemalloc.get_traced_memory()[0] - middle) / 2**20
    tracemalloc.stop()
    assert growth < 1.0, f"traced memory grew {growth:.2f} MiB over 700 more distinct compiles"


def test_opencl_kernel_cache_is_bounded(backend, monkeypatch):
    """The runtime keeps at most KERNEL_CACHE built kernels, least recently used dropped first."""
    if backend != "opencl":
        pytest.skip("built kernels exist on OpenCL only")
    import numpy as np

    import symgraph as sg
    import symgraph.tensor as T
    from symgraph.backends.opencl import runtime
    rt = runtime.get_runtime()
    monkeypatch.setattr(runtime, "KERNEL_CACHE", 4)
    x = T.fvector("x")
    for k in range(8):
        f = sg.function([x], T.exp(x * np.float32(k + 0.5)) + np.float32(k), backend="opencl")
        np.testing.assert_allclose(f(np.ones(3, "float32")), np.exp(k + 0.5) + k, rtol=1e-5)
        assert len(rt._kernels) <= 4
