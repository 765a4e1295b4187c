"""``to_networkx``: the graph as a ``networkx.DiGraph`` for analysis (node counts by op, longest
path, ...). Nodes are strings ('v0', 'a0', ...) so the graph can be written to GraphML/GEXF."""
from __future__ import annotations

from typing import Any

import networkx as nx

from symgraph.graph.traversal import toposort
from symgraph.printing.collect import collect, inner_graph, inner_graphs, op_label, role


def to_networkx(obj: Any) -> nx.DiGraph:
    """A DiGraph with one node per Variable (``kind='variable'``: name, type, dtype, shape, role)
    and per Apply (``kind='apply'``: op, op_class, ``inner_ops`` for fused ops, and for ops holding
    inner graphs by role, an ifelse, ``inner_graphs``: role -> the op labels of that graph's
    nodes in topological order); edges run
    in data-flow direction: input variable -> apply (``position`` = first input index, ``positions`` = all) and
    apply -> output variable (``position`` = output index). ``G.graph`` holds 'inputs',
    'outputs' and 'updates' (pairs of shared variable node, new value node) by node key."""
    view = collect(obj)
    g = nx.DiGraph()
    keys: dict[int, str] = {}

    def var(v: Any) -> str:
        if id(v) not in keys:
            keys[id(v)] = key = f"v{len(keys)}"
            t = v.type
            g.add_node(key, kind="variable", name=v.name, type=str(t), dtype=getattr(t, "dtype", None),
                       shape=getattr(t, "shape", None), role=role(v, view), op=None)
        return keys[id(v)]

    for v in view.variables():
        if v.owner is None or id(v) in view.input_ids:
            var(v)
    for node in view.nodes:
        key = keys[id(node)] = f"a{len(keys)}"
        attrs: dict[str, Any] = {"kind": "apply", "op": op_label(node.op), "op_class": type(node.op).__name__,
                 "name": None, "type": None, "dtype": None, "shape": None}
        inner = inner_graph(node)
        if inner is not None:
            attrs["inner_ops"] = [op_label(n.op) for n in toposort(inner[1], blockers=inner[0])]
        graphs = inner_graphs(node)
        if graphs:
            attrs["inner_graphs"] = {r: [op_label(n.op) for n in toposort(outs, blockers=ins)]
                                     for r, (ins, outs) in graphs.items()}
        g.add_node(key, **attrs)
        for i, inp in enumerate(node.inputs):
            src = var(inp)
            if g.has_edge(src, key):  # the same variable used twice (x * x)
                g.edges[src, key]["positions"].append(i)
            else:
                g.add_edge(src, key, position=i, positions=[i])
        for k, out in enumerate(node.outputs):
            g.add_edge(key, var(out), position=k)
    g.graph["inputs"] = [var(v) for v in view.inputs]
    g.graph["outputs"] = [var(v) for v in view.outputs]
    g.graph["updates"] = [(var(s), var(v)) for s, v in view.updates]
    return g
