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
