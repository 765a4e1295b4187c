"""numpy lowerings of the fused nodes (symgraph/tensor/fused.py): numpy has no loop to fuse into,
so each becomes the nested expressions of its parts, e.g. ``composite(np.dot(x, W), b)``."""
from __future__ import annotations

from symgraph.backends.numpy.lowering import LowerContext, lowers, perform_call
from symgraph.graph.basic import Apply
from symgraph.tensor.fused import Epilogue, ReduceOf


def _part(node: Apply, ins: list[str], ctx: LowerContext) -> str:
    """The expression of one part (its first output when it falls back to ``perform``)."""
    expr = ctx.expression(node, ins)
    return expr if expr is not None else f"{perform_call(node, ins, ctx.code)}[0]"


@lowers(ReduceOf)
def _reduce_of(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(ReduceOf)
    inner, red = op.parts(node.inputs)
    return _part(red, [_part(inner, ctx.ins, ctx)], ctx)


@lowers(Epilogue)
def _epilogue(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(Epilogue)
    core, prog = op.parts(node.inputs)
    core_ins, prog_ins = op.split(ctx.ins)
    prog_ins[op.slot] = _part(core, core_ins, ctx)
    if len(prog.outputs) == 1:
        return _part(prog, prog_ins, ctx)
    expr = ctx.expression(prog, prog_ins)
    return expr if expr is not None else perform_call(prog, prog_ins, ctx.code)
