"""Whole-graph passes: merge (common subexpressions and equal constants), constant folding
and dead code removal. Each is one linear walk over the graph."""
from __future__ import annotations

import numpy as np

from symgraph.graph.basic import Apply, Constant
from symgraph.graph.fgraph import FunctionGraph
from symgraph.rewrite.core import Stats, _fail
from symgraph.tensor.elemwise import Elemwise

# constant folding keeps a result only up to this many elements, unless an input is as big:
# folding must not turn a small graph (e.g. ``alloc(0, 10000, 10000)``) into a huge constant
FOLD_MAX_SIZE = 1 << 16


def merge(fgraph: FunctionGraph, stats: Stats, order: list | None = None) -> None:
    """Common subexpression elimination: equal constants become one, and nodes applying an
    equal op to the same inputs become one (in topological order, so merges cascade)."""
    by_signature: dict = {}
    for v in [v for v in fgraph.variables if isinstance(v, Constant)]:
        try:
            sig = v.signature()
        except TypeError:
            continue
        first = by_signature.setdefault(sig, v)
        if first is not v and fgraph.clients.get(v):
            fgraph.replace(v, first, "merge")
            stats.count("merge_constant")
    seen: dict = {}
    for node in fgraph.toposort() if order is None else order:
        if node not in fgraph.apply_nodes:
            continue
        op = node.op  # Elemwise keyed by its (interned) name: hashing Ops is the slow part here
        key = (op.scalar_op.name if type(op) is Elemwise else op, tuple(map(id, node.inputs)))
        try:
            other = seen.setdefault(key, node)
        except TypeError:  # an op that cannot be hashed is never merged
            continue
        if other is node:
            continue
        for old, new in zip(node.outputs, other.outputs):
            if fgraph.clients.get(old) or old in fgraph.outputs:
                fgraph.replace(old, new, "merge")
        stats.count("merge_node")


def _folding_inputs(node: Apply) -> list[Constant] | None:
    """The inputs of ``node`` when it may be folded (all constant, and the op allows it), else None."""
    consts = [i for i in node.inputs if isinstance(i, Constant)]
    if not consts or len(consts) != len(node.inputs) or getattr(node.op, "no_constant_folding", False):
        return None
    return consts


def constant_fold(fgraph: FunctionGraph, stats: Stats, order: list | None = None, lenient: bool = False) -> None:
    """Evaluate (with ``op.perform``) every node whose inputs are all constants and put the
    result in its place; results far bigger than their inputs are left to run time. A node whose
    ``perform`` raises is a rewrite error, unless ``lenient`` (inside a branch, which may never
    run): it is then left unfolded, to raise if and when it runs."""
    for node in fgraph.toposort() if order is None else order:
        inputs = _folding_inputs(node) if node in fgraph.apply_nodes else None
        if inputs is None:
            continue
        try:
            values = node.op.perform(node, [i.data for i in inputs])
            biggest = max((np.size(i.data) for i in inputs), default=1)
            if any(np.size(v) > max(FOLD_MAX_SIZE, biggest) for v in values):
                continue
            consts = []
            for out, value in zip(node.outputs, values):
                value = np.array(out.type.filter(value, allow_downcast=True))  # a private copy
                value.setflags(write=False)
                consts.append(out.type.constant_class(out.type, value))
        except Exception as err:  # the op's own perform failed: report it as this rewrite's failure
            if not lenient:
                _fail("constant_folding", node, err)
            continue
        for out, const in zip(node.outputs, consts):
            if fgraph.clients.get(out):
                fgraph.replace(out, const, "constant_folding")
        stats.count("constant_folding")


def dead_code(fgraph: FunctionGraph, stats: Stats) -> None:
    """Drop nodes whose outputs nobody reads (``replace`` prunes as it goes; this catches the
    rest, e.g. nodes left behind by a pass that edited ``inputs`` directly)."""
    clients = fgraph.clients
    work = [n for n in fgraph.apply_nodes if not any(clients.get(o) for o in n.outputs)]
    removed = 0
    while work:
        node = work.pop()
        if node not in fgraph.apply_nodes or any(clients.get(o) for o in node.outputs):
            continue
        fgraph.apply_nodes.discard(node)
        removed += 1
        for o in node.outputs:
            fgraph.variables.discard(o)
            clients.pop(o, None)
        for inp in node.inputs:
            cl = clients.get(inp)
            if cl is not None:
                cl[:] = [(c, j) for c, j in cl if c is not node]
                if not cl and inp.owner is not None:
                    work.append(inp.owner)
    if removed:
        stats.count("dead_code", removed)
