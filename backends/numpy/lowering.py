"""How each op becomes a numpy expression: ``LOWERINGS[OpClass](node, input_names, ctx)``
returns one Python expression (a string) for the node's single output, or None to fall back
to calling ``op.perform``. ``ctx.ref(obj, hint)`` names a Python object in the generated code."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from symgraph.tensor.elemwise import DimShuffle, Elemwise


class CodeContext:
    """Names the Python objects the generated code refers to (its globals)."""

    def __init__(self) -> None:
        self.globals: dict[str, Any] = {"np": np, "ndarray": np.ndarray}
        self._ids: dict[int, str] = {}

    def ref(self, obj: Any, hint: str) -> str:
        key = id(obj)
        if key not in self._ids:
            base = "_" + "".join(c if c.isascii() and c.isalnum() else "_" for c in hint).strip("_")
            name, k = base, 1
            while name in self.globals:
                name, k = f"{base}{k}", k + 1
            self.globals[name] = obj
            self._ids[key] = name
        return self._ids[key]


LOWERINGS: dict[type, Callable] = {}


def lowers(op_class: type) -> Callable:
    """Register a lowering for ``op_class`` (decorator)."""
    def register(fn: Callable) -> Callable:
        LOWERINGS[op_class] = fn
        return fn
    return register


def ufunc_name(fn: Callable, ctx) -> str:
    """``np.add`` for numpy's own ufuncs (readable source), a named global otherwise."""
    name = getattr(fn, "__name__", None)
    if name and getattr(np, name, None) is fn:
        return f"np.{name}"
    return ctx.ref(fn, name or "fn")


@lowers(Elemwise)
def _elemwise(node, ins: list[str], ctx, out: str | None = None) -> str:
    fn = ufunc_name(node.op.scalar_op.np_fn, ctx)
    args = ", ".join(ins)
    return f"{fn}({args}, out={out})" if out else f"{fn}({args})"


@lowers(DimShuffle)
def _dimshuffle(node, ins: list[str], ctx) -> str:
    op, (x,) = node.op, ins
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
