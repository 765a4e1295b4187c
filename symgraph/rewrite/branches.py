"""Rewrites for ops that hold inner graphs (``IfElse``):

- ``sink_into_branches`` (run by sg.function in every mode, before any other rewrite, so that
  merging and fusion never pull branch code out of its branch): every node whose results only
  one branch of an IfElse needs moves into that branch's inner graph, so an untaken branch never
  runs, whichever backend or linker;
- ``merge_ifelse``: IfElse nodes on the same condition become one (neither may depend on the other);
- ``constant_condition``: an IfElse whose condition is a constant becomes its branch;
- ``rewrite_inner_graphs``: the rewrite pipeline runs inside every inner graph with the outer
  mode (fusion inside a branch), constant folding there leaving a raising node unfolded.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.inner import InnerGraph, InnerGraphOp
from symgraph.graph.traversal import ancestors, clone_replace
from symgraph.ifelse import IfElse
from symgraph.rewrite.core import Stats, rule
from symgraph.rewrite.patterns import fit
from symgraph.tensor.type import TensorVariable


def _fit_any(new: Variable, old: Variable) -> Variable | None:
    """``fit`` for tensors; a value of another type replaces ``old`` only with an equal type."""
    if isinstance(new, TensorVariable) and isinstance(old, TensorVariable):
        return fit(new, old)
    return new if new.type == old.type else None


def _fitted(new: Variable, old: Variable) -> Variable:
    """``new`` cast to ``old``'s type where only that differs (else ``new`` as it is)."""
    fitted = _fit_any(new, old)
    return new if fitted is None else fitted


def _in_branch(role: str, known: set[Apply], branch_of: dict[Apply, str]) -> Callable[[Apply], bool]:
    """Does node ``p`` belong inside branch ``role``: new (not yet in the graph) or needed by it alone."""
    return lambda p: p not in known or branch_of.get(p) == role


def _uses(graph: InnerGraph) -> list[bool]:
    """For each input of ``graph``: does the graph read it?"""
    read = {id(v) for v in ancestors(list(graph.outputs), blockers=graph.inputs)}
    return [id(v) in read for v in graph.inputs]


def _branch_only(fgraph: FunctionGraph, node: Apply) -> dict[Apply, str]:
    """The nodes whose every result is needed by exactly one branch of the IfElse ``node`` (and
    by nothing else), each mapped to 'then' or 'else'."""
    op = node.op_as(IfElse)
    uses = {"then": _uses(op.then_graph), "else": _uses(op.else_graph)}
    owners = [v.owner for v in ancestors(node.inputs[1:]) if v.owner is not None]
    order = {n: k for k, n in enumerate(fgraph.toposort())}
    branch_of: dict[Apply, str] = {}
    for p in sorted(set(owners), key=order.__getitem__, reverse=True):
        tags = set()
        for o in p.outputs:
            for c, i in fgraph.clients.get(o, ()):
                if c is node and i > 0:
                    tags |= {b for b in ("then", "else") if uses[b][i - 1]}
                elif c != "output" and c in branch_of:
                    tags.add(branch_of[c])
                else:
                    tags.add("outside")
        if len(tags) == 1 and "outside" not in tags:
            branch_of[p] = tags.pop()
    return branch_of


def _frontier(outputs: list[Variable], inside: Callable[[Apply], bool]) -> list[Variable]:
    """The variables a region reads from outside it: walking back from ``outputs`` through the
    nodes ``inside`` accepts, every non-constant variable reached that such a node does not produce."""
    found, seen, stack = [], set(), list(outputs)
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if v.owner is not None and inside(v.owner):
            stack.extend(reversed(v.owner.inputs))
        elif not isinstance(v, Constant):
            found.append(v)
    return found


def _outer(graph: InnerGraph, values: list[Variable]) -> list[Variable]:
    """``graph``'s outputs rebuilt on the outer ``values`` of its inputs (new, unattached nodes)."""
    outs, _ = clone_replace(list(graph.outputs), dict(zip(graph.inputs, values)))
    return outs


def _rebuild(fgraph: FunctionGraph, node: Apply, branches: dict[str, list[Variable]],
             inside: dict[str, Callable[[Apply], bool]]) -> list[Apply]:
    """Replace ``node`` by an IfElse computing ``branches`` (outer expressions per branch), reading
    the variables the branch regions need from outside; returns the new nodes."""
    values: list[Variable] = []
    for role in ("then", "else"):
        values += _frontier(branches[role], inside[role])
    values = list(dict.fromkeys(values))
    graphs = {role: InnerGraph(values, branches[role]) for role in ("then", "else")}
    new = node.op_as(IfElse).with_inner_graphs(graphs).make_node(node.inputs[0], *values)
    new.trace = node.trace
    added = []
    for old, out in zip(node.outputs, new.outputs):
        added += fgraph.replace(old, _fitted(out, old), "branches")
    return added


def sink_into_branches(fgraph: FunctionGraph, stats: Stats | None = None) -> None:
    """Move every node only one branch needs into that branch (see the module doc)."""
    for node in reversed([n for n in fgraph.toposort() if isinstance(n.op, IfElse)]):
        if node not in fgraph.apply_nodes:
            continue
        branch_of = _branch_only(fgraph, node)
        if not branch_of:
            continue
        values = node.inputs[1:]
        known = fgraph.apply_nodes
        op = node.op_as(IfElse)
        branches = {"then": _outer(op.then_graph, values), "else": _outer(op.else_graph, values)}
        inside = {role: _in_branch(role, known, branch_of) for role in branches}
        new = _rebuild(fgraph, node, branches, inside)
        if stats is not None:
            stats.new_nodes += new
            stats.count("sink_into_branches", len(branch_of))


def merge_ifelse(fgraph: FunctionGraph, stats: Stats) -> None:
    """IfElse nodes on the same condition, neither depending on the other, become one node."""
    by_cond: dict[int, list[Apply]] = {}
    for node in fgraph.toposort():
        if isinstance(node.op, IfElse):
            by_cond.setdefault(id(node.inputs[0]), []).append(node)
    for group in by_cond.values():
        while len(group) > 1:
            a, b = group[0], group[1]
            if any(v.owner is a for v in ancestors(b.inputs)):
                group.pop(0)
                continue
            a_op, b_op = a.op_as(IfElse), b.op_as(IfElse)
            branches = {role: _outer(a_op.inner_graphs[role], a.inputs[1:]) + _outer(b_op.inner_graphs[role],
                                                                                     b.inputs[1:])
                        for role in ("then", "else")}
            outside = _frontier(branches["then"] + branches["else"], lambda p: p not in fgraph.apply_nodes)
            values = list(dict.fromkeys(outside))
            graphs = {role: InnerGraph(values, branches[role]) for role in ("then", "else")}
            new = a_op.with_inner_graphs(graphs).make_node(a.inputs[0], *values)
            new.trace = a.trace
            for old, out in zip(a.outputs + b.outputs, new.outputs):
                stats.new_nodes += fgraph.replace(old, _fitted(out, old), "merge_ifelse")
            stats.count("merge_ifelse")
            group[:2] = [new]


@rule("canonicalize", IfElse)
def constant_condition(fgraph: FunctionGraph, node: Apply) -> list | None:
    """ifelse(True, a, b) -> a; ifelse(False, a, b) -> b"""
    cond = node.inputs[0]
    if not isinstance(cond, Constant):
        return None
    op = node.op_as(IfElse)
    graph = op.then_graph if bool(cond.data) else op.else_graph
    return [_fit_any(v, old) for v, old in zip(_outer(graph, node.inputs[1:]), node.outputs)]


def sink_everywhere(fgraph: FunctionGraph) -> None:
    """``sink_into_branches`` in ``fgraph`` and inside every inner graph (loop bodies, branches),
    innermost first: laziness is not an optimization, so every mode gets it, also in a body."""
    sink_into_branches(fgraph)
    rewrite_inner_graphs(fgraph, Stats(), sink_everywhere)


def rewrite_inner_graphs(fgraph: FunctionGraph, stats: Stats, rewrite: Callable[[FunctionGraph], Any]) -> None:
    """Run ``rewrite`` (the pipeline, with the outer mode) inside every inner graph, innermost first
    (the pipeline recurses), and put the rewritten graphs in place."""
    for node in fgraph.toposort():
        graphs = getattr(node.op, "inner_graphs", None)
        if not graphs:
            continue
        new = {}
        for role, graph in graphs.items():
            fg = graph.fgraph()
            sink_into_branches(fg)
            rewrite(fg)
            new[role] = InnerGraph(fg.inputs, fg.outputs)
        if new == graphs:
            continue
        rebuilt = cast(InnerGraphOp, node.op).with_inner_graphs(new).make_node(*node.inputs)
        rebuilt.trace = node.trace
        for old, out in zip(node.outputs, rebuilt.outputs):
            stats.new_nodes += fgraph.replace(old, _fitted(out, old), "inner_graphs")
        stats.count("inner_graphs")
