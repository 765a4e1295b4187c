"""Fused elementwise benchmark: ``sigmoid(x*y + 0.5) * tanh(x) - relu(y)`` on 10**7 float32.

Reports medians (ms) in one run for: numpy; the symgraph numpy backend; the symgraph OpenCL
function called on host arrays (inputs copied in, output copied back); and the fused kernel
alone on device-resident data (shared variables in, result kept on the device). Ratios are to
numpy in the same run. Usage: python benchmarks/opencl_elementwise.py [n] [repeats]
"""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np

import symgraph as sg
import symgraph.tensor as T


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main(n: int = 10**7, repeats: int = 15) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(n, dtype=np.float32)
    b = rng.standard_normal(n, dtype=np.float32)

    def numpy_ref():
        return 1 / (1 + np.exp(-(a * b + np.float32(0.5)))) * np.tanh(a) - np.maximum(b, 0)

    x, y = T.fvector("x"), T.fvector("y")
    expr = T.sigmoid(x * y + 0.5) * T.tanh(x) - T.relu(y)
    f_np = sg.function([x, y], expr, backend="numpy")
    f_cl = sg.function([x, y], expr, backend="opencl")
    sx, sy = sg.shared(a, "sx"), sg.shared(b, "sy")
    out = sg.shared(np.zeros(n, np.float32), "out")
    resident = T.sigmoid(sx * sy + 0.5) * T.tanh(sx) - T.relu(sy)
    f_dev = sg.function([], [], updates=[(out, resident)], backend="opencl")
    queue = f_dev._impl.runtime.queue

    def device_only():
        f_dev()
        queue.finish()

    want = numpy_ref()
    np.testing.assert_allclose(f_cl(a, b), want, rtol=1e-5, atol=1e-5)
    device_only()
    np.testing.assert_allclose(out.get_value(), want, rtol=1e-5, atol=1e-5)

    rt = f_cl._impl.runtime
    print(f"device: {rt.info.name} ({rt.info.type}, {rt.info.compute_units} compute units); n = {n:,} float32")
    t_np = median_ms(numpy_ref, repeats)
    rows = [("numpy", t_np), ("symgraph numpy backend", median_ms(lambda: f_np(a, b), repeats)),
            ("symgraph opencl, host arrays in/out", median_ms(lambda: f_cl(a, b), repeats)),
            ("symgraph opencl, device-resident (kernel)", median_ms(device_only, repeats))]
    for name, ms in rows:
        print(f"  {name:<44} {ms:8.2f} ms   {t_np / ms:5.2f}x numpy")
    print("kernel source:\n" + next(src for k, src in f_dev.kernels.items() if "strided" not in k))


if __name__ == "__main__":
    main(*(int(v) for v in sys.argv[1:3]))
