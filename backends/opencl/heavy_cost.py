"""What a heavy node costs on each side of a device that shares host memory: matrix products
(dot, matmul, tensordot), convolutions (their gradients are convolutions too) and pooling, with
or without an elementwise epilogue. ``placement.decide`` asks ``host_saving_us`` for each such
node; the rates it reads are measured once per device with the rest of the calibration
(``measure_rates``, called by ``placement.measure``) and cached with it, so the decision is a
function of the cache file, the node and its sizes.

The model, per side, in microseconds:

* a float product: host ``blas_us + flops / blas_gflops`` (numpy's BLAS on the shared memory);
  device ``gemm_us + flops / gemm_gflops`` (the tiled matmul kernel; its epilogue is fused
  into its store). The host runs an epilogue's program as numpy calls (the elementwise model).
* a convolution: host ``conv_host_us + flops / conv_host_gflops`` (``conv_numpy``, as the numpy
  backend runs it); device ``conv_device_us + flops / conv_device_gflops`` (``ConvKernel``:
  im2col or col2im gathers around its products, as the OpenCL backend runs it). flops count
  the multiply-adds that meet an input element (a transposed convolution's zero-inserted
  positions are skipped by both sides). A convolution's epilogue is one more elementwise kernel
  on the device and numpy calls on the host.
* a pooling (and the max-pool gradients): the elementwise model of ``placement.Calibration``,
  numpy making a few calls per window tap over the pooled elements (``POOL_CALLS_PER_TAP``),
  the kernel one launch looping over the taps.

Measured on the 2-core pocl machine (float32, loaded, one BLAS thread): the tiled kernel
1.1-1.4 GFLOP/s against BLAS 23-108 at W7's (32x128x128, 3200x128x128) and W8's (32768x576x64)
products; W8's convolution 3.1 GFLOP/s as kernels (mostly the im2col gather) against 24.5 on
the host. So on that device every product and convolution runs on the host, at every size: W8
on OpenCL went from 5.3x the numpy backend to 0.94x (same run, medians).

Not modelled: BLAS's and pocl's worker threads spin for milliseconds after their work (about
25 ms of CPU in the 200 ms after a pocl kernel, 50 ms after a two-thread BLAS call), so on a
2-core machine a BLAS call right after a kernel can take 100x longer than alone (measured:
0.25 ms alone, 48 ms right after a 5 ms kernel; with OPENBLAS_NUM_THREADS=1, 0.3 ms either
way). The calibration times each side in a block of its own for that reason.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

import numpy as np

from symgraph.backends.opencl.kernels_conv import ConvKernel
from symgraph.backends.opencl.kernels_elemwise import content_named
from symgraph.backends.opencl.kernels_matmul import ITEMS, TILE, matmul_source
from symgraph.backends.opencl.lowering import LowerContext
from symgraph.backends.opencl.runtime import TRANSFERS, Runtime, _cl
from symgraph.compile.placement import HostPlaced
from symgraph.graph.basic import Apply, Variable
from symgraph.tensor.convolution import Conv
from symgraph.tensor.fused import Epilogue
from symgraph.tensor.math import Dot, MatMul, TensorDot
from symgraph.tensor.pooling import MaxPoolGrad, MaxPoolGradGrad, Pool
from symgraph.tensor.type import TensorType

RATE_FIELDS = ("blas_us", "blas_gflops", "gemm_us", "gemm_gflops",
               "conv_host_us", "conv_host_gflops", "conv_device_us", "conv_device_gflops")
"""The calibration's fields this model reads besides the elementwise ones (see measure_rates)."""

POOL_CALLS_PER_TAP = {Pool: 1, MaxPoolGrad: 8, MaxPoolGradGrad: 6}
"""numpy calls per window tap of pool_numpy's loops (max_pool_grad: first_max_taps' compare,
or, nan checks and two copyto, then a where and an add)."""


class Rates(Protocol):
    """What the model reads of a calibration (``placement.Calibration``)."""
    launch_us: float
    device_ns: float
    call_us: float
    host_ns: float
    blas_us: float
    blas_gflops: float
    gemm_us: float
    gemm_gflops: float
    conv_host_us: float
    conv_host_gflops: float
    conv_device_us: float
    conv_device_gflops: float


def _line(fixed_us: float, gflops: float, flops: float) -> float:
    """Microseconds of ``flops`` at ``gflops`` after a fixed cost."""
    return fixed_us + flops / max(gflops, 1e-9) * 1e-3


def _core(node: Apply) -> tuple[Any, Epilogue | None]:
    """The op a (host-placed) node computes, and the epilogue around it if any."""
    op = node.op.op if isinstance(node.op, HostPlaced) else node.op
    return (op.core, op) if isinstance(op, Epilogue) else (op, None)


def kind(node: Apply) -> str | None:
    """'product' (a float dot, matmul or tensordot), 'conv', 'pool', or None (not a heavy node)."""
    core, _ = _core(node)
    if isinstance(core, (Dot, MatMul, TensorDot)):
        floats = all(isinstance(v.type, TensorType) and np.dtype(v.type.dtype).kind == "f" for v in node.inputs[:2])
        return "product" if floats else None
    if isinstance(core, Conv):
        return "conv"
    if isinstance(core, (Pool, MaxPoolGrad, MaxPoolGradGrad)):
        return "pool"
    return None


def flops(node: Apply, shapes: dict[Variable, tuple]) -> float | None:
    """Multiply-adds x 2 of a product or convolution node (None: a size it needs is unknown)."""
    core, _ = _core(node)
    a, b, out = (shapes.get(v) for v in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if a is None or b is None or out is None:
        return None
    if isinstance(core, TensorDot):
        inner = math.prod(a[ax] for ax in core.axes_a)
    elif isinstance(core, Conv):  # each output sums (C / groups) x window taps, those meeting an input
        inner = math.prod(b[1:]) / math.prod(core.lhs_dilation)
    else:  # dot / matmul: a's last axis (its only one when 1-d)
        inner = a[-1] if a else 1
    return 2.0 * math.prod(out) * inner


def _pool_work(node: Apply, shapes: dict[Variable, tuple]) -> tuple[int, int] | None:
    """(pooled elements, numpy calls over them) of a pooling node."""
    core, _ = _core(node)
    pooled = shapes.get(node.inputs[1] if isinstance(core, MaxPoolGrad) else node.outputs[0])
    if pooled is None:
        return None
    return math.prod(pooled), POOL_CALLS_PER_TAP[type(core)] * math.prod(core.window)


def costs(node: Apply, shapes: dict[Variable, tuple], cal: Rates) -> tuple[float, float] | None:
    """(host, device) microseconds of a heavy node at the sizes ``shapes`` gives; None when it is
    not a heavy node or a size it needs is unknown."""
    what = kind(node)
    if what is None:
        return None
    core, epilogue = _core(node)
    out = shapes.get(node.outputs[0])
    if out is None:
        return None
    n = math.prod(out)
    if what == "pool":
        work = _pool_work(node, shapes)
        if work is None:
            return None
        elements, calls = work
        steps = math.prod(core.window)
        return (calls * (cal.call_us + elements * cal.host_ns * 1e-3),
                cal.launch_us + steps * elements * cal.device_ns * 1e-3)
    f = flops(node, shapes)
    if f is None:
        return None
    _check_rates(cal)
    if what == "product":
        host, device = _line(cal.blas_us, cal.blas_gflops, f), _line(cal.gemm_us, cal.gemm_gflops, f)
    else:
        host, device = _line(cal.conv_host_us, cal.conv_host_gflops, f), _line(cal.conv_device_us,
                                                                                cal.conv_device_gflops, f)
    if epilogue is not None:
        steps = len(epilogue.program.steps)
        host += steps * (cal.call_us + n * cal.host_ns * 1e-3)
        if what == "conv":  # one more kernel; a product's epilogue runs in its store
            device += cal.launch_us + steps * n * cal.device_ns * 1e-3
    return host, device


def _check_rates(cal: Rates) -> None:
    """Refuse a calibration whose rates were not measured (nan): every comparison with them would
    be False, silently placing products and convolutions on the device."""
    if math.isnan(cal.blas_gflops) or math.isnan(cal.conv_host_gflops):
        raise RuntimeError("placing a product or convolution needs the calibration's rates: "
                           "placement.calibration(rt, rates=True) measures them")


def host_saving_us(node: Apply, shapes: dict[Variable, tuple], cal: Rates) -> float | None:
    """Microseconds a call saves by running heavy ``node`` on the host (negative: the device is
    cheaper); None when it is not heavy or its size is unknown."""
    both = costs(node, shapes, cal)
    return None if both is None else both[1] - both[0]


def rate_side(node: Apply, cal: Rates) -> str | None:
    """For a product or convolution of unknown size: the side with the faster rate ('host' or
    'device'), which is the cheaper one for large work, the reason such nodes exist; None for
    other nodes (a pooling of unknown size waits for its size, as elementwise nodes do)."""
    what = kind(node)
    if what in ("product", "conv"):
        _check_rates(cal)
    if what == "product":
        return "host" if cal.blas_gflops >= cal.gemm_gflops else "device"
    if what == "conv":
        return "host" if cal.conv_host_gflops >= cal.conv_device_gflops else "device"
    return None


def on_host(node: Apply, shapes: dict[Variable, tuple], cal: Rates) -> bool | None:
    """The decision for a heavy node: True (host) or False (device) by ``costs`` at the sizes
    ``shapes`` gives, by ``rate_side`` when they are unknown; None when it is not a heavy node
    or a pooling of unknown size."""
    saving = host_saving_us(node, shapes, cal)
    if saving is not None:
        return saving > 0
    side = rate_side(node, cal)
    return None if side is None else side == "host"


def describe(node: Apply, shapes: dict[Variable, tuple], cal: Rates) -> str | None:
    """Why heavy ``node`` runs on the host (None when it is not heavy)."""
    both = costs(node, shapes, cal)
    if both is not None:
        return f"a {kind(node)}: {both[0]:.0f} us on the host against {both[1]:.0f} us as kernels (calibrated)"
    if rate_side(node, cal) == "host":
        return f"a {kind(node)} of a size placement cannot see: the host's calibrated rate is higher"
    return None


# --- measuring the rates ------------------------------------------------------------------------

_GEMMS = ((16, 16, 16), (256, 128, 256))  # (M, K, N): launch-bound, then rate-bound
_CONVS = ((1, 4, 6), (4, 32, 16))  # (N, C = O, H = W), 3x3 kernels, padding 1
ROUNDS, PASSES, MAX_PASSES = 9, 2, 4


def measure_rates(rt: Runtime, rounds: int = ROUNDS, passes: int = PASSES) -> dict[str, float]:
    """The RATE_FIELDS of ``rt``'s device: each side's fixed cost and GFLOP/s, fitted to two sizes.
    Every host run is timed first, then every device run (BLAS and pocl worker threads spin for
    milliseconds after their work, and a call of the other side meanwhile shares the cores with
    them); each is run at least ``rounds`` times and for SETTLE_S seconds, and the fastest run is
    kept: on a loaded machine BLAS threads now and then take 100x longer, and the decision
    compares the sides' speeds, not the load of the moment. The whole measurement is made
    ``passes`` times, each run's best time kept, and up to MAX_PASSES times while the host's
    BLAS or convolution looks slower than the kernels (on a CPU, the sign of two BLAS threads
    stalled by other processes, which lasts for seconds on a loaded machine; the last figures
    stand). About two seconds on the 2-core pocl machine. Leaves the transfer counters as found."""
    saved = dict(TRANSFERS)
    try:
        groups = (("blas", "gemm", _gemm_runs(rt)), ("conv_host", "conv_device", _conv_runs(rt)))
        host_times = [[float("inf")] * len(runs) for _, _, runs in groups]
        device_times = [[float("inf")] * len(runs) for _, _, runs in groups]
        for done in range(1, MAX_PASSES + 1):
            for (_, _, runs), row in zip(groups, host_times):
                row[:] = [min(t, best_seconds(run[1], rounds)) for t, run in zip(row, runs)]
            for (_, _, runs), row in zip(groups, device_times):
                row[:] = [min(t, best_seconds(run[2], rounds)) for t, run in zip(row, runs)]
            rates = _fit(groups, host_times, device_times)
            stalled = rates["blas_gflops"] < rates["gemm_gflops"] or rates["conv_host_gflops"] < rates[
                "conv_device_gflops"]
            if done >= passes and not stalled:
                break
        return rates
    finally:
        TRANSFERS.clear()
        TRANSFERS.update(saved)


def _fit(groups: tuple, host_times: list, device_times: list) -> dict[str, float]:
    """Each side's fixed cost (us) and rate (GFLOP/s) through its two (flops, seconds) points."""
    rates: dict[str, float] = {}
    for (host, device, runs), hosts, devices in zip(groups, host_times, device_times):
        (f0, f1) = (run[0] for run in runs)
        for prefix, (t0, t1) in ((host, hosts), (device, devices)):
            gflops = max((f1 - f0) / max(t1 - t0, 1e-9) * 1e-9, 1e-3)
            rates[f"{prefix}_us"] = max(0.0, (t0 - f0 / (gflops * 1e9)) * 1e6)
            rates[f"{prefix}_gflops"] = gflops
    return rates


SETTLE_S = 0.05


def best_seconds(fn: Callable[[], Any], rounds: int = ROUNDS) -> float:
    """Seconds of the fastest run of ``fn`` after a warm-up run (builds kernels, warms caches),
    over at least ``rounds`` runs and SETTLE_S seconds (at most 50 x ``rounds`` runs)."""
    fn()
    best, start, n = float("inf"), time.perf_counter(), 0
    while n < rounds or (time.perf_counter() - start < SETTLE_S and n < 50 * rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        n += 1
    return best


Run = tuple[float, Callable[[], Any], Callable[[], Any]]
"""(flops, host run, device run) at one size."""


def _gemm_runs(rt: Runtime) -> list[Run]:
    """A float32 product at each size of _GEMMS: numpy's BLAS, and the tiled kernel (waited for)."""
    cl, runs = _cl(), cast(list[Run], [])
    name, source = content_named("matmul_float32_float32", lambda n: matmul_source(n, "float32", "float32", "float32"))
    kernel = rt.kernel(source, name)  # MatmulKernel's own source: built once for both
    flags, i64 = cl.mem_flags, np.int64
    for m, k, n in _GEMMS:
        a = np.linspace(-1, 1, m * k, dtype=np.float32).reshape(m, k)
        b = np.linspace(-1, 1, k * n, dtype=np.float32).reshape(k, n)
        c = np.empty((m, n), np.float32)
        bufs = [cl.Buffer(rt.context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=x) for x in (a, b)]
        out = cl.Buffer(rt.context, flags.WRITE_ONLY, c.nbytes)

        def host(a: np.ndarray = a, b: np.ndarray = b, c: np.ndarray = c) -> None:
            np.matmul(a, b, out=c)

        def device(m: int = m, k: int = k, n: int = n, bufs: list = bufs, out: Any = out) -> None:
            kernel(rt.queue, (-(-n // TILE) * ITEMS, -(-m // TILE) * ITEMS, 1), (ITEMS, ITEMS, 1),
                   bufs[0], i64(0), i64(0), i64(k), i64(1), bufs[1], i64(0), i64(0), i64(n), i64(1),
                   out, i64(0), i64(m), i64(n), i64(k))
            rt.queue.finish()
        runs.append((2.0 * m * k * n, host, device))
    return runs


def _conv_runs(rt: Runtime) -> list[Run]:
    """A 3x3 'same' float32 convolution at each size of _CONVS: Conv.perform (conv_numpy, as the
    numpy backend runs it), and the OpenCL lowering (ConvKernel, waited for)."""
    op, runs = Conv((1, 1), padding=1), cast(list[Run], [])
    for n, c, h in _CONVS:
        x = np.linspace(-1, 1, n * c * h * h, dtype=np.float32).reshape(n, c, h, h)
        w = np.linspace(-1, 1, c * c * 9, dtype=np.float32).reshape(c, c, 3, 3)
        node = op.make_node(*(TensorType("float32", v.shape).make_variable() for v in (x, w)))
        conv, args = ConvKernel(node, LowerContext(rt)), [rt.to_device(x), rt.to_device(w)]

        def host(node: Apply = node, x: np.ndarray = x, w: np.ndarray = w) -> None:
            op.perform(node, [x, w])

        def device(conv: ConvKernel = conv, args: list = args) -> None:
            conv(args)
            rt.queue.finish()
        runs.append((2.0 * n * c * c * h * h * 9, host, device))
    return runs
