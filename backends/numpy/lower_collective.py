"""numpy lowerings of the MPI collectives (symgraph/tensor/collective.py).

An all-reduce is one ``Allreduce`` into a reused buffer the call owns (its input is MPI's send
buffer: no copy of ours). A bucket is one ``Allreduce(IN_PLACE)`` on one flat buffer whose
spans its inputs were computed into: ``BucketSpans`` gives each input's producer (a fused
program, an elementwise op, a matrix product, a sum) the expression of its span as the memory to write its result
into, and opens the bucket's spans (``Bucket.open``) in the line before the first of them, so
the reduced gradients are views of the buffer the gradients were computed in and nothing is
packed. An input no producer wrote into its span is copied in at run time."""
from __future__ import annotations

import numpy as np

from symgraph.backends.numpy.lowering import LowerContext, lowers
from symgraph.compile.link import Emitter
from symgraph.graph.basic import Apply
from symgraph.tensor.collective import AllReduce, AllReduceBucket, Bucket, allreduce_spans, allreducer
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import Elemwise
from symgraph.tensor.fused import Epilogue
from symgraph.tensor.math import Dot
from symgraph.tensor.reduction import CAReduce
from symgraph.tensor.type import tensor_outputs


@lowers(AllReduce)
def _allreduce(node: Apply, ctx: LowerContext) -> str:
    """One ``Allreduce`` into a reused buffer; in place when the input's memory may be
    overwritten (``ctx.out``: a dead intermediate, a mutable argument nothing reads later)."""
    in_place = ctx.out is not None
    fn = allreducer(tensor_outputs(node)[0].dtype, node.op_as(AllReduce).op, in_place)
    return f"{ctx.ref(fn, 'allreduce_in_place' if in_place else 'allreduce')}({ctx.ins[0]})"


@lowers(AllReduceBucket)
def _allreduce_bucket(node: Apply, ctx: LowerContext) -> str:
    """``ctx.spare``: the spans its inputs' producers wrote into (see ``BucketSpans``), else
    spans opened here."""
    op = node.op_as(AllReduceBucket)
    spans = ctx.spare or f"{ctx.ref(Bucket(tensor_outputs(node)[0].dtype, op.n), 'bucket')}.open()"
    return f"{ctx.ref(allreduce_spans, 'allreduce_bucket')}({spans}, [{', '.join(ctx.ins)}], {op.op!r})"


def writes_into_given_memory(node: Apply) -> bool:
    """Can ``node``'s lowering compute its first output into memory it is given (``ctx.spare``,
    checked for fit at run time)?"""
    op = node.op
    if isinstance(op, CAReduce):
        return op.scalar_op == "add"
    if isinstance(op, (Composite, Epilogue, Dot)):
        return True
    fn = getattr(getattr(op, "scalar_op", None), "np_fn", None)  # a numpy ufunc takes out= (ufunc_into)
    return isinstance(op, Elemwise) and isinstance(fn, np.ufunc) and fn.nout == 1 and fn.nin <= 2


class BucketSpans:
    """Which values are computed into the spans of a bucket, for one compiled function: a value
    whose only reader is an ``AllReduceBucket`` (nothing reads it after the in-place reduction
    overwrites it; it is no output) and whose producer can write into given memory."""

    def __init__(self) -> None:
        self.opened: dict[Apply, str] = {}  # bucket node -> the local holding this call's spans

    def destination(self, node: Apply, em: Emitter) -> tuple[list[str], str | None]:
        """The lines to emit before ``node`` (opening a bucket's spans) and the expression of the
        memory its first output may be computed into (or the spans, for a bucket node)."""
        if isinstance(node.op, AllReduceBucket):
            return [], self.opened.get(node)
        out = node.outputs[0]
        readers = em.s.fgraph.clients.get(out, ())
        if (len(readers) != 1 or not isinstance(readers[0][0], Apply)
                or not isinstance(readers[0][0].op, AllReduceBucket) or getattr(out.type, "ndim", 0) == 0
                or not writes_into_given_memory(node)):
            return [], None
        bucket, k = readers[0]
        lines = []
        if bucket not in self.opened:
            ref = em.ctx.ref(Bucket(tensor_outputs(bucket)[0].dtype, bucket.op.n), "bucket")
            self.opened[bucket] = f"{ref}_spans"
            lines.append(f"{ref}_spans = {ref}.open()")
        return lines, f"{self.opened[bucket]}.views[{k}]"
