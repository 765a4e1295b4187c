"""numpy lowerings of the fused nodes (symgraph/tensor/fused.py): numpy has no loop to fuse into,
so each becomes the nested expressions of its parts, e.g. ``composite(np.dot(x, W), b)``. A
convolution's epilogue runs in place on the convolution's fresh result where its plan allows
(``conv_epilogue``), so a bias add and activation allocate nothing more."""
from __future__ import annotations

import numpy as np

from symgraph.backends.numpy.lowering import LowerContext, lowers, perform_call
from symgraph.graph.basic import Apply
from symgraph.tensor.composite import Composite, Plan
from symgraph.tensor.convolution import Conv
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


def in_place_safe(p: Plan, slot: int) -> bool:
    """Can the program's first output be written into its input ``slot`` (a full-size fresh
    array)? Yes when that output's buffer is first written no earlier than the last step reading
    the input: elementwise steps may write the very array they read, but no step may read it
    after another value has overwritten it."""
    buf = next((s for _, _, s, dest in p.instrs if dest == p.out_index[0]), None)
    if buf is None:
        return False
    first_write = min(k for k, (_, _, s, _) in enumerate(p.instrs) if s == buf)
    last_read = max((k for k, (_, args, _, _) in enumerate(p.instrs) if slot in args), default=-1)
    return last_read <= first_write


def conv_epilogue(prog: Composite, plan: Plan, slot: int, in_place: bool, y: np.ndarray, others: list) -> object:
    """``prog`` on the convolution result ``y`` (input ``slot``) and ``others``, its first output
    written into ``y`` itself when ``in_place`` and the run-time shapes and dtype allow (further
    outputs, such as the mask a training step keeps, get arrays of their own); its output (or
    outputs)."""
    values = list(others)
    values.insert(slot, y)
    shape = np.broadcast_shapes(*(np.shape(v) for v in values))
    out = None
    if in_place and shape == y.shape and y.dtype == np.dtype(prog.out_dtypes[0]):
        out = [y] + [np.empty(shape, dt) for dt in prog.out_dtypes[1:]]
    results = prog.run(plan, values, out=out)
    return results[0] if len(results) == 1 else tuple(results)


@lowers(Epilogue)
def _epilogue(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(Epilogue)
    core, prog = op.parts(node.inputs)
    core_ins, prog_ins = op.split(ctx.ins)
    prog_ins[op.slot] = _part(core, core_ins, ctx)
    if isinstance(op.core, Conv):
        plan = op.program.plan(tuple(v.type for v in prog.inputs))
        fn = ctx.ref(conv_epilogue, "conv_epilogue")
        others = [e for k, e in enumerate(prog_ins) if k != op.slot]
        return (f"{fn}({ctx.ref(op.program, 'program')}, {ctx.ref(plan, 'plan')}, {op.slot}, "
                f"{in_place_safe(plan, op.slot)}, {prog_ins[op.slot]}, [{', '.join(others)}])")
    if len(prog.outputs) == 1:
        return _part(prog, prog_ins, ctx)
    expr = ctx.expression(prog, prog_ins)
    return expr if expr is not None else perform_call(prog, prog_ins, ctx.code)
