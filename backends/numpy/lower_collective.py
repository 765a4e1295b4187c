"""numpy lowerings of the MPI collectives (symgraph/tensor/collective.py): one host
``Allreduce(IN_PLACE)`` on a buffer the call owns; a bucket copies its inputs into one flat
buffer, reduces it in one call and hands out views of it. Each node gets its own ``Buffers``
(reused result buffers of its dtype), bound into the generated code at compile time."""
from __future__ import annotations

from symgraph.backends.numpy.lowering import LowerContext, lowers
from symgraph.graph.basic import Apply
from symgraph.tensor.collective import AllReduce, AllReduceBucket, Buffers, allreduce_many, allreduce_value
from symgraph.tensor.type import tensor_outputs


@lowers(AllReduce)
def _allreduce(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(AllReduce)
    fn = ctx.ref(allreduce_value, "allreduce")
    bufs = ctx.ref(Buffers(tensor_outputs(node)[0].dtype), "allreduce_buffers")
    return f"{fn}({ctx.ins[0]}, {op.op!r}, {bufs})"


@lowers(AllReduceBucket)
def _allreduce_bucket(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(AllReduceBucket)
    fn = ctx.ref(allreduce_many, "allreduce_bucket")
    bufs = ctx.ref(Buffers(tensor_outputs(node)[0].dtype), "allreduce_buffers")
    return f"{fn}([{', '.join(ctx.ins)}], {op.op!r}, {bufs})"
