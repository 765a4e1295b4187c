"""``Print``: an identity op that prints its input's value at run time (Theano's ``printing.Print``).

    x_printed = sg.printing.Print('x is', attrs=('shape', '__str__'))(x)

Every call of a compiled function that computes ``x_printed`` prints ``x is shape = (3,)`` and
``x is __str__ = [1. 2. 3.]``. The node is never constant-folded, fused away or merged with a
different message, so the print happens whenever the value is computed; its gradient passes
through unchanged.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.type import as_tensor_variable


def _print_fn(op: Print, value: Any) -> None:
    """Theano's default: ``message attr = value`` for each attribute (called when it is callable)."""
    for attr in op.attrs:
        got = getattr(value, attr)
        print(op.message, attr, "=", got() if callable(got) else got)


class Print(Op):
    """Identity that calls ``global_fn(op, value)`` (by default prints ``message attr = value`` for
    each of ``attrs``) every time the value is computed."""

    __props__ = ("message", "attrs", "global_fn")
    view_map = {0: 0}
    no_constant_folding = True  # printing happens at run time, not while compiling

    def __init__(self, message: str = "", attrs: Sequence[str] = ("__str__",),
                 global_fn: Callable[[Print, Any], None] = _print_fn):
        self.message = str(message)
        self.attrs = tuple(attrs)
        self.global_fn = global_fn

    def __str__(self) -> str:
        return f"Print{{{self.message}}}"

    def make_node(self, x: Any) -> Apply:
        if not isinstance(x, Variable):
            x = as_tensor_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        self.global_fn(self, inputs[0])
        return [inputs[0]]

    def grad(self, inputs: list, output_grads: list) -> list:
        return list(output_grads)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return list(input_shapes)
