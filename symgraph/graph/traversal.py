"""Graph walks: ancestors, graph inputs, topological order and cloning.

All walks are iterative so graphs of any depth work without touching the recursion limit.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from symgraph.graph.basic import Apply, Constant, Variable, copy_tag


def toposort(outputs: Iterable[Variable], blockers: Iterable[Variable] = ()) -> list[Apply]:
    """Apply nodes needed to compute ``outputs``, each after the nodes that feed it.
    Walking stops at ``blockers`` (e.g. the inputs of a function)."""
    blocked = set(map(id, blockers))
    order: list[Apply] = []
    done: set[int] = set()
    for out in outputs:
        if out.owner is None or id(out) in blocked or id(out.owner) in done:
            continue
        stack = [(out.owner, 0)]
        done.add(id(out.owner))
        while stack:
            node, i = stack[-1]
            if i < len(node.inputs):
                stack[-1] = (node, i + 1)
                inp = node.inputs[i]
                owner = inp.owner
                if owner is not None and id(inp) not in blocked and id(owner) not in done:
                    done.add(id(owner))
                    stack.append((owner, 0))
            else:
                stack.pop()
                order.append(node)
    return order


def ancestors(outputs: Iterable[Variable], blockers: Iterable[Variable] = ()) -> list[Variable]:
    """Every variable that ``outputs`` depend on (themselves included), outputs first."""
    blocked = set(map(id, blockers))
    seen: set[int] = set()
    result: list[Variable] = []
    stack = list(outputs)[::-1]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        result.append(v)
        if v.owner is not None and id(v) not in blocked:
            stack.extend(reversed(v.owner.inputs))
    return result


def graph_inputs(outputs: Iterable[Variable], blockers: Iterable[Variable] = ()) -> list[Variable]:
    """The leaves that ``outputs`` depend on: variables with no owner (constants included)."""
    blocked = set(map(id, blockers))
    return [v for v in ancestors(outputs, blockers) if v.owner is None or id(v) in blocked]


def clone_replace(outputs: Sequence[Variable], replace: dict | None = None,
                  copy_inputs: bool = False) -> tuple[list[Variable], dict]:
    """Copy the graph of ``outputs``, substituting ``replace[old] = new`` on the way.

    Returns the new outputs and the memo mapping each old variable to its copy. Leaves are
    kept as they are (so inputs stay the same objects) unless ``copy_inputs`` is set.
    """
    memo: dict[Variable, Variable] = dict(replace or {})
    replaced = list(memo)
    for node in toposort(list(outputs) , blockers=replaced):
        for v in node.inputs:
            if v not in memo:
                memo[v] = v.clone() if (copy_inputs and not isinstance(v, Constant)) else v
        new_inputs = [memo[v] for v in node.inputs]
        if all(a is b for a, b in zip(new_inputs, node.inputs)):
            new_outs = node.outputs
        else:  # rebuilt through make_node: output types follow the new inputs (e.g. a static shape)
            new_node = node.op.make_node(*new_inputs)
            new_node.trace = node.trace
            for o, n in zip(node.outputs, new_node.outputs):
                n.name = o.name
                copy_tag(o, n)
            new_outs = new_node.outputs
        memo.update(zip(node.outputs, new_outs))
    for v in outputs:
        if v not in memo:
            memo[v] = v.clone() if (copy_inputs and v.owner is None and not isinstance(v, Constant)) else v
    return [memo[v] for v in outputs], memo


def clone_replace_parts(parts: Sequence[list], replace: dict) -> None:
    """``clone_replace`` over several lists of outputs at once (one copy of what they share),
    each list rebuilt in place."""
    replaced, _ = clone_replace([v for part in parts for v in part], replace)
    at = 0
    for part in parts:
        part[:] = replaced[at:at + len(part)]
        at += len(part)


def clone(outputs: Sequence[Variable]) -> tuple[list[Variable], dict]:
    """A fresh copy of every node of the graph (inputs kept), for passes that mutate it."""
    memo: dict[Variable, Variable] = {}
    for node in toposort(outputs):
        for v in node.inputs:
            memo.setdefault(v, v)
        new_node = Apply(node.op, [memo[v] for v in node.inputs],
                         [o.type.make_variable(o.name) for o in node.outputs], trace=node.trace)
        for o, n in zip(node.outputs, new_node.outputs):
            copy_tag(o, n, private=False)
        memo.update(zip(node.outputs, new_node.outputs))
    for v in outputs:
        memo.setdefault(v, v)
    return [memo[v] for v in outputs], memo
