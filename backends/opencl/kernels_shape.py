"""Shape ops on the device: shapes read from array metadata (no transfer), reshape/subtensor/
broadcast as views where the strides allow, and small kernels for concatenate, alloc, arange."""
from __future__ import annotations

import math

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_copy import broadcast_view, contiguous, copy_into, publish_copy
from symgraph.backends.opencl.kernels_elemwise import WORK_GROUP, content_named
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray, _c_strides
from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply
from symgraph.tensor.alloc import Alloc, ARange
from symgraph.tensor.gradient_ops import BroadcastCheck, check_shape_vectors
from symgraph.tensor.reduction import BroadcastLike, ReducedSize
from symgraph.tensor.shape import Join, MakeVector, Reshape, Shape, Shape_i
from symgraph.tensor.subtensor import Subtensor
from symgraph.tensor.type import tensor_inputs, tensor_outputs


@lowers(Shape)
def lower_shape(node: Apply, ctx: LowerContext) -> Lowered:
    """x.shape from the array's metadata: a host value, no transfer."""
    return Lowered(lambda ins: [np.array(ins[0].shape, dtype=np.int64)], kind="meta")


@lowers(Shape_i)
def lower_shape_i(node: Apply, ctx: LowerContext) -> Lowered:
    """x.shape[i] from the array's metadata."""
    op = node.op_as(Shape_i)
    i = op.i
    return Lowered(lambda ins: [np.array(ins[0].shape[i], dtype=np.int64)], kind="meta")


@lowers(ReducedSize)
def lower_reduced_size(node: Apply, ctx: LowerContext) -> Lowered:
    """The element count along some axes (mean's divisor) of the broadcast of the inputs, from metadata."""
    op = node.op_as(ReducedSize)
    axes = op.axis

    def run(ins: list) -> list:
        shape = ins[0].shape if len(ins) == 1 else np.broadcast_shapes(*(x.shape for x in ins))
        return [np.array(math.prod([shape[a] for a in axes]), dtype=np.int64)]
    return Lowered(run, kind="meta")


@lowers(BroadcastCheck)
def lower_broadcast_check(node: Apply, ctx: LowerContext) -> Lowered:
    """sg.grad's run-time broadcast check: reads only its inputs' shapes, gives a host 1."""
    op = node.op_as(BroadcastCheck)
    one = np.ones((), op.dtype)

    def run(ins: list) -> list:
        check_shape_vectors(op, [x.to_host() if isinstance(x, DeviceArray) else x for x in ins])
        return [one]
    return Lowered(run, kind="meta")


@lowers(BroadcastLike)
def lower_broadcast_like(node: Apply, ctx: LowerContext) -> Lowered:
    """g broadcast to like's shape: a stride-0 view (like's values are never read)."""
    def run(ins: list) -> list:
        return [broadcast_view(ins[0], tuple(ins[1].shape))]
    return Lowered(run, kind="view")


@lowers(Reshape)
def lower_reshape(node: Apply, ctx: LowerContext) -> Lowered:
    """Reshape: a view of a C-contiguous input (copied to contiguous first when needed)."""
    publish_copy(ctx, tensor_inputs(node)[0].dtype, tensor_inputs(node)[0].ndim)

    def run(ins: list) -> list:
        x, shp = ins
        shape = _new_shape(x, [int(v) for v in shp], node, ins)
        x = contiguous(x)
        return [x.view(shape, _c_strides(shape), x.offset)]
    return Lowered(run, kind="view", host_inputs=frozenset({1}))


def _new_shape(x: DeviceArray, shp: list, node: Apply, ins: list) -> tuple:
    """numpy's reshape rule (one -1 is inferred); ShapeError naming the node otherwise."""
    free = [k for k, v in enumerate(shp) if v == -1]
    known = math.prod([v for v in shp if v != -1])
    bad = len(free) > 1 or any(v < -1 for v in shp)
    if not bad and free:
        bad = known == 0 or x.size % known != 0
        if not bad:
            shp[free[0]] = x.size // known
    if bad or known * (x.size // known if free and known else 1) != x.size:
        raise ShapeError(f"reshape: cannot reshape an array of shape {x.shape} (size {x.size}) into shape "
                         f"{tuple(shp)}\n{node_context(node, ins)}")
    return tuple(shp)


def _index_view(x: DeviceArray, index: tuple) -> DeviceArray:
    """numpy basic indexing applied to the view's metadata: numpy computes the shape, strides and
    offset on a zero-size stand-in, and raises numpy's own IndexError."""
    item = x.dtype.itemsize
    base = np.zeros(1, dtype=x.dtype)
    fake = np.lib.stride_tricks.as_strided(base, x.shape, [s * item for s in x.strides])
    view = fake[tuple(index) + (Ellipsis,)]  # Ellipsis: a 0-d view, never a numpy scalar
    moved = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // item
    return x.view(view.shape, [s // item for s in view.strides], x.offset + moved)


@lowers(Subtensor)
def lower_subtensor(node: Apply, ctx: LowerContext) -> Lowered:
    """Basic indexing (ints, slices, newaxis): a view."""
    op = node.op_as(Subtensor)
    if op.advanced or type(op) is not Subtensor:
        return None

    def run(ins: list) -> list:
        return [_index_view(ins[0], op.np_index(ins[1:]))]
    return Lowered(run, kind="view", host_inputs=frozenset(range(1, len(node.inputs))))


@lowers(Join)
def lower_join(node: Apply, ctx: LowerContext) -> Lowered:
    """concatenate: each input copied into its slice of the output."""
    op = node.op_as(Join)
    axis, dtype, ndim = op.axis, tensor_outputs(node)[0].dtype, tensor_outputs(node)[0].ndim
    publish_copy(ctx, dtype, ndim)

    def run(ins: list) -> list:
        first = ins[0].shape
        for x in ins[1:]:
            if x.ndim != len(first) or any(a != b for d, (a, b) in enumerate(zip(x.shape, first)) if d != axis):
                raise ShapeError(f"concatenate: shapes {[x.shape for x in ins]} differ outside axis {axis}\n"
                                 + node_context(node, ins))
        shape = list(first)
        shape[axis] = sum(x.shape[axis] for x in ins)
        out = ins[0].runtime.empty(shape, dtype, "concatenate output")
        start = 0
        for x in ins:
            idx = (slice(None),) * axis + (slice(start, start + x.shape[axis]),)
            copy_into(_index_view(out, idx), x)
            start += x.shape[axis]
        return [out]
    return Lowered(run)


@lowers(Alloc)
def lower_alloc(node: Apply, ctx: LowerContext) -> Lowered:
    """alloc/zeros/ones: the value broadcast into a new contiguous array."""
    out_t = tensor_outputs(node)[0]
    publish_copy(ctx, out_t.dtype, out_t.ndim)
    static = tensor_inputs(node)[0].type.shape

    def run(ins: list) -> list:
        value, shp = ins[0], tuple(int(s) for s in ins[1:])
        lead = len(shp) - value.ndim
        for d, vd in enumerate(value.shape):
            if vd != shp[lead + d] and static[d] != 1:
                raise ShapeError(f"alloc: value of shape {value.shape} does not fit shape {shp} in dimension "
                                 f"{lead + d} (only static length-1 dims broadcast)\n" + node_context(node, ins))
        out = value.runtime.empty(shp, out_t.dtype, "alloc output")
        copy_into(out, value)
        return [out]
    return Lowered(run, host_inputs=frozenset(range(1, len(node.inputs))))


def _arange_source(name: str, dtype) -> str:
    """numpy's fill rule: out[i] = start + i * (x1 - start) in the output dtype, no fused multiply-add."""
    T = W = ks.ctype(dtype)
    fp64 = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" if W == "double" else ""
    head = "#pragma OPENCL FP_CONTRACT OFF\n" + fp64
    return (f"{head}__kernel void {name}(__global {T} *out, const {W} start, const {W} step, const long n)\n"
            f"{{\n    const long i = get_global_id(0);\n    if (i < n) out[i] = ({T})(start + ({W})i * step);\n}}\n")


@lowers(ARange)
def lower_arange(node: Apply, ctx: LowerContext) -> Lowered:
    """arange(start, stop, step): one work-item per element."""
    dtype = np.dtype(tensor_outputs(node)[0].dtype)
    name, src = content_named(f"arange_{dtype.name}", lambda n: _arange_source(n, dtype))
    ctx.publish({name: src})

    def run(ins: list) -> list:
        start, stop, step = (np.asarray(v).item() for v in ins)
        n = max(0, int(np.ceil((stop - start) / step)))
        out = ctx.runtime.empty((n,), dtype, "arange output")
        if n:
            k = ctx.runtime.kernel(src, name)
            k(ctx.runtime.queue, (-(-n // WORK_GROUP) * WORK_GROUP,), (WORK_GROUP,), out.buffer,
              dtype.type(start), dtype.type(start + step) - dtype.type(start), np.int64(n))
        return [out]
    return Lowered(run, host_inputs=frozenset({0, 1, 2}))


@lowers(MakeVector)
def lower_make_vector(node: Apply, ctx: LowerContext) -> Lowered:
    """A vector of 0-d device values: each copied into its entry."""
    dtype = tensor_outputs(node)[0].dtype
    publish_copy(ctx, dtype, 0)

    def run(ins: list) -> list:
        out = ctx.runtime.empty((len(ins),), dtype, "make_vector output")
        for k, x in enumerate(ins):
            copy_into(out.view((), (), k), x)
        return [out]
    return Lowered(run)
