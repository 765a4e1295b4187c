"""The ``bucket_allreduce`` pass: every all-reduce of one function that can run at the same time
as the others (none reads another's result) joins one ``AllReduceBucket`` per operation and
dtype, so a data-parallel step sends its gradients in one MPI call on one flat buffer instead of
one call per parameter (fewer latencies; Horovod's tensor fusion)."""
from __future__ import annotations

from symgraph.graph.fgraph import FunctionGraph
from symgraph.rewrite.core import Stats
from symgraph.tensor.collective import AllReduce, AllReduceBucket


def _levels(fgraph: FunctionGraph, order: list) -> dict:
    """For each all-reduce node: how many all-reduces lie on the longest path above it (nodes
    of one level never read each other's results)."""
    depth: dict = {}
    levels = {}
    for node in order:
        d = max((depth.get(v, 0) for v in node.inputs), default=0)
        if isinstance(node.op, AllReduce):
            levels[node] = d
            d += 1
        for o in node.outputs:
            depth[o] = d
    return levels


def bucket_allreduce(fgraph: FunctionGraph, stats: Stats, order: list | None = None) -> None:
    """Replace each group of two or more independent all-reduces (same op, same dtype, same
    level) by one AllReduceBucket node."""
    order = fgraph.toposort() if order is None else [n for n in order if n in fgraph.apply_nodes]
    groups: dict = {}
    for node, level in _levels(fgraph, order).items():
        groups.setdefault((level, node.op.op, node.outputs[0].dtype), []).append(node)
    for (_, op, _), nodes in groups.items():
        if len(nodes) < 2:
            continue
        bucket = AllReduceBucket(op, len(nodes)).make_node(*[n.inputs[0] for n in nodes])
        bucket.trace = nodes[0].trace
        for node, out in zip(nodes, bucket.outputs):
            fgraph.replace(node.outputs[0], out, "bucket_allreduce")
        stats.new_nodes.append(bucket)
        stats.count("bucket_allreduce")
