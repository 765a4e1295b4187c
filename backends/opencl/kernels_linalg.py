"""tensordot (as one matrix product, see kernels_matmul) and row-wise softmax kernels: softmax
and log-softmax take one work-item per row along any axis (max, then sum of exp, then write)."""
from __future__ import annotations

import math

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_copy import contiguous
from symgraph.backends.opencl.kernels_elemwise import content_named
from symgraph.backends.opencl.kernels_matmul import MatmulKernel
from symgraph.backends.opencl.kernels_reduce import digits
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray, _c_strides
from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply
from symgraph.tensor.math import TensorDot
from symgraph.tensor.nnet import LogSoftmax, Softmax, _AxisSoftmax
from symgraph.tensor.type import tensor_inputs


@lowers(TensorDot)
def lower_tensordot(node: Apply, ctx: LowerContext) -> Lowered:
    """tensordot as one matrix product: a's free axes x contracted axes times b's contracted x
    free axes, merged as views where the strides allow (else one contiguous copy)."""
    op = node.op_as(TensorDot)
    mm = MatmulKernel(node, ctx, "tensordot")

    def run(ins: list) -> list:
        a, b = ins
        for ia, ib in zip(op.axes_a, op.axes_b):
            if a.shape[ia] != b.shape[ib]:
                raise ShapeError(f"tensordot: shape mismatch for sum: axis {ia} of {a.shape} and axis {ib} of "
                                 f"{b.shape}\n{node_context(node, ins)}")
        free_a = [d for d in range(a.ndim) if d not in op.axes_a]
        free_b = [d for d in range(b.ndim) if d not in op.axes_b]
        (out,) = mm([as_matrix(a, free_a, list(op.axes_a)), as_matrix(b, list(op.axes_b), free_b)])
        shape = tuple(a.shape[d] for d in free_a) + tuple(b.shape[d] for d in free_b)
        return [out.view(shape, _c_strides(shape), out.offset)]
    return Lowered(run)


def as_matrix(x: DeviceArray, rows: list, cols: list) -> DeviceArray:
    """``x`` with axes ``rows`` merged into one axis and ``cols`` into another: a view when the
    strides allow it, else a contiguous copy of the permuted view."""
    perm = x.view([x.shape[d] for d in rows + cols], [x.strides[d] for d in rows + cols], x.offset)
    shape = (math.prod([x.shape[d] for d in rows]), math.prod([x.shape[d] for d in cols]))

    def merged_stride(group: list):
        dims = [(x.shape[d], x.strides[d]) for d in group if x.shape[d] != 1]
        if not dims:
            return 1
        for (_, s0), (n1, s1) in zip(dims, dims[1:]):
            if s0 != s1 * n1:
                return None
        return dims[-1][1]
    rs, cs = merged_stride(rows), merged_stride(cols)
    if rs is None or cs is None:
        perm = contiguous(perm)
        return perm.view(shape, (shape[1], 1), perm.offset)
    return x.view(shape, (rs, cs), x.offset)


def softmax_source(name: str, dtype, ndim: int, log: bool) -> str:
    """One work-item per row along the softmax axis: max, sum of exp, then write."""
    T = ks.ctype(dtype)
    head = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" if np.dtype(dtype) == np.float64 else ""
    kept = range(ndim - 1)
    write = "log(s)" if log else "1 / s"
    store = "out[q] = (x[p] - m) - ls;" if log else "out[q] = exp(x[p] - m) * inv;"
    params = [f"__global const {T} *restrict x", "const long off", f"__global {T} *restrict out", "const long m_rows",
              "const long len", "const long sa", "const long oa"]
    params += [f"const long kn{d}, const long ks{d}, const long os{d}" for d in range(ndim - 1)]
    body = ["const long o = get_global_id(0);", "if (o >= m_rows) return;", *digits("o", "k", ndim - 1),
            "const long base = " + " + ".join(["off"] + [f"k{d} * ks{d}" for d in kept]) + ";",
            "const long obase = " + " + ".join(["0"] + [f"k{d} * os{d}" for d in kept]) + ";",
            f"{T} m = -INFINITY;", "for (long j = 0; j < len; j++) { const " + T + " v = x[base + j * sa]; "
            "m = (v > m || isnan(v)) ? v : m; }",
            f"{T} s = 0;", "for (long j = 0; j < len; j++) { s += exp(x[base + j * sa] - m); }",
            f"const {T} {'ls' if log else 'inv'} = {write};",
            "for (long j = 0; j < len; j++) { const long p = base + j * sa; const long q = obase + j * oa; "
            + store + " }"]
    return (f"{head}__kernel void {name}(\n        " + ",\n        ".join(params) + ")\n{\n"
            + "\n".join("    " + ln for ln in body) + "\n}\n")


@lowers(Softmax, LogSoftmax)
def lower_softmax(node: Apply, ctx: LowerContext) -> Lowered | None:
    """softmax / log_softmax along one axis: a row kernel."""
    x, log = tensor_inputs(node)[0], isinstance(node.op, LogSoftmax)
    if x.dtype not in ("float32", "float64") or x.ndim == 0:
        return None
    axis = node.op_as(_AxisSoftmax).axis % x.ndim
    name, src = content_named(f"{'log_' if log else ''}softmax_{x.dtype}_{x.ndim}d",
                              lambda n: softmax_source(n, x.dtype, x.ndim, log))
    ctx.publish({name: src})
    rt = ctx.runtime

    def run(ins: list) -> list:
        (a,) = ins
        out = rt.empty(a.shape, a.dtype, f"output of {node.op}")
        kept = [d for d in range(a.ndim) if d != axis]
        rows = math.prod([a.shape[d] for d in kept])
        if out.size == 0:
            return [out]
        args = [a.buffer, np.int64(a.offset), out.buffer, np.int64(rows), np.int64(a.shape[axis]),
                np.int64(a.strides[axis]), np.int64(out.strides[axis])]
        for d in kept:
            args += [np.int64(a.shape[d]), np.int64(a.strides[d]), np.int64(out.strides[d])]
        rt.kernel(src, name)(rt.queue, (-(-rows // 64) * 64,), (64,), *args)
        return [out]
    return Lowered(run)
