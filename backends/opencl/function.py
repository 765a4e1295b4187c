"""Compile a FunctionGraph for an OpenCL device and run it: a schedule of steps (kernels, views,
small host shape computations, explicit host fallbacks) over value slots, with shared variables
kept in device buffers across calls and updates committed only after the whole call succeeded."""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from symgraph.compile.function import CompileSpec
from symgraph.errors import SymgraphError, node_context
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.rewrite.fusion import fused_into, reduced_producer
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_copy import copy_into
from symgraph.backends.opencl.kernels_elemwise import Shaped, broadcast_shapes, output_inputs, program_from_composite
from symgraph.backends.opencl.fallback import fallback_source, wrap_in_fallback
from symgraph.backends.opencl.kernels_matmul import lower_matmul_epilogue
from symgraph.backends.opencl.kernels_reduce import lower_reduce_epilogue
from symgraph.backends.opencl.lowering import LowerContext, Lowered, device_ok, lowering_for
from symgraph.backends.opencl.runtime import DeviceArray, Runtime, get_runtime


def _on_device(v: Variable) -> bool:
    return hasattr(v.type, "dtype") and ks.supported_dtype(v.type.dtype)


def _small_host_node(node: Apply, host: set) -> bool:
    """Integer bookkeeping on values already on the host (shapes): computed there, no transfer."""
    ins = [v for v in node.inputs if not isinstance(v, Constant)]
    return (bool(ins) and all(v in host for v in ins)
            and all(getattr(o.type, "ndim", 9) <= 1 and o.type.dtype[0] in "iub" for o in node.outputs))


def _producers_fused_into_reductions(fgraph: FunctionGraph) -> set:
    """Elementwise nodes (Composite or lone Elemwise) the fusion pass marked for computing inside
    their reduction's loop, where that still holds (see ``reduced_producer``), all on the device."""
    fused = set()
    for node in fgraph.apply_nodes:
        c = node.tag.get("fused_producer")
        if c is not None and reduced_producer(fgraph, node) is c and device_ok(c) and device_ok(node):
            fused.add(c)
    return fused


def _epilogues(fgraph: FunctionGraph, ctx: LowerContext) -> dict:
    """Elementwise node -> the matrix product or reduction it runs in as an epilogue (see
    ``fused_into``), where both run on the device; a product's epilogue takes device arrays only."""
    found = {}
    for node in fgraph.apply_nodes:
        src = fused_into(fgraph, node) if node not in ctx.fused else None
        if src is None or not device_ok(node) or not device_ok(src):
            continue
        host_inputs = [v for v in node.inputs if v in ctx.host and v not in src.outputs]
        if not host_inputs or (type(src.op).__name__ == "CAReduce" and all(v.type.ndim == 0 for v in host_inputs)):
            found[node] = src
    return found


def _shape_only(node: Apply) -> Lowered:
    """The step left of an elementwise node fused into its reduction: its outputs' shapes, for shape
    readers (each the broadcast of the inputs that output reads, as numpy would give it)."""
    ndim = node.outputs[0].ndim
    deps = output_inputs(program_from_composite(node)) if type(node.op).__name__ == "Composite" else \
        [range(len(node.inputs))]
    return Lowered(lambda ins: [Shaped(broadcast_shapes(node, [ins[k] for k in d], ndim)) for d in deps],
                   kind="meta")


class OpenCLFunction:
    """The compiled schedule; calling it runs the graph on the device."""

    def __init__(self, runtime: Runtime, fgraph: FunctionGraph, spec: CompileSpec):
        self.runtime, self.spec = runtime, spec
        self.kernels: dict[str, str] = {}
        self.fallbacks: list[str] = []
        self._lock = threading.Lock()
        self._compile(fgraph)

    # --- compilation ------------------------------------------------------------------------
    def _compile(self, fgraph: FunctionGraph) -> None:
        rt = self.runtime
        for v in fgraph.variables:
            if getattr(v.type, "dtype", None) == "float64":
                rt.check_dtype("float64", f"{v} ({v.type}{', computed by ' + str(v.owner.op) if v.owner else ''})")
        host: set = {v for v in fgraph.inputs if not _on_device(v)}
        ctx = self._ctx = LowerContext(rt, self.kernels, host, fused=_producers_fused_into_reductions(fgraph))
        epilogues = {} if self.spec.nan_guard else _epilogues(fgraph, ctx)
        hosts = set(epilogues.values())
        plan = []
        for node in fgraph.toposort():
            if node in epilogues:  # the product or reduction and this elementwise node: one step
                src = epilogues[node]
                lower = lower_reduce_epilogue if type(src.op).__name__ == "CAReduce" else lower_matmul_epilogue
                plan.append((node, lower(node, src, ctx)))
                continue
            if node in hosts:  # computed in the step of the elementwise node that alone reads it
                continue
            if node in ctx.fused:  # its program runs inside the reduction that reads it
                if sum(len(fgraph.clients[o]) for o in node.outputs) > 1:  # shape readers too
                    host.update(node.outputs)
                    plan.append((node, _shape_only(node)))
                continue
            lower = lowering_for(node) if device_ok(node) else None
            lowered = None
            if _small_host_node(node, host):
                lowered = _host_perform(node)
            elif lower is not None:
                lowered = lower(node, ctx)
            if lowered is None:
                reason = ("no device kernel for this op" if device_ok(node)
                          else "a dtype without a device representation")
                orig = node
                node = wrap_in_fallback(fgraph, node, reason)
                name = f"host{len(self.fallbacks) + 1}_{orig.op}"
                name = "".join(c if c.isalnum() else "_" for c in name)[:48]
                self.kernels[name] = fallback_source(node, reason)
                self.fallbacks.append(name)
                lowered = _fallback(orig, rt)
            if lowered.kind in ("host", "meta") or lowered.host_outputs:
                host.update(node.outputs)
            host.update(o for o in node.outputs if not _on_device(o))
            plan.append((node, lowered))
        self._schedule(fgraph, plan, host)

    def _schedule(self, fgraph: FunctionGraph, plan: list, host: set) -> None:
        rt, spec = self.runtime, self.spec
        slot: dict[Variable, int] = {}
        base: list = []

        def slot_of(v: Variable) -> int:
            if v not in slot:
                slot[v] = len(base)
                base.append(None)
            return slot[v]

        self._inputs = []
        for k, v in enumerate(fgraph.inputs[:spec.n_inputs]):
            what = f"argument {k} ({spec.input_names[k]}) of {spec.name}"
            self._inputs.append((slot_of(v), v.type, what, v not in host))
        self._shared = [(slot_of(v), c, v not in host) for v, c in zip(fgraph.inputs[spec.n_inputs:], spec.containers)]
        steps = []
        consts: dict[tuple, int] = {}
        for node, lowered in plan:
            ins = lowered.inputs if lowered.inputs is not None else node.inputs
            in_slots, convert = [], []
            for k, v in enumerate(ins):
                want_host = lowered.kind == "host" or k in lowered.host_inputs or not _on_device(v)
                if lowered.kind == "meta" and not isinstance(v, Constant):
                    want_host = v in host
                if isinstance(v, Constant):
                    key = (id(v), want_host)
                    if key not in consts:
                        consts[key] = len(base)
                        base.append(np.asarray(v.data) if want_host else rt.to_device(np.asarray(v.data), str(v)))
                    in_slots.append(consts[key])
                    convert.append(None)
                    continue
                in_slots.append(slot_of(v))
                on_host = v in host
                convert.append(None if on_host == want_host else ("to_host" if want_host else "to_device"))
            run = lowered.run
            if any(convert):
                run = _converting(run, convert, rt)
            steps.append([run, in_slots, [slot_of(o) for o in node.outputs], node, ()])
        out_slots = [slot_of(v) if not isinstance(v, Constant) else None for v in fgraph.outputs]
        self._const_outputs = {k: np.asarray(v.data) for k, v in enumerate(fgraph.outputs) if isinstance(v, Constant)}
        keep = set(s for s in out_slots if s is not None)
        last: dict[int, int] = {}
        for k, (_, in_slots, _, _, _) in enumerate(steps):
            for s in in_slots:
                last[s] = k
        for k, step in enumerate(steps):
            step[4] = tuple(s for s in set(step[1]) if last.get(s) == k and s not in keep and base[s] is None)
        self._steps = [tuple(s) for s in steps]
        self._base, self._out_slots = base, out_slots
        self._host_outputs = [v in host for v in fgraph.outputs]

    # --- running ----------------------------------------------------------------------------
    def __call__(self, *args: Any) -> Any:
        if len(args) != self.spec.n_inputs:
            raise TypeError(f"{self.spec.name}() takes {self.spec.n_inputs} arguments, got {len(args)}")
        with self._lock, self.runtime.call_scope():  # one call at a time: shared state is read, then committed
            return self._run(args)

    def _run(self, args: tuple) -> Any:
        spec, rt = self.spec, self.runtime
        vals = list(self._base)
        for (s, t, what, dev), a in zip(self._inputs, args):
            a = t.filter(a, allow_downcast=spec.allow_downcast, what=what)
            vals[s] = rt.to_device(a, what) if dev else a
        kept = {id(v.buffer) for v in self._base if isinstance(v, DeviceArray)}  # memory results must not share
        for s, cont, dev in self._shared:
            d = cont.device
            if not dev:
                vals[s] = cont.to_host()
            elif isinstance(d, DeviceArray) and d.runtime is rt:
                vals[s] = d
            else:
                vals[s] = cont.device = rt.to_device(cont.to_host(), f"shared variable {cont.name}")
            if dev:
                kept.add(id(vals[s].buffer))
        for run, in_slots, out_slots, node, free in self._steps:
            ins = [vals[s] for s in in_slots]
            try:
                outs = run(ins)
            except Exception as e:
                self._ctx.checks.verify()  # a bad index seen earlier in this call is the first error
                if isinstance(e, SymgraphError):
                    raise
                raise _rewrap(e, node, ins) from e
            for s, o in zip(out_slots, outs):
                vals[s] = o
            if spec.nan_guard:
                _nan_guard(node, outs, ins)
            for s in free:
                vals[s] = None
        self._ctx.checks.verify()
        results = []
        for k, s in enumerate(self._out_slots):
            v = self._const_outputs[k] if s is None else vals[s]
            results.append(v)
        # an output sharing memory with a constant or a shared variable (before or after the call)
        # is copied; other outputs on a zero-copy device are handed out without a copy
        kept |= {id(results[o].buffer) for o, _ in spec.updates if isinstance(results[o], DeviceArray)}
        outputs = [v.to_host(copy=id(v.buffer) in kept) if isinstance(v, DeviceArray) else np.array(v)
                   for v in results[:spec.n_outputs]]
        staged = []  # (container, host value, device value): everything prepared before any commit
        for out_idx, cont_idx in spec.updates:
            new, cont = results[out_idx], spec.containers[cont_idx]
            if isinstance(new, DeviceArray):
                if new.borrowed:  # a caller's array: the shared variable gets its own copy
                    new = copy_of(new)
                staged.append((cont, None, new))
            else:
                staged.append((cont, np.array(new, dtype=cont.type.dtype), None))
        _commit(staged)
        return outputs if spec.return_list else outputs[0]


def _commit(staged: list) -> None:
    """Store every update, all or nothing: an interrupt half-way restores the old values."""
    old = [(c, c.value, c.device) for c, _, _ in staged]
    try:
        for c, value, device in staged:
            c.value, c.device = value, device
    except BaseException:
        for c, value, device in old:
            c.value, c.device = value, device
        raise


def _nan_guard(node: Apply, outs: list, ins: list) -> None:
    """nan_guard=True: copy float outputs to the host and check them (a debugging mode: it transfers)."""
    from symgraph.backends.numpy.codegen import nan_guard_check
    for o, v in zip(outs, node.outputs):
        if v.type.dtype.startswith("float"):
            nan_guard_check(_to_host(o), node, [_to_host(i) for i in ins])


def copy_of(x: DeviceArray) -> DeviceArray:
    """A new contiguous device array with ``x``'s values (a device-side copy)."""
    out = x.runtime.empty(x.shape, x.dtype, "copy")
    copy_into(out, x)
    return out


def _to_host(v: Any) -> np.ndarray:
    return v.to_host() if isinstance(v, DeviceArray) else np.array(v)


def _converting(run, convert: list, rt: Runtime):
    """Wrap ``run`` so inputs placed on the wrong side are copied (counted transfers)."""
    def wrapped(ins: list) -> list:
        ins = [x if c is None else x.to_host() if c == "to_host" else rt.to_device(np.asarray(x))
               for x, c in zip(ins, convert)]
        return run(ins)
    return wrapped


def _host_perform(node: Apply) -> Lowered:
    """A small integer computation on host values (shapes): numpy, no transfer."""
    def run(ins: list) -> list:
        return [np.asarray(o, dtype=v.type.dtype) for o, v in zip(node.op.perform(node, ins), node.outputs)]
    return Lowered(run, kind="host")


def _fallback(node: Apply, rt: Runtime) -> Lowered:
    """Run ``node.op.perform`` on the host: inputs downloaded, outputs uploaded (counted)."""
    on_dev = [_on_device(o) for o in node.outputs]

    def run(ins: list) -> list:
        outs = node.op.perform(node, ins)
        outs = [np.asarray(o, dtype=v.type.dtype) for o, v in zip(outs, node.outputs)]
        return [rt.to_device(o, f"output of {node.op}") if d else o for o, d in zip(outs, on_dev)]
    return Lowered(run, kind="fallback", host_inputs=frozenset(range(len(node.inputs))))


def _rewrap(e: Exception, node: Apply, values: list) -> Exception:
    context = node_context(node, values)
    try:
        return type(e)(f"{e}\n{context}")
    except Exception:
        e.add_note(context)
        return e


def compile(fgraph: FunctionGraph, spec: CompileSpec) -> OpenCLFunction:
    """Lower ``fgraph`` to OpenCL kernels on the configured device (spec.options['device'] or
    sg.config.device) and return the callable."""
    return OpenCLFunction(get_runtime(spec.options.get("device")), fgraph, spec)
