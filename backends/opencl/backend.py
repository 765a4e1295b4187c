"""The OpenCL backend: the call protocol (symgraph/compile/link.py) around one step per node --
a kernel launch, a view, a shape read, or a small host computation -- with values placed on the
device or the host and every move between them an explicit, counted line of ``f.source``.
Shared variables stay in device buffers across calls; updates are committed only after the whole
call succeeded. Nodes the device cannot run become visible ``HostFallback`` nodes; on a device
that shares host memory, nodes cheaper on the host become visible ``HostPlaced`` nodes, run as
the numpy backend's lowering in the same generated function (backends/opencl/placement.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np

from symgraph.backends.numpy import backend as _numpy_backend  # (also registers the numpy lowerings)
from symgraph.backends.numpy.lowering import expression, perform_call
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl import loop_kernel, loops
from symgraph.backends.opencl import placement as pl
from symgraph.backends.opencl.calibration import prepare as prepare_calibration
from symgraph.backends.opencl.kernels_copy import copy_into
from symgraph.backends.opencl.lowering import EXPAND, TABLE, LowerContext, Lowered, device_ok
from symgraph.backends.opencl.profiling import QueueTimer
from symgraph.backends.opencl.runtime import DeviceArray, Runtime, get_runtime
from symgraph.backends.opencl.size_placed import SizePlaced
from symgraph.compile.link import DEVICE, HOST, Backend, Emitter, LinkedFunction, link
from symgraph.compile.lowering import CodeContext
from symgraph.compile.placement import HostFallback, HostPlaced, concrete_shapes, place_on_host, wrap_in_fallback
from symgraph.compile.shared import SharedVariable
from symgraph.graph.basic import Apply, Constant, Op, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.inner import InnerGraph, InnerGraphOp
from symgraph.ifelse import IfElse
from symgraph.scan.op import Scan
from symgraph.tensor.type import TensorType

_HOST_KINDS = ("host", "placed", "meta")
"""Steps that run on the host and read no device buffer."""


def _on_device(v: Variable) -> bool:
    dtype = getattr(v.type, "dtype", None)
    return dtype is not None and ks.supported_dtype(dtype)


def _small_host_node(node: Apply, host: set) -> bool:
    """Bookkeeping on values already on the host (shapes, scalar arguments, the conditions of
    branches built from them): computed there, with no transfer and no launch."""
    ins = [v for v in node.inputs if not isinstance(v, Constant)]
    return (bool(ins) and all(v in host for v in ins)
            and all(isinstance(o.type, TensorType)
                    and (o.type.ndim == 0 or o.type.ndim == 1 and o.type.dtype[0] in "iub") for o in node.outputs))


def _starts_on_host(v: Variable) -> bool:
    """An input that stays on the host: one without a device dtype, or a scalar argument (a branch
    condition or a step count reads it there; a kernel that wants it gets it uploaded, as every
    argument was). Shared scalars keep their device copy, which no call has to upload."""
    if not _on_device(v) or getattr(v, "host_resident", False):
        return True
    return getattr(v.type, "ndim", None) == 0 and not isinstance(v, SharedVariable)


def _unwrapped(node: Apply) -> Apply:
    """A host-placed node's own op on its inputs and output types, for the numpy lowering: a fresh
    unattached node like ``HostPlaced.inner``, without running the op's ``make_node`` again (a
    fused node's rebuilds every part: most of a small training step's link time)."""
    op = cast(HostPlaced, node.op).op
    return Apply(op, list(node.inputs), [o.type.make_variable(o.name) for o in node.outputs], trace=node.trace)


def _fallback_source(node: Apply, reason: str) -> str:
    """The ``f.kernels`` entry of a host fallback (a C comment: no device code exists)."""
    ins = ", ".join(str(v.type) for v in node.inputs)
    outs = ", ".join(str(v.type) for v in node.outputs)
    return (f"/* HOST FALLBACK: {node.op_as(HostFallback).op} runs on the host with numpy ({reason}).\n"
            f"   inputs copied device->host: {ins}\n   outputs copied host->device: {outs} */\n")


OPTIONS: tuple[str, ...] = ("device", "placement")
"""The keywords of sg.function this backend takes: ``device`` (an index or name; default sg.config.device)."""


class OpenCLBackend(Backend):
    """Kernels on one OpenCL device (``f.kernels``), scheduled by one generated Python function."""

    name = "opencl"

    def __init__(self, runtime: Runtime, placement: str = "device", input_shapes: dict | None = None):
        self.rt = runtime
        self.kernels: dict[str, str] = {}
        self.fallbacks: list[str] = []
        self.placed: list[str] = []
        self.plan: dict[Apply, Lowered] = {}
        self.host: set[Variable] = set()
        self._device_constants: dict[int, DeviceArray] = {}
        self.mode = placement  # 'device', 'host' or 'auto' (see placement.mode_for)
        self.input_shapes = dict(input_shapes or {})  # the user inputs' shapes this variant is placed for
        self.cal = pl.calibration(runtime) if placement == "auto" else None
        self.shapes: dict[Variable, tuple] = {}
        self.to_host: set[Apply] = set()
        self.host_control: set[Apply] = set()  # branches and loops run wholly on the host (pl.all_on_host)
        self._inner_known: dict[Variable, tuple] = {}  # the shapes of the inner graph being planned
        self._inner_on_host = False
        self._host_outputs: set[Variable] = set()
        self._reasons: dict[Apply, str] = {}
        self.loops = 0  # the Scan nodes asked about one kernel so far (each gets f.kernels['loop<k>_...'])

    # --- planning: which node runs how, and where each value lives -------------------------------
    def prepare(self, fgraph: FunctionGraph, spec: Any) -> None:
        for v in fgraph.variables:
            if getattr(v.type, "dtype", None) == "float64":
                self.rt.check_dtype("float64", f"{v} ({v.type}{', computed by ' + str(v.owner.op) if v.owner else ''})")
        while self._plan(fgraph):  # a fused node that cannot run as one unit was expanded: plan again
            pass

    def _plan(self, fgraph: FunctionGraph) -> bool:
        self.kernels.clear()
        self.fallbacks.clear()
        self.placed.clear()
        self.plan, self.host = {}, {v for v in fgraph.inputs if _starts_on_host(v)}
        self._decide(fgraph)
        self.ctx = LowerContext(self.rt, self.kernels, self.host)
        return self._plan_nodes(fgraph)

    def _decide(self, fgraph: FunctionGraph) -> None:
        """Which nodes run on the host by placement, at the sizes known (the static shapes, the
        shared variables' values, and the user inputs' shapes this variant is placed for); the
        graph inputs those nodes read stay on the host side (device readers wrap them, zero-copy)."""
        self.to_host, self.host_control = set(), set()
        if self.mode == "device":
            return
        on_host = self._place(fgraph, pl.known_shapes(fgraph, self.input_shapes), False)
        self.host.update(v for node in on_host for v in node.inputs if v in fgraph.inputs)

    def _place(self, fgraph: FunctionGraph, known: dict[Variable, tuple], everything: bool,
               nest: bool = True) -> set[Apply]:
        """Place the nodes of ``fgraph`` (the outer graph, a branch, a loop body) by size, or every
        one on the host (``everything``: a branch or loop run wholly there), and note the branches
        and loops in it that run wholly on the host (``host_control``). With ``nest``, the inner
        graphs of its branches and loops are placed too (``_place_inner``). Returns the nodes run
        on the host, those branches and loops included."""
        order = fgraph.toposort()
        shapes = concrete_shapes(order, known)
        self.shapes.update(shapes)
        chosen = pl.decide(fgraph, "host" if everything else self.mode, self.cal, shapes)
        self.to_host |= chosen
        on_host = set(chosen)
        for node in order:
            if self.mode == "auto" and not everything and pl.one_kernel_loop(node, shapes, self.cal):
                continue  # its one kernel runs every step on the device (loop_kernel.py): no body node moves
            if isinstance(node.op, (IfElse, Scan)):
                whole = everything or pl.all_on_host(node, self.mode, self.cal, shapes)
                if nest:
                    node = self._place_inner(fgraph, node, shapes, whole)
                if whole:
                    self.host_control.add(node)
                    on_host.add(node)
        return on_host

    def _place_inner(self, fgraph: FunctionGraph, node: Apply, shapes: dict[Variable, tuple], whole: bool) -> Apply:
        """The branch or loop ``node`` with the nodes of its inner graphs that run on the host
        wrapped as ``OnHost{...}`` nodes there (``f.graph`` and debugprint's inner graphs show
        them), by the sizes its inputs have in ``shapes``: a new node in ``fgraph`` holding the
        placed graphs, or ``node`` itself when nothing moved."""
        op = cast(InnerGraphOp, node.op)
        known = pl.inner_input_shapes(node, shapes)
        graphs, changed = {}, False
        for role, graph in op.inner_graphs.items():
            inner = graph.fgraph()
            for n in self._place(inner, known.get(role, {}), whole):
                if not isinstance(n.op, (HostPlaced, IfElse, Scan)) and n in inner.apply_nodes:
                    place_on_host(inner, n, "opencl")
            changed = changed or [n.op for n in inner.toposort()] != [n.op for n in graph.nodes]
            graphs[role] = InnerGraph(inner.inputs, inner.outputs)
        if not changed:
            return node
        new = Apply(op.with_inner_graphs(graphs), list(node.inputs),
                    [o.type.make_variable(o.name) for o in node.outputs], trace=node.trace)
        for old, out in zip(node.outputs, new.outputs):
            fgraph.replace(old, out, reason="opencl placement: a branch's or loop body's small nodes on the host")
        return new

    def inner_fgraph(self, node: Apply, role: str, input_sides: list[str]) -> FunctionGraph:
        """The inner graph of a branch or loop, placed by the sizes its inputs have here."""
        self._inner_known = pl.inner_input_shapes(node, self.shapes).get(role, {}) if self.mode != "device" else {}
        self._inner_on_host = node in self.host_control
        return super().inner_fgraph(node, role, input_sides)

    def prepare_inner(self, fgraph: FunctionGraph, input_sides: list[str]) -> None:
        self.host.update(v for v, side in zip(fgraph.inputs, input_sides) if side == HOST)
        self.host.difference_update(v for v, side in zip(fgraph.inputs, input_sides) if side != HOST)  # planned again
        if self.mode != "device":
            self._place(fgraph, self._inner_known, self._inner_on_host, nest=False)  # placed in prepare()
        while self._plan_nodes(fgraph):
            pass

    def _plan_nodes(self, fgraph: FunctionGraph) -> bool:
        """Plan every node of ``fgraph`` (False), or expand one fused node that cannot run as one
        unit and say so (True: plan again)."""
        for node in fgraph.toposort():
            self.ctx.node = node
            if node in self.to_host and not isinstance(node.op, HostPlaced) and not _small_host_node(node, self.host):
                why = pl.describe(node, self.shapes, self.mode, self.cal)
                node = place_on_host(fgraph, node, "opencl")
                self._reasons[node] = why
                self.ctx.node = node
            lowered = self._lower(node)
            if lowered == EXPAND or (lowered is None and type(node.op).expand is not Op.expand
                                     and not isinstance(node.op, HostFallback)):
                expanded = node.op.expand(list(node.inputs))
                if expanded is not None:
                    for old, new in zip(node.outputs, expanded):
                        fgraph.replace(old, new, "opencl: run unfused")
                    return True
            if not isinstance(lowered, Lowered):  # None, or nothing to expand to: the host runs it
                reason = ("no device kernel for this op" if device_ok(node)
                          else "a dtype without a device representation")
                # a variant placed for a call's shapes (SizePlaced) was warned about at compile time
                node = wrap_in_fallback(fgraph, node, "opencl", reason, warn=not self.input_shapes)
                lowered = self._fallback(node, reason)
            self.plan[node] = lowered
            if (lowered.kind in ("host", "meta", "fallback", "placed") or lowered.host_outputs
                    or node in self.host_control):
                self.host.update(node.outputs)
            if node in self.host_control:  # numpy's results, as a host-placed node's
                self._host_outputs.update(node.outputs)
            self.host.update(o for o in node.outputs if not _on_device(o))
        return False

    def _lower(self, node: Apply) -> Lowered | str | None:
        if isinstance(node.op, (IfElse, Scan)):  # the emitter plans their inner graphs
            return Lowered(None, kind="control")
        if isinstance(node.op, HostPlaced):
            return self._placed(node)
        if _small_host_node(node, self.host):
            return Lowered(None, kind="host")
        if isinstance(node.op, HostFallback):
            return self._fallback(node, "no device kernel for this op")
        lower = TABLE.lookup(node.op) if device_ok(node) else None
        return lower(node, self.ctx) if lower is not None else None

    def _fallback(self, node: Apply, reason: str) -> Lowered:
        label = f"host{len(self.fallbacks) + 1}_{node.op_as(HostFallback).op}"
        name = "".join(c if c.isalnum() else "_" for c in label)[:48]
        self.kernels[name] = _fallback_source(node, reason)
        self.fallbacks.append(name)
        self.ctx.node_kernels[node] = [name]
        return Lowered(None, kind="fallback")

    def _placed(self, node: Apply) -> Lowered:
        """A node placement runs on the host: listed in ``f.kernels`` with the reason."""
        op = cast(HostPlaced, node.op).op
        name = "".join(c if c.isalnum() else "_" for c in f"onhost{len(self.placed) + 1}_{op}")[:48]
        why = self._reasons.get(node) or pl.describe(node, self.shapes, self.mode, self.cal)
        zero = "they share memory with the device: no copies" if self.rt.zero_copy else "copied between host and device"
        self.kernels[name] = (f"/* ON HOST: {op} runs on the host with numpy ({why}).\n"
                              f"   inputs and outputs: {zero} */\n")
        self.placed.append(name)
        self.ctx.node_kernels[node] = [name]
        self._host_outputs.update(node.outputs)
        return Lowered(None, kind="placed")

    def side(self, v: Variable) -> str:
        """Constants live on the host (uploaded once, at compile time, where a kernel reads them)."""
        return HOST if v in self.host or isinstance(v, Constant) or not _on_device(v) else DEVICE

    def wanted_sides(self, node: Apply) -> list[str | None]:
        lowered = self.plan[node]
        if lowered.kind in ("host", "fallback", "placed"):
            return [HOST] * len(node.inputs)
        if lowered.kind == "control":
            # the condition (step count) is read on the host; the inner graphs read values as they are
            return [HOST] + [None] * (len(node.inputs) - 1)
        if lowered.kind == "meta":
            return [None] * len(node.inputs)
        wanted: dict[Variable, str | None] = {}
        for k, v in enumerate(lowered.inputs if lowered.inputs is not None else node.inputs):
            wanted[v] = HOST if k in lowered.host_inputs or not _on_device(v) else None if k in lowered.any_side \
                else DEVICE
        return [wanted.get(v) for v in node.inputs]

    # --- code ---------------------------------------------------------------------------------
    def lower(self, node: Apply, ins: list[str], outs: list[str], em: Emitter) -> list[str]:
        lowered = self.plan[node]
        if lowered.kind == "placed":  # the numpy backend's lowering of the op itself
            expr = expression(_unwrapped(node), ins, em.ctx)
            if expr is None:
                return [f"{', '.join(outs)}, = {perform_call(node, ins, em.ctx)}"]
            return [f"{', '.join(outs)} = {expr}"]
        if lowered.kind in ("host", "fallback"):
            expr = expression(node, ins, em.ctx)
            if expr is None:
                return [f"{', '.join(outs)}, = {perform_call(node, ins, em.ctx)}"]
            return [f"{', '.join(outs)} = {expr}"]
        names = dict(zip(node.inputs, ins))
        args = [names[v] for v in (lowered.inputs if lowered.inputs is not None else node.inputs)]
        step = em.ctx.ref(lowered.run, lowered.label or f"{lowered.kind}_{node.op}")
        return [f"{', '.join(outs)}, = {step}([{', '.join(args)}])"]

    def constant(self, c: Constant, side: str, ctx: CodeContext) -> str:
        if side == HOST:
            return super().constant(c, side, ctx)
        if id(c) not in self._device_constants:
            self._device_constants[id(c)] = self.rt.to_device(np.asarray(c.data), str(c))
        return ctx.ref(self._device_constants[id(c)], f"d{len(ctx.globals)}")

    def convert(self, name: str, to: str, ctx: CodeContext) -> str:
        if to == HOST:
            return f"{name}.to_host()"
        return f"{ctx.ref(self._uploader('a host value'), 'to_device')}({name})"

    def _uploader(self, what: str) -> Callable:
        rt = self.rt

        def to_device(x: Any) -> DeviceArray:
            return rt.to_device(np.asarray(x), what)
        return to_device

    def read_input(self, name: str, v: Variable, ctx: CodeContext) -> list[str]:
        if self.side(v) == HOST:
            return []
        return [f"{name} = {ctx.ref(self._uploader(f'argument {name}'), f'to_device_{name}')}({name})"]

    def read_shared(self, name: str, v: Variable, cont: str, ctx: CodeContext) -> list[str]:
        if self.side(v) == HOST:
            return super().read_shared(name, v, cont, ctx)
        return [f"{name} = {ctx.ref(self._shared_reader(), 'on_device')}({cont})"]

    def _shared_reader(self) -> Callable:
        rt = self.rt

        def on_device(cont: Any) -> DeviceArray:
            """The shared value's device buffer, uploaded (and kept) when the device has no copy."""
            d = cont.device
            if isinstance(d, DeviceArray) and d.runtime is rt:
                return d
            d = cont.device = rt.to_device(cont.to_host(), f"shared variable {cont.name}")
            return d
        return on_device

    def copy(self, expr: str, side: str, ctx: CodeContext) -> str:
        return f"{ctx.ref(copy_of, 'copy_of')}({expr})" if side == DEVICE else f"np.array({expr})"

    def output(self, expr: str, v: Variable, side: str, copy: bool, ctx: CodeContext) -> str:
        if side == HOST and (v in self._host_outputs or getattr(v.type, "ndim", None) is None):
            # numpy's result, or no array at all (a typed list): copied only where the schedule says
            return Backend.output(self, expr, v, side, copy, ctx)
        if side == HOST:
            return f"np.array({expr})"
        return f"{expr}.to_host(copy=True)" if copy else f"{expr}.to_host()"

    def contexts(self, ctx: CodeContext) -> list[str]:
        """The device's call scope, unless every step runs on the host (no kernel, no upload)."""
        if self.plan and all(lowered.kind in _HOST_KINDS or node in self.host_control
                             for node, lowered in self.plan.items()):
            return []
        return [ctx.ref(self.rt.call_lock, "call_lock"), ctx.ref(self.rt.end_of_call, "end_of_call")]

    def before_commit(self, ctx: CodeContext) -> list[str]:
        return [f"{ctx.ref(self.ctx.checks.verify, 'verify_index_checks')}()"] if self.ctx.checks.nodes else []

    def on_error(self) -> Callable[[], None] | None:
        return self.ctx.checks.verify if self.ctx.checks.nodes else None

    def host_value(self, x: Any) -> np.ndarray:
        return x.to_host() if isinstance(x, DeviceArray) else np.asarray(x)

    def profile_timer(self) -> QueueTimer:
        return QueueTimer(self.rt)

    def kernel_names(self, node: Apply) -> list[str]:
        return list(self.ctx.node_kernels.get(node, ()))

    # loops: rows of device arrays are views, stores and growth are device copies (backends/opencl/loops.py)
    def loop_row(self, buf: str, t: str, side: str, ctx: CodeContext) -> str:
        return super().loop_row(buf, t, side, ctx) if side == HOST else f"{ctx.ref(loops.row, 'row')}({buf}, {t})"

    def loop_store(self, buf: str, t: str, value: str, side: str, ctx: CodeContext) -> str:
        if side == HOST:
            return super().loop_store(buf, t, value, side, ctx)
        return f"{ctx.ref(loops.store, 'store_row')}({buf}, {t}, {value})"

    def loop_rows(self, shape: str, dtype: str, side: str, ctx: CodeContext) -> str:
        if side == HOST:
            return super().loop_rows(shape, dtype, side, ctx)
        return f"{ctx.ref(self._loop_helpers()[0], 'device_rows')}({shape}, {dtype})"

    def loop_resize(self, buf: str, rows: str, side: str, ctx: CodeContext) -> str:
        if side == HOST:
            return super().loop_resize(buf, rows, side, ctx)
        return f"{ctx.ref(self._loop_helpers()[1], 'device_resize')}({buf}, {rows})"

    def loop_constant(self, name: str, side: str, ctx: CodeContext) -> str:
        # a strided view (W.T in a gradient's loop) read by every step: one copy before the loop, for
        # the kernels' contiguous paths on the device, for BLAS on the host (as the numpy backend)
        if side != DEVICE:
            return f"{ctx.ref(_numpy_backend.c_ordered, 'c_ordered')}({name})"
        return f"{ctx.ref(loops.contiguous, 'contiguous')}({name})"

    def loop_kernel(self, node: Apply, ins: list[str], em: Emitter) -> str | None:
        # every step in one kernel launch when the body allows (backends/opencl/loop_kernel.py)
        if em.nan_guard or em.prof is not None:  # those watch each body node
            return None
        runner = loop_kernel.for_node(self.rt, node, self.kernels, self.loops)
        self.loops += 1
        if runner is None:
            return None
        self.ctx.node_kernels.setdefault(node, []).append(runner.name)
        return f"{em.ctx.ref(runner, 'loop_kernel')}([{', '.join(ins)}])"

    def loop_stop_flags(self, ctx: CodeContext) -> str | None:
        # a while loop's condition is read every SPECULATE steps: reading it waits for the queue
        return f"{ctx.ref(self._loop_helpers()[2], 'stop_flags')}()"

    def _loop_helpers(self) -> tuple:
        if not hasattr(self, "_loop_fns"):
            self._loop_fns = (loops.make_rows(self.rt), loops.make_resize(self.rt),
                              loops.make_stop_flags(self.rt, loops.SPECULATE))
        return self._loop_fns


def copy_of(x: DeviceArray) -> DeviceArray:
    """A new contiguous device array with ``x``'s values (a device-side copy)."""
    out = x.runtime.empty(x.shape, x.dtype, "copy", kernel_output=True)  # only the copy kernel writes it
    copy_into(out, x)
    return out


class OpenCLFunction(LinkedFunction):
    """A compiled OpenCL function: ``kernels`` (name -> OpenCL C source), ``fallbacks`` (the names
    of the host fallbacks among them), ``runtime``, and ``source``, the Python schedule."""

    backend: OpenCLBackend  # link() is given this module's backend

    @property
    def kernels(self) -> dict[str, str]:
        return self.backend.kernels

    @property
    def fallbacks(self) -> list[str]:
        return self.backend.fallbacks

    @property
    def runtime(self) -> Runtime:
        return self.backend.rt


def prepare(options: dict) -> None:
    """Start, in the background, what a compile with ``options`` will need while ``sg.function``
    rewrites the graph: on a device not calibrated yet under 'auto' placement, the device's
    compiler (``calibration.prepare``). Errors are left to the compile, which reports them."""
    try:
        rt = get_runtime(options.get("device"))
        auto = pl.mode_for(rt, options.get("placement")) == "auto"
    except Exception:
        return
    if auto:
        prepare_calibration(rt)


def compile(fgraph: FunctionGraph, spec: Any) -> OpenCLFunction:
    """Lower ``fgraph`` to OpenCL kernels on the configured device (spec.options['device'] or
    sg.config.device) and return the callable."""
    rt = get_runtime(spec.options.get("device"))
    mode = pl.mode_for(rt, spec.options.get("placement"))

    def build(graph: FunctionGraph, input_shapes: dict[Variable, tuple]) -> OpenCLFunction:
        return link(graph, spec, OpenCLBackend(rt, mode, input_shapes), OpenCLFunction)
    if mode == "auto":  # measured once per device; the rates only for graphs with products or convolutions
        cal = pl.calibration(rt, rates=pl.needs_rates(fgraph))
        if pl.undecided(fgraph, pl.known_shapes(fgraph, {}), cal):
            return SizePlaced(fgraph, spec, rt, cal, build)  # placed per call, by sizes
    return build(fgraph, {})
