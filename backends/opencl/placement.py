"""Size-aware placement on devices that share the host's memory (pocl on the CPU, integrated GPUs).

There, a value lives in host memory whether a kernel or numpy computes it, so a node can run on
the host at no transfer cost; what differs is the fixed cost of a kernel launch (tens of
microseconds on pocl) against numpy's per-element speed. Each node goes where it is cheaper, by
a cost model whose constants are measured once per device (``calibration``) and cached in
a JSON file (``cache_path``): the placement of a graph is a function of that file, the node
sizes and the node kinds, nothing else (``calibration.py``). On a device with its own memory (a discrete GPU)
every node stays on the device: moving data over the bus is what costs there.

``sg.config.placement`` (``SYMGRAPH_PLACEMENT``; ``sg.function(..., placement=...)`` for one
function) forces it: 'device' runs every node the device can run as a kernel (the test suite's
default, so that it tests the kernels), 'host' runs every node on the host (zero-copy devices
only), 'auto' (the default) decides by size.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import numpy as np

from symgraph.backends.opencl import heavy_cost as hc
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.calibration import (  # noqa: F401  (the cost model's names, as placement's)
    CALIBRATION_VERSION,
    Calibration,
    cache_path,
    calibration,
    device_key,
    forget,
    measure,
)
from symgraph.backends.opencl.loop_plan import unsupported
from symgraph.backends.opencl.runtime import Runtime
from symgraph.compile.placement import HostFallback, HostPlaced, concrete_shapes, inner_input_shapes
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


def mode_for(rt: Runtime, requested: str | None) -> str:
    """The placement mode a function compiles under: ``requested`` (the function's option), else
    ``sg.config.placement``; 'auto' and 'host' need a device sharing host memory, else 'device'."""
    mode = requested or config.placement
    if mode not in MODES:
        raise ValueError(f"placement must be one of {list(MODES)}, got {mode!r}")
    return mode if rt.zero_copy else "device"


# --- what a node costs --------------------------------------------------------------------------

def work(node: Apply, shapes: dict[Variable, tuple]) -> tuple[int, int, bool] | None:
    """(elements, program steps, whether the last is a reduction) a node processes, from the
    concrete shapes known; None when a shape it needs is unknown. Elementwise programs count
    their steps; reductions the elements they read; anything else the larger of what it reads
    and writes, as one step."""
    op = node.op.op if isinstance(node.op, HostPlaced) else node.op

    def sizes(vs: list[Variable]) -> list[int] | None:
        found = [shapes[v] for v in vs if v in shapes]
        return None if len(found) < len(vs) else [int(np.prod(s, dtype=np.int64)) for s in found]
    outs = sizes(list(node.outputs))
    ins = sizes([v for v in node.inputs if getattr(v.type, "ndim", None) is not None])
    if isinstance(op, Composite):
        return None if outs is None else (max(outs, default=0), len(op.steps), False)
    if isinstance(op, Elemwise):
        return None if outs is None else (max(outs, default=0), 1, False)
    if isinstance(op, (CAReduce, ReduceOf, Epilogue)):
        steps = 1 + (len(op.program.steps) if isinstance(op, (ReduceOf, Epilogue)) else 0)
        reduces = not isinstance(op, Epilogue) or isinstance(op.core, (CAReduce, ReduceOf))
        return None if ins is None else (max(ins, default=0), steps, reduces)
    if ins is None or outs is None:
        return None
    return max(ins + outs, default=0), 1, False


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
    return (f"{w[0]} elements x {w[1]} step(s){' (a reduction)' if w[2] else ''}, below the "
            f"calibrated crossover of {cal.crossover(*w[1:]):.0f} elements (launch {cal.launch_us:.1f} us; "
            f"cache {cache_path()})")


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
    known = inner_input_shapes(node, shapes)["body"]
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
            host += cal.host_us(*w)
            device += cal.device_us(*w) - cal.launch_us
    return host < device


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
