"""Size-aware placement on devices that share the host's memory (pocl on the CPU, integrated GPUs).

There, a value lives in host memory whether a kernel or numpy computes it, so a node can run on
the host at no transfer cost; what differs is the fixed cost of a kernel launch (tens of
microseconds on pocl) against numpy's per-element speed. Each node goes where it is cheaper, by
a cost model whose four constants are measured once per device (``calibration``) and cached in
a JSON file (``cache_path``): the placement of a graph is a function of that file, the node
sizes and the node kinds, nothing else. On a device with its own memory (a discrete GPU)
every node stays on the device: moving data over the bus is what costs there.

``sg.config.placement`` (``SYMGRAPH_PLACEMENT``; ``sg.function(..., placement=...)`` for one
function) forces it: 'device' runs every node the device can run as a kernel (the test suite's
default, so that it tests the kernels), 'host' runs every node on the host (zero-copy devices
only), 'auto' (the default) decides by size.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import numpy as np

from symgraph.backends.opencl import heavy_cost as hc
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.devices import cache_dir, read_json, write_json
from symgraph.backends.opencl.loop_plan import unsupported
from symgraph.backends.opencl.runtime import Runtime, _cl
from symgraph.compile.placement import HostFallback, HostPlaced, concrete_shapes
from symgraph.config import config
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.inner import InnerGraphOp
from symgraph.ifelse import IfElse
from symgraph.scan.op import Scan
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import Elemwise
from symgraph.tensor.fused import Epilogue, ReduceOf
from symgraph.tensor.gradient_ops import BroadcastCheck
from symgraph.tensor.math import Dot, MatMul
from symgraph.tensor.reduction import CAReduce, ReducedSize
from symgraph.tensor.shape import MakeVector, Shape, Shape_i

MODES = ("auto", "host", "device")
CALIBRATION_VERSION = 3
"""Bumped when the measurement changes: older cache entries are measured again."""


@dataclass(frozen=True)
class Calibration:
    """One device's cost model, in microseconds: a kernel launch costs ``launch_us`` plus
    ``device_ns`` per element and program step; a numpy call costs ``call_us`` plus ``host_ns``
    per element (numpy runs each step of a fused program as its own call). Products and
    convolutions cost a fixed time plus their flops at a rate, on each side (``heavy_cost``):
    numpy's BLAS (``blas_*``) against the matmul kernel (``gemm_*``), ``conv_numpy``
    (``conv_host_*``) against the OpenCL convolution (``conv_device_*``)."""
    device: str
    launch_us: float
    device_ns: float
    call_us: float
    host_ns: float
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

    def host_is_cheaper(self, elements: int, steps: int) -> bool:
        """True when ``steps`` numpy calls over ``elements`` values cost less than one kernel launch
        running the same program."""
        return self.saving_us(elements, steps) > 0

    def saving_us(self, elements: int, steps: int) -> float:
        """Microseconds a call saves by running this node on the host rather than as a kernel."""
        host = steps * (self.call_us + elements * self.host_ns * 1e-3)
        device = self.launch_us + steps * elements * self.device_ns * 1e-3
        return device - host

    def crossover(self, steps: int = 1) -> float:
        """The element count below which a program of ``steps`` steps runs on the host."""
        gain = steps * (self.host_ns - self.device_ns) * 1e-3
        room = self.launch_us - steps * self.call_us
        return float("inf") if gain <= 0 else max(0.0, room / gain)


def cache_path() -> str:
    """The calibration file: ``placement.json`` in ``devices.cache_dir()`` (``$SYMGRAPH_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/symgraph``, else ``~/.cache/symgraph``)."""
    return os.path.join(cache_dir(), "placement.json")


def device_key(rt: Runtime) -> str:
    """What identifies a device's speed: its platform, name and driver version."""
    return f"{rt.info.platform} | {rt.info.name} | {rt.info.driver} | {rt.info.compute_units} units"


_MEMO: dict[str, Calibration] = {}


def calibration(rt: Runtime, rates: bool = False) -> Calibration:
    """The device's cost model: read from the cache file, else measured (about 0.3 s) and written
    there; kept for the process once read. The products' and convolutions' rates (about 2 s more,
    kernels to build) are measured only when ``rates`` asks for them (``needs_rates``: a graph
    that has such a node), once, and added to the cached entry."""
    key = device_key(rt)
    cal = _MEMO.get(key) or _cached(key)
    fresh = cal is None
    if cal is None:
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


def needs_rates(fgraph: FunctionGraph) -> bool:
    """True when ``fgraph`` or an inner graph of its branches and loops has a product or a
    convolution: its placement reads the calibration's rates."""
    for node in fgraph.toposort():
        if hc.kind(node) in ("product", "conv"):
            return True
        if _control(node) and any(needs_rates(g.fgraph())
                                  for g in cast(InnerGraphOp, node.op).inner_graphs.values()):
            return True
    return False


def forget() -> None:
    """Drop the calibrations this process has read (tests point the cache elsewhere)."""
    _MEMO.clear()


_PROGRAM = """__kernel __attribute__((reqd_work_group_size(256, 1, 1)))
void sg_calibrate(__global const float *restrict x, __global float *restrict out, const long n)
{
    const long i = get_global_id(0);  /* 16 elements per work-item, as the elementwise kernels */
    if ((i + 1) * 16 <= n) { const float16 t = tanh(vload16(i, x)); vstore16(t * 1.5f + 0.5f, i, out); }
}
"""
_STEPS = 3  # tanh, mul, add
# 2^20 - 4096 elements: 65,280 work-items, under pocl's 65,536-item limit for its small-grid kernel
# variant, so both sizes run one compiled kernel (2^20 compiled it a second time: ~0.15 s cold)
_SMALL, _LARGE = 16, (1 << 20) - 4096


def measure(rt: Runtime, key: str) -> Calibration:
    """Time the 3-step program tanh(x) * 1.5 + 0.5 as one kernel (float16 vectors, as the
    elementwise kernels) and as numpy calls, at 16 and at about 2^20 elements (medians of several runs;
    kernels launched back to back, as a schedule does). The products' and convolutions' rates
    are measured apart, when a graph needs them (``calibration``)."""
    kernel = rt.kernel(_PROGRAM, "sg_calibrate")
    times = {n: _time_both(rt, kernel, n) for n in (_SMALL, _LARGE)}
    (d_small, h_small), (d_large, h_large) = times[_SMALL], times[_LARGE]
    per = 1e9 / (_LARGE - _SMALL)
    return Calibration(device=key, launch_us=d_small * 1e6,
                       device_ns=max(0.0, (d_large - d_small) * per / _STEPS),
                       call_us=h_small * 1e6 / _STEPS, host_ns=max(0.0, (h_large - h_small) * per / _STEPS))


def _time_both(rt: Runtime, kernel: Any, n: int) -> tuple[float, float]:
    """Seconds per run of the calibration program on ``n`` elements: as one kernel, as numpy calls."""
    cl = _cl()
    x = np.linspace(-2, 2, n, dtype=np.float32)
    buf = cl.Buffer(rt.context, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=x)
    out = cl.Buffer(rt.context, cl.mem_flags.WRITE_ONLY, x.nbytes)
    size = (-(-n // (256 * 16)) * 256,)
    burst = 20 if n == _SMALL else 3

    def device() -> None:
        for _ in range(burst):
            kernel(rt.queue, size, (256,), buf, out, np.int64(n))
        rt.queue.finish()

    def host() -> None:
        for _ in range(burst):
            t = np.tanh(x)
            np.multiply(t, np.float32(1.5), out=t)
            np.add(t, np.float32(0.5), out=t)
    device()  # builds for this size, warms caches
    return _median_time(device) / burst, _median_time(host) / burst


def _median_time(fn: Any, rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def mode_for(rt: Runtime, requested: str | None) -> str:
    """The placement mode a function compiles under: ``requested`` (the function's option), else
    ``sg.config.placement``; 'auto' and 'host' need a device sharing host memory, else 'device'."""
    mode = requested or config.placement
    if mode not in MODES:
        raise ValueError(f"placement must be one of {list(MODES)}, got {mode!r}")
    return mode if rt.zero_copy else "device"


# --- what a node costs --------------------------------------------------------------------------

def work(node: Apply, shapes: dict[Variable, tuple]) -> tuple[int, int] | None:
    """(elements, program steps) a node processes, from the concrete shapes known; None when a
    shape it needs is unknown. Elementwise programs count their steps; reductions the elements
    they read; anything else the larger of what it reads and writes, as one step."""
    op = node.op.op if isinstance(node.op, HostPlaced) else node.op

    def sizes(vs: list[Variable]) -> list[int] | None:
        found = [shapes[v] for v in vs if v in shapes]
        return None if len(found) < len(vs) else [int(np.prod(s, dtype=np.int64)) for s in found]
    outs = sizes(list(node.outputs))
    ins = sizes([v for v in node.inputs if getattr(v.type, "ndim", None) is not None])
    if isinstance(op, Composite):
        return None if outs is None else (max(outs, default=0), len(op.steps))
    if isinstance(op, Elemwise):
        return None if outs is None else (max(outs, default=0), 1)
    if isinstance(op, (CAReduce, ReduceOf, Epilogue)):
        steps = 1 + (len(op.program.steps) if isinstance(op, (ReduceOf, Epilogue)) else 0)
        return None if ins is None else (max(ins, default=0), steps)
    if ins is None or outs is None:
        return None
    return max(ins + outs, default=0), 1


def is_float_product(node: Apply) -> bool:
    """A float matrix product (with or without its epilogue): numpy's BLAS on a CPU device."""
    op = node.op.op if isinstance(node.op, HostPlaced) else node.op
    core = op.core if isinstance(op, Epilogue) else op
    if not isinstance(core, (Dot, MatMul)):
        return False
    return all(np.dtype(getattr(v.type, "dtype", "O")).kind == "f" for v in node.inputs[:2])


def known_shapes(fgraph: FunctionGraph, input_shapes: dict[Variable, tuple]) -> dict[Variable, tuple]:
    """The shapes of ``fgraph``'s inputs known now: ``input_shapes`` (a call's arguments), else a
    fully static type; a shared variable's current value."""
    known: dict[Variable, tuple] = {}
    for v in fgraph.inputs:
        if v in input_shapes:
            known[v] = tuple(int(d) for d in input_shapes[v])
        elif getattr(v, "is_shared", False):
            c = cast(Any, v).container
            value = c.value if c.value is not None else c.device
            if value is not None:
                known[v] = tuple(int(d) for d in value.shape)
        elif None not in (static := getattr(v.type, "shape", (None,))):
            known[v] = tuple(static)
    return known


# --- the decision -----------------------------------------------------------------------------

_METADATA = (Shape, Shape_i, ReducedSize, MakeVector, BroadcastCheck)  # shapes only: wherever they are, at no cost


def _placeable(node: Apply) -> bool:
    """Nodes placement decides for: not control flow, not already on the host, not a shape read,
    and only values the device can hold (the rest become host fallbacks anyway)."""
    op = node.op
    if isinstance(op, (HostFallback, IfElse, Scan, *_METADATA)):
        return False
    return all(hasattr(v.type, "dtype") and ks.supported_dtype(v.type.dtype) for v in node.inputs + node.outputs)


def decide(fgraph: FunctionGraph, mode: str, cal: Calibration | None, shapes: dict[Variable, tuple]) -> set[Apply]:
    """The nodes of ``fgraph`` to run on the host under ``mode`` ('device': none; 'host': every
    placeable one; 'auto': the nodes the calibrated model finds cheaper there at the sizes
    ``shapes`` gives (``host_side``); a node of unknown size stays on the device, but for
    products and convolutions, which go where the calibrated rate is higher). Views (ops with a
    ``view_map``) cost nothing anywhere and follow their readers, so that no value crosses over
    just to be viewed."""
    if mode == "device":
        return set()
    order = fgraph.toposort()
    chosen = {n for n in order if isinstance(n.op, HostPlaced)}
    for node in order:
        if node in chosen or not _placeable(node) or node.op.view_map:
            continue
        if mode == "host" or host_side(node, shapes, cal) or (
                work(node, shapes) is None and hc.kind(node) is None and _scalar_of_host(node, chosen)):
            chosen.add(node)
    for node in reversed(order):
        if node in chosen or not node.op.view_map or not _placeable(node):
            continue
        readers = [c for o in node.outputs for c, _ in fgraph.clients.get(o, []) if c != "output"]
        source = node.inputs[0].owner
        if mode == "host" or (readers and all(r in chosen for r in readers)) or (not readers and source in chosen):
            chosen.add(node)
    return chosen


def host_side(node: Apply, shapes: dict[Variable, tuple], cal: Calibration | None) -> bool:
    """The per-node decision of 'auto' placement: True when ``node`` is cheaper on the host at the
    sizes ``shapes`` gives. Products, convolutions and poolings by ``heavy_cost`` (products and
    convolutions of unknown size by the calibrated rates), other nodes by the elementwise model
    (unknown size: the device); without a calibration, float products on the host."""
    if cal is None:
        return is_float_product(node)
    heavy = hc.on_host(node, shapes, cal)
    if heavy is not None:
        return heavy
    w = work(node, shapes)
    return w is not None and cal.host_is_cheaper(*w)


def saving_us(node: Apply, shapes: dict[Variable, tuple], cal: Calibration) -> float:
    """Microseconds a call saves by running ``node`` on the host (0 where its size is unknown)."""
    heavy = hc.host_saving_us(node, shapes, cal)
    if heavy is not None:
        return heavy
    w = work(node, shapes) if hc.kind(node) is None else None
    return cal.saving_us(*w) if w is not None else 0.0


def describe(node: Apply, shapes: dict[Variable, tuple], mode: str, cal: Calibration | None) -> str:
    """Why ``node`` runs on the host (the comment of its ``f.kernels`` entry)."""
    if mode == "host":
        return "placement forced to 'host'"
    if node.op.view_map:
        return "a view, read on the host"
    heavy = hc.describe(node, shapes, cal) if cal is not None else None
    if heavy is not None:
        return heavy
    if is_float_product(node):
        return "a float matrix product: numpy's BLAS on the shared memory"
    w = work(node, shapes)
    if w is None or cal is None:
        return "placed on the host"
    return (f"{w[0]} elements x {w[1]} step(s), below the calibrated crossover of "
            f"{cal.crossover(w[1]):.0f} elements (launch {cal.launch_us:.1f} us; cache {cache_path()})")


def _scalar_of_host(node: Apply, chosen: set[Apply]) -> bool:
    """A node of unknown size that reads only results computed on the host and returns 0-d values
    (a loss summed from a host product): whatever the size, a kernel would only add its launch."""
    ins = [v for v in node.inputs if v.owner is not None or not isinstance(v, Constant)]
    return (bool(ins) and all(v.owner in chosen for v in ins)
            and all(getattr(o.type, "ndim", None) == 0 for o in node.outputs))


def _control(node: Apply) -> bool:
    return isinstance(node.op, (IfElse, Scan))


def one_kernel_loop(node: Apply, shapes: dict[Variable, tuple], cal: Calibration | None) -> bool:
    """Under 'auto' placement: a loop that one kernel runs, every step on the device
    (backends/opencl/loop_kernel.py), so nothing in its body is placed: its body can run that way,
    and its step count, known here (a constant, or its sequences' lengths), makes one launch
    cheaper than that many steps of the body's numpy calls on the host (the calibrated costs)."""
    op = node.op
    if not isinstance(op, Scan) or cal is None or unsupported(op, fp64=True) is not None:
        return False
    n, seqs, _, _ = op.split_inputs(list(node.inputs))
    lengths = [shapes[v][0] for v in seqs if v in shapes and len(shapes[v])]
    if isinstance(n, Constant):
        lengths.append(int(np.asarray(n.data)))
    if not lengths:
        return False  # unknown until called: placed like any loop
    pays = min(lengths) * len(op.body.nodes) * cal.call_us >= cal.launch_us
    return pays and not _products_want_host(node, shapes, cal)


def _products_want_host(node: Apply, shapes: dict[Variable, tuple], cal: Calibration) -> bool:
    """True when a loop's body, at the sizes known, costs less per step as numpy calls on the
    host than as one kernel's work: its products and convolutions at BLAS's or numpy's rate
    (each call included) against the kernel's calibrated rate, its other nodes as numpy calls
    against the per-element device cost, launches left out (one launch runs every step). W7's
    body (32x128x128 products): about 70 us on the host, 730 as kernel work; W2's (200x1x60
    products among 40 small elementwise nodes): about 55 against 31."""
    body = cast(Scan, node.op).body.fgraph()
    known = inner_input_shapes(node, shapes).get("body", {})
    inner = concrete_shapes(body.toposort(), known)
    host = device = 0.0
    for n in body.toposort():
        both = hc.costs(n, inner, cal)
        flops = hc.flops(n, inner) if hc.kind(n) in ("product", "conv") else None
        if both is not None and flops is not None:
            rate = cal.gemm_gflops if hc.kind(n) == "product" else cal.conv_device_gflops
            host, device = host + both[0], device + flops / max(rate, 1e-9) * 1e-3
            continue
        w = None if n.op.view_map or isinstance(n.op, _METADATA) else work(n, inner)
        if w is not None:
            host += w[1] * (cal.call_us + w[0] * cal.host_ns * 1e-3)
            device += w[1] * w[0] * cal.device_ns * 1e-3
    return host < device


def inner_input_shapes(node: Apply, shapes: dict[Variable, tuple]) -> dict[str, dict[Variable, tuple]]:
    """For an IfElse or Scan ``node``: the shapes of each inner graph's inputs that the outer
    ``shapes`` fix (a branch reads the node's values; a loop body a sequence's row, the carries'
    first values and the constants), by role."""
    op = node.op
    if isinstance(op, IfElse):
        outer = [shapes.get(v) for v in node.inputs[1:]]
    elif isinstance(op, Scan):
        _, seqs, inits, consts = op.split_inputs(list(node.inputs))
        outer = [shapes[v][1:] if v in shapes else None for v in seqs] + [shapes.get(v) for v in inits + consts]
    else:
        return {}
    return {role: {v: s for v, s in zip(g.inputs, outer) if s is not None} for role, g in op.inner_graphs.items()}


def walk(fgraph: FunctionGraph, mode: str, cal: Calibration | None, known: dict[Variable, tuple],
         path: tuple = ()) -> Iterator[tuple[tuple, Apply, dict[Variable, tuple], set[Apply]]]:
    """(path, node, shapes, chosen) for every node of ``fgraph`` and, recursively, of the inner
    graphs of its branches and loops (fresh copies, their inputs' shapes mapped from the outer
    ones): ``path`` is the node's position (its topological index, after the control node's
    index and the inner graph's role), ``chosen`` the nodes of its graph placed on the host."""
    order = fgraph.toposort()
    shapes = concrete_shapes(order, known)
    chosen = decide(fgraph, mode, cal, shapes)
    for k, node in enumerate(order):
        yield path + (k,), node, shapes, chosen
        if _control(node) and not (mode == "auto" and one_kernel_loop(node, shapes, cal)):
            for role, inner_known in inner_input_shapes(node, shapes).items():
                inner = cast(InnerGraphOp, node.op).inner_graphs[role].fgraph()
                yield from walk(inner, mode, cal, inner_known, path + (k, role))


def _open(node: Apply, shapes: dict[Variable, tuple], chosen: set[Apply]) -> bool:
    """A node whose 'auto' placement waits on a size ``shapes`` does not fix."""
    return (_placeable(node) and not node.op.view_map and hc.kind(node) not in ("product", "conv")
            and node not in chosen and work(node, shapes) is None)


def undecided(fgraph: FunctionGraph, shapes: dict[Variable, tuple], cal: Calibration | None = None) -> bool:
    """True when 'auto' placement of some node of ``fgraph`` (or of its branches and loop bodies)
    waits on a size ``shapes`` does not fix (an argument's shape): then the placement is made per
    call, by the arguments' shapes."""
    return any(_open(node, sh, chosen) for _, node, sh, chosen in walk(fgraph, "auto", cal, shapes))


def host_positions(fgraph: FunctionGraph, cal: Calibration | None, known: dict[Variable, tuple]) -> dict[tuple, float]:
    """The nodes 'auto' placement runs on the host, by position (see ``walk``), each with the
    microseconds a call saves by it (0 where its size is unknown)."""
    found = {}
    for path, node, shapes, chosen in walk(fgraph, "auto", cal, known):
        if node in chosen:
            found[path] = saving_us(node, shapes, cal) if cal is not None else 0.0
    return found


def all_on_host(node: Apply, mode: str, cal: Calibration | None, shapes: dict[Variable, tuple]) -> bool:
    """True when every node of ``node``'s inner graphs (a branch, a loop body; recursively) runs
    on the host under ``mode`` at the sizes ``shapes`` fixes: then the branch or loop runs wholly
    on the host, its inputs and results there too (no transfer, no device scope). Views follow."""
    for role, known in inner_input_shapes(node, shapes).items():
        inner = cast(InnerGraphOp, node.op).inner_graphs[role].fgraph()
        for _, n, _, chosen in walk(inner, mode, cal, known):
            if not (n in chosen or n.op.view_map or not _placeable(n)):
                return False
    return mode != "device" and bool(inner_input_shapes(node, shapes))
