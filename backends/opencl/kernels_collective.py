"""OpenCL steps for the MPI collectives: MPI reduces host memory, so each all-reduce downloads
its input (counted in TRANSFERS['to_host']), all-reduces it in place on the host and uploads the
result (counted in TRANSFERS['to_device']); a bucket does this once for one flat buffer. The step
is a planned part of the schedule, not a host fallback."""
from __future__ import annotations

from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.graph.basic import Apply
from symgraph.tensor.collective import AllReduce, AllReduceBucket, Buffers, allreduce_inplace, allreduce_many
from symgraph.tensor.type import tensor_outputs


@lowers(AllReduce)
def _allreduce(node: Apply, ctx: LowerContext) -> Lowered:
    rt, op = ctx.runtime, node.op_as(AllReduce).op

    def run(inputs: list) -> list:
        host = allreduce_inplace(inputs[0].to_host(copy=True), op)
        return [rt.to_device(host, "all-reduced value")]
    return Lowered(run, label=f"allreduce_{op}")


@lowers(AllReduceBucket)
def _allreduce_bucket(node: Apply, ctx: LowerContext) -> Lowered:
    rt, op = ctx.runtime, node.op_as(AllReduceBucket).op
    buffers = Buffers(tensor_outputs(node)[0].dtype)

    def run(inputs: list) -> list:
        reduced = allreduce_many([x.to_host() for x in inputs], op, buffers)
        return [rt.to_device(r, "all-reduced bucket") for r in reduced]
    return Lowered(run, label=f"allreduce_bucket_{op}")
