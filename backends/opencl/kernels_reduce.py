"""Reduction kernels (sum, prod, max, min, all, any; argmax, argmin) along any axes of a strided
input, or of a fused Composite's elementwise program evaluated inside the reduction loop. Three
variants (see ``reduce_source``): a work-item per output element (many short reductions), the
same in lockstep for column-wise reductions on CPU devices, and a work-group per output element
with a local-memory tree (few long reductions)."""
from __future__ import annotations

import math
import warnings

import numpy as np

from symgraph.errors import node_context
from symgraph.graph.basic import Apply
from symgraph.scalar import SCALAR_OPS
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_elemwise import (ScalarProgram, Shaped, broadcast_shapes, broadcast_strides,
                                                      content_named, evaluate_on_host, program_and_inputs,
                                                      program_label, program_lines, program_of_output)
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray

GROUP = 128
"""Work-items per work-group in the tree variant."""
COLUMN_GROUP = 64
"""Work-items per work-group in the row and column variants."""
VARIANTS = ("rows", "columns", "tree")

_OPS = {"add": "add", "mul": "mul", "maximum": "maximum", "minimum": "minimum", "and": "and_", "or": "or_"}


def _identity(op: str, dtype: np.dtype) -> str:
    if op in ("add", "or"):
        return ks.literal(0, dtype)
    if op in ("mul", "and"):
        return ks.literal(1, dtype)
    big = float("inf") if dtype.kind == "f" else (np.iinfo(dtype).max if dtype.kind in "iu" else 1)
    small = -float("inf") if dtype.kind == "f" else (np.iinfo(dtype).min if dtype.kind in "iu" else 0)
    return ks.literal(small if op == "maximum" else big, dtype)


def digits(var: str, prefix: str, dims: int) -> list[str]:
    """Statements splitting flat index ``var`` into per-axis indices ``{prefix}0..`` over sizes ``{prefix}n*``."""
    if not dims:
        return []
    lines = [f"long {prefix}r = {var};"]
    for d in reversed(range(1, dims)):
        lines.append(f"const long {prefix}{d} = {prefix}r % {prefix}n{d}; {prefix}r /= {prefix}n{d};")
    return lines + [f"const long {prefix}0 = {prefix}r;"]


def _offset(k: int, prefix: str, dims: int, strides: str = "") -> str:
    """Input ``k``'s element offset for the per-axis indices ``{prefix}*`` (strides ``{strides}{k}_*``,
    by default ``{prefix}s{k}_*``)."""
    return " + ".join(f"{prefix}{d} * {strides or prefix + 's'}{k}_{d}" for d in range(dims)) or "0"


def reduce_source(name: str, op: str, prog: ScalarProgram, by_value: list[bool], out_dtype, n_kept: int,
                  n_red: int, variant: str, arg: bool = False, epilogue: tuple | None = None) -> str:
    """Kernel reducing, over ``n_red`` axes for each output indexed by ``n_kept`` axes, the value that
    ``prog`` computes from its strided inputs (a bare load for a plain reduction; the elementwise
    program of a fused Composite otherwise, so that value never goes through memory). ``op`` is a
    CAReduce op name, or 'max'/'min' with ``arg`` (writes the flat index). ``variant``: 'rows', a
    work-item per output looping on its own; 'columns', the same in lockstep, a barrier per step,
    so pocl runs a group's work-items side by side over neighbouring outputs (a column sum reads
    rows of memory instead of striding down each column); 'tree', a work-group per output.
    ``epilogue`` is (program, reduced input, by_value) of the elementwise node that alone reads the
    result: it runs on each result before the store (its other inputs strided over the kept axes)."""
    tree = variant == "tree"
    in_dtype, out_dtype = np.dtype(prog.output_dtypes[0]), np.dtype(out_dtype)
    acc_dtype = in_dtype if arg else out_dtype
    A, X, O = ks.ctype(acc_dtype), ks.ctype(in_dtype), ks.ctype(out_dtype)
    load = ("(xv != 0)" if acc_dtype.kind == "b" and in_dtype.kind != "b" else
            f"(({A})xv)" if acc_dtype != in_dtype else "xv")
    if arg:
        cmp = ">" if op == "max" else "<"
        nan = acc_dtype.kind == "f"
        better = f"(v {cmp} a" + (" || (isnan(v) && !isnan(a))" if nan else "") + ")"
        equal = "(v == a" + (" || (isnan(v) && isnan(a))" if nan else "") + ")"
        serial = [f"if ({better}) {{ a = v; ai = j; }}"]
        tree_step = [f"const {A} v = sa[lid + s]; const long vi = si[lid + s]; const {A} a = sa[lid];",
                     f"if ({better} || ({equal} && vi < si[lid])) {{ sa[lid] = v; si[lid] = vi; }}"]
        ident = _identity("maximum" if op == "max" else "minimum", acc_dtype)
        final, helpers = "ai", set()
    else:
        sop = SCALAR_OPS[_OPS[op]]
        comb, helpers = ks.expression(sop, ["a", "v"], [acc_dtype, acc_dtype], acc_dtype)
        serial = [f"a = {comb};"]
        tree_comb, _ = ks.expression(sop, ["sa[lid]", "sa[lid + s]"], [acc_dtype, acc_dtype], acc_dtype)
        tree_step = [f"sa[lid] = {tree_comb};"]
        ident = _identity(op, acc_dtype)
        final = "a" if acc_dtype == out_dtype else f"({O})a"
    params, loads = [], []
    for k, dt in enumerate(prog.input_dtypes):
        if by_value[k]:
            params.append(f"const {ks.ctype(dt)} in{k}")
            loads.append(f"in{k}")
            continue
        params += [f"__global const {ks.ctype(dt)} *restrict in{k}", "const long off" + str(k)]
        params += [f"const long ks{k}_{d}" for d in range(n_kept)] + [f"const long rs{k}_{d}" for d in range(n_red)]
        loads.append(f"in{k}[base{k} + {_offset(k, 'r', n_red)}]")
    epi, reduced, epi_by_value = epilogue or (ScalarProgram([out_dtype.name], [], [("in", 0)], [out_dtype.name]),
                                              0, [False])
    for k, dt in enumerate(epi.input_dtypes):
        if k != reduced:
            params += [f"const {ks.ctype(dt)} e{k}"] if epi_by_value[k] else \
                [f"__global const {ks.ctype(dt)} *restrict e{k}, const long eoff{k}"] + \
                [f"const long es{k}_{d}" for d in range(n_kept)]
    params += [f"__global {ks.ctype(dt)} *restrict out{q}" for q, dt in enumerate(epi.output_dtypes)]
    params += ["const long m", "const long len"]
    params += [f"const long kn{d}" for d in range(n_kept)] + [f"const long rn{d}" for d in range(n_red)]
    value_lines, (value,), needed = program_lines(prog, loads)

    def store(result: str) -> list[str]:
        loads = [result if k == reduced else f"e{k}" if epi_by_value[k] else
                 f"e{k}[eoff{k} + {_offset(k, 'k', n_kept, 'es')}]" for k in range(len(epi.input_dtypes))]
        lines, outs, epi_needed = program_lines(epi, loads)
        needed.update(epi_needed)
        return lines + [f"out{q}[o] = {v};" for q, v in enumerate(outs)]
    body = digits("o", "k", n_kept)
    body += [f"const long base{k} = off{k} + {_offset(k, 'k', n_kept)};"
             for k in range(len(by_value)) if not by_value[k]]
    body += [f"{A} a = {ident};", "long ai = 0;" if arg else ""]
    start, stride = ("lid", GROUP) if tree else ("0", 1)
    body += [f"for (long j = {start}; j < len; j += {stride}) {{"]
    body += ["    " + ln for ln in digits("j", "r", n_red) + value_lines]
    body += [f"    const {X} xv = {value};", f"    const {A} v = {load};"] + ["    " + ln for ln in serial]
    body += ["    barrier(CLK_LOCAL_MEM_FENCE);", "}"] if variant == "columns" else ["}"]
    if tree:
        body += [f"__local {A} sa[{GROUP}];", f"__local long si[{GROUP}];" if arg else "",
                 "sa[lid] = a;" + (" si[lid] = ai;" if arg else ""), "barrier(CLK_LOCAL_MEM_FENCE);",
                 f"for (int s = {GROUP // 2}; s > 0; s >>= 1) {{", "    if (lid < s) {"]
        body += ["        " + ln for ln in tree_step]
        body += ["    }", "    barrier(CLK_LOCAL_MEM_FENCE);", "}",
                 "if (lid == 0) {"]
        body += ["    " + ln for ln in store('si[0]' if arg else ('sa[0]' if acc_dtype == out_dtype else f'({O})sa[0]'))]
        body += ["}"]
        pre = ["const long o = get_group_id(0);", "const long lid = get_local_id(0);"]
        attr = f"__attribute__((reqd_work_group_size({GROUP}, 1, 1)))\n"
    elif variant == "columns":  # every work-item reaches each barrier: the spare ones redo the last output
        body += ["if (get_global_id(0) < m) {"] + ["    " + ln for ln in store(final)] + ["}"]
        pre = ["const long o = min((long)get_global_id(0), m - 1);"]
        attr = f"__attribute__((reqd_work_group_size({COLUMN_GROUP}, 1, 1)))\n"
    else:
        body += store(final)
        pre = ["const long o = get_global_id(0);", "if (o >= m) return;"]
        attr = ""
    code = "\n".join("    " + ln for ln in pre + body if ln)
    dts = [np.dtype(d) for p in (prog, epi) for d in p.input_dtypes + [d for _, _, d in p.steps]] + [in_dtype, out_dtype]
    head = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" if np.dtype(np.float64) in dts else ""
    helper_src = ks.helpers(helpers | needed)
    return (f"{head}{helper_src}{chr(10) if helper_src else ''}__kernel {attr}void {name}(\n        "
            + ",\n        ".join(params) + f")\n{{\n{code}\n}}\n")


class ReduceKernel:
    """Runs a reduction over fixed axes of a device array, or of the value a fused elementwise
    node computes from its inputs (``producer``), inside one kernel; an elementwise node that alone
    reads the result (``epilogue``) runs on each result before the store."""

    def __init__(self, node: Apply, ctx: LowerContext, op: str, axes: tuple, keepdims: bool, arg: bool,
                 producer: Apply | None = None, epilogue: Apply | None = None):
        x, out = node.inputs[0], node.outputs[0]
        self.runtime, self.node, self.op, self.arg = ctx.runtime, node, op, arg
        self.axes, self.keepdims, self.out_dtype, self.ndim = axes, keepdims, np.dtype(out.dtype), x.ndim
        if producer is None:
            prog, self.inputs, label = ScalarProgram([x.dtype], [], [("in", 0)], [x.dtype]), [x], str(x.dtype)
        else:
            whole, bound = program_and_inputs(producer)
            prog, keep = program_of_output(whole, node.inputs[0].index)
            self.inputs, label = [bound[k] for k in keep], program_label(producer)
        self.prog, self.shape_node = prog, producer or node  # where a broadcasting error is reported
        self.by_value = [v in ctx.host and v.type.ndim == 0 for v in self.inputs]
        self.value_types = [np.dtype("uint8" if d == "bool" else d) for d in prog.input_dtypes]
        self.epilogue, epi, self.others, self.out_dtypes = epilogue, None, [], [self.out_dtype]
        self.what = f"output of {(epilogue or node).op}"  # names an allocation that fails
        if epilogue is not None:
            self.epi_prog, bound = program_and_inputs(epilogue)
            reduced = bound.index(out)
            self.reduced, self.others = reduced, [v for v in bound if v is not out]
            epi_by_value = [v in ctx.host and v.type.ndim == 0 for v in bound]
            epi = (self.epi_prog, reduced, epi_by_value)
            self.by_value += [b for k, b in enumerate(epi_by_value) if k != reduced]
            self.value_types += [np.dtype("uint8" if d == "bool" else d)
                                 for k, d in enumerate(self.epi_prog.input_dtypes) if k != reduced]
            self.out_dtypes = [np.dtype(d) for d in self.epi_prog.output_dtypes]
            label += "_" + program_label(epilogue)
        n_red, n_kept = len(axes), x.ndim - len(axes)
        stem = ctx.kernel_name(node, f"{'arg' if arg else ''}{op}_{label}")
        self.names, self.sources = {}, {}
        for variant in VARIANTS if self.runtime.is_cpu else ("rows", "tree"):
            name, src = content_named(f"{stem}_{variant}", lambda n, v=variant: reduce_source(
                n, op, prog, self.by_value[:len(self.inputs)], out.dtype, n_kept, n_red, v, arg, epi))
            self.names[variant], self.sources[name] = name, src
        ctx.publish(self.sources)
        self._src = {v: self.sources[name] for v, name in self.names.items()}

    def lowered(self) -> Lowered:
        return Lowered(self, inputs=self.inputs + self.others,
                       host_inputs=frozenset(k for k, v in enumerate(self.by_value) if v))

    def _on_host(self, ins: list, others: list) -> list[DeviceArray]:
        """Rare path: the epilogue's other inputs broadcast the result to a larger shape at run time
        (a length-1 axis against one of unknown length), which the fused store cannot cover: this call
        runs on the host, with a RuntimeWarning, as any host fallback."""
        warnings.warn(f"opencl backend: {self.node.op} with its fused {self.epilogue.op} ran on the host for a "
                      f"call whose inputs broadcast the result at run time\n{node_context(self.epilogue, others)}",
                      RuntimeWarning, stacklevel=2)
        host = [np.asarray(a) if v else a.to_host() for a, v in zip(ins + others, self.by_value)]
        (x,) = evaluate_on_host(self.prog, host[:len(ins)])
        values = host[len(ins):]
        values.insert(self.reduced, self.node.op.perform(self.node, [x])[0])
        return [self.runtime.to_device(np.ascontiguousarray(r), f"output of {self.epilogue.op}")
                for r in evaluate_on_host(self.epi_prog, values)]

    def __call__(self, ins: list) -> list[DeviceArray]:
        ins, others = ins[:len(self.inputs)], ins[len(self.inputs):]
        arrays = [a for a, v in zip(ins, self.by_value) if not v]
        xshape = broadcast_shapes(self.shape_node, arrays, self.ndim)
        kept = [d for d in range(self.ndim) if d not in self.axes]
        m = math.prod([xshape[d] for d in kept])
        n = math.prod([xshape[d] for d in self.axes])
        if self.keepdims:
            shape = tuple(1 if d in self.axes else xshape[d] for d in range(self.ndim))
        else:
            shape = tuple(xshape[d] for d in kept)
        if n == 0 and (self.arg or self.op in ("maximum", "minimum")):
            what = f"attempt to get {self.node.op} of an empty sequence" if self.arg else \
                "zero-size array to reduction operation with no identity"
            raise ValueError(f"{self.node.op}: {what} (input shape {xshape})")
        if self.epilogue is not None:
            full = [a for a, v in zip(others, self.by_value[len(ins):]) if not v]
            if broadcast_shapes(self.epilogue, full + [Shaped(shape)], len(shape)) != shape:
                return self._on_host(ins, others)
        outs = [self.runtime.empty(shape, dt, self.what) for dt in self.out_dtypes]
        if m == 0:
            return outs
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
        variant = ("tree" if n > 256 and m < 4096 else
                   "columns" if self.runtime.is_cpu and fastest_kept < fastest_reduced else "rows")
        k = self.runtime.kernel(self._src[variant], self.names[variant])
        if variant == "tree":
            k(self.runtime.queue, (m * GROUP,), (GROUP,), *args)
        else:
            k(self.runtime.queue, (-(-m // COLUMN_GROUP) * COLUMN_GROUP,), (COLUMN_GROUP,), *args)
        return outs


@lowers("CAReduce")
def lower_careduce(node: Apply, ctx: LowerContext) -> Lowered:
    """sum/prod/max/min/all/any over ``axis``."""
    op, src = node.op, node.inputs[0].owner
    producer = src if src is not None and src in ctx.fused else None
    return ReduceKernel(node, ctx, op.scalar_op, tuple(sorted(op.axis)), op.keepdims, False, producer).lowered()


def lower_reduce_epilogue(node: Apply, reduction: Apply, ctx: LowerContext) -> Lowered:
    """The reduction ``reduction`` with the elementwise ``node`` that alone reads it, as one kernel."""
    op, src = reduction.op, reduction.inputs[0].owner
    producer = src if src is not None and src in ctx.fused else None
    return ReduceKernel(reduction, ctx, op.scalar_op, tuple(sorted(op.axis)), op.keepdims, False, producer,
                        node).lowered()


@lowers("ArgReduce")
def lower_argreduce(node: Apply, ctx: LowerContext) -> Lowered:
    """argmax/argmin along one axis, or over the flattened array (axis=None)."""
    op, x = node.op, node.inputs[0]
    axes = tuple(range(x.ndim)) if op.axis is None else (op.axis,)
    return ReduceKernel(node, ctx, op.which, axes, op.keepdims, True).lowered()
