"""A scan step that updates shared variables (Theano's ``return {a: a + 1}`` or ``return outputs,
updates``): each such variable becomes a value the loop carries, as Theano ran it: the step
reads the variable's value after the previous step's update (its value before the loop at the
first step), and ``scan`` returns the update ``{a: its value after the last step}`` for the
caller to give ``sg.function(..., updates=...)``; without that the variable keeps its value."""
from __future__ import annotations

from typing import Any

from symgraph.errors import GraphTypeError
from symgraph.graph.basic import Variable
from symgraph.graph.traversal import clone_replace_parts
from symgraph.scan.types import compatible
from symgraph.tensor.type import TensorVariable, as_tensor_variable


def checked_updates(pairs: list[tuple[Any, Any]], at: str) -> list[tuple[Variable, TensorVariable]]:
    """The step's (shared variable, new value) pairs, each new value of its variable's type."""
    out: list[tuple[Variable, TensorVariable]] = []
    for var, value in pairs:
        if not getattr(var, "is_shared", False):
            raise GraphTypeError(f"scan: the step returns an update of {var} ({getattr(var, 'type', type(var))}), "
                                 f"which is not a shared variable: only shared variables can be updated{at}")
        if any(var is v for v, _ in out):
            raise GraphTypeError(f"scan: the step returns two updates of the shared variable {var}{at}")
        value = as_tensor_variable(value)
        if value.dtype != var.dtype or value.ndim != var.ndim or not compatible(value.type, var.type):
            raise GraphTypeError(
                f"scan: the step updates the shared variable {var} ({var.type}) with {value} ({value.type}); "
                f"an update keeps the variable's type: cast the new value (T.cast(value, '{var.dtype}')){at}")
        out.append((var, value))
    return out


def carry_updates(pairs: list[tuple[Variable, TensorVariable]], carry_slots: list, carry_outer: list,
                  body: list[list[Any]]) -> list[Variable]:
    """Carry each updated shared variable through the loop: a placeholder for its value at the
    step replaces the variable everywhere in ``body`` (the lists of the body's outputs, edited in
    place) and in the new values, which become the last carries (``carry_slots``, their initial
    values the variables themselves in ``carry_outer``, the new values appended to ``body[0]``,
    the new carries). Returns the variables, in the order of their carries."""
    shared = [var for var, _ in pairs]
    slots = [var.type.make_variable(None if var.name is None else f"{var.name}[t-1]") for var in shared]
    values = [value for _, value in pairs]
    clone_replace_parts([*body, values], dict(zip(shared, slots)))
    body[0].extend(values)
    carry_slots.extend(slots)
    carry_outer.extend(shared)
    return shared
