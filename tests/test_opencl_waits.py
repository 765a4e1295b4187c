"""Issue 21 item 3: a call on the OpenCL backend waits for the queue only where the host reads a
value (an output the caller receives, a value a host-placed node needs) and at the end of a
call that lent host arrays to queued commands; the kernels in between are enqueued back to back.
In particular a pooled buffer that a kernel writes next is reused without a wait (the queue is
in order). Counted by ``runtime.WAITS``; the results are checked against numpy."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyopencl")
from conftest import NO_OPENCL  # noqa: E402

if NO_OPENCL:
    pytest.skip(NO_OPENCL, allow_module_level=True)

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402
from symgraph.backends.opencl import runtime as rtmod  # noqa: E402


def _chain(x):
    """Reductions between elementwise steps (no fusion across them): each kernel's output is a
    fresh buffer, many of them reused from buffers that died earlier in the same call."""
    h = x
    for k in range(6):
        h = T.tanh(h - h.mean(axis=1, keepdims=True) * (0.5 + 0.1 * k)) + h.max(axis=0) * 0.01
    return h.sum()


def _chain_np(x):
    h = x.astype(np.float64)
    for k in range(6):
        h = np.tanh(h - h.mean(axis=1, keepdims=True) * (0.5 + 0.1 * k)) + h.max(axis=0) * 0.01
    return h.sum()


def test_kernels_of_one_call_reuse_buffers_without_waiting():
    x = T.fmatrix("x")
    f = sg.function([x], _chain(x), backend="opencl")
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((64, 300)).astype(np.float32) for _ in range(4)]
    f(xs[0])
    rtmod.WAITS.clear()
    for xv in xs:  # back to back calls, each result checked
        np.testing.assert_allclose(f(xv), _chain_np(xv), rtol=2e-4)
    waits = dict(rtmod.WAITS)
    assert waits.get("reuse", 0) == 0, waits
    assert set(waits) <= {"read", "end_call"}, waits
    assert waits.get("read", 0) <= len(xs) * (1 + f.source.count(".to_host()")), (waits, f.source)


def test_a_buffer_a_kernel_writes_is_reused_without_a_wait_and_others_with_one():
    rt = rtmod.get_runtime()
    if not rt.zero_copy:
        pytest.skip("only zero-copy devices pool host buffers")
    a = rt.empty((1000,), np.float32)
    del a  # back in the pool
    rtmod.WAITS.clear()
    b = rt.empty((1000,), np.float32, kernel_output=True)
    assert rtmod.WAITS["reuse"] == 0
    del b
    c = rt.empty((1000,), np.float32)  # a host-side writer may write it: wait for queued readers
    assert rtmod.WAITS["reuse"] == 1
    del c
