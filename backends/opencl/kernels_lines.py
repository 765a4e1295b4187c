"""Ops that work along one axis, as kernels with one work-item per line: cumulative sums and
products (CumOp), sort and argsort (a stable merge sort of each line), and the take/scatter pair
along an axis that gives sort its gradient. The axis is moved last and the input made contiguous
(one strided copy kernel); the result is a strided view that puts the axis back.

Also the identity-like ops that need no kernel: SpecifyShape (checks shapes from metadata),
DependsOn (a view), and Print (reads its value to the host to print it, passes the device array on).
"""
from __future__ import annotations

import math

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_copy import broadcast_view, contiguous, copy_into, publish_copy
from symgraph.backends.opencl.kernels_elemwise import WORK_GROUP, content_named
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray, Runtime
from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply
from symgraph.printing.print_op import Print
from symgraph.tensor.dims import SpecifyShape
from symgraph.tensor.extra_ops import CumOp
from symgraph.tensor.gradient_ops import DependsOn
from symgraph.tensor.sort import ArgSort, ScatterAddAlongAxis, Sort, TakeAlongAxis
from symgraph.tensor.type import tensor_inputs, tensor_outputs


def _head(*dtypes) -> str:
    return "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" if any(ks.ctype(d) == "double" for d in dtypes) else ""


def _axis_last(x: DeviceArray, axis: int) -> DeviceArray:
    """``x`` with ``axis`` moved last, as a contiguous array (rows, n) in memory from its buffer's
    start (the line kernels take no offset: a view of a later row, as a loop's row, is copied)."""
    perm = [d for d in range(x.ndim) if d != axis] + [axis]
    v = x.view([x.shape[d] for d in perm], [x.strides[d] for d in perm], x.offset)
    if v.offset == 0:
        return contiguous(v)
    out = x.runtime.empty(v.shape, v.dtype, "contiguous copy", kernel_output=True)
    copy_into(out, v)
    return out


def _axis_back(out: DeviceArray, axis: int) -> DeviceArray:
    """The inverse of _axis_last for a contiguous (…, n) array: a strided view in the original order."""
    nd = out.ndim
    perm = [d for d in range(nd) if d != axis] + [axis]
    shape, strides = [0] * nd, [0] * nd
    for k, d in enumerate(perm):
        shape[d], strides[d] = out.shape[k], out.strides[k]
    return out.view(shape, strides, out.offset)


def _launch(rt: Runtime, source: str, name: str, rows: int, args: list) -> None:
    if rows:
        rt.kernel(source, name)(rt.queue, (-(-rows // WORK_GROUP) * WORK_GROUP,), (WORK_GROUP,), *args)


def _lines(x: DeviceArray, axis: int) -> tuple[int, int]:
    n = x.shape[axis]
    return (x.size // n if n else math.prod(s for d, s in enumerate(x.shape) if d != axis)), n


# ---------------------------------------------------------------- cumulative sum / product
def cum_source(name: str, in_dtype, out_dtype, mode: str) -> str:
    TI, TO = ks.ctype(in_dtype), ks.ctype(out_dtype)
    op, init = ("+", "0") if mode == "add" else ("*", "1")
    return (f"{_head(in_dtype, out_dtype)}__kernel void {name}(__global const {TI} *x, __global {TO} *out, "
            f"const long rows, const long n)\n{{\n    const long r = get_global_id(0);\n    if (r >= rows) return;\n"
            f"    {TO} acc = ({TO}){init};\n    for (long j = 0; j < n; ++j) {{ acc = acc {op} ({TO})x[r * n + j]; "
            f"out[r * n + j] = acc; }}\n}}\n")


@lowers(CumOp)
def lower_cum(node: Apply, ctx: LowerContext) -> Lowered:
    """cumsum/cumprod: each line accumulated in order by one work-item (numpy's order of additions)."""
    x_t, out_t, op = tensor_inputs(node)[0], tensor_outputs(node)[0], node.op_as(CumOp)
    name, src = content_named(f"cum{op.mode}_{x_t.dtype}_{out_t.dtype}",
                              lambda n: cum_source(n, x_t.dtype, out_t.dtype, op.mode))
    ctx.publish({name: src})
    publish_copy(ctx, x_t.dtype, x_t.ndim)

    def run(ins: list) -> list:
        x = _axis_last(ins[0], op.axis)
        rows, n = _lines(ins[0], op.axis)
        out = ctx.runtime.empty(x.shape, out_t.dtype, f"output of {op}")
        if out.size:
            _launch(ctx.runtime, src, name, rows, [x.buffer, out.buffer, np.int64(rows), np.int64(n)])
        return [_axis_back(out, op.axis)]
    return Lowered(run)


# ---------------------------------------------------------------- sort / argsort
def sort_source(name: str, dtype) -> str:
    """A stable bottom-up merge sort of each line of values with their indices; NaN sort last."""
    T = ks.ctype(dtype)
    less = "((a) < (b) || (isnan(b) && !isnan(a)))" if np.dtype(dtype).kind == "f" else "((a) < (b))"
    return f"""{_head(dtype)}#define LESS(a, b) {less}
__kernel void {name}(__global const {T} *x, __global {T} *v0, __global {T} *v1, __global long *i0,
                     __global long *i1, const long rows, const long n)
{{
    const long r = get_global_id(0);
    if (r >= rows) return;
    __global {T} *sv = v0 + r * n, *dv = v1 + r * n;
    __global long *si = i0 + r * n, *di = i1 + r * n;
    for (long j = 0; j < n; ++j) {{ sv[j] = x[r * n + j]; si[j] = j; }}
    for (long w = 1; w < n; w *= 2) {{
        for (long lo = 0; lo < n; lo += 2 * w) {{
            const long mid = min(lo + w, n), hi = min(lo + 2 * w, n);
            long a = lo, b = mid, k = lo;
            while (a < mid && b < hi) {{
                if (LESS(sv[b], sv[a])) {{ dv[k] = sv[b]; di[k++] = si[b++]; }}
                else {{ dv[k] = sv[a]; di[k++] = si[a++]; }}
            }}
            while (a < mid) {{ dv[k] = sv[a]; di[k++] = si[a++]; }}
            while (b < hi) {{ dv[k] = sv[b]; di[k++] = si[b++]; }}
        }}
        __global {T} *tv = sv; sv = dv; dv = tv;
        __global long *ti = si; si = di; di = ti;
    }}
    if (sv != v0 + r * n) {{ for (long j = 0; j < n; ++j) {{ dv[j] = sv[j]; di[j] = si[j]; }} }}
}}
"""


def _lower_sort(node: Apply, ctx: LowerContext, axis: int, want_indices: bool) -> Lowered:
    x_t = tensor_inputs(node)[0]
    name, src = content_named(f"sort_{x_t.dtype}", lambda n: sort_source(n, x_t.dtype))
    ctx.publish({name: src})
    publish_copy(ctx, x_t.dtype, x_t.ndim)
    rt = ctx.runtime

    def run(ins: list) -> list:
        x = _axis_last(ins[0], axis)
        rows, n = _lines(ins[0], axis)
        v0, v1 = rt.empty(x.shape, x_t.dtype, "sorted values"), rt.empty(x.shape, x_t.dtype, "sort scratch")
        i0, i1 = rt.empty(x.shape, "int64", "sort indices"), rt.empty(x.shape, "int64", "sort scratch")
        if x.size:
            _launch(rt, src, name, rows, [x.buffer, v0.buffer, v1.buffer, i0.buffer, i1.buffer, np.int64(rows),
                                          np.int64(n)])
        return [_axis_back(i0 if want_indices else v0, axis)]
    return Lowered(run)


@lowers(Sort)
def lower_sort(node: Apply, ctx: LowerContext) -> Lowered:
    """sort along an axis: a stable merge sort per line (one work-item each)."""
    return _lower_sort(node, ctx, node.op_as(Sort).axis, want_indices=False)


@lowers(ArgSort)
def lower_argsort(node: Apply, ctx: LowerContext) -> Lowered:
    """argsort along an axis: the indices of the stable merge sort (ties keep their order)."""
    return _lower_sort(node, ctx, node.op_as(ArgSort).axis, want_indices=True)


# ---------------------------------------------------------------- take / scatter-add along an axis
def along_source(name: str, dtype, idx_dtype, scatter: bool) -> str:
    """Take: out[r, j] = x[r, idx[r, j]]; scatter-add: out[r, idx[r, j]] += v[r, j] (out starts as
    a copy of the base), one line per work-item so repeated indices add without atomics. Negative
    indices count from the end; others out of range are recorded in the checks buffer."""
    T, IT = ks.ctype(dtype), ks.ctype(idx_dtype)
    check = ("if (q < 0) q += n; if (q < 0 || q >= n) { if (atomic_cmpxchg((__global int *)(err + 4 * slot), 0, 1) "
             "== 0) { err[4 * slot + 1] = idx[r * m + j]; err[4 * slot + 2] = axis; err[4 * slot + 3] = n; } "
             "continue; }")
    step = "out[r * n + q] += v[r * m + j];" if scatter else "out[r * m + j] = x[r * n + q];"
    params = (f"__global {T} *out, __global const {T} *x, __global const {IT} *idx, __global const {T} *v, "
              "const long rows, const long n, const long m, __global long *err, const long slot, const long axis")
    return (f"{_head(dtype)}__kernel void {name}({params})\n{{\n    const long r = get_global_id(0);\n"
            f"    if (r >= rows) return;\n    for (long j = 0; j < m; ++j) {{\n        long q = (long)idx[r * m + j];\n"
            f"        {check}\n        {step}\n    }}\n}}\n")


def _lower_along(node: Apply, ctx: LowerContext, axis: int, scatter: bool) -> Lowered:
    op, out_t = node.op, tensor_outputs(node)[0]
    idx_t = tensor_inputs(node)[1]
    name, src = content_named(f"{'scatter_add' if scatter else 'take'}_along_{out_t.dtype}_{idx_t.dtype}",
                              lambda n: along_source(n, out_t.dtype, idx_t.dtype, scatter))
    ctx.publish({name: src})
    publish_copy(ctx, out_t.dtype, out_t.ndim)
    publish_copy(ctx, idx_t.dtype, idx_t.ndim)
    rt = ctx.runtime
    slot = ctx.checks.slot(node, lambda bad, ax, n: f"{op}: index {bad} is out of bounds for axis {ax} with size {n}")

    def run(ins: list) -> list:
        x, idx = ins[0], ins[1]
        others = [d for d in range(x.ndim) if d != axis]
        if any(x.shape[d] != idx.shape[d] for d in others):
            raise ShapeError(f"{op}: indices of shape {idx.shape} do not match {x.shape} outside axis {axis}\n"
                             + node_context(node, ins))
        xl, il = _axis_last(x, axis), _axis_last(idx, axis)
        rows, n, m = math.prod(x.shape[d] for d in others), x.shape[axis], idx.shape[axis]
        if scatter:
            out = rt.empty(xl.shape, out_t.dtype, f"output of {op}")
            copy_into(out, xl)
            vl = _axis_last(broadcast_view(ins[2], tuple(idx.shape)), axis)
        else:
            out = rt.empty(il.shape, out_t.dtype, f"output of {op}")
            vl = xl  # unused
        if rows and m:
            _launch(rt, src, name, rows, [out.buffer, xl.buffer, il.buffer, vl.buffer, np.int64(rows), np.int64(n),
                                          np.int64(m), ctx.checks.buffer(), np.int64(slot), np.int64(axis)])
            ctx.checks.ran()
        return [_axis_back(out, axis)]
    return Lowered(run)


@lowers(TakeAlongAxis)
def lower_take_along(node: Apply, ctx: LowerContext) -> Lowered:
    """take_along_axis: one line per work-item, indices checked."""
    return _lower_along(node, ctx, node.op_as(TakeAlongAxis).axis, scatter=False)


@lowers(ScatterAddAlongAxis)
def lower_scatter_add_along(node: Apply, ctx: LowerContext) -> Lowered:
    """scatter_add_along_axis: a copy of the base, then one line per work-item adds its values."""
    return _lower_along(node, ctx, node.op_as(ScatterAddAlongAxis).axis, scatter=True)


# ---------------------------------------------------------------- identity-like ops
@lowers(SpecifyShape)
def lower_specify_shape(node: Apply, ctx: LowerContext) -> Lowered:
    """specify_shape: the input itself, after checking its shape from metadata (no transfer)."""
    op = node.op_as(SpecifyShape)

    def run(ins: list) -> list:
        x = ins[0]
        for d, want in zip(op.axes, ins[1:]):
            if x.shape[d] != int(want):
                raise ShapeError(f"specify_shape: dimension {d} has length {x.shape[d]}, specified {int(want)} "
                                 f"(shape {x.shape})\n{node_context(node, ins)}")
        return [x]
    return Lowered(run, kind="view", host_inputs=frozenset(range(1, len(node.inputs))))


@lowers(DependsOn)
def lower_depends_on(node: Apply, ctx: LowerContext) -> Lowered:
    """Rop's depends_on(x, ...): x itself (the other inputs are never read)."""
    return Lowered(lambda ins: [ins[0]], kind="view", inputs=[node.inputs[0]])


@lowers(Print)
def lower_print(node: Apply, ctx: LowerContext) -> Lowered:
    """Print: copies the value to the host to print it; the device array itself is the output."""
    op = node.op_as(Print)

    def run(ins: list) -> list:
        op.global_fn(op, ins[0].to_host(copy=True))
        return [ins[0]]
    return Lowered(run, kind="view")
