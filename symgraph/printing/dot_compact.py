"""``to_dot(obj, style='compact')``: the everyday data-flow view.

Apply nodes are ellipses labelled with their op; inputs, shared variables, constants, outputs
and named intermediates are boxes labelled with name and type (coloured by role); unnamed
intermediates are plain edges. Edges carry the input position when an op has several inputs
(and the output index, at the tail, when it has several outputs). Updates are dashed red edges
from the new value to the shared variable. A fused Composite (any op with an inner graph) is a
cluster holding its inner ops; host<->device transfers are red octagons.
"""
from __future__ import annotations

from typing import Any

import graphviz

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.traversal import toposort
from symgraph.printing.collect import GraphView, inner_graph, is_transfer, limited_nodes, op_label, role

ROLE_COLORS = {"input": "palegreen", "shared": "gold", "constant": "lightgrey",
               "output": "lightskyblue", "intermediate": "white"}
APPLY = {"shape": "ellipse"}
TRANSFER = {"shape": "doubleoctagon", "style": "filled,bold", "fillcolor": "tomato", "penwidth": "2"}
CLUSTER = {"style": "rounded,filled", "fillcolor": "lightyellow", "color": "orange"}
INNER = {"shape": "ellipse", "fontsize": "10", "height": "0.3"}
INNER_LEAF = {"shape": "box", "style": "filled", "fillcolor": "lightgrey", "fontsize": "10", "height": "0.2"}
UPDATE = {"style": "dashed", "color": "red", "fontcolor": "red", "constraint": "false"}
MORE = {"shape": "box", "style": "dashed", "color": "grey40"}


def compact_dot(view: GraphView, max_nodes: int | None, every_variable: bool = False,
                simple_names: bool = False) -> graphviz.Digraph:
    """The data-flow picture of ``view`` (at most ``max_nodes`` Apply nodes, nearest the outputs;
    the rest are one "… N more nodes" box). ``every_variable`` draws unnamed intermediates as
    boxes too (Theano's ``compact=False``); ``simple_names`` labels named variables with their name
    only (Theano's ``var_with_name_simple``)."""
    return _Compact(view, max_nodes, every_variable, simple_names).graph


def var_box_label(v: Variable, name: str | None = None, simple: bool = False) -> str:
    """'x\\nfloat64[?, ?]': name (or a constant's value) over the type; just the name when ``simple``."""
    name = name if name is not None else (str(v) if isinstance(v, Constant) else "")
    if simple and name:
        return name
    return f"{name}\n{v.type}" if name else str(v.type)


class _Compact:
    """Builds the Digraph; ``endpoint(var)`` is the dot node an edge carrying ``var`` starts at."""

    def __init__(self, view: GraphView, max_nodes: int | None, every_variable: bool = False,
                 simple_names: bool = False):
        self.view, self.every_variable, self.simple_names = view, every_variable, simple_names
        self.graph = g = graphviz.Digraph("compact", graph_attr={"rankdir": "TB", "fontname": "Helvetica"},
                                          node_attr={"fontname": "Helvetica"},
                                          edge_attr={"fontname": "Helvetica", "fontsize": "10"})
        if view.title:
            g.attr(label=view.title, labelloc="t")
        self.nodes, self.hidden = limited_nodes(view, max_nodes)
        self.kept = set(map(id, self.nodes))
        self.ids: dict[int, str] = {}
        self.alias: dict[int, tuple[str, str]] = {}  # var -> (dot node, tail label) set by clusters
        self.boxed: set[int] = set()
        self.more_drawn = False
        for node in self.nodes:
            self._apply(node)
        for out in view.roots:
            self.endpoint(out)
        for shared, value in view.updates:
            src, tail = self.endpoint(value)
            g.edge(src, self._box(shared), label="update", taillabel=tail or None, **UPDATE)

    def _id(self, obj: Any, prefix: str) -> str:
        key = id(obj)
        if key not in self.ids:
            self.ids[key] = f"{prefix}{len(self.ids)}"
        return self.ids[key]

    def _box(self, v: Variable) -> str:
        nid = self._id(v, "v")
        if id(v) not in self.boxed:
            self.boxed.add(id(v))
            r = role(v, self.view)
            label = var_box_label(v, self.view.name_of(v), self.simple_names)
            if r == "shared":
                label = label.replace("\n", " (shared)\n", 1) if "\n" in label else label + " (shared)"
            self.graph.node(nid, label, shape="box", style="filled", fillcolor=ROLE_COLORS[r])
        return nid

    def endpoint(self, v: Variable) -> tuple[str, str]:
        """Where edges carrying ``v`` start: its box, its producer, or the collapsed-rest node."""
        if id(v) in self.alias and not self._wants_box(v):
            return self.alias[id(v)]
        if v.owner is None or id(v) in self.view.input_ids:
            return self._box(v), ""
        if id(v.owner) not in self.kept:
            return self._more(), ""
        src, tail = self.alias.get(id(v)) or (self._id(v.owner, "a"), self._tail(v))
        if not self._wants_box(v):
            return src, tail
        new = id(v) not in self.boxed
        box = self._box(v)
        if new:
            self.graph.edge(src, box, taillabel=tail or None)
        return box, ""

    def _wants_box(self, v: Variable) -> bool:
        wanted = self.every_variable or self.view.name_of(v) is not None or id(v) in self.view.output_ids
        return v.owner is not None and wanted and id(v) not in self.view.input_ids

    @staticmethod
    def _tail(v: Variable) -> str:
        return str(v.index) if v.owner is not None and len(v.owner.outputs) > 1 else ""

    def _more(self) -> str:
        if not self.more_drawn:
            self.more_drawn = True
            self.graph.node("more", f"… {self.hidden} more nodes", **MORE)
        return "more"

    def _edges_into(self, node: Apply, dst: str, graph: graphviz.Digraph, sources: list) -> None:
        several = len(node.inputs) > 1
        for i, (src, tail) in enumerate(sources):
            graph.edge(src, dst, label=str(i) if several else None, taillabel=tail or None)

    def _apply(self, node: Apply) -> None:
        inner = inner_graph(node)
        if inner is not None:
            self._cluster(node, *inner)
            return
        nid = self._id(node, "a")
        attrs = TRANSFER if is_transfer(node.op) else APPLY
        tooltip = str(node.trace) if node.trace is not None else str(node.op)
        self.graph.node(nid, op_label(node.op), tooltip=tooltip, **attrs)
        self._edges_into(node, nid, self.graph, [self.endpoint(i) for i in node.inputs])

    def _cluster(self, node: Apply, ins: list[Variable], outs: list[Variable]) -> None:
        """A fused op: its inner ops inside a cluster, wired straight to the outer inputs. Edges
        go in the parent graph (an edge inside a cluster would pull outer nodes into it)."""
        outer = [self.endpoint(i) for i in node.inputs]
        local: dict[int, tuple[str, str]] = {id(v): e for v, e in zip(ins, outer)}
        name = self._id(node, "cluster_a")
        edges = []
        with self.graph.subgraph(name=name) as c:
            c.attr(label=f"{type(node.op).__name__} (fused)", **CLUSTER)
            for inner_node in toposort(outs, blockers=ins):
                nid = self._id(inner_node, f"{name}_n")
                c.node(nid, op_label(inner_node.op), **INNER)
                sources = []
                for v in inner_node.inputs:
                    if id(v) not in local:
                        local[id(v)] = (self._inner_leaf(c, v, name), "")
                    sources.append(local[id(v)])
                edges.append((inner_node, nid, sources))
                for o in inner_node.outputs:
                    local[id(o)] = (nid, self._tail(o))
            for k, out in enumerate(outs):
                if id(out) not in local:  # an output that is an inner input or constant: show it
                    local[id(out)] = (self._inner_leaf(c, out, name), "")
        for inner_node, nid, sources in edges:
            self._edges_into(inner_node, nid, self.graph, sources)
        for k, out in enumerate(node.outputs):
            self.alias[id(out)] = local[id(outs[k])]

    def _inner_leaf(self, c: graphviz.Digraph, v: Variable, cluster: str) -> str:
        nid = self._id(v, f"{cluster}_c")
        c.node(nid, str(v), **INNER_LEAF)
        return nid
