"""numpy lowerings of the fused nodes (symgraph/tensor/fused.py): numpy has no loop to fuse into,
so each becomes the nested expressions of its parts, e.g. ``composite(np.dot(x, W), b)``. A
convolution's epilogue runs in place on the convolution's fresh result where its plan allows
(``conv_epilogue``), so a bias add and activation allocate nothing more."""
from __future__ import annotations

import numpy as np

from symgraph.backends.numpy.lower_composite import compile_helper
from symgraph.backends.numpy.lower_ops import dot_into
from symgraph.backends.numpy.lowering import LowerContext, expression, lowers, perform_call
from symgraph.graph.basic import Apply
from symgraph.tensor.composite import Composite, Plan
from symgraph.tensor.convolution import Conv
from symgraph.tensor.fused import Epilogue, ReduceOf
from symgraph.tensor.math import Dot


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


def dot_epilogue(fn: object, slot: int, in_place: bool, a: np.ndarray, b: np.ndarray, others: list,
                 spare: np.ndarray | None) -> object:
    """The compiled program ``fn`` on the matrix product of ``a`` and ``b`` (its input ``slot``)
    and ``others``. With ``in_place`` (the program may write over that input) the product is
    computed into ``spare`` where it fits, else into a fresh array, and the program's first
    output is written over it: no array beyond the one the result needs. Otherwise the program
    writes its first output into ``spare`` (it checks the fit)."""
    if in_place:
        y = dot_into(a, b, spare)
        out = y if y.__class__ is np.ndarray else None
    else:
        y, out = np.dot(a, b), spare
    values = list(others)
    values.insert(slot, y)
    return fn(*values, out=out)  # type: ignore[operator]


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
    if isinstance(op.core, Dot) and isinstance(op.program, Composite) and ctx.spare is not None:
        # an update's product goes into the shared variable's spare buffer; elsewhere the plain
        # expression below (a helper call per product costs more than it saves on small arrays)
        plan = op.program.plan(tuple(v.type for v in prog.inputs))
        fn = compile_helper(op.program, tuple(v.type for v in prog.inputs))
        others = [e for k, e in enumerate(prog_ins) if k != op.slot]
        return (f"{ctx.ref(dot_epilogue, 'dot_epilogue')}({ctx.ref(fn, 'composite')}, {op.slot}, "
                f"{in_place_safe(plan, op.slot)}, {', '.join(core_ins)}, [{', '.join(others)}], {ctx.spare})")
    expr = expression(prog, prog_ins, ctx.code, spare=ctx.spare)
    if expr is None:
        return perform_call(prog, prog_ins, ctx.code) + ("[0]" if len(prog.outputs) == 1 else "")
    return expr
