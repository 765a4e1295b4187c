"""Draws docs/img/pipeline.svg (the compiler's pipeline and the seam a backend implements) and
docs/img/fused_step.svg (a compiled training step as symgraph.printing draws it).

    python docs/img/make_architecture.py
"""
from __future__ import annotations

import os

import graphviz
import numpy as np

import symgraph as sg
import symgraph.tensor as T

HERE = os.path.dirname(os.path.abspath(__file__))


def pipeline() -> graphviz.Digraph:
    g = graphviz.Digraph("pipeline", graph_attr={"rankdir": "LR", "fontname": "Helvetica", "fontsize": "11"},
                         node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "#eef3fb",
                                    "fontname": "Helvetica", "fontsize": "11"})
    steps = [("user", "user code\nT.dmatrix('x'), x + y"), ("ir", "graph IR\nVariable, Apply, Op\nsymgraph/graph"),
             ("grad", "sg.grad\nmore graph\nsymgraph/gradient.py"), ("fg", "FunctionGraph\n(a copy)"),
             ("rw", "rewrites\nmerge, folding, algebra,\nstability, fusion\nsymgraph/rewrite"),
             ("link", "the call protocol\nsymgraph/compile/link.py\n(schedule.py, lowering.py)")]
    for name, label in steps:
        g.node(name, label)
    for a, b in zip([s for s, _ in steps], [s for s, _ in steps][1:]):
        g.edge(a, b)
    with g.subgraph(name="cluster_seam") as c:
        c.attr(label="the seam a backend implements (compile/link.py: Backend)", style="dashed", fontname="Helvetica")
        c.node("table", "lowering table\nOp class -> lower(node, ctx)", fillcolor="#fdf3e1")
        c.node("place", "placement\nside(v), wanted_sides(node),\nconvert, read_shared, output",
               fillcolor="#fdf3e1")
        c.node("fallback", "explicit host fallback\nHostFallback nodes in f.graph", fillcolor="#fdf3e1")
    g.edge("link", "table")
    g.edge("link", "place")
    g.edge("link", "fallback")
    g.node("numpy", "numpy backend\nnumpy expressions\nf.source", fillcolor="#e6f4ea")
    g.node("opencl", "OpenCL backend\nkernels (f.kernels)\n+ schedule (f.source)", fillcolor="#e6f4ea")
    for b in ("numpy", "opencl"):
        g.edge("table", b, style="dotted")
    return g


def fused_step() -> graphviz.Digraph:
    X, y = T.dmatrix("X"), T.dvector("y")
    W = sg.shared(np.zeros((3, 4)), name="W")
    v = sg.shared(np.zeros(4), name="v")
    h = T.tanh(T.dot(X, W))
    loss = T.mean((T.dot(h, v) - y) ** 2)
    gW, gv = sg.grad(loss, [W, v])
    f = sg.function([X, y], loss, updates=[(W, W - 0.1 * gW), (v, v - 0.1 * gv)])
    return sg.printing.to_dot(f, style="compact")


if __name__ == "__main__":
    for name, graph in (("pipeline", pipeline()), ("fused_step", fused_step())):
        path = os.path.join(HERE, f"{name}.svg")
        with open(path, "w") as out:
            out.write(graph.pipe(format="svg").decode())
        print("wrote", path)
