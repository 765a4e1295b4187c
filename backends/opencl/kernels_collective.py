"""OpenCL steps for the MPI collectives: MPI reduces host memory, so an all-reduce reads its
input on the host and writes its result into a device array's host side. On a device that
shares host memory (pocl, integrated GPUs) nothing is copied by us: MPI reads the input's own
memory (counted in TRANSFERS['zero_copy_out']) and writes the result into a pooled device
array's ('zero_copy_in'). Elsewhere the input is downloaded into a reused host buffer
('to_host'), all-reduced in place and uploaded ('to_device'). A bucket packs its inputs into one
flat buffer, reduces it in one call and hands out views of one device array: one upload, not
one per gradient. The step is a planned part of the schedule, not a host fallback."""
from __future__ import annotations

import numpy as np

from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import TRANSFERS, DeviceArray, Runtime, _c_strides, _cl
from symgraph.graph.basic import Apply
from symgraph.tensor.collective import STATS, AllReduce, AllReduceBucket, Buffers, allreduce_inplace, allreduce_to
from symgraph.tensor.type import tensor_outputs


def _download(rt: Runtime, x: DeviceArray, host: np.ndarray) -> None:
    """Copy device array ``x`` into the C-contiguous host array ``host`` of its size (a reused
    buffer, not a fresh one per call)."""
    if x.is_contiguous and x.size:
        _cl().enqueue_copy(rt.queue, host, x.buffer, src_offset=x.offset * x.dtype.itemsize, is_blocking=True)
        TRANSFERS["to_host"] += 1
    else:
        host[...] = x.to_host().reshape(host.shape)


def _host_side(rt: Runtime, x: DeviceArray) -> np.ndarray:
    """``x``'s values on the host for MPI to read (never written): on a device sharing host
    memory, a view of that memory once the queue has finished (even of a caller's borrowed
    array: it is only read), else a download."""
    if x.host is not None and x.size:
        rt.wait("read")
        TRANSFERS["zero_copy_out"] += 1
        return x.host_view()
    return x.to_host()


@lowers(AllReduce)
def _allreduce(node: Apply, ctx: LowerContext) -> Lowered:
    rt, op = ctx.runtime, node.op_as(AllReduce).op
    buffers = Buffers(tensor_outputs(node)[0].dtype)

    def run(inputs: list) -> list:
        x = inputs[0]
        if rt.zero_copy:  # MPI reads x's memory and writes the result's
            out = rt.empty(x.shape, x.dtype, "all-reduced value")
            allreduce_to(_host_side(rt, x), out.host_view(), op)
            TRANSFERS["zero_copy_in"] += 1
            return [out]
        host = buffers.take(tuple(x.shape))
        _download(rt, x, host)
        return [rt.to_device(allreduce_inplace(host, op), "all-reduced value")]
    return Lowered(run, label=f"allreduce_{op}")


@lowers(AllReduceBucket)
def _allreduce_bucket(node: Apply, ctx: LowerContext) -> Lowered:
    rt, op = ctx.runtime, node.op_as(AllReduceBucket).op
    dtype = tensor_outputs(node)[0].dtype
    buffers = Buffers(dtype)

    def run(inputs: list) -> list:
        sizes = [x.size for x in inputs]
        out = rt.empty((sum(sizes),), dtype, "all-reduced bucket") if rt.zero_copy else None
        flat = out.host_view() if out is not None else buffers.take((sum(sizes),))
        at = 0
        for x, n in zip(inputs, sizes):
            if out is not None:
                flat[at:at + n] = _host_side(rt, x).reshape(-1)
            else:
                _download(rt, x, flat[at:at + n])
            at += n
        STATS["packed"] += flat.nbytes
        allreduce_inplace(flat, op)
        if out is None:
            out = rt.to_device(flat, "all-reduced bucket")
        else:
            TRANSFERS["zero_copy_in"] += 1
        views, at = [], 0
        for x, n in zip(inputs, sizes):
            views.append(out.view(x.shape, _c_strides(x.shape), out.offset + at))
            at += n
        return views
    return Lowered(run, label=f"allreduce_bucket_{op}")
