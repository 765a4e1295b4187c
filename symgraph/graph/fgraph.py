"""FunctionGraph: a self-contained copy of a graph between fixed inputs and outputs, with a
clients map, that rewrites edit in place through ``replace``."""
from __future__ import annotations

from typing import Iterable, Sequence

from symgraph.errors import RewriteError
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.traversal import clone, toposort


class FunctionGraph:
    """Inputs, outputs and the Apply nodes between them.

    ``clients[var]`` lists ``(node, i)`` pairs where ``var`` is input ``i`` of ``node``; an
    output position ``k`` of the graph appears as ``("output", k)``.
    """

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable], clone: bool = True):
        if clone:
            outputs = _copy_nodes(list(outputs), inputs)
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.clients: dict[Variable, list] = {}
        self.apply_nodes: set[Apply] = set()
        self.variables: set[Variable] = set()
        for v in self.inputs:
            self._add_variable(v)
        for node in toposort(self.outputs, blockers=self.inputs):
            self._import_node(node)
        for k, v in enumerate(self.outputs):
            self._add_variable(v)
            self.clients[v].append(("output", k))
        input_set = self._input_set()
        missing = [v for v in self.variables
                   if v.owner is None and v not in input_set and not isinstance(v, Constant)
                   and not getattr(v, "is_shared", False)]
        if missing:
            raise ValueError(f"the outputs depend on variables that are not inputs: {missing}")

    def _input_set(self) -> set:
        return set(self.inputs)

    def _add_variable(self, v: Variable) -> None:
        if v not in self.clients:
            self.clients[v] = []
            self.variables.add(v)

    def _import_node(self, node: Apply) -> None:
        if node in self.apply_nodes:
            return
        self.apply_nodes.add(node)
        for i, v in enumerate(node.inputs):
            self._add_variable(v)
            self.clients[v].append((node, i))
        for o in node.outputs:
            self._add_variable(o)

    def import_var(self, var: Variable) -> None:
        """Bring ``var`` and the nodes it needs (stopping at known variables) into the graph."""
        known = [v for v in self.variables]
        for node in toposort([var], blockers=known):
            self._import_node(node)
        self._add_variable(var)

    def replace(self, old: Variable, new: Variable, reason: str = "") -> None:
        """Make every client of ``old`` use ``new`` instead; nodes left unused are removed."""
        if old is new:
            return
        if old.type != new.type:
            raise RewriteError(f"replacement changes the type of {old}: {old.type} -> {new.type}"
                               + (f" (by {reason})" if reason else ""))
        self.import_var(new)
        for client, i in list(self.clients.get(old, ())):
            if client == "output":
                self.outputs[i] = new
            else:
                client.inputs[i] = new
            self.clients[new].append((client, i))
        self.clients[old] = []
        self._prune(old)

    def replace_all(self, pairs: Iterable[tuple[Variable, Variable]], reason: str = "") -> None:
        for old, new in pairs:
            self.replace(old, new, reason)

    def _prune(self, var: Variable) -> None:
        """Drop nodes whose outputs nobody uses any more (dead code), walking upwards."""
        stack = [var]
        while stack:
            v = stack.pop()
            node = v.owner
            if node is None or node not in self.apply_nodes:
                if not self.clients.get(v) and v not in self._input_set() and v in self.variables:
                    self.variables.discard(v)
                    self.clients.pop(v, None)
                continue
            if any(self.clients.get(o) for o in node.outputs):
                continue
            self.apply_nodes.discard(node)
            for o in node.outputs:
                self.variables.discard(o)
                self.clients.pop(o, None)
            for i, inp in enumerate(node.inputs):
                cl = self.clients.get(inp)
                if cl is not None:
                    cl[:] = [(c, j) for c, j in cl if not (c is node and j == i)]
                    if not cl:
                        stack.append(inp)

    def toposort(self) -> list[Apply]:
        """The nodes in an order where each comes after its inputs' owners (deterministic)."""
        return toposort(self.outputs, blockers=self.inputs)

    def __len__(self) -> int:
        return len(self.apply_nodes)

    def __repr__(self) -> str:
        return f"FunctionGraph({self.inputs} -> {self.outputs}, {len(self.apply_nodes)} nodes)"


def _copy_nodes(outputs: list[Variable], inputs: Sequence[Variable]) -> list[Variable]:
    """Give the graph its own Apply nodes so rewrites never touch the user's graph."""
    keep = set(inputs)
    new_outputs, _ = clone(outputs)
    return [o if o in keep else n for o, n in zip(outputs, new_outputs)]
