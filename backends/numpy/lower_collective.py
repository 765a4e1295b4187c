"""numpy lowerings of the MPI collectives (symgraph/tensor/collective.py): one host
``Allreduce(IN_PLACE)`` on a buffer the call owns; a bucket copies its inputs into one flat
buffer, reduces it in one call and hands out views of it."""
from __future__ import annotations

from symgraph.backends.numpy.lowering import LowerContext, lowers
from symgraph.graph.basic import Apply
from symgraph.tensor.collective import AllReduce, AllReduceBucket, allreduce_many, allreduce_value
from symgraph.tensor.type import tensor_outputs


@lowers(AllReduce)
def _allreduce(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(AllReduce)
    fn = ctx.ref(allreduce_value, "allreduce")
    return f"{fn}({ctx.ins[0]}, {op.op!r}, {tensor_outputs(node)[0].dtype!r})"


@lowers(AllReduceBucket)
def _allreduce_bucket(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(AllReduceBucket)
    fn = ctx.ref(allreduce_many, "allreduce_bucket")
    return f"{fn}([{', '.join(ctx.ins)}], {op.op!r}, {tensor_outputs(node)[0].dtype!r})"
