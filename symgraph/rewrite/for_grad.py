"""Stabilize a cost before it is differentiated.

The gradient of an unstable formula is unstable even where its rewritten forward value is
not: the gradient of ``log(sigmoid(x))`` built from ``sigmoid`` and ``log`` is ``(1/s) * s(1-s)``,
NaN at ``x = -800`` where ``s`` underflows, while ``-softplus(-x)`` has the finite gradient
``sigmoid(-x)``. ``sg.grad`` therefore differentiates the cost after the ``stabilize`` pass
(hand-written sigmoid / softplus / softmax / logsumexp, log of sigmoid and softmax, ...), so both
the graph ``grad`` returns and its rewritten form are finite wherever the math is.

The user's graph is never changed: the part of it between the kept variables (``wrt``,
``consider_constant``, ``known_grads``) and the cost is copied, the kept variables stand in as
opaque placeholders (no rule may look through a variable the gradient is asked for), and the
placeholders are swapped back afterwards.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from symgraph.graph.basic import Apply, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.traversal import clone_replace, graph_inputs, toposort
from symgraph.rewrite import stabilize  # noqa: F401  (registers the rules)
from symgraph.rewrite.core import RULES, Rule, Stats, node_key, run_local
from symgraph.tensor.type import TensorVariable


def stabilized_cost(cost: TensorVariable, keep: Sequence[Variable]) -> TensorVariable:
    """``cost`` with the stabilize rules applied to the graph above ``keep`` (``cost`` itself
    when no rule matches, so plain costs pay only a walk of their graph)."""
    rules = RULES["stabilize"]
    nodes = toposort([cost], blockers=keep)
    if not _some_rule_matches(nodes, rules):
        return cost
    new_cost, placeholders = _copy_above(cost, nodes, keep)
    fgraph = FunctionGraph(graph_inputs([new_cost]), [new_cost], clone=False)
    run_local(fgraph, rules, Stats())
    out = fgraph.outputs[0]
    if placeholders:
        (out,), _ = clone_replace([out], {p: v for v, p in placeholders.items()})
    return cast(TensorVariable, out)  # a rewrite keeps each output's type (FunctionGraph.replace checks it)


def _some_rule_matches(nodes: list[Apply], rules: list[Rule]) -> bool:
    by_key: dict = {}
    for r in rules:
        for k in r.keys:
            by_key.setdefault(k, []).append(r)
    for node in nodes:
        for r in by_key.get(node_key(node), ()):
            try:
                if r.fn(None, node) is not None:
                    return True
            except Exception:  # noqa: BLE001 -- a rule that needs the FunctionGraph: let it run there
                return True
    return False


def _copy_above(cost: Variable, nodes: list[Apply], keep: Sequence[Variable]) -> tuple[Variable, dict]:
    """Copies of ``nodes`` (the graph from ``keep`` up to ``cost``), with every kept variable
    that has an owner read through a fresh placeholder of its type."""
    kept = set(map(id, keep))
    memo: dict[Variable, Variable] = {}
    placeholders: dict[Variable, Variable] = {}
    for node in nodes:
        ins = []
        for v in node.inputs:
            if v not in memo:
                if v.owner is not None and id(v) in kept:
                    memo[v] = placeholders[v] = v.type.make_variable(v.name)
                else:
                    memo[v] = v
            ins.append(memo[v])
        copy = Apply(node.op, ins, [o.type.make_variable(o.name) for o in node.outputs], trace=node.trace)
        memo.update(zip(node.outputs, copy.outputs))
    return memo[cost], placeholders


__all__ = ["stabilized_cost"]
