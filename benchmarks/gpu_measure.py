"""The GPU check's device measurements, one per fresh process (run by benchmarks/gpu_check.py):

    SYMGRAPH_DEVICE=opencl:P:D python -m benchmarks.gpu_measure w1 100000000

prints one JSON line. Every figure is taken on device-resident data (shared variables in, a
shared variable updated out, the queue drained before the clock stops), so that it measures the
device, not the bus: ``w1`` is the fused elementwise W1 program (reads x and y, writes the
result: 12 bytes per element), ``copy`` a plain device-to-device buffer copy of the same size
(the memory limit measured in the same run, 8 bytes per element), ``gemm`` a float32
``dot(A, B)`` of n x n matrices (2 n^3 flops). Each result is checked against numpy.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import data as D


def _timed(fn: Callable[[], Any], finish: Callable[[], Any], rounds: int, number: int) -> float:
    """Median over ``rounds`` of the seconds per call of ``fn`` (``number`` calls, then ``finish``)."""
    fn()
    finish()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        finish()
        times.append((time.perf_counter() - start) / number)
    return float(np.median(times))


def _runtime_of(f: Any) -> Any:
    return f._impl.runtime


def w1(n: int, rounds: int = 5) -> dict:
    """W1 on device-resident float32 vectors of ``n`` elements: ms and GB/s (12 bytes an element)."""
    import symgraph as sg
    import symgraph.tensor as T
    xv, yv = D.w1_inputs(n)
    sx, sy, out = sg.shared(xv, "x"), sg.shared(yv, "y"), sg.shared(np.zeros(n, np.float32), "out")
    expr = T.sigmoid(sx * sy + 0.5) * T.tanh(sx) - T.maximum(sy, 0)
    f = sg.function([], [], updates=[(out, expr)], backend="opencl")
    rt = _runtime_of(f)
    sec = _timed(f, rt.queue.finish, rounds, number=3)
    head = slice(0, min(n, 1 << 20))
    np.testing.assert_allclose(out.get_value()[head], D.w1_reference(xv[head], yv[head]), atol=1e-5)
    return {"ms": sec * 1e3, "GB/s": 12 * n / sec / 1e9, "n": n, "device": rt.info.name}


def copy(n: int, rounds: int = 5) -> dict:
    """A device-to-device copy of ``n`` float32 values (clEnqueueCopyBuffer): GB/s, 8 bytes an element."""
    import pyopencl as cl

    from symgraph.backends.opencl.runtime import get_runtime
    rt = get_runtime()
    src = cl.Buffer(rt.context, cl.mem_flags.READ_WRITE, 4 * n)
    dst = cl.Buffer(rt.context, cl.mem_flags.READ_WRITE, 4 * n)
    cl.enqueue_fill_buffer(rt.queue, src, np.array([1.5], np.float32), 0, 4 * n)
    sec = _timed(lambda: cl.enqueue_copy(rt.queue, dst, src), rt.queue.finish, rounds, number=5)
    probe = np.empty(16, np.float32)
    cl.enqueue_copy(rt.queue, probe, dst, src_offset=4 * (n - 16))
    assert np.all(probe == np.float32(1.5)), probe
    return {"ms": sec * 1e3, "GB/s": 8 * n / sec / 1e9, "n": n, "device": rt.info.name}


def gemm(n: int, rounds: int = 5) -> dict:
    """float32 ``dot(A, B)`` of ``n`` x ``n`` device-resident matrices: ms and GFLOP/s (2 n^3 flops)."""
    import symgraph as sg
    import symgraph.tensor as T
    rng = np.random.default_rng(0)
    av = rng.standard_normal((n, n), dtype=np.float32)
    bv = rng.standard_normal((n, n), dtype=np.float32)
    a, b, c = sg.shared(av, "A"), sg.shared(bv, "B"), sg.shared(np.zeros((n, n), np.float32), "C")
    f = sg.function([], [], updates=[(c, T.dot(a, b))], backend="opencl")
    rt = _runtime_of(f)
    sec = _timed(f, rt.queue.finish, rounds, number=2)
    rows = slice(0, min(n, 64))
    want = av[rows].astype(np.float64) @ bv.astype(np.float64)
    np.testing.assert_allclose(c.get_value()[rows], want, rtol=1e-3, atol=1e-3 * np.sqrt(n))
    return {"ms": sec * 1e3, "GFLOP/s": 2 * n**3 / sec / 1e9, "n": n, "device": rt.info.name,
            "kernels": sorted(f.kernels)}


MEASUREMENTS: dict[str, Callable[[int], dict]] = {"w1": w1, "copy": copy, "gemm": gemm}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=sorted(MEASUREMENTS))
    p.add_argument("size", type=float, help="elements (w1, copy) or the matrix side (gemm)")
    args = p.parse_args(argv)
    try:
        result: dict[str, Any] = {"metrics": MEASUREMENTS[args.name](int(args.size))}
    except Exception as e:  # a failing measurement is a result to report, not a crash of the check
        result = D.failed(e, 300)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
