"""``to_dot(obj, style='compact')``: the everyday data-flow view.

Apply nodes are ellipses labelled with their op; inputs, shared variables, constants, outputs
and named intermediates are boxes labelled with name and type (coloured by role); unnamed
intermediates are plain edges. Edges carry the input position when an op has several inputs
(and the output index, at the tail, when it has several outputs). Updates are dashed red edges
from the new value to the shared variable. A fused Composite (any op with an inner graph) is a
cluster holding its inner ops; an op holding inner graphs by role (an ifelse) is drawn with each
inner graph as a cluster beside it ("IfElse: then", "IfElse: else"), nested ones inside;
host<->device transfers are red octagons. The groups of
``GraphView.groups`` are dashed blue boxes around their nodes: on OpenCL, one per kernel of
``f.kernels``, labelled with its name, its fused nodes' inner ops drawn straight in it.
Node names follow the drawing order only, so the same graph always gives the same dot source.
"""
from __future__ import annotations

from typing import Any

import graphviz

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.traversal import toposort
from symgraph.printing.collect import GraphView, inner_graph, inner_graphs, is_transfer, limited_nodes, op_label, role

ROLE_COLORS = {"input": "palegreen", "shared": "gold", "constant": "lightgrey",
               "output": "lightskyblue", "intermediate": "white"}
APPLY = {"shape": "ellipse"}
TRANSFER = {"shape": "doubleoctagon", "style": "filled,bold", "fillcolor": "tomato", "penwidth": "2"}
CLUSTER = {"style": "rounded,filled", "fillcolor": "lightyellow", "color": "orange"}
BRANCH = {"style": "rounded,filled", "fillcolor": "aliceblue", "color": "steelblue"}
GROUP = {"style": "rounded,dashed", "color": "royalblue", "fontcolor": "royalblue"}
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


class _Names:
    """Dot node names, given in drawing order: the first object asked for with ``prefix`` gets
    ``prefix0``, the next ``prefix1``... and the same object always the same name. The table holds
    each object it named: the inner graphs of fused nodes are built afresh for every drawing, and
    an object freed mid-drawing could hand its ``id()`` to a new one, which would then take the
    old name (nodes of one cluster drawn inside another). Names depend only on the drawing order,
    so drawing the same graph twice gives the same dot source."""

    def __init__(self, scope: str = ""):
        self.scope = scope
        self._table: dict[int, tuple[str, Any]] = {}
        self._counts: dict[str, int] = {}

    def __call__(self, obj: Any, prefix: str) -> str:
        hit = self._table.get(id(obj))
        if hit is None:
            k = self._counts.get(prefix, 0)
            self._counts[prefix] = k + 1
            hit = self._table[id(obj)] = (f"{self.scope}{prefix}{k}", obj)
        return hit[0]

    def __contains__(self, obj: Any) -> bool:
        return id(obj) in self._table


class _Compact:
    """Builds the Digraph; ``endpoint(var)`` is the dot node an edge carrying ``var`` starts at.

    Every edge goes in the top graph (an edge inside a cluster would pull outer nodes into it);
    nodes go in the graph of their box: the top graph, a group's cluster (``view.groups``) or,
    for the inner ops of a fused node, that node's cluster nested in either."""

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
        self.names = _Names()
        self.alias: dict[int, tuple[str, str]] = {}  # var -> (dot node, tail label) set by clusters
        self.boxed: set[int] = set()
        self.more_drawn = False
        self.kernel_boxes: set[int] = set()
        self.box_of, boxes = self._group_boxes()
        for node in self.nodes:
            self._apply(node, self.box_of.get(id(node), g))
        for box in boxes:
            g.subgraph(box)
        for out in view.roots:
            self.endpoint(out)
        for shared, value in view.updates:
            src, tail = self.endpoint(value)
            g.edge(src, self._box(shared), label="update", taillabel=tail or None, **UPDATE)

    def _group_boxes(self) -> tuple[dict[int, graphviz.Digraph], list[graphviz.Digraph]]:
        """One cluster per group of ``view.groups`` that has a drawn node, and which node goes
        in which (a node listed in two groups goes in the first)."""
        box_of: dict[int, graphviz.Digraph] = {}
        boxes = []
        for k, group in enumerate(self.view.groups):
            members = [n for n in group.nodes if id(n) in self.kept and id(n) not in box_of]
            if not members:
                continue
            box = graphviz.Digraph(name=f"cluster_g{k}", graph_attr={"label": group.label, **GROUP})
            boxes.append(box)
            if group.kernel:
                self.kernel_boxes.add(id(box))
            box_of.update((id(n), box) for n in members)
        return box_of, boxes

    def _box(self, v: Variable) -> str:
        nid = self.names(v, "v")
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
        src, tail = self.alias.get(id(v)) or (self.names(v.owner, "a"), self._tail(v))
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

    def _edges_into(self, node: Apply, dst: str, sources: list) -> None:
        several = len(node.inputs) > 1
        for i, (src, tail) in enumerate(sources):
            self.graph.edge(src, dst, label=str(i) if several else None, taillabel=tail or None)

    def _apply(self, node: Apply, box: graphviz.Digraph) -> None:
        """Draw ``node`` into ``box`` (the top graph or a group's cluster)."""
        sources = [self.endpoint(i) for i in node.inputs]
        nid = self.names(node, "a")
        tooltip = str(node.trace) if node.trace is not None else str(node.op)
        attrs = {**(TRANSFER if is_transfer(node.op) else APPLY), "tooltip": tooltip}
        fused = inner_graph(node)
        if fused is not None and id(box) in self.kernel_boxes:  # the kernel's box is the cluster
            ends = self._inner(box, _Names(f"{box.name}_{nid}_"), *fused, sources)
        else:
            ends = self._draw(node, nid, box, sources, attrs)
        if fused is not None:  # a fused node: its outputs start inside its cluster
            for out, end in zip(node.outputs, ends):
                self.alias[id(out)] = end

    def _draw(self, node: Apply, nid: str, box: graphviz.Digraph, sources: list[tuple[str, str]],
              attrs: dict) -> list[tuple[str, str]]:
        """Draw ``node`` as ``nid`` into ``box``, its inputs coming from ``sources``; returns where
        edges carrying its outputs start. A fused op is a cluster of its inner ops; an op holding
        inner graphs by role (an ifelse) is its own node, each inner graph a cluster beside it
        (``cluster_<nid>_<role>``) wired from the inputs it reads into the node."""
        fused = inner_graph(node)
        if fused is not None:
            return self._cluster(node, nid, box, sources, *fused)
        box.node(nid, op_label(node.op), **attrs)
        graphs = inner_graphs(node)
        if not graphs:
            self._edges_into(node, nid, sources)
            return [(nid, self._tail(o)) for o in node.outputs]
        n_read = len(next(iter(graphs.values()))[0])
        free = len(node.inputs) - n_read  # inputs the node reads itself (an ifelse's condition)
        for i, (src, tail) in enumerate(sources[:free]):
            self.graph.edge(src, nid, label=str(i) if len(node.inputs) > 1 else None, taillabel=tail or None)
        for part, (ins, outs) in graphs.items():
            c = graphviz.Digraph(name=f"cluster_{nid}_{part}",
                                 graph_attr={"label": f"{op_label(node.op)}: {part}", **BRANCH})
            ends = self._inner(c, _Names(f"{nid}_{part}_"), ins, outs, sources[free:])
            box.subgraph(c)
            for k, (src, tail) in enumerate(ends):
                self.graph.edge(src, nid, label=f"{part} {k}" if len(ends) > 1 else part,
                                taillabel=tail or None, style="dashed")
        return [(nid, self._tail(o)) for o in node.outputs]

    def _cluster(self, node: Apply, nid: str, box: graphviz.Digraph, outer: list[tuple[str, str]],
                 ins: list[Variable], outs: list[Variable]) -> list[tuple[str, str]]:
        """A fused op ``nid``: its inner ops in a cluster inside ``box``, wired straight to the
        outer inputs; the node's outputs then start at the inner ops that compute them (returned).
        Inner names are ``cluster_<nid>_n0``, ``..._c0`` (constants) in the inner graph's own order."""
        c = graphviz.Digraph(name=f"cluster_{nid}",
                             graph_attr={"label": f"{type(node.op).__name__} (fused)", **CLUSTER})
        ends = self._inner(c, _Names(f"cluster_{nid}_"), ins, outs, outer)
        box.subgraph(c)
        return ends

    def _inner(self, c: graphviz.Digraph, names: _Names, ins: list[Variable], outs: list[Variable],
               outer: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The nodes of the inner graph ``ins -> outs`` drawn into cluster ``c`` (nested clusters
        for its own fused or inner-graph nodes), ``ins`` wired to the ``outer`` endpoints; returns
        where its outputs start. ``names`` holds the inner graph for as long as it is drawn."""
        local: dict[int, tuple[str, str]] = {id(v): e for v, e in zip(ins, outer)}
        for inner_node in toposort(outs, blockers=ins):
            sources = []
            for v in inner_node.inputs:
                if id(v) not in local:
                    local[id(v)] = (self._inner_leaf(c, names, v), "")
                sources.append(local[id(v)])
            ends = self._draw(inner_node, names(inner_node, "n"), c, sources, INNER)
            for o, end in zip(inner_node.outputs, ends):
                local[id(o)] = end
        for out in outs:
            if id(out) not in local:  # an output that is an inner input or constant: show it
                local[id(out)] = (self._inner_leaf(c, names, out), "")
        return [local[id(o)] for o in outs]

    @staticmethod
    def _inner_leaf(c: graphviz.Digraph, names: _Names, v: Variable) -> str:
        nid = names(v, "c")
        c.node(nid, str(v), **INNER_LEAF)
        return nid
