"""``to_dot(obj, style='structure')``: the Python objects of a graph and the references between
them, drawn as in Theano's "Graph Structures" figure of ``z = x + y``: Variables red boxes,
Apply nodes blue boxes, Ops green circles, Types purple boxes; arrows labelled with the
attribute holding the reference (``inputs[0]``, ``outputs[0]``, ``op``, ``owner``, ``type``)."""
from __future__ import annotations

from typing import Any

import graphviz

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.printing.collect import GraphView, limited_nodes

VARIABLE = {"shape": "box", "style": "filled", "color": "red", "fillcolor": "#f8b4b4"}
APPLY = {"shape": "box", "style": "filled", "color": "blue", "fillcolor": "#b4cdf8"}
OP = {"shape": "circle", "style": "filled", "color": "darkgreen", "fillcolor": "#b4f0b4"}
TYPE = {"shape": "box", "style": "filled", "color": "purple", "fillcolor": "#dcb4f0"}
MORE = {"shape": "box", "style": "dashed", "color": "grey40"}


def structure_dot(view: GraphView, max_nodes: int | None) -> graphviz.Digraph:
    """The object diagram of ``view``: one red box per Variable, blue box per Apply, green circle
    per Op object, purple box per distinct (equal) Type. Types are merged by equality, so the
    three equal matrix types of ``z = x + y`` show as one box, as in the figure."""
    g = graphviz.Digraph("structure", graph_attr={"rankdir": "TB", "nodesep": "0.4"},
                         node_attr={"fontname": "Helvetica"}, edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    nodes, hidden = limited_nodes(view, max_nodes)
    kept = set(map(id, nodes))
    ids: dict[Any, str] = {}

    def ident(key: Any, prefix: str) -> tuple[str, bool]:
        new = key not in ids
        if new:
            ids[key] = f"{prefix}{len(ids)}"
        return ids[key], new

    def variable(v: Variable) -> str:
        nid, new = ident(("v", id(v)), "v")
        if new:
            g.node(nid, _var_label(v), **VARIABLE)
            tid, tnew = ident(("t", v.type), "t")
            if tnew:
                g.node(tid, _type_label(v.type), **TYPE)
            g.edge(nid, tid, label="type")
            if v.owner is not None and id(v.owner) in kept:
                g.edge(nid, ident(("a", id(v.owner)), "a")[0], label="owner")
        return nid

    for node in nodes:
        aid, _ = ident(("a", id(node)), "a")
        g.node(aid, "Apply", **APPLY)
        oid, new = ident(("o", id(node.op)), "o")
        if new:
            g.node(oid, _op_label(node), **OP)
        g.edge(aid, oid, label="op")
        for i, inp in enumerate(node.inputs):
            g.edge(aid, variable(inp), label=f"inputs[{i}]")
        for k, out in enumerate(node.outputs):
            g.edge(aid, variable(out), label=f"outputs[{k}]")
    for v in view.roots:
        variable(v)
    if hidden:
        g.node("more", f"… {hidden} more nodes", **MORE)
        for node in nodes:
            for inp in node.inputs:
                if inp.owner is not None and id(inp.owner) not in kept:
                    g.edge(variable(inp), "more", label="owner", style="dashed")
    return g


def _var_label(v: Variable) -> str:
    if isinstance(v, Constant):
        return f"Constant {v}"
    if v.name is not None:  # nohtml: a name like '<<IMG SRC=...>>' stays text, never HTML markup
        return graphviz.nohtml(v.name + (" (shared)" if getattr(v, "is_shared", False) else ""))
    return f"{type(v).__name__}"


def _type_label(t: Any) -> str:
    """'TensorType(float64, shape=(?, ?))'."""
    dtype, shape = getattr(t, "dtype", None), getattr(t, "shape", None)
    if dtype is None or shape is None:
        return f"{type(t).__name__}({t})"
    dims = ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "")
    return f"{type(t).__name__}({dtype}, shape=({dims}))"


def _op_label(node: Apply) -> str:
    """'Elemwise{add}': the Op's class, and its parameters when str(op) shows more than the class."""
    cls, text = type(node.op).__name__, str(node.op)
    return text if text.startswith(cls) else f"{cls}{{{text}}}"
