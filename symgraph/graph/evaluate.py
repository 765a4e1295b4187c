"""Evaluate a graph node by node with each op's ``perform`` (the reference implementations).

DebugMode, MonitorMode and the op-author test helpers use this interpreter: it needs no backend,
shows every intermediate value, and checks nothing but what the ops check themselves.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.traversal import toposort


def leaf_value(v: Variable) -> Any:
    """The value of a variable without an owner: a constant's data or a shared variable's value."""
    if isinstance(v, Constant):
        return v.data
    if hasattr(v, "get_value"):
        return v.get_value(borrow=True)
    raise KeyError(v)


def evaluate(outputs: Sequence[Variable], env: dict[Variable, Any],
             on_node: Callable[[int, Apply, list, list, dict], None] | None = None) -> dict[Variable, Any]:
    """Values of ``outputs`` (and of everything computed on the way) given ``env`` {variable: value};
    variables missing from ``env`` that have no owner are constants or shared variables.
    ``on_node(i, node, input_values, output_values, values)`` is called after each node runs
    (``values``: everything computed so far)."""
    values = dict(env)
    for i, node in enumerate(toposort(list(outputs), blockers=list(env))):
        ins = [values[v] if v in values else leaf_value(v) for v in node.inputs]
        outs = node.op.perform(node, ins)
        values.update(zip(node.outputs, outs))
        if on_node is not None:
            on_node(i, node, ins, list(outs), values)
    for v in outputs:
        if v not in values:
            values[v] = leaf_value(v)
    return values
