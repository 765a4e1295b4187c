"""The general convolution (``Conv``) on the device, as products by the existing matmul (tiled
kernel on GPUs, numpy's BLAS on the zero-copy memory of CPU devices, see kernels_matmul):

* **im2col** (every convolution): a gather kernel writes, for a chunk of the batch, the columns
  ``cols[g, n * P + p, c * K + t]`` (group g, output position p, input channel c, window tap t;
  zero where the tap meets padding, or a position between lhs-dilated elements) into a
  workspace bounded by ``WORKSPACE_BYTES``; one batched product per chunk with the kernel viewed
  as (groups, I * K, O / groups); a strided copy puts the result in (N, O, *out) order.
* **col2im** (lhs dilation with unit strides: the input gradient of a strided convolution, a
  transposed convolution): the product comes first, ``Z[g, n * Pin + i, t * Og + o]`` = input
  element i times tap t, and a gather kernel sums, for each output element, the taps whose
  position meets an input element: no zero-inserted image, no wasted products, and no atomics
  (each output sums its own contributions in a fixed order, so results are deterministic).

Batch groups are handled by the gathers' addressing (group g reads batch rows g * N / B ...).
Mixed-precision operands (float32 input, float64 kernel) have no lowering and run on the host.

An ``Epilogue`` of a convolution (a bias add and activation the fusion pass found reading the
result alone) runs as one step: the convolution, then its program as one elementwise kernel over
the result, named ``conv_<program>`` in ``f.kernels``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.elemwise_kernel import ElementwiseKernel
from symgraph.backends.opencl.kernels_copy import contiguous, copy_into, publish_copy
from symgraph.backends.opencl.kernels_elemwise import WORK_GROUP, content_named, program_label
from symgraph.backends.opencl.kernels_matmul import MatmulKernel
from symgraph.backends.opencl.kernels_reduce import Store, digits
from symgraph.backends.opencl.lowering import EXPAND, LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray
from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply
from symgraph.tensor.conv_numpy import check_shapes
from symgraph.tensor.convolution import Conv
from symgraph.tensor.fused import Epilogue
from symgraph.tensor.type import tensor_inputs, tensor_outputs
from symgraph.tensor.window import out_length, runtime_pads

WORKSPACE_BYTES = 64 << 20
"""Bound on the im2col / col2im workspace of one chunk of the batch (at least one batch item)."""


def _head(dtype: Any) -> str:
    return "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" if np.dtype(dtype) == np.float64 else ""


def _geometry_params(nd: int) -> list[str]:
    """Per spatial axis: input length, output length, window length, stride, low padding, lhs and
    rhs dilation."""
    return [f"const long in{j}, const long un{j}, const long kn{j}, const long st{j}, const long lo{j}, "
            f"const long ad{j}, const long rd{j}" for j in range(nd)]


def im2col_source(name: str, dtype: Any, nd: int) -> str:
    """cols[g][n * P + p][c * K + t] = x[batch(g, n), channel(g, c), position(p, t)] or 0."""
    T = ks.ctype(dtype)
    params = [f"__global const {T} *restrict x", "const long xoff", "const long sn", "const long sc",
              *[f"const long sx{j}" for j in range(nd)], f"__global {T} *restrict cols", "const long total",
              "const long nchunk", "const long nstart", "const long P", "const long I", "const long K",
              "const long gstride", *_geometry_params(nd)]
    body = ["const long e = get_global_id(0);", "if (e >= total) return;",
            "long r = e;", "const long t = r % K; r /= K;", "const long c = r % I; r /= I;",
            "const long p = r % P; r /= P;", "const long n = r % nchunk;", "const long g = r / nchunk;",
            *digits("t", "k", nd), *digits("p", "u", nd),
            "long src = xoff + (nstart + n) * sn + g * gstride + c * sc;", "int ok = 1;"]
    for j in range(nd):
        body += [f"{{ long q = u{j} * st{j} + k{j} * rd{j} - lo{j};",
                 f"  if (ad{j} > 1) {{ if (q % ad{j}) ok = 0; q /= ad{j}; }}",
                 f"  if (q < 0 || q >= in{j}) ok = 0;", f"  src += q * sx{j}; }}"]
    body.append(f"cols[e] = ok ? x[src] : ({T})0;")
    return (f"{_head(dtype)}__kernel void {name}(\n        " + ",\n        ".join(params) + ")\n{\n"
            + "\n".join("    " + ln for ln in body) + "\n}\n")


def col2im_source(name: str, dtype: Any, nd: int) -> str:
    """y[nstart + n][oc][p] = sum over taps t that meet an input element i of Z[g][n * Pin + i][t * Og + o]."""
    T = ks.ctype(dtype)
    params = [f"__global const {T} *restrict z", f"__global {T} *restrict y", "const long total",
              "const long nchunk", "const long nstart", "const long O", "const long Og", "const long P",
              "const long Pin", "const long K", *_geometry_params(nd)]
    body = ["const long e = get_global_id(0);", "if (e >= total) return;",
            "long r = e;", "const long p = r % P; r /= P;", "const long oc = r % O;", "const long n = r / O;",
            "const long g = oc / Og, o = oc % Og;", *digits("p", "u", nd), f"{T} acc = 0;",
            "for (long t = 0; t < K; t++) {", *["    " + ln for ln in digits("t", "k", nd)],
            "    long q = 0; int ok = 1;"]
    for j in range(nd):
        body += [f"    {{ long i = u{j} * st{j} + k{j} * rd{j} - lo{j};",
                 f"      if (i % ad{j}) ok = 0; i /= ad{j};",
                 f"      if (i < 0 || i >= in{j}) ok = 0;", f"      q = q * in{j} + i; }}"]
    body += ["    if (ok) acc += z[((g * nchunk + n) * Pin + q) * (K * Og) + t * Og + o];", "}",
             "y[(nstart + n) * O * P + oc * P + p] = acc;"]
    return (f"{_head(dtype)}__kernel void {name}(\n        " + ",\n        ".join(params) + ")\n{\n"
            + "\n".join("    " + ln for ln in body) + "\n}\n")


@dataclass
class _ProductNode:
    """What MatmulKernel reads of the node it computes: operand and result types, the op and the
    user line (for error messages). The convolution's products are not nodes of the graph."""
    op: Any
    inputs: list
    outputs: list
    trace: Any


def _geometry_args(xs: tuple, out_sp: tuple, ks_: tuple, op: Any, padding: tuple) -> list:
    args = []
    for j in range(len(out_sp)):
        args += [np.int64(v) for v in (xs[j], out_sp[j], ks_[j], op.strides[j], padding[j][0], op.lhs_dilation[j],
                                       op.rhs_dilation[j])]
    return args


class ConvKernel:
    """One Conv node: im2col or col2im around the matmul, chunked over the batch."""

    def __init__(self, node: Apply, ctx: LowerContext):
        self.node, self.op, self.rt = node, node.op_as(Conv), ctx.runtime
        x, out = tensor_inputs(node)[0], tensor_outputs(node)[0]
        self.dtype, nd = np.dtype(out.dtype), self.op.nspatial
        self.mm = MatmulKernel(_ProductNode(node.op, [out, out], [out], node.trace), ctx, "conv")
        self.col2im = (any(a > 1 for a in self.op.lhs_dilation) and set(self.op.strides) == {1}
                       and self.op.batch_group_count == 1)
        make = col2im_source if self.col2im else im2col_source
        self.name, self.source = content_named(f"{'col2im' if self.col2im else 'im2col'}_{out.dtype}_{nd}d",
                                               lambda n: make(n, out.dtype, nd))
        ctx.publish({self.name: self.source})
        publish_copy(ctx, x.dtype, 4)

    def __call__(self, ins: list) -> list:
        x, w = contiguous(ins[0]), contiguous(ins[1])
        op = self.op
        padding = runtime_pads(op.padding, ins[2:], op.nspatial, str(op))
        try:
            check_shapes(x.shape, w.shape, op.feature_group_count, op.batch_group_count)
        except ShapeError as e:
            raise ShapeError(f"{e}\n{node_context(self.node, ins)}") from None
        out_sp = tuple(out_length(n, k, s, lo, hi, a, d) for n, k, s, (lo, hi), a, d
                       in zip(x.shape[2:], w.shape[2:], op.strides, padding, op.lhs_dilation, op.rhs_dilation))
        shape = (x.shape[0] // op.batch_group_count, w.shape[0]) + out_sp
        if 0 in shape:
            return [self.rt.empty(shape, self.dtype, f"output of {op}")]
        y = self.rt.empty(shape, self.dtype, f"output of {op}")
        if w.shape[1] == 0 or 0 in x.shape[2:] or 0 in w.shape[2:]:  # sums over nothing
            copy_into(y, self.rt.to_device(np.zeros(1, self.dtype)))
            return [y]
        (self._by_col2im if self.col2im else self._by_im2col)(x, w, y, padding, out_sp)
        return [y]

    def _by_im2col(self, x: DeviceArray, w: DeviceArray, y: DeviceArray, padding: tuple, out_sp: tuple) -> None:
        op, rt = self.op, self.rt
        b, groups = op.batch_group_count, max(op.feature_group_count, op.batch_group_count)
        o, i, kshape = w.shape[0], w.shape[1], w.shape[2:]
        og, p, k, n_out = o // groups, math.prod(out_sp), math.prod(kshape), y.shape[0]
        wm = w.view((groups, i * k, og), (og * i * k, 1, i * k), w.offset)  # (G, I*K, Og) of contiguous w
        chunk = max(1, min(n_out, WORKSPACE_BYTES // max(1, groups * p * i * k * self.dtype.itemsize)))
        gstride = (x.shape[0] // b) * x.strides[0] if b > 1 else i * x.strides[1]
        kern = rt.kernel(self.source, self.name)
        for n0 in range(0, n_out, chunk):
            nc = min(chunk, n_out - n0)
            cols = rt.empty((groups, nc * p, i * k), self.dtype, f"im2col workspace of {op}")
            total = cols.size
            kern(rt.queue, (-(-total // WORK_GROUP) * WORK_GROUP,), (WORK_GROUP,), x.buffer, np.int64(x.offset),
                 np.int64(x.strides[0]), np.int64(x.strides[1]), *[np.int64(s) for s in x.strides[2:]], cols.buffer,
                 np.int64(total), np.int64(nc), np.int64(n0), np.int64(p), np.int64(i), np.int64(k),
                 np.int64(gstride), *_geometry_args(x.shape[2:], out_sp, kshape, op, padding))
            (prod,) = self.mm([cols, wm])  # (G, nc * P, Og)
            dst = y.view((groups, nc, p, og), (og * p, o * p, 1, p), y.offset + n0 * o * p)
            copy_into(dst, prod.view((groups, nc, p, og), (nc * p * og, p * og, og, 1), prod.offset))

    def _by_col2im(self, x: DeviceArray, w: DeviceArray, y: DeviceArray, padding: tuple, out_sp: tuple) -> None:
        op, rt = self.op, self.rt
        groups = op.feature_group_count
        n, c = x.shape[:2]
        o, i, kshape = w.shape[0], w.shape[1], w.shape[2:]
        og, p, k, pin = o // groups, math.prod(out_sp), math.prod(kshape), math.prod(x.shape[2:])
        wt = rt.empty((groups, i, k, og), self.dtype, f"kernel of {op}")  # wt[g, c, t, o] = w[g * Og + o, c, t]
        copy_into(wt, w.view((groups, i, k, og), (og * i * k, k, 1, i * k), w.offset))
        chunk = max(1, min(n, WORKSPACE_BYTES // max(1, pin * k * o * self.dtype.itemsize)))
        kern = rt.kernel(self.source, self.name)
        for n0 in range(0, n, chunk):
            nc = min(chunk, n - n0)
            rows = rt.empty((nc, pin, c), self.dtype, f"channels-last input of {op}")
            copy_into(rows, x.view((nc, pin, c), (x.strides[0], 1, x.strides[1]), x.offset + n0 * x.strides[0]))
            (z,) = self.mm([rows.view((groups, nc * pin, i), (i, c, 1), rows.offset),
                            wt.view((groups, i, k * og), (i * k * og, k * og, 1), wt.offset)])
            total = nc * o * p
            kern(rt.queue, (-(-total // WORK_GROUP) * WORK_GROUP,), (WORK_GROUP,), z.buffer, y.buffer,
                 np.int64(total), np.int64(nc), np.int64(n0), np.int64(o), np.int64(og), np.int64(p), np.int64(pin),
                 np.int64(k), *_geometry_args(x.shape[2:], out_sp, kshape, op, padding))


@lowers(Conv)
def lower_conv(node: Apply, ctx: LowerContext) -> Lowered | None:
    """Conv as im2col or col2im around the matmul; mixed operand dtypes stay on the host."""
    op = node.op_as(Conv)
    x, w = tensor_inputs(node)[:2]
    if x.dtype != w.dtype:
        return None
    ctx.runtime.check_dtype(tensor_outputs(node)[0].dtype, f"the output of {node.op}")
    hosted = frozenset({2}) if op.padding is None else frozenset()
    return Lowered(ConvKernel(node, ctx), host_inputs=hosted)


class ConvEpilogueKernel:
    """An Epilogue of a Conv: the convolution (``ConvKernel`` on the core node), then the program
    on its result and the other inputs as one elementwise kernel; the store's host scalars are
    passed to that kernel by value."""

    def __init__(self, node: Apply, ctx: LowerContext, store: Store):
        op = node.op_as(Epilogue)
        core, prog_node = op.parts(node.inputs)
        core.trace = prog_node.trace = node.trace
        self.n_core, self.slot = op.n_core, store.slot
        self.conv = ConvKernel(core, ctx)
        bound = list(tensor_inputs(prog_node))
        scalar = [all(n == 1 for n in v.type.shape) for v in bound]
        name = ctx.kernel_name(node, "conv_" + program_label(store.prog))
        self.program = ElementwiseKernel(ctx.runtime, prog_node, store.prog, bound, name, scalar, store.flags())
        ctx.publish(self.program.sources)

    def __call__(self, ins: list) -> list:
        (y,) = self.conv(ins[:self.n_core])
        values = list(ins[self.n_core:])
        values.insert(self.slot, y)
        return self.program(values)


def lower_conv_epilogue(node: Apply, ctx: LowerContext, store: Store) -> Lowered | str:
    """An Epilogue of a Conv as one step (kernels_epilogue dispatches here, with the epilogue's
    ``store``); mixed operand dtypes run it unfused."""
    op = node.op_as(Epilogue)
    x, w = tensor_inputs(node)[:2]
    if x.dtype != w.dtype:
        return EXPAND
    core, _ = op.parts(node.inputs)
    ctx.runtime.check_dtype(tensor_outputs(core)[0].dtype, f"the output of {op.core}")
    hosted = frozenset({2}) if core.op_as(Conv).padding is None else frozenset()
    kernel = ConvEpilogueKernel(node, ctx, store)
    return Lowered(kernel, host_inputs=hosted | store.host_inputs(op.n_core), label=kernel.program.name)
