"""``inline_op_from_graph`` (canonicalize): an OpFromGraph node becomes a copy of its inner graph
reading the node's inputs, so the rest of the pipeline (merging, fusion) sees through it."""
from __future__ import annotations

from symgraph.graph.basic import Apply, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.opfromgraph import OpFromGraph
from symgraph.rewrite.core import rule


@rule("canonicalize", OpFromGraph)
def inline_op_from_graph(fgraph: FunctionGraph, node: Apply) -> list[Variable | None]:
    """OpFromGraph(graph)(*inputs) -> graph's outputs computed from inputs (of the same types:
    make_node typed the node's outputs as an inlined copy's)."""
    outs = node.op_as(OpFromGraph).inlined(node.inputs)
    return [new if new.type == old.type else None for new, old in zip(outs, node.outputs)]
