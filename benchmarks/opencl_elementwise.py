"""OpenCL benchmarks, medians (ms) and ratios in one run.

1. Fused elementwise ``sigmoid(x*y + 0.5) * tanh(x) - relu(y)`` on 10**7 float32: numpy; the
   symgraph numpy backend; the OpenCL function called on host arrays (on a CPU device both with
   zero-copy buffers and with the copies forced); the fused kernel alone on device-resident data.
2. A 784-512-512-10 relu MLP SGD step (softmax + categorical_crossentropy on integer labels),
   batch 256, float32: the numpy backend; OpenCL with matmul in host BLAS on zero-copy buffers
   (CPU devices) and with the tiled matmul kernel.
Usage: python benchmarks/opencl_elementwise.py [n] [repeats]
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
    rows = [("numpy", t_np), ("symgraph numpy backend", median_ms(lambda: f_np(a, b), repeats))]
    if rt.zero_copy:
        rows.append(("symgraph opencl, host arrays in/out (zero-copy)", median_ms(lambda: f_cl(a, b), repeats)))
        rt.zero_copy = False
        rows.append(("symgraph opencl, host arrays in/out (copies)", median_ms(lambda: f_cl(a, b), repeats)))
        rt.zero_copy = True
    else:
        rows.append(("symgraph opencl, host arrays in/out", median_ms(lambda: f_cl(a, b), repeats)))
    rows.append(("symgraph opencl, device-resident (kernel)", median_ms(device_only, repeats)))
    for name, ms in rows:
        print(f"  {name:<50} {ms:8.2f} ms   {t_np / ms:5.2f}x numpy")
    print("kernel source:\n" + next(src for k, src in f_dev.kernels.items() if "strided" not in k))


def mlp_step(backend: str, batch: int = 256, sizes=(784, 512, 512, 10)):
    """A compiled SGD step of a relu MLP with softmax crossentropy on integer labels, and its data."""
    rng = np.random.default_rng(1)
    with sg.config.change_flags(floatX="float32"):
        params = []
        for m, n in zip(sizes, sizes[1:]):
            params += [sg.shared((rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32)),
                       sg.shared(np.zeros(n, np.float32))]
        x, y = T.fmatrix("x"), T.lvector("y")
        h = x
        for k in range(0, len(params), 2):
            h = T.dot(h, params[k]) + params[k + 1]
            h = T.relu(h) if k + 2 < len(params) else T.softmax(h)
        loss = T.categorical_crossentropy(h, y).mean()
        grads = sg.grad(loss, params)
        step = sg.function([x, y], loss, updates=[(p, p - np.float32(0.01) * g) for p, g in zip(params, grads)],
                           backend=backend)
    data = (rng.standard_normal((batch, sizes[0])).astype(np.float32), rng.integers(0, sizes[-1], batch))
    return step, data


def mlp(repeats: int) -> None:
    """Median SGD step times of the 784-512-512-10 MLP, batch 256, numpy vs OpenCL backends."""
    f_np, data = mlp_step("numpy")
    f_cl, _ = mlp_step("opencl")
    rt = f_cl._impl.runtime
    t_np = median_ms(lambda: f_np(*data), repeats)
    rows = [("symgraph numpy backend", t_np)]
    blas = rt.host_blas
    for host_blas in ([True, False] if rt.zero_copy else [False]):
        rt.host_blas = host_blas
        label = "matmul in host BLAS (zero-copy)" if host_blas else "tiled matmul kernel"
        rows.append((f"symgraph opencl, {label}", median_ms(lambda: f_cl(*data), repeats)))
    rt.host_blas = blas
    print(f"MLP 784-512-512-10 SGD step, batch 256, float32 on {rt.info.name}:")
    for name, ms in rows:
        print(f"  {name:<50} {ms:8.2f} ms   {ms / t_np:5.2f}x numpy backend time")


if __name__ == "__main__":
    main(*(int(v) for v in sys.argv[1:3]))
    mlp(int(sys.argv[2]) if len(sys.argv) > 2 else 15)
