"""Matrix products and row-wise softmax kernels.

Matmul is a batched, tiled kernel (TILE x TILE work-groups staging both operands in local
memory); operands are read through their strides, so transposed views need no copy. Softmax
and log-softmax take one work-item per row along any axis (max, then sum of exp, then write)."""
from __future__ import annotations

import numpy as np

from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_elemwise import content_named
from symgraph.backends.opencl.kernels_reduce import digits
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.kernels_copy import contiguous
from symgraph.backends.opencl.runtime import DeviceArray, _c_strides

TILE = 16


def matmul_source(name: str, a_dtype, b_dtype, out_dtype) -> str:
    """C[t] = A[t] @ B[t] for each batch index t; A, B strided, C contiguous (t, M, N)."""
    A, B, O = ks.ctype(a_dtype), ks.ctype(b_dtype), ks.ctype(out_dtype)
    accumulate = ("acc |= As[li][k] & Bs[k][lj];" if np.dtype(out_dtype).kind == "b"  # bool: any(a & b)
                  else "acc += As[li][k] * Bs[k][lj];")
    head = ("#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
            if np.float64 in (np.dtype(a_dtype), np.dtype(b_dtype), np.dtype(out_dtype)) else "")
    return f"""{head}#define TILE {TILE}
__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void {name}(
        __global const {A} *a, const long aoff, const long sat, const long sai, const long sak,
        __global const {B} *b, const long boff, const long sbt, const long sbk, const long sbj,
        __global {O} *c, const long coff, const long M, const long N, const long K)
{{
    const int li = get_local_id(1), lj = get_local_id(0);
    const long i = get_group_id(1) * TILE + li, j = get_group_id(0) * TILE + lj, t = get_global_id(2);
    __local {O} As[TILE][TILE];
    __local {O} Bs[TILE][TILE + 1];
    const long abase = aoff + t * sat, bbase = boff + t * sbt;
    {O} acc = 0;
    for (long k0 = 0; k0 < K; k0 += TILE) {{
        As[li][lj] = (i < M && k0 + lj < K) ? ({O})a[abase + i * sai + (k0 + lj) * sak] : ({O})0;
        Bs[li][lj] = (k0 + li < K && j < N) ? ({O})b[bbase + (k0 + li) * sbk + j * sbj] : ({O})0;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TILE; k++) {{
            {accumulate}
        }}
        barrier(CLK_LOCAL_MEM_FENCE);
    }}
    if (i < M && j < N) {{
        c[coff + t * M * N + i * N + j] = acc;
    }}
}}
"""


class MatmulKernel:
    """numpy.dot / numpy.matmul semantics on device arrays (1-d operands promoted, batch broadcast).

    On a zero-copy CPU device (``runtime.host_blas``) float products run in numpy's BLAS on the
    shared memory instead. Measured with benchmarks/opencl_elementwise.py on the 2-core pocl CPU,
    784-512-512-10 MLP SGD step at batch 256, float32 (quiet machine): numpy backend 7.6 ms; OpenCL
    with host BLAS 11.3 ms (1.5x); OpenCL with this tiled kernel 187 ms (25x).
    Hence BLAS on CPUs, the kernel on GPUs. (The ratio varies with the load on this shared machine: 1.4x-2.0x.)"""

    def __init__(self, node: Apply, ctx: LowerContext, kind: str):
        a, b = node.inputs
        self.node, self.rt, self.kind = node, ctx.runtime, kind
        self.out_dtype = np.dtype(node.outputs[0].dtype)
        self.name, self.source = content_named(f"matmul_{a.dtype}_{b.dtype}",
                                               lambda n: matmul_source(n, a.dtype, b.dtype, self.out_dtype))
        ctx.publish({self.name: self.source})

    def __call__(self, ins: list[DeviceArray]) -> list[DeviceArray]:
        a, b = ins
        a2 = a.view((1,) + a.shape, (0,) + a.strides, a.offset) if a.ndim == 1 else a
        b2 = b.view(b.shape + (1,), b.strides + (0,), b.offset) if b.ndim == 1 else b
        if a2.shape[-1] != b2.shape[-2]:
            raise ShapeError(f"{self.kind}: shapes {a.shape} and {b.shape} are not aligned (inner dimensions "
                             f"{a2.shape[-1]} and {b2.shape[-2]} differ)\n{node_context(self.node, ins)}")
        M, K, N = a2.shape[-2], a2.shape[-1], b2.shape[-1]
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        out_shape = batch + ((M,) if a.ndim > 1 else ()) + ((N,) if b.ndim > 1 else ())
        out = self.rt.empty(out_shape, self.out_dtype, f"output of {self.node.op}")
        if out.size == 0:
            return [out]
        if K == 0:
            from symgraph.backends.opencl.kernels_copy import copy_into
            zero = self.rt.to_device(np.zeros((), self.out_dtype))
            copy_into(out, zero)
            return [out]
        if self.rt.host_blas and self.out_dtype.kind == "f" and a.host is not None and b.host is not None:
            self.rt.queue.finish()  # the operands' producers are done; numpy writes the result in place
            np.matmul(a2.host_view(), b2.host_view(), out=out.host_view().reshape(batch + (M, N)))
            return [out]
        nb = len(batch)
        ab = [0 if n == 1 else s for n, s in zip((1,) * (nb - a2.ndim + 2) + a2.shape[:-2],
                                                 (0,) * (nb - a2.ndim + 2) + a2.strides[:-2])]
        bb = [0 if n == 1 else s for n, s in zip((1,) * (nb - b2.ndim + 2) + b2.shape[:-2],
                                                 (0,) * (nb - b2.ndim + 2) + b2.strides[:-2])]
        k = self.rt.kernel(self.source, self.name)
        lead = list(np.ndindex(*batch[:-1])) if nb > 1 else [()]
        t_count = batch[-1] if nb else 1
        for idx in lead:  # batch axes beyond the last run one launch each
            ao = a2.offset + sum(i * s for i, s in zip(idx, ab))
            bo = b2.offset + sum(i * s for i, s in zip(idx, bb))
            co = int(np.ravel_multi_index(idx, batch[:-1])) * t_count * M * N if idx else 0
            k(self.rt.queue, (-(-N // TILE) * TILE, -(-M // TILE) * TILE, t_count), (TILE, TILE, 1),
              a2.buffer, np.int64(ao), np.int64(ab[-1] if nb else 0), np.int64(a2.strides[-2]),
              np.int64(a2.strides[-1]), b2.buffer, np.int64(bo), np.int64(bb[-1] if nb else 0),
              np.int64(b2.strides[-2]), np.int64(b2.strides[-1]), out.buffer, np.int64(co), np.int64(M), np.int64(N),
              np.int64(K))
        return [out]


@lowers("Dot", "MatMul")
def lower_matmul(node: Apply, ctx: LowerContext) -> Lowered | None:
    """dot and matmul as the tiled kernel (bool: or of ands)."""
    return Lowered(MatmulKernel(node, ctx, "dot" if type(node.op).__name__ == "Dot" else "matmul"))


@lowers("TensorDot")
def lower_tensordot(node: Apply, ctx: LowerContext) -> Lowered:
    """tensordot as one matrix product: a's free axes x contracted axes times b's contracted x
    free axes, merged as views where the strides allow (else one contiguous copy)."""
    op = node.op
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
    shape = (int(np.prod([x.shape[d] for d in rows], dtype=np.int64)),
             int(np.prod([x.shape[d] for d in cols], dtype=np.int64)))

    def merged_stride(group: list):
        dims = [(x.shape[d], x.strides[d]) for d in group if x.shape[d] != 1]
        if not dims:
            return 1
        for (n0, s0), (n1, s1) in zip(dims, dims[1:]):
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


@lowers("Softmax", "LogSoftmax")
def lower_softmax(node: Apply, ctx: LowerContext) -> Lowered | None:
    """softmax / log_softmax along one axis: a row kernel."""
    x, log = node.inputs[0], type(node.op).__name__ == "LogSoftmax"
    if x.dtype not in ("float32", "float64") or x.ndim == 0:
        return None
    axis = node.op.axis % x.ndim
    name, src = content_named(f"{'log_' if log else ''}softmax_{x.dtype}_{x.ndim}d",
                              lambda n: softmax_source(n, x.dtype, x.ndim, log))
    ctx.publish({name: src})
    rt = ctx.runtime

    def run(ins: list) -> list:
        (a,) = ins
        out = rt.empty(a.shape, a.dtype, f"output of {node.op}")
        kept = [d for d in range(a.ndim) if d != axis]
        rows = int(np.prod([a.shape[d] for d in kept], dtype=np.int64))
        if out.size == 0:
            return [out]
        args = [a.buffer, np.int64(a.offset), out.buffer, np.int64(rows), np.int64(a.shape[axis]),
                np.int64(a.strides[axis]), np.int64(out.strides[axis])]
        for d in kept:
            args += [np.int64(a.shape[d]), np.int64(a.strides[d]), np.int64(out.strides[d])]
        rt.kernel(src, name)(rt.queue, (-(-rows // 64) * 64,), (64,), *args)
        return [out]
    return Lowered(run)
