"""FunctionGraph: a self-contained copy of a graph between fixed inputs and outputs, with a
clients map, that rewrites edit in place through ``replace``."""
from __future__ import annotations

from collections.abc import Sequence

from symgraph.errors import MissingInputError, RewriteError, node_context
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.traversal import clone, toposort


class FunctionGraph:
    """Inputs, outputs and the Apply nodes between them.

    ``clients[var]`` lists ``(node, i)`` pairs where ``var`` is input ``i`` of ``node``; an
    output position ``k`` of the graph appears as ``("output", k)``. ``features`` (observers, as
    in Theano) hear of every ``replace`` (the rewrite history records which rule replaced which
    node; empty, and free, otherwise).
    """

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable], clone: bool = True):
        if clone:
            outputs = _copy_nodes(list(outputs), inputs)
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.features: list = []  # observers told of every replacement (attach_feature)
        self.clients: dict[Variable, list] = {}
        self.apply_nodes: set[Apply] = set()
        self.variables: set[Variable] = set()
        self.new_nodes: list[Apply] = []  # the nodes the latest replace brought in
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
            raise MissingInputError(self._missing_message(missing))

    def _missing_message(self, missing: list[Variable]) -> str:
        """Which variables are missing, and the first node reading one (with its user line)."""
        reader = next((n for v in missing for n, _ in self.clients[v] if isinstance(n, Apply)), None)
        where = f"\n{node_context(reader)}" if reader is not None else ""
        return (f"the outputs depend on variables that are not inputs: {missing}; give each as an input (or "
                f"a value for it in givens). " + (f"The first node reading one:{where}" if where else ""))

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

    def import_var(self, var: Variable) -> list[Apply]:
        """Bring ``var`` and the nodes it needs into the graph, stopping at known variables;
        returns the new nodes in topological order. Linear in the number of new nodes."""
        clients = self.clients
        if var in clients:
            return []
        new: list[Apply] = []
        if var.owner is not None:
            seen = {var.owner}
            stack = [(var.owner, 0)]
            while stack:
                node, i = stack[-1]
                if i < len(node.inputs):
                    stack[-1] = (node, i + 1)
                    inp = node.inputs[i]
                    if inp in clients:
                        continue
                    if inp.owner is None:
                        if not isinstance(inp, Constant) and not getattr(inp, "is_shared", False):
                            raise RewriteError(f"a replacement brings in the free variable {inp} ({inp.type}), "
                                               "which is not an input of the function")
                    elif inp.owner not in seen:
                        seen.add(inp.owner)
                        stack.append((inp.owner, 0))
                else:
                    stack.pop()
                    new.append(node)
        for node in new:
            self._import_node(node)
        self._add_variable(var)
        return new

    def attach_feature(self, feature: object) -> None:
        """Add an observer (Theano/PyTensor's features): its ``on_attach(fgraph)`` runs now, and its
        ``on_replace(fgraph, old, new, reason)`` (if any) after every ``replace``."""
        if feature in self.features:
            return
        self.features.append(feature)
        on_attach = getattr(feature, "on_attach", None)
        if on_attach is not None:
            on_attach(self)

    def remove_feature(self, feature: object) -> None:
        """Stop telling ``feature`` about replacements (calls its ``on_detach(fgraph)`` if any)."""
        if feature in self.features:
            self.features.remove(feature)
            on_detach = getattr(feature, "on_detach", None)
            if on_detach is not None:
                on_detach(self)

    def replace(self, old: Variable, new: Variable, reason: str = "") -> list[Apply]:
        """Make every client of ``old`` use ``new`` instead, in time proportional to the change;
        nodes left unused are removed. The type must stay the same. Returns the new nodes."""
        if old is new:
            return []
        if old.type != new.type:
            raise RewriteError(f"replacement changes the type of {old}: {old.type} -> {new.type}"
                               + (f" (by {reason})" if reason else ""))
        new_nodes = self.import_var(new)
        if old.owner is not None:  # errors in rewritten code point at the user line of what it replaced
            for node in new_nodes:
                node.trace = old.owner.trace
        uses = self.clients[new]
        for client, i in self.clients.get(old, ()):
            if client == "output":
                self.outputs[i] = new
            else:
                client.inputs[i] = new
            uses.append((client, i))
        self.clients[old] = []
        self._prune(old)
        self.new_nodes = new_nodes  # what this replacement brought in, for features that record it
        for feature in self.features:
            on_replace = getattr(feature, "on_replace", None)
            if on_replace is not None:
                on_replace(self, old, new, reason)
        return new_nodes

    def _prune(self, var: Variable) -> None:
        """Drop nodes whose outputs nobody uses any more (dead code), walking upwards. Each
        removal from a clients list is one ``list.remove``: constants shared by thousands of
        nodes have long lists, and rebuilding them per removal would be quadratic."""
        clients, nodes, inputs = self.clients, self.apply_nodes, set(self.inputs)
        stack = [var]
        while stack:
            v = stack.pop()
            node = v.owner
            if node is None or node not in nodes:
                if not clients.get(v, True) and v not in inputs:
                    self.variables.discard(v)
                    del clients[v]
                continue
            if any(clients.get(o) for o in node.outputs):
                continue
            nodes.discard(node)
            for o in node.outputs:
                self.variables.discard(o)
                clients.pop(o, None)
            for i, inp in enumerate(node.inputs):
                cl = clients.get(inp)
                if cl is not None:
                    try:
                        cl.remove((node, i))
                    except ValueError:
                        continue
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
