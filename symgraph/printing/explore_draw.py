"""The drawings of the explorer page (``sg.printing.to_html``): one SVG, laid out by Graphviz's
``dot``, per graph state (each rewrite step, each inner graph). Every Apply node is an SVG group
whose ``id`` is the node's stable id in the page (``n12``; ``n12/3`` inside the inner graph of
``n12``) and whose classes say what it is (``node apply``, ``fused``, ``fallback``); edges that
move a value between host and device have the class ``transfer``. Variables are boxes when they
are inputs, shared variables, constants, outputs or named, as in ``to_dot(style='compact')``.

User text (names, constants) reaches the SVG only as Graphviz labels, which ``dot`` escapes."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import graphviz

from symgraph.compile.placement import HostFallback, HostPlaced
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.printing.collect import op_label
from symgraph.printing.render import render

ROLE_FILL = {"input": "#d5f5d5", "shared": "#ffe98a", "constant": "#e6e6e6", "output": "#bfe3ff",
             "intermediate": "#ffffff"}
APPLY = {"shape": "ellipse", "style": "filled", "fillcolor": "#ffffff"}
FUSED = {"shape": "box", "style": "rounded,filled,bold", "fillcolor": "#fff3cc", "color": "#d98c00"}
FALLBACK = {"shape": "doubleoctagon", "style": "filled,bold", "fillcolor": "#ff8a7a", "color": "#b00000",
            "penwidth": "2"}
TRANSFER = {"color": "#d00000", "fontcolor": "#d00000", "penwidth": "2.5", "style": "bold,dashed"}
UPDATE = {"style": "dashed", "color": "#c03030", "fontcolor": "#c03030", "constraint": "false"}
MAX_LABEL = 44
SPLIT_ABOVE = 60
"""A graph with more Apply nodes than this draws an input, shared variable or constant read by several
nodes as one box per reader (TensorBoard's auxiliary nodes): the long edges from one box to readers
far apart cost ``dot`` minutes on a few hundred nodes, and tangle the picture."""
LARGE = 350
FAST_LAYOUT = {"nslimit": "1", "nslimit1": "1", "mclimit": "0.5", "splines": "line"}
"""Above LARGE drawn nodes, ``dot`` gets fewer layout iterations and straight edges: a 700-box step of
a 12-layer MLP's gradient then takes about a second instead of half a minute (spline routing around
thousands of virtual nodes is what costs)."""


@dataclass
class Drawing:
    """What one SVG shows: (id, label, attributes) nodes and (source, target, attributes) edges."""
    name: str
    nodes: list[tuple[str, str, dict]] = field(default_factory=list)
    edges: list[tuple[str, str, dict]] = field(default_factory=list)

    def node(self, nid: str, label: str, **attrs: str) -> None:
        self.nodes.append((nid, label, attrs))

    def edge(self, src: str, dst: str, **attrs: str) -> None:
        self.edges.append((src, dst, attrs))


def short(text: str, limit: int = MAX_LABEL) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def apply_attrs(node: Apply, fused: bool) -> tuple[str, dict]:
    """The label and style of an Apply node: fused kernels (an op with an inner graph) are bold
    boxes, host fallbacks red octagons, the rest ellipses."""
    op = node.op
    if isinstance(op, HostFallback) and not isinstance(op, HostPlaced):  # placed by choice: drawn as its op
        return short(f"HOST {getattr(op, 'op', op)}"), {**FALLBACK, "class": "apply fallback" + " fused" * fused}
    if fused:
        return short(op_label(op)), {**FUSED, "class": "apply fused"}
    return short(op_label(op)), {**APPLY, "class": "apply"}


@dataclass
class GraphState:
    """One state of a graph to draw: nodes in order with the inputs they had then, the graph's
    outputs and declared inputs, update pairs (shared variable, value)."""
    nodes: list[tuple[str, Apply, tuple[Variable, ...]]]
    outputs: list[Variable]
    inputs: list[Variable] = field(default_factory=list)
    updates: list[tuple[Variable, Variable]] = field(default_factory=list)
    names: dict = field(default_factory=dict)  # id(var) -> name to show (outputs renamed by rewrites)


def draw_state(name: str, state: GraphState, vid: Callable[[Variable], str], role: Callable[[Variable], str],
               fused: Callable[[Apply], bool], transfers: dict | None = None) -> Drawing:
    """The drawing of ``state``; ``vid`` names variable boxes, ``role`` colours them, ``fused``
    says which nodes open, ``transfers`` maps (variable id, reader id) to the side it is moved to."""
    return _StateDrawing(name, state, vid, role).draw(fused, transfers or {})


class _StateDrawing:
    """Builds one Drawing: variable boxes made on first use, Apply nodes and their edges."""

    def __init__(self, name: str, state: GraphState, vid: Callable[[Variable], str],
                 role: Callable[[Variable], str]) -> None:
        self.d, self.state, self.vid, self.role = Drawing(name), state, vid, role
        self.owner = {id(n): sid for sid, n, _ in state.nodes}
        self.declared = {id(v) for v in state.inputs}
        self.wanted = {id(v) for v in state.outputs} | {id(v) for _, v in state.updates}
        self.boxed: set[str] = set()
        self.split = len(state.nodes) > SPLIT_ABOVE
        self.copies: dict[int, int] = {}

    def draw(self, fused: Callable[[Apply], bool], transfers: dict) -> Drawing:
        for sid, node, inputs in self.state.nodes:
            label, attrs = apply_attrs(node, fused(node))
            self.d.node(sid, label, tooltip=short(op_label(node.op), 300), **attrs)
            several = len(inputs) > 1
            for i, v in enumerate(inputs):
                src, tail = self.source(v)
                extra = {"label": str(i)} if several else {}
                to = transfers.get((id(v), sid))
                if to is not None:
                    extra = {**TRANSFER, "label": f"{i}: to {to}" if several else f"to {to}", "class": "transfer"}
                self.d.edge(src, sid, taillabel=tail, **extra)
        for v in self.state.outputs:
            self.box(v)
        for shared, value in self.state.updates:
            self.d.edge(self.box(value), self.leaf_box(shared), label="update", **UPDATE)
        return self.d

    def source(self, v: Variable) -> tuple[str, str]:
        """Where an edge carrying ``v`` starts: a box, or the node computing it (and the output index)."""
        if v.owner is None or id(v) in self.declared or id(v.owner) not in self.owner:
            return self.leaf_box(v), ""
        if v.name is not None or id(v) in self.wanted or id(v) in self.state.names:
            return self.box(v), ""
        return self.owner[id(v.owner)], _tail(v)

    def leaf_box(self, v: Variable) -> str:
        """A leaf's box: its first use draws it, later uses draw copies in a large graph."""
        if not self.split or id(v) not in self.copies:
            self.copies[id(v)] = 0
            return self.box(v)
        self.copies[id(v)] += 1
        return self.box(v, f"{self.vid(v)}~{self.copies[id(v)]}")

    def box(self, v: Variable, bid: str | None = None) -> str:
        bid = bid or self.vid(v)
        if bid in self.boxed:
            return bid
        self.boxed.add(bid)
        r = self.role(v)
        label = self.state.names.get(id(v)) or v.name or (str(v) if isinstance(v, Constant) else "")
        text = f"{short(label, 28)}\n{v.type}" if label else str(v.type)
        self.d.node(bid, text + (" (shared)" if r == "shared" else ""), shape="box", style="filled",
                    fillcolor=ROLE_FILL.get(r, "#ffffff"), fontsize="10",
                    **{"class": f"var {r}" + " copy" * ("~" in bid)})
        src = self.owner.get(id(v.owner)) if v.owner is not None and id(v) not in self.declared else None
        if src is not None:
            self.d.edge(src, bid, taillabel=_tail(v))
        return bid


def _tail(v: Variable) -> str:
    return str(v.index) if v.owner is not None and len(v.owner.outputs) > 1 else ""


_PROLOG = re.compile(r"<\?xml.*?\?>|<!DOCTYPE.*?>|<!--.*?-->", re.S)


def to_svg(d: Drawing, timeout: float = 120) -> str:
    """Lay ``d`` out with ``dot`` and return the SVG element (no XML prolog, doctype or comments;
    sizes left to the page)."""
    attrs = {"rankdir": "TB", "fontname": "Helvetica", "id": d.name, "bgcolor": "transparent"}
    if len(d.nodes) > LARGE:
        attrs.update(FAST_LAYOUT)
    g = graphviz.Digraph(d.name, graph_attr=attrs,
                         node_attr={"fontname": "Helvetica", "fontsize": "11"},
                         edge_attr={"fontname": "Helvetica", "fontsize": "9", "color": "#555555"})
    for nid, label, attrs in d.nodes:
        g.node(nid, label, id=nid, **attrs)
    for k, (src, dst, attrs) in enumerate(d.edges):
        attrs = {key: value for key, value in attrs.items() if value}
        cls = attrs.pop("class", "")
        g.edge(src, dst, id=f"{d.name}-e{k}", **{"class": f"flow {cls}".strip()}, **attrs)
    svg = render(g, "svg", timeout).decode()
    svg = _PROLOG.sub("", svg).strip()
    return re.sub(r'<svg width="[^"]*" height="[^"]*"', "<svg", svg, count=1)
