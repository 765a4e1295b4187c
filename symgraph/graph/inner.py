"""InnerGraph: a graph as a value an op can hold as a parameter (the branches of ``ifelse``, the
body of ``scan``). It is immutable (its own copy of the nodes), hashable and equal by structure
(equal inner graphs merge like equal ops), and closed: every leaf is one of its inputs or a
constant. Compilers never edit it: ``fgraph()`` gives a fresh FunctionGraph to rewrite, lower or
schedule, and ``evaluate`` is the reference interpreter (each node's ``perform``)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from symgraph.errors import GraphTypeError
from symgraph.graph.basic import Apply, Constant, Op, Variable
from symgraph.graph.evaluate import evaluate
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.traversal import clone_replace, toposort


class InnerGraph:
    """``outputs`` as functions of ``inputs``; built from any graph between those variables."""

    __slots__ = ("inputs", "outputs", "_key", "_hash")

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable]):
        new_inputs = [v.type.make_variable(v.name) for v in inputs]
        outs, _ = clone_replace(list(outputs), dict(zip(inputs, new_inputs)))
        self.inputs, self.outputs = tuple(new_inputs), tuple(outs)
        self._key = _structure(self.inputs, self.outputs)
        self._hash = hash(self._key)

    @property
    def nodes(self) -> list[Apply]:
        """The nodes between the inputs and the outputs, in a topological order."""
        return toposort(self.outputs, blockers=self.inputs)

    def fgraph(self) -> FunctionGraph:
        """A fresh, editable copy of this graph (its inputs stay this graph's input variables)."""
        return FunctionGraph(list(self.inputs), list(self.outputs), clone=True)

    def evaluate(self, values: Sequence[Any]) -> list:
        """The outputs for these input values, node by node through each op's ``perform``."""
        env = evaluate(self.outputs, dict(zip(self.inputs, values)))
        return [env[v] for v in self.outputs]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InnerGraph) and other._hash == self._hash and other._key == self._key

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"InnerGraph({len(self.nodes)} nodes: {len(self.inputs)} inputs -> {len(self.outputs)} outputs)"


def _structure(inputs: tuple, outputs: tuple) -> tuple:
    """A canonical description of the graph (ops, wiring, constants, types): its identity."""
    ref: dict[Variable, tuple] = {v: ("i", k) for k, v in enumerate(inputs)}

    def of(v: Variable) -> tuple:
        if v in ref:
            return ref[v]
        if isinstance(v, Constant):
            return ("c",) + tuple(v.signature())
        raise GraphTypeError(f"an inner graph reads {v} ({v.type}), which is neither one of its inputs nor a "
                             "constant: pass it in as an input")
    nodes = []
    for node in toposort(outputs, blockers=inputs):
        nodes.append((node.op, tuple(of(v) for v in node.inputs)))
        for k, o in enumerate(node.outputs):
            ref[o] = ("n", len(nodes) - 1, k)
    return (tuple(v.type for v in inputs), tuple(nodes), tuple(of(v) for v in outputs),
            tuple(v.type for v in outputs))


__all__ = ["InnerGraph"]


class InnerGraphOp(Protocol):
    """What an op holding inner graphs (``sg.ifelse``'s IfElse) offers the rewriter and the
    emitter: its graphs by role, and a copy of itself with other graphs."""

    @property
    def inner_graphs(self) -> dict[str, InnerGraph]: ...

    def with_inner_graphs(self, graphs: dict[str, InnerGraph]) -> Op: ...
