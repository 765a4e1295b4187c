"""Reduction kernels (sum, prod, max, min, all, any; argmax, argmin) along any axes of a strided
input, or of a fused Composite's elementwise program evaluated inside the reduction loop. Four
variants (see ``reduce_source``, chosen per call by ``choose_variant``): a work-item per output
element (many short reductions), the same in lockstep for column-wise reductions on CPU devices,
and a work-group per output element with a local-memory tree (few long reductions), whose
work-items stride through the elements on GPUs and take contiguous chunks of them on CPUs."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_elemwise import (
    Shaped,
    broadcast_shapes,
    broadcast_strides,
    content_named,
    preamble,
    program_label,
    program_lines,
)
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray
from symgraph.errors import node_context
from symgraph.graph.basic import Apply
from symgraph.scalar import SCALAR_OPS
from symgraph.tensor.composite import Composite
from symgraph.tensor.fused import Epilogue, ReduceOf
from symgraph.tensor.reduction import ArgReduce, CAReduce
from symgraph.tensor.type import tensor_inputs, tensor_outputs

GROUP = 128
"""Work-items per work-group in the tree variant."""
COLUMN_GROUP = 64
"""Work-items per work-group in the row and column variants."""
COLUMN_MIN = 16
"""Outputs from which a column-wise reduction runs in lockstep even when it is long."""
VARIANTS = ("rows", "columns", "tree", "chunks")
CPU_VARIANTS, GPU_VARIANTS = ("rows", "columns", "chunks"), ("rows", "tree")

_OPS = {"add": "add", "mul": "mul", "maximum": "maximum", "minimum": "minimum", "and": "and_", "or": "or_"}


def _identity(op: str, dtype: np.dtype) -> str:
    if op in ("add", "or"):
        return ks.literal(0, dtype)
    if op in ("mul", "and"):
        return ks.literal(1, dtype)
    big = float("inf") if dtype.kind == "f" else (np.iinfo(dtype).max if dtype.kind in "iu" else 1)
    small = -float("inf") if dtype.kind == "f" else (np.iinfo(dtype).min if dtype.kind in "iu" else 0)
    return ks.literal(small if op == "maximum" else big, dtype)


def digits(var: str, prefix: str, dims: int, const: str = "const ") -> list[str]:
    """Statements splitting flat index ``var`` into per-axis indices ``{prefix}0..`` over sizes ``{prefix}n*``."""
    if not dims:
        return []
    lines = [f"long {prefix}r = {var};"]
    for d in reversed(range(1, dims)):
        lines.append(f"{const}long {prefix}{d} = {prefix}r % {prefix}n{d}; {prefix}r /= {prefix}n{d};")
    return lines + [f"{const}long {prefix}0 = {prefix}r;"]


def odometer(prefix: str, dims: int) -> str:
    """A statement stepping per-axis indices ``{prefix}0..`` to the next element in C order (a
    loop walking its elements one by one divides once, at its start, instead of at every element)."""
    step = f"++{prefix}0;"
    for d in range(1, dims):
        step = f"if (++{prefix}{d} == {prefix}n{d}) {{ {prefix}{d} = 0; {step} }}"
    return step if dims else ""


def _offset(k: int, prefix: str, dims: int, strides: str = "") -> str:
    """Input ``k``'s element offset for the per-axis indices ``{prefix}*`` (strides ``{strides}{k}_*``,
    by default ``{prefix}s{k}_*``)."""
    return " + ".join(f"{prefix}{d} * {strides or prefix + 's'}{k}_{d}" for d in range(dims)) or "0"


def _combine(op: str, arg: bool, acc: np.dtype, out: np.dtype) -> tuple[list, list, str, str, set]:
    """How values combine: (serial step, tree step, identity, final value, helpers needed)."""
    A = ks.ctype(acc)
    if arg:
        cmp = ">" if op == "max" else "<"
        nan = acc.kind == "f"
        better = f"(v {cmp} a" + (" || (isnan(v) && !isnan(a))" if nan else "") + ")"
        equal = "(v == a" + (" || (isnan(v) && isnan(a))" if nan else "") + ")"
        serial = [f"if ({better}) {{ a = v; ai = j; }}"]
        tree_step = [f"const {A} v = sa[lid + s]; const long vi = si[lid + s]; const {A} a = sa[lid];",
                     f"if ({better} || ({equal} && vi < si[lid])) {{ sa[lid] = v; si[lid] = vi; }}"]
        return serial, tree_step, _identity("maximum" if op == "max" else "minimum", acc), "ai", set()
    sop = SCALAR_OPS[_OPS[op]]
    comb, helpers = ks.expression(sop, ["a", "v"], [acc, acc], acc)
    tree_comb, _ = ks.expression(sop, ["sa[lid]", "sa[lid + s]"], [acc, acc], acc)
    final = "a" if acc == out else f"({ks.ctype(out)})a"
    return [f"a = {comb};"], [f"sa[lid] = {tree_comb};"], _identity(op, acc), final, helpers


def _params(prog: Composite, by_value: list[bool], epi: tuple, n_kept: int, n_red: int) -> tuple[list, list]:
    """The kernel's parameters, and how each input of the value's program is loaded."""
    params, loads = [], []
    for k, dt in enumerate(prog.in_dtypes):
        if by_value[k]:
            params.append(f"const {ks.ctype(dt)} in{k}")
            loads.append(f"in{k}")
            continue
        params += [f"__global const {ks.ctype(dt)} *restrict in{k}", "const long off" + str(k)]
        params += [f"const long ks{k}_{d}" for d in range(n_kept)] + [f"const long rs{k}_{d}" for d in range(n_red)]
        loads.append(f"in{k}[base{k} + {_offset(k, 'r', n_red)}]")
    program, reduced, epi_by_value = epi
    for k, dt in enumerate(program.in_dtypes):
        if k != reduced:
            params += [f"const {ks.ctype(dt)} e{k}"] if epi_by_value[k] else \
                [f"__global const {ks.ctype(dt)} *restrict e{k}, const long eoff{k}"] + \
                [f"const long es{k}_{d}" for d in range(n_kept)]
    params += [f"__global {ks.ctype(dt)} *restrict out{q}" for q, dt in enumerate(program.out_dtypes)]
    params += ["const long m", "const long len"]
    params += [f"const long kn{d}" for d in range(n_kept)] + [f"const long rn{d}" for d in range(n_red)]
    return params, loads


def _tree_tail(A: str, arg: bool, tree_step: list, store: list) -> list[str]:
    """The work-group's local-memory tree after each work-item's partial result, then the store."""
    body = [f"__local {A} sa[{GROUP}];", f"__local long si[{GROUP}];" if arg else "",
            "sa[lid] = a;" + (" si[lid] = ai;" if arg else ""), "barrier(CLK_LOCAL_MEM_FENCE);",
            f"for (int s = {GROUP // 2}; s > 0; s >>= 1) {{", "    if (lid < s) {"]
    body += ["        " + ln for ln in tree_step]
    body += ["    }", "    barrier(CLK_LOCAL_MEM_FENCE);", "}", "if (lid == 0) {"]
    return body + ["    " + ln for ln in store] + ["}"]


def reduce_source(name: str, op: str, prog: Composite, by_value: list[bool], out_dtype: Any, n_kept: int,
                  n_red: int, variant: str, arg: bool = False, epilogue: tuple | None = None) -> str:
    """Kernel reducing, over ``n_red`` axes for each output indexed by ``n_kept`` axes, the value that
    ``prog`` computes from its strided inputs (a bare load for a plain reduction; the elementwise
    program of a fused producer otherwise, so that value never goes through memory). ``op`` is a
    CAReduce op name, or 'max'/'min' with ``arg`` (writes the flat index). ``variant``: 'rows', a
    work-item per output looping on its own; 'columns', the same in lockstep, a barrier per step,
    so pocl runs a group's work-items side by side over neighbouring outputs (a column sum reads
    rows of memory instead of striding down each column); 'tree' and 'chunks', a work-group per
    output (``_reduced_loop`` says how their work-items share the elements).
    ``epilogue`` is (program, reduced input, by_value) of the elementwise program that alone reads
    the result: it runs on each result before the store (its other inputs strided over the kept axes)."""
    in_dtype, out_dtype = np.dtype(prog.out_dtypes[0]), np.dtype(out_dtype)
    acc_dtype = in_dtype if arg else out_dtype
    A, X = ks.ctype(acc_dtype), ks.ctype(in_dtype)
    load = ("(xv != 0)" if acc_dtype.kind == "b" and in_dtype.kind != "b" else
            f"(({A})xv)" if acc_dtype != in_dtype else "xv")
    serial, tree_step, ident, final, helpers = _combine(op, arg, acc_dtype, out_dtype)
    epi = epilogue or (Composite.identity(out_dtype.name), 0, [False])
    params, loads = _params(prog, by_value, epi, n_kept, n_red)
    value_lines, (value,), needed = program_lines(prog, loads)

    def store(result: str) -> list[str]:
        program, reduced, epi_by_value = epi
        ins = [result if k == reduced else f"e{k}" if epi_by_value[k] else
               f"e{k}[eoff{k} + {_offset(k, 'k', n_kept, 'es')}]" for k in range(program.nin)]
        lines, outs, epi_needed = program_lines(program, ins)
        needed.update(epi_needed)
        return lines + [f"out{q}[o] = {v};" for q, v in enumerate(outs)]
    body = digits("o", "k", n_kept) + [f"const long base{k} = off{k} + {_offset(k, 'k', n_kept)};"
                                       for k in range(len(by_value)) if not by_value[k]]
    body += [f"{A} a = {ident};", "long ai = 0;" if arg else ""] + _reduced_loop(variant, n_red)
    body += ["    " + ln for ln in value_lines]
    body += [f"    const {X} xv = {value};", f"    const {A} v = {load};"] + ["    " + ln for ln in serial]
    body += [f"    {odometer('r', n_red)}"] if variant != "tree" else []
    body += ["    barrier(CLK_LOCAL_MEM_FENCE);", "}"] if variant == "columns" else ["}"]
    if variant in ("tree", "chunks"):
        tree_final = "si[0]" if arg else "sa[0]" if acc_dtype == out_dtype else f"({ks.ctype(out_dtype)})sa[0]"
        body += _tree_tail(A, arg, tree_step, store(tree_final))
        pre, attr = ["const long o = get_group_id(0);", "const long lid = get_local_id(0);"], \
            f"__attribute__((reqd_work_group_size({GROUP}, 1, 1)))\n"
    elif variant == "columns":  # every work-item reaches each barrier: the spare ones redo the last output
        body += ["if (get_global_id(0) < m) {"] + ["    " + ln for ln in store(final)] + ["}"]
        pre, attr = ["const long o = min((long)get_global_id(0), m - 1);"], \
            f"__attribute__((reqd_work_group_size({COLUMN_GROUP}, 1, 1)))\n"
    else:
        body += store(final)
        pre, attr = ["const long o = get_global_id(0);", "if (o >= m) return;"], ""
    code = "\n".join("    " + ln for ln in pre + body if ln)
    dts = {np.dtype(d) for p in (prog, epi[0]) for d in p.in_dtypes + p.step_dtypes} | {in_dtype, out_dtype}
    return (f"{preamble(dts, helpers | needed)}__kernel {attr}void {name}(\n        "
            + ",\n        ".join(params) + f")\n{{\n{code}\n}}\n")


def _reduced_loop(variant: str, n_red: int) -> list[str]:
    """The head of the loop over the reduced elements ``j`` (per-axis indices ``r*``): 'tree'
    strides by the work-group (neighbouring work-items read neighbouring elements: a GPU's
    coalesced loads); 'chunks' gives each work-item of the group a contiguous run (a CPU thread
    streams through memory, where the tree's stride had it fetch every line once per work-item);
    the others walk every element. The walking loops step their indices with ``odometer``."""
    if variant == "tree":
        return ["for (long j = lid; j < len; j += " + f"{GROUP}) {{"] + ["    " + ln for ln in digits("j", "r", n_red)]
    start, end = ("lid * chunk", "min(len, start + chunk)") if variant == "chunks" else ("0", "len")
    head = [f"const long chunk = (len + {GROUP - 1}) / {GROUP};"] if variant == "chunks" else []
    return head + [f"const long start = {start}, end = {end};"] + digits("start", "r", n_red, const="") + \
        ["for (long j = start; j < end; j++) {"]


def choose_variant(is_cpu: bool, m: int, n: int, fastest_kept: int, fastest_reduced: int) -> str:
    """Which kernel reduces ``n`` elements for each of ``m`` outputs: a work-group per output for
    few long reductions ('chunks' on CPUs, 'tree' on GPUs), except, on CPUs, column-wise ones (a
    kept axis is the faster in memory) over at least ``COLUMN_MIN`` outputs, which run in lockstep
    ('columns'); else a work-item per output ('rows')."""
    column_wise = is_cpu and fastest_kept < fastest_reduced
    if column_wise and m >= COLUMN_MIN:
        return "columns"
    if n > 256 and m < 4096:
        return "chunks" if is_cpu else "tree"
    return "columns" if column_wise else "rows"


@dataclass
class Reduction:
    """What a reduction kernel computes: ``op`` ('add'... or 'max'/'min' with ``arg``) over ``axes``
    of the value ``prog`` computes from ``inputs`` (a bare load for a plain reduction), typed like
    ``red`` (a reduction node whose input has the value's type), and reported as ``node``."""
    node: Apply
    red: Apply
    op: str
    axes: tuple
    keepdims: bool
    arg: bool
    prog: Composite
    inputs: list


@dataclass
class Store:
    """The elementwise program run on each result before the store (an Epilogue's): input ``slot``
    reads the result, ``others`` (graph variables) feed the other inputs, in order. Those marked
    in ``by_value`` are host scalars, passed to the kernel by value: no upload, no transfer."""
    prog: Composite
    slot: int
    others: list
    by_value: list[bool]

    def flags(self) -> list[bool]:
        """``by_value`` for every input of the program (the result's slot included: never)."""
        flags = list(self.by_value)
        flags.insert(self.slot, False)
        return flags

    def host_inputs(self, first: int) -> frozenset[int]:
        """The positions of the by-value inputs among a step's inputs, ``others`` starting at ``first``."""
        return frozenset(first + k for k, b in enumerate(self.by_value) if b)

    def value_types(self) -> list[np.dtype]:
        """The numpy type each by-value input is passed as (a bool as uint8), for ``others`` in order."""
        return [np.dtype("uint8" if d == "bool" else d) for k, d in enumerate(self.prog.in_dtypes) if k != self.slot]


def epilogue_store(node: Apply, ctx: LowerContext) -> Store | None:
    """The Store of an Epilogue node ``node``, whatever its core (a product, a convolution, a
    reduction): host scalars among its other inputs are passed by value; None when another of
    them lives on the host (the epilogue then runs unfused, ``EXPAND``)."""
    op = node.op_as(Epilogue)
    others = list(tensor_inputs(node)[op.n_core:])
    by_value = [v in ctx.host and v.type.ndim == 0 for v in others]
    if any(v in ctx.host and not b for v, b in zip(others, by_value)):
        return None
    return Store(op.program, op.slot, others, by_value)


class ReduceKernel:
    """Runs a reduction over fixed axes of a device array, or of the value a fused elementwise
    program computes from its inputs, inside one kernel; an epilogue program (``store``) runs on
    each result before the store."""

    def __init__(self, r: Reduction, ctx: LowerContext, store: Store | None = None):
        x, out = tensor_inputs(r.red)[0], tensor_outputs(r.red)[0]
        self.runtime, self.node, self.op, self.arg, self.r = ctx.runtime, r.node, r.op, r.arg, r
        self.axes, self.keepdims, self.out_dtype, self.ndim = r.axes, r.keepdims, np.dtype(out.dtype), x.ndim
        self.prog, self.inputs, self.store = r.prog, list(r.inputs), store
        self.by_value = [v in ctx.host and v.type.ndim == 0 for v in self.inputs]
        self.value_types = [np.dtype("uint8" if d == "bool" else d) for d in r.prog.in_dtypes]
        self.others, self.out_dtypes, epi = [], [self.out_dtype], None
        self.what = f"output of {r.node.op}"  # names an allocation that fails
        label = program_label(r.prog) if r.prog.steps else str(x.dtype)
        if store is not None:
            self.others = list(store.others)
            epi = (store.prog, store.slot, store.flags())
            self.by_value += store.by_value
            self.value_types += store.value_types()
            self.out_dtypes = [np.dtype(d) for d in store.prog.out_dtypes]
            label += "_" + program_label(store.prog)
        n_red, n_kept = len(r.axes), x.ndim - len(r.axes)
        stem = ctx.kernel_name(r.node, f"{'arg' if r.arg else ''}{r.op}_{label}")
        self.names, self.sources = {}, {}
        for variant in CPU_VARIANTS if self.runtime.is_cpu else GPU_VARIANTS:
            name, src = content_named(f"{stem}_{variant}", lambda n, v=variant: reduce_source(
                n, r.op, r.prog, self.by_value[:len(self.inputs)], out.dtype, n_kept, n_red, v, r.arg, epi))
            self.names[variant], self.sources[name] = name, src
        ctx.publish(self.sources)
        self._src = {v: self.sources[name] for v, name in self.names.items()}

    def lowered(self) -> Lowered:
        return Lowered(self, inputs=self.inputs + self.others,
                       host_inputs=frozenset(k for k, v in enumerate(self.by_value) if v), label=self.names["rows"])

    def _on_host(self, ins: list, others: list) -> list[DeviceArray]:
        """Rare path: the epilogue's other inputs broadcast the result to a larger shape at run time
        (a length-1 axis against one of unknown length), which the fused store cannot cover: this call
        runs on the host, with a RuntimeWarning, as any host fallback."""
        assert self.store is not None
        warnings.warn(f"opencl backend: {self.node.op} ran on the host for a call whose inputs broadcast the "
                      f"reduction's result at run time\n{node_context(self.node, others)}",
                      RuntimeWarning, stacklevel=2)
        host = [np.asarray(a) if v else a.to_host() for a, v in zip(ins + others, self.by_value)]
        (x,) = self.prog.run(self.prog.plan(tuple(v.type for v in self.inputs)), host[:len(ins)], buffered=False)
        values = host[len(ins):]
        values.insert(self.store.slot, self.r.red.op.perform(self.r.red, [x])[0])
        types = [v.type for v in self.others]
        types.insert(self.store.slot, self.r.red.outputs[0].type)
        return [self.runtime.to_device(np.ascontiguousarray(r), self.what)
                for r in self.store.prog.run(self.store.prog.plan(tuple(types)), values, buffered=False)]

    def _shape(self, xshape: tuple) -> tuple:
        kept = [d for d in range(self.ndim) if d not in self.axes]
        if self.keepdims:
            return tuple(1 if d in self.axes else xshape[d] for d in range(self.ndim))
        return tuple(xshape[d] for d in kept)

    def __call__(self, ins: list) -> list[DeviceArray]:
        ins, others = ins[:len(self.inputs)], ins[len(self.inputs):]
        arrays = [a for a, v in zip(ins, self.by_value) if not v]
        xshape = broadcast_shapes(self.node, arrays, self.ndim)
        kept = [d for d in range(self.ndim) if d not in self.axes]
        m = math.prod([xshape[d] for d in kept])
        n = math.prod([xshape[d] for d in self.axes])
        shape = self._shape(xshape)
        if n == 0 and (self.arg or self.op in ("maximum", "minimum")):
            what = f"attempt to get {self.node.op} of an empty sequence" if self.arg else \
                "zero-size array to reduction operation with no identity"
            raise ValueError(f"{self.node.op}: {what} (input shape {xshape})")
        if self.store is not None:
            full = [a for a, v in zip(others, self.by_value[len(ins):]) if not v]
            if broadcast_shapes(self.node, full + [Shaped(shape)], len(shape)) != shape:
                return self._on_host(ins, others)
        outs = [self.runtime.empty(shape, dt, self.what, kernel_output=True) for dt in self.out_dtypes]
        if m == 0:
            return outs
        self._launch(ins, others, outs, xshape, kept, m, n, shape)
        return outs

    def _launch(self, ins: list, others: list, outs: list, xshape: tuple, kept: list, m: int, n: int,
                shape: tuple) -> None:
        args: list = []
        fastest_kept = fastest_reduced = 1 << 62  # smallest stride of a kept / reduced axis of longer than 1
        for a, v, t in zip(ins, self.by_value, self.value_types):
            if v:
                args.append(t.type(a))
                continue
            strides = broadcast_strides(a, self.ndim)
            args += [a.buffer, np.int64(a.offset)] + [np.int64(strides[d]) for d in kept + list(self.axes)]
            fastest_kept = min([fastest_kept] + [abs(strides[d]) for d in kept if strides[d]])
            fastest_reduced = min([fastest_reduced] + [abs(strides[d]) for d in self.axes if strides[d]])
        for a, v, t in zip(others, self.by_value[len(ins):], self.value_types[len(ins):]):
            strides = broadcast_strides(a, len(shape)) if not v else []
            args += [t.type(a)] if v else [a.buffer, np.int64(a.offset)] + [
                np.int64(strides[d]) for d in (kept if self.keepdims else range(len(shape)))]
        args += [o.buffer for o in outs] + [np.int64(m), np.int64(n)]
        args += [np.int64(xshape[d]) for d in kept + list(self.axes)]
        variant = choose_variant(self.runtime.is_cpu, m, n, fastest_kept, fastest_reduced)
        k = self.runtime.kernel(self._src[variant], self.names[variant])
        if variant in ("tree", "chunks"):
            k(self.runtime.queue, (m * GROUP,), (GROUP,), *args)
        else:
            k(self.runtime.queue, (-(-m // COLUMN_GROUP) * COLUMN_GROUP,), (COLUMN_GROUP,), *args)


def _reduction(node: Apply, core: Apply) -> Reduction:
    """The Reduction a CAReduce, ArgReduce or ReduceOf node ``core`` computes (reported as ``node``)."""
    op = core.op
    if isinstance(op, ReduceOf):
        _, red = op.parts(core.inputs)
        red_op = red.op_as(CAReduce)
        return Reduction(node, red, red_op.scalar_op, tuple(sorted(red_op.axis)), red_op.keepdims, False,
                         op.program, list(core.inputs))
    x = tensor_inputs(core)[0]
    identity = Composite.identity(x.dtype)
    if isinstance(op, ArgReduce):
        axes = tuple(range(x.ndim)) if op.axis is None else (op.axis,)
        return Reduction(node, core, op.which, axes, op.keepdims, True, identity, [x])
    op = core.op_as(CAReduce)
    return Reduction(node, core, op.scalar_op, tuple(sorted(op.axis)), op.keepdims, False, identity, [x])


@lowers(CAReduce, ArgReduce, ReduceOf)
def lower_reduction(node: Apply, ctx: LowerContext) -> Lowered:
    """sum/prod/max/min/all/any over ``axis``, argmax/argmin, or either of a fused elementwise
    program's output (ReduceOf): one kernel."""
    return ReduceKernel(_reduction(node, node), ctx).lowered()


def lower_reduce_epilogue(node: Apply, ctx: LowerContext, store: Store) -> Lowered:
    """An Epilogue of a reduction: the reduction with the elementwise program in its store
    (kernels_epilogue dispatches here)."""
    core, _ = node.op_as(Epilogue).parts(node.inputs)
    return ReduceKernel(_reduction(node, core), ctx, store).lowered()
