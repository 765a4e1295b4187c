"""How each op becomes a numpy expression: ``TABLE`` maps Op classes to ``lower(node, ctx)``,
which returns one Python expression (a string) for the node's outputs, or None to fall back to
calling ``op.perform``. ``ctx.ins`` are the input expressions, ``ctx.out`` a dead buffer the
result may be written into (or None), ``ctx.spare`` an expression for a shared variable's spare
buffer (an array or None at run time) the first output may be computed into where its shape and
dtype fit (fused programs check that at run time), ``ctx.ref(obj, hint)`` names a Python object in the
generated code, and ``ctx.expression(node, ins)`` lowers another node (fused ops nest them)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from symgraph.compile.lowering import CodeContext, LoweringTable
from symgraph.graph.basic import Apply
from symgraph.tensor.elemwise import DimShuffle, Elemwise

TABLE = LoweringTable("numpy")
lowers = TABLE.register


@dataclass
class LowerContext:
    """What a numpy lowering sees: the input expressions, an optional output buffer, the code context."""
    ins: list[str]
    code: CodeContext
    out: str | None = None
    spare: str | None = None

    def ref(self, obj: Any, hint: str) -> str:
        return self.code.ref(obj, hint)

    def expression(self, node: Apply, ins: list[str]) -> str | None:
        """The expression of another node (for fused ops that nest their parts)."""
        return expression(node, ins, self.code)


def expression(node: Apply, ins: list[str], code: CodeContext, out: str | None = None,
               spare: str | None = None) -> str | None:
    """The numpy expression computing ``node`` from ``ins``, or None when its op has no lowering."""
    lower = TABLE.lookup(node.op)
    return None if lower is None else lower(node, LowerContext(ins, code, out, spare))


def perform_call(node: Apply, ins: list[str], code: CodeContext) -> str:
    """The expression calling ``node.op.perform`` (a list of outputs)."""
    return f"{code.ref(node.op, f'op_{node.op}')}.perform({code.ref(node, 'node')}, [{', '.join(ins)}])"


_UNARY = object()  # ufunc_into's second argument when the ufunc has one input


def ufunc_name(fn: Callable, ctx: Any) -> str:
    """``np.add`` for numpy's own ufuncs (readable source), a named global otherwise."""
    name = getattr(fn, "__name__", None)
    if name and getattr(np, name, None) is fn:
        return f"np.{name}"
    return ctx.ref(fn, name or "fn")


@lowers(Elemwise)
def _elemwise(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(Elemwise)
    fn = ufunc_name(op.scalar_op.np_fn, ctx)
    args = ", ".join(ctx.ins)
    if ctx.spare:  # into given memory (a bucket's span) where it fits
        return f"{ctx.ref(ufunc_into, 'ufunc_into')}({fn}, {ctx.spare}, {args})"
    return f"{fn}({args}, out={ctx.out})" if ctx.out else f"{fn}({args})"


def ufunc_into(fn: Callable, dest: np.ndarray | None, a: Any, b: Any = _UNARY) -> Any:
    """``fn(a)`` or ``fn(a, b)`` (a numpy ufunc of one or two inputs), written into ``dest`` when
    the result has exactly its shape: an argument has that shape and numpy broadcasts the other
    to it (else numpy refuses, and the result gets a fresh array, or the error the plain call
    raises). Two named arguments, not ``*args``: a gradient bucket's small producers call it
    every step, and packing, looping and a keyword call cost more than the check."""
    if dest is not None:
        shape = dest.shape
        if (a.__class__ is np.ndarray and a.shape == shape) or (b.__class__ is np.ndarray and b.shape == shape):
            try:
                return fn(a, dest) if b is _UNARY else fn(a, b, dest)
            except ValueError:
                pass
    return fn(a) if b is _UNARY else fn(a, b)


@lowers(DimShuffle)
def _dimshuffle(node: Apply, ctx: LowerContext) -> str:
    op, (x,) = node.op_as(DimShuffle), ctx.ins
    expr = x
    if op.drop:
        idx = ", ".join("0" if d in op.drop else ":" for d in range(op.input_ndim))
        expr = f"{expr}[{idx}]"
        remaining = [d for d in range(op.input_ndim) if d not in op.drop]
        perm = [remaining.index(d) for d in op.shuffle]
    else:
        perm = list(op.shuffle)
    if perm != sorted(perm):
        expr = f"{expr}.transpose({', '.join(map(str, perm))})"
    if "x" in op.new_order:
        idx = ", ".join("None" if o == "x" else ":" for o in op.new_order)
        expr = f"{expr}[{idx}]"
    return expr
