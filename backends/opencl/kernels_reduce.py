"""Reduction kernels (sum, prod, max, min, all, any; argmax, argmin) along any axes of a strided
input, or of a fused Composite's elementwise program evaluated inside the reduction loop. Three
variants (see ``reduce_source``): a work-item per output element (many short reductions), the
same in lockstep for column-wise reductions on CPU devices, and a work-group per output element
with a local-memory tree (few long reductions)."""
from __future__ import annotations

import numpy as np

from symgraph.graph.basic import Apply
from symgraph.scalar import SCALAR_OPS
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_elemwise import (ScalarProgram, broadcast_shapes, broadcast_strides,
                                                      composite_label, content_named, program_from_composite,
                                                      program_lines, program_of_output)
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


def _offset(k: int, prefix: str, dims: int) -> str:
    """Input ``k``'s element offset for the per-axis indices ``{prefix}*`` (strides ``{prefix}s{k}_*``)."""
    return " + ".join(f"{prefix}{d} * {prefix}s{k}_{d}" for d in range(dims)) or "0"


def reduce_source(name: str, op: str, prog: ScalarProgram, by_value: list[bool], out_dtype, n_kept: int,
                  n_red: int, variant: str, arg: bool = False) -> str:
    """Kernel reducing, over ``n_red`` axes for each output indexed by ``n_kept`` axes, the value that
    ``prog`` computes from its strided inputs (a bare load for a plain reduction; the elementwise
    program of a fused Composite otherwise, so that value never goes through memory). ``op`` is a
    CAReduce op name, or 'max'/'min' with ``arg`` (writes the flat index). ``variant``: 'rows', a
    work-item per output looping on its own; 'columns', the same in lockstep, a barrier per step,
    so pocl runs a group's work-items side by side over neighbouring outputs (a column sum reads
    rows of memory instead of striding down each column); 'tree', a work-group per output."""
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
    params += [f"__global {O} *restrict out", "const long m", "const long len"]
    params += [f"const long kn{d}" for d in range(n_kept)] + [f"const long rn{d}" for d in range(n_red)]
    value_lines, (value,), needed = program_lines(prog, loads)
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
                 f"if (lid == 0) out[o] = {'si[0]' if arg else ('sa[0]' if acc_dtype == out_dtype else f'({O})sa[0]')};"]
        pre = ["const long o = get_group_id(0);", "const long lid = get_local_id(0);"]
        attr = f"__attribute__((reqd_work_group_size({GROUP}, 1, 1)))\n"
    elif variant == "columns":  # every work-item reaches each barrier: the spare ones redo the last output
        body += [f"if (get_global_id(0) < m) out[o] = {final};"]
        pre = ["const long o = min((long)get_global_id(0), m - 1);"]
        attr = f"__attribute__((reqd_work_group_size({COLUMN_GROUP}, 1, 1)))\n"
    else:
        body += [f"out[o] = {final};"]
        pre = ["const long o = get_global_id(0);", "if (o >= m) return;"]
        attr = ""
    code = "\n".join("    " + ln for ln in pre + body if ln)
    dts = [np.dtype(d) for d in prog.input_dtypes + [d for _, _, d in prog.steps]] + [in_dtype, out_dtype]
    head = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" if np.dtype(np.float64) in dts else ""
    helper_src = ks.helpers(helpers | needed)
    return (f"{head}{helper_src}{chr(10) if helper_src else ''}__kernel {attr}void {name}(\n        "
            + ",\n        ".join(params) + f")\n{{\n{code}\n}}\n")


class ReduceKernel:
    """Runs a reduction over fixed axes of a device array, or of the value a fused Composite
    computes from its inputs (``producer``), inside one kernel."""

    def __init__(self, node: Apply, ctx: LowerContext, op: str, axes: tuple, keepdims: bool, arg: bool,
                 producer: Apply | None = None):
        x, out = node.inputs[0], node.outputs[0]
        self.runtime, self.node, self.op, self.arg = ctx.runtime, node, op, arg
        self.axes, self.keepdims, self.out_dtype, self.ndim = axes, keepdims, np.dtype(out.dtype), x.ndim
        if producer is None:
            prog, self.inputs, label = ScalarProgram([x.dtype], [], [("in", 0)], [x.dtype]), [x], str(x.dtype)
        else:
            prog, keep = program_of_output(program_from_composite(producer), node.inputs[0].index)
            self.inputs, label = [producer.inputs[k] for k in keep], composite_label(producer)
        self.shape_node = producer or node  # where a broadcasting error is reported
        self.by_value = [v in ctx.host and v.type.ndim == 0 for v in self.inputs]
        self.value_types = [np.dtype("uint8" if d == "bool" else d) for d in prog.input_dtypes]
        n_red, n_kept = len(axes), x.ndim - len(axes)
        stem = ctx.kernel_name(node, f"{'arg' if arg else ''}{op}_{label}")
        self.names, self.sources = {}, {}
        for variant in VARIANTS if self.runtime.is_cpu else ("rows", "tree"):
            name, src = content_named(f"{stem}_{variant}", lambda n, v=variant: reduce_source(
                n, op, prog, self.by_value, out.dtype, n_kept, n_red, v, arg))
            self.names[variant], self.sources[name] = name, src
        ctx.publish(self.sources)
        self._src = {v: self.sources[name] for v, name in self.names.items()}

    def lowered(self) -> Lowered:
        return Lowered(self, inputs=self.inputs,
                       host_inputs=frozenset(k for k, v in enumerate(self.by_value) if v))

    def __call__(self, ins: list) -> list[DeviceArray]:
        arrays = [a for a, v in zip(ins, self.by_value) if not v]
        xshape = broadcast_shapes(self.shape_node, arrays, self.ndim)
        kept = [d for d in range(self.ndim) if d not in self.axes]
        m = int(np.prod([xshape[d] for d in kept], dtype=np.int64))
        n = int(np.prod([xshape[d] for d in self.axes], dtype=np.int64))
        if self.keepdims:
            shape = tuple(1 if d in self.axes else xshape[d] for d in range(self.ndim))
        else:
            shape = tuple(xshape[d] for d in kept)
        if n == 0 and (self.arg or self.op in ("maximum", "minimum")):
            what = f"attempt to get {self.node.op} of an empty sequence" if self.arg else \
                "zero-size array to reduction operation with no identity"
            raise ValueError(f"{self.node.op}: {what} (input shape {xshape})")
        out = self.runtime.empty(shape, self.out_dtype, f"output of {self.node.op}")
        if m == 0:
            return [out]
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
        args += [out.buffer, np.int64(m), np.int64(n)] + [np.int64(xshape[d]) for d in kept + list(self.axes)]
        variant = ("tree" if n > 256 and m < 4096 else
                   "columns" if self.runtime.is_cpu and fastest_kept < fastest_reduced else "rows")
        k = self.runtime.kernel(self._src[variant], self.names[variant])
        if variant == "tree":
            k(self.runtime.queue, (m * GROUP,), (GROUP,), *args)
        else:
            k(self.runtime.queue, (-(-m // COLUMN_GROUP) * COLUMN_GROUP,), (COLUMN_GROUP,), *args)
        return [out]


@lowers("CAReduce")
def lower_careduce(node: Apply, ctx: LowerContext) -> Lowered:
    """sum/prod/max/min/all/any over ``axis``."""
    op, src = node.op, node.inputs[0].owner
    producer = src if src is not None and src in ctx.fused else None
    return ReduceKernel(node, ctx, op.scalar_op, tuple(sorted(op.axis)), op.keepdims, False, producer).lowered()


@lowers("ArgReduce")
def lower_argreduce(node: Apply, ctx: LowerContext) -> Lowered:
    """argmax/argmin along one axis, or over the flattened array (axis=None)."""
    op, x = node.op, node.inputs[0]
    axes = tuple(range(x.ndim)) if op.axis is None else (op.axis,)
    return ReduceKernel(node, ctx, op.which, axes, op.keepdims, True).lowered()
