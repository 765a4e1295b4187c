"""The cost model of size-aware placement (``placement.py``): per device, the fixed and
per-element costs of a kernel launch and of numpy calls, measured once (``measure``, about 0.3 s)
and cached in a JSON file (``cache_path``), so that the placement of a graph is a function of that
file, the node sizes and the node kinds, nothing else."""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from symgraph.backends.opencl import heavy_cost as hc
from symgraph.backends.opencl.devices import cache_dir, read_json, write_json
from symgraph.backends.opencl.runtime import Runtime, _cl

CALIBRATION_VERSION = 4
"""Bumped when the measurement changes: older cache entries are measured again."""


@dataclass(frozen=True)
class Calibration:
    """One device's cost model, in microseconds: a kernel launch costs ``launch_us`` plus
    ``device_ns`` per element and program step; a numpy call costs ``call_us`` plus ``host_ns``
    per element (numpy runs each step of a fused program as its own call). A reduction step
    costs ``reduce_device_ns`` or ``reduce_host_ns`` per element read instead: on pocl a sum
    costs the kernel several times numpy's (one core adding in sequence for few outputs), where
    elementwise steps favour the kernel. Products and convolutions cost a fixed time plus their
    flops at a rate, on each side (``heavy_cost``): numpy's BLAS (``blas_*``) against the matmul
    kernel (``gemm_*``), ``conv_numpy`` (``conv_host_*``) against the OpenCL convolution
    (``conv_device_*``)."""
    device: str
    launch_us: float
    device_ns: float
    call_us: float
    host_ns: float
    reduce_device_ns: float = math.nan  # a sum, per element read (nan: as an elementwise step)
    reduce_host_ns: float = math.nan
    blas_us: float = math.nan  # nan: the rates are not measured yet (see ``calibration``)
    blas_gflops: float = math.nan
    gemm_us: float = math.nan
    gemm_gflops: float = math.nan
    conv_host_us: float = math.nan
    conv_host_gflops: float = math.nan
    conv_device_us: float = math.nan
    conv_device_gflops: float = math.nan
    version: int = CALIBRATION_VERSION

    @property
    def has_rates(self) -> bool:
        """True when the products' and convolutions' rates are measured."""
        return not any(math.isnan(getattr(self, f)) for f in hc.RATE_FIELDS)

    def host_is_cheaper(self, elements: int, steps: int, reduce: bool = False) -> bool:
        """True when ``steps`` numpy calls over ``elements`` values (the last a reduction when
        ``reduce``) cost less than one kernel launch running the same program."""
        return self.saving_us(elements, steps, reduce) > 0

    def saving_us(self, elements: int, steps: int, reduce: bool = False) -> float:
        """Microseconds a call saves by running this node on the host rather than as a kernel."""
        return self.device_us(elements, steps, reduce) - self.host_us(elements, steps, reduce)

    def host_us(self, elements: int, steps: int, reduce: bool = False) -> float:
        """The program's numpy calls: one per step."""
        per = (steps - reduce) * self.host_ns + reduce * _or(self.reduce_host_ns, self.host_ns)
        return steps * self.call_us + elements * per * 1e-3

    def device_us(self, elements: int, steps: int, reduce: bool = False) -> float:
        """The program as one kernel launch."""
        per = (steps - reduce) * self.device_ns + reduce * _or(self.reduce_device_ns, self.device_ns)
        return self.launch_us + elements * per * 1e-3

    def crossover(self, steps: int = 1, reduce: bool = False) -> float:
        """The element count below which a program of ``steps`` steps runs on the host."""
        gain = (self.host_us(1000, steps, reduce) - self.host_us(0, steps, reduce)) \
            - (self.device_us(1000, steps, reduce) - self.device_us(0, steps, reduce))
        room = self.device_us(0, steps, reduce) - self.host_us(0, steps, reduce)
        return float("inf") if gain <= 0 else max(0.0, room / gain * 1000)


def _or(value: float, fallback: float) -> float:
    return fallback if math.isnan(value) else value


def cache_path() -> str:
    """The calibration file: ``placement.json`` in ``devices.cache_dir()`` (``$SYMGRAPH_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/symgraph``, else ``~/.cache/symgraph``)."""
    return os.path.join(cache_dir(), "placement.json")


def device_key(rt: Runtime) -> str:
    """What identifies a device's speed: its platform, name and driver version."""
    return f"{rt.info.platform} | {rt.info.name} | {rt.info.driver} | {rt.info.compute_units} units"


_MEMO: dict[str, Calibration] = {}


_WARMING: dict[str, threading.Thread] = {}  # device key -> the background start of its compiler


def prepare(rt: Runtime) -> None:
    """On a device with no calibration yet (the compile will measure it, building kernels), start
    the device's compiler in a background thread (``Runtime.warm_compiler``: pocl's first build
    takes 0.6 s loading it) while ``sg.function`` rewrites the graph. A calibrated device is left
    alone, unopened: its calls may never need it."""
    key = device_key(rt)
    if key in _MEMO or key in _WARMING or _cached(key) is not None:
        return
    thread = threading.Thread(target=_warm_quietly, args=(rt,), name="symgraph compiler start", daemon=True)
    _WARMING[key] = thread
    thread.start()


def _warm_quietly(rt: Runtime) -> None:
    with contextlib.suppress(Exception):  # the compile opens the device again and reports what failed
        rt.warm_compiler()


def calibration(rt: Runtime, rates: bool = False) -> Calibration:
    """The device's cost model: read from the cache file, else measured (about 0.3 s) and written
    there; kept for the process once read. The products' and convolutions' rates (about 2 s more,
    kernels to build) are measured only when ``rates`` asks for them (``needs_rates``: a graph
    that has such a node), once, and added to the cached entry."""
    key = device_key(rt)
    cal = _MEMO.get(key) or _cached(key)
    fresh = cal is None
    if cal is None:
        warming = _WARMING.pop(key, None)
        if warming is not None:  # done before the timing starts (nothing else runs then)
            warming.join()
        cal = measure(rt, key)
    if rates and not cal.has_rates:
        cal, fresh = replace(cal, **hc.measure_rates(rt)), True
    if fresh:
        entries = read_json(cache_path())
        entries[key] = asdict(cal)
        write_json(cache_path(), entries)
    _MEMO[key] = cal
    return cal


def _cached(key: str) -> Calibration | None:
    """The cache file's calibration for ``key`` (None: none, or one of an older measurement)."""
    entry = read_json(cache_path()).get(key)
    if not isinstance(entry, dict) or entry.get("version") != CALIBRATION_VERSION:
        return None
    try:
        return Calibration(**entry)
    except TypeError:
        return None


def forget() -> None:
    """Drop the calibrations this process has read (tests point the cache elsewhere)."""
    _MEMO.clear()
    for warming in _WARMING.values():
        warming.join()
    _WARMING.clear()


_PROGRAM = """__kernel __attribute__((reqd_work_group_size(256, 1, 1)))
void sg_calibrate(__global const float *restrict x, __global float *restrict out, const long n)
{
    const long i = get_global_id(0);  /* 16 elements per work-item, as the elementwise kernels */
    if ((i + 1) * 16 <= n) { const float16 t = tanh(vload16(i, x)); vstore16(t * 1.5f + 0.5f, i, out); }
}
__kernel __attribute__((reqd_work_group_size(128, 1, 1)))
void sg_sum(__global const float *restrict x, __global float *restrict out, const long n)
{   /* as the reduction kernels' work-group of few long sums: each item a chunk (SG_CHUNKS, CPUs) or a
       stride, then a local tree */
    const long lid = get_local_id(0);
#ifdef SG_CHUNKS
    const long chunk = (n + 127) / 128, start = lid * chunk, end = min(n, start + chunk), step = 1;
#else
    const long start = lid, end = n, step = 128;
#endif
    float a = 0.0f;
    for (long j = start; j < end; j += step) a = a + x[j];
    __local float sa[128];
    sa[lid] = a;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = 64; s > 0; s >>= 1) { if (lid < s) sa[lid] = sa[lid] + sa[lid + s]; barrier(CLK_LOCAL_MEM_FENCE); }
    if (lid == 0) out[0] = sa[0];
}
"""
# 2^20 - 4096 elements: 65,280 work-items, under pocl's 65,536-item limit for its small-grid kernel
# variant, so both sizes run one compiled kernel (2^20 compiled it a second time: ~0.15 s cold)
_SMALL, _LARGE = 16, (1 << 20) - 4096
_STEPS = 3  # tanh, mul, add


def _program_numpy(x: np.ndarray, t: np.ndarray) -> None:
    np.tanh(x, out=t)
    np.multiply(t, np.float32(1.5), out=t)
    np.add(t, np.float32(0.5), out=t)


def measure(rt: Runtime, key: str) -> Calibration:
    """Time the 3-step program tanh(x) * 1.5 + 0.5 as one kernel (float16 vectors, as the
    elementwise kernels) and as numpy calls, at 16 and at about 2^20 elements, and a sum of the
    larger size as a work-group's reduction and as ``np.add.reduce`` (the fastest of several runs;
    kernels launched back to back, as a schedule does). The products' and convolutions' rates
    are measured apart, when a graph needs them (``calibration``)."""
    kernel, total = _kernels(rt)
    d_small, h_small = _time_both(rt, kernel, _program_numpy, _SMALL)
    d_large, h_large = _time_both(rt, kernel, _program_numpy, _LARGE)
    d_sum, h_sum = _time_both(rt, total, _sum_numpy, _LARGE, (128,))
    per = 1e9 / (_LARGE - _SMALL)
    call = h_small / _STEPS
    return Calibration(device=key, launch_us=d_small * 1e6,
                       device_ns=max(0.0, (d_large - d_small) * per / _STEPS),
                       call_us=call * 1e6, host_ns=max(0.0, (h_large - h_small) * per / _STEPS),
                       reduce_device_ns=max(0.0, (d_sum - d_small) * per),
                       reduce_host_ns=max(0.0, (h_sum - call) * per))


def _kernels(rt: Runtime) -> tuple[Any, Any]:
    """The measurement's elementwise and sum kernels (one program)."""
    program = ("#define SG_CHUNKS\n" if rt.is_cpu else "") + _PROGRAM
    return rt.kernel(program, "sg_calibrate"), rt.kernel(program, "sg_sum")


def _sum_numpy(x: np.ndarray, t: np.ndarray) -> None:
    np.add.reduce(x)


def _time_both(rt: Runtime, kernel: Any, numpy_fn: Callable, n: int, grid: tuple | None = None) -> tuple[float, float]:
    """Seconds per run of a calibration program on ``n`` elements: as one kernel (one item per 16
    elements, or ``grid`` items), as numpy calls."""
    cl = _cl()
    x = np.linspace(-2, 2, n, dtype=np.float32)
    buf = cl.Buffer(rt.context, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=x)
    out = cl.Buffer(rt.context, cl.mem_flags.WRITE_ONLY, x.nbytes)
    size = grid or (-(-n // (256 * 16)) * 256,)
    burst = 20 if n == _SMALL else 3
    t = np.empty_like(x)

    def device() -> None:
        for _ in range(burst):
            kernel(rt.queue, size, (min(size[0], 256),), buf, out, np.int64(n))
        rt.queue.finish()

    def host() -> None:
        for _ in range(burst):
            numpy_fn(x, t)
    device()  # builds for this size, warms caches
    return _best_time(device) / burst, _best_time(host) / burst


def _best_time(fn: Any, rounds: int = 7) -> float:
    """The fastest of ``rounds`` runs: on a shared machine a busy moment slows the two-thread
    kernel more than the one-thread numpy call, so a median tilted placement by the moment."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
