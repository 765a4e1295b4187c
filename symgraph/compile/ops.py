"""``as_op``: make an Op from a Python function on numpy arrays (Theano's ``compile.ops.as_op``).

    @sg.as_op(itypes=[T.dmatrix, T.dmatrix], otypes=[T.dmatrix])
    def numpy_dot(a, b):
        return np.dot(a, b)

The decorated name is an Op instance: calling it on variables builds a node whose ``perform`` calls
the function (inline in the numpy backend's code; through the explicit host fallback on OpenCL).
Give ``infer_shape(node, input_shapes)`` for shape-aware rewrites and checks. There is no gradient:
differentiating through the op raises GradientError naming it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from symgraph.errors import GradientError
from symgraph.graph.basic import Apply, Op, Type


class FromFunctionOp(Op):
    """An Op whose perform calls ``fn(*inputs)`` (one output, or a tuple/list of them)."""

    __props__ = ("fn", "itypes", "otypes", "infer_shape_fn")
    itypes: tuple[Type, ...]
    otypes: tuple[Type, ...]

    def __init__(self, fn: Callable, itypes: Sequence[Type], otypes: Sequence[Type],
                 infer_shape_fn: Callable | None = None):
        self.fn, self.itypes, self.otypes = fn, tuple(itypes), tuple(otypes)
        self.infer_shape_fn = infer_shape_fn
        self.__doc__ = fn.__doc__

    def __str__(self) -> str:
        return f"FromFunctionOp{{{getattr(self.fn, '__name__', 'fn')}}}"

    def perform(self, node: Apply, inputs: list) -> list:
        out = self.fn(*inputs)
        outs = list(out) if len(self.otypes) > 1 else [out]
        if len(outs) != len(self.otypes):
            raise ValueError(f"{self}: the function returned {len(outs)} outputs, otypes lists {len(self.otypes)}")
        return [t.filter(v, False, True) for t, v in zip(self.otypes, outs)]

    def grad(self, inputs: list, output_grads: list) -> list:
        raise GradientError(f"{self} was made with as_op and has no gradient; write an Op with grad/L_op")

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        if self.infer_shape_fn is None:
            return Op.infer_shape(self, node, input_shapes)
        return self.infer_shape_fn(node, input_shapes)


def as_op(itypes: Sequence[Type], otypes: Sequence[Type], infer_shape: Callable | None = None
          ) -> Callable[[Callable], FromFunctionOp]:
    """Decorator turning ``fn(*arrays) -> array(s)`` into an Op with these input and output types."""
    if not isinstance(itypes, (list, tuple)) or not isinstance(otypes, (list, tuple)):
        raise TypeError("as_op: itypes and otypes must be lists of types, e.g. [T.dmatrix]")
    for t in [*itypes, *otypes]:
        if not isinstance(t, Type):
            raise TypeError(f"as_op: {t!r} is not a type; use a type such as T.dmatrix, not a variable")

    def make(fn: Callable) -> FromFunctionOp:
        return FromFunctionOp(fn, itypes, otypes, infer_shape)
    return make


__all__ = ["as_op", "FromFunctionOp"]
