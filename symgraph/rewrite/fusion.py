"""Elementwise fusion: connected Elemwise nodes become one Composite node.

Groups grow from the last node backwards (and to readers of their members), one node at a
time, keeping every group *convex*: no path leaves a group and comes back, so replacing each
group by one node cannot create a cycle. The check is a short bounded walk per candidate
(results that can only become more true are cached), so the pass is linear in practice.
Values used outside a group become extra outputs; 0-d constants are inlined into the
program; each Composite respects an operand cap (inputs + outputs), which OpenCL needs for
kernel arguments. DimShuffles and other views are never fused (they stay free views).

A reduction whose input is a Composite (or lone Elemwise) output, where nothing else reads that
node's outputs (save for their shapes, as mean's divisor does), gets ``node.tag["fused_producer"] =
that_node``: a backend that can compute the elementwise program inside its reduction loop (OpenCL)
uses it; numpy computes the elementwise node into a buffer and reduces that. Likewise ``fused_into``
names the matrix product or reduction whose result only one elementwise node reads: a backend may
run that node's program in its store.
"""
from __future__ import annotations

import heapq

import numpy as np

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.rewrite.core import Stats
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import Elemwise

MAX_OPERANDS = 32
_WALK_LIMIT = 64  # nodes a convexity check may visit before it gives up (and refuses)


def _inlinable(v: Variable) -> bool:
    return isinstance(v, Constant) and getattr(v.type, "ndim", None) == 0 and isinstance(v.data, np.ndarray)


class _Group:
    """A growing set of nodes with its external inputs and exported outputs."""

    def __init__(self, seed: Apply, fgraph: FunctionGraph, pos: dict):
        self.fgraph, self.pos = fgraph, pos
        self.members = {seed}
        self.full = seed.outputs[0].type.shape  # the shape every exported value broadcasts to
        self.lo = self.hi = pos[seed]
        self.reaches: set = set()     # outside nodes known to reach the group
        self.reached: set = set()     # outside nodes known to be reached from the group
        self.ext_in: dict[Variable, int] = {}
        self.exported: set[Variable] = set()
        self.capped = False  # count operands as the group grows (only needed under a cap)

    def operands(self) -> int:
        """Inputs (not counting inlined constants) plus outputs used outside the group."""
        if not self.capped:
            self.ext_in, self.exported = {}, set()
            for node in self.members:
                for v in node.inputs:
                    if v.owner not in self.members and not _inlinable(v):
                        self.ext_in[v] = 1
                for o in node.outputs:
                    if self._outside_clients(o):
                        self.exported.add(o)
        return len(self.ext_in) + len(self.exported)

    def _outside_clients(self, var: Variable, extra: Apply | None = None) -> bool:
        return any(c == "output" or (c not in self.members and c is not extra)
                   for c, _ in self.fgraph.clients.get(var, ()))

    def _count(self, node: Apply, commit: bool) -> int:
        """Operand count after adding ``node`` (and record it when ``commit``)."""
        ext_in = dict(self.ext_in) if not commit else self.ext_in
        exported = set(self.exported) if not commit else self.exported
        for v in node.inputs:
            if v.owner in self.members:
                if v in exported and not self._outside_clients(v, node):
                    exported.discard(v)
            elif not _inlinable(v):
                ext_in[v] = ext_in.get(v, 0) + 1
        for o in node.outputs:
            ext_in.pop(o, None)
            if self._outside_clients(o, node):
                exported.add(o)
        return len(ext_in) + len(exported)

    def _walk(self, start: Apply, forward: bool) -> bool:
        """Does an outside path from ``start`` reach the group (forward) / come from it (backward)?"""
        known = self.reaches if forward else self.reached
        seen, stack = {start}, [start]
        while stack:
            node = stack.pop()
            if node in known:
                known.add(start)
                return True
            nexts = ([c for o in node.outputs for c, _ in self.fgraph.clients.get(o, ()) if c != "output"]
                     if forward else [v.owner for v in node.inputs if v.owner is not None])
            for n in nexts:
                if n in self.members:
                    known.add(start)
                    return True
                p = self.pos.get(n)
                if n in seen or p is None or (p > self.hi if forward else p < self.lo):
                    continue
                if len(seen) >= _WALK_LIMIT:
                    return True  # too far to tell: refuse, to be safe
                seen.add(n)
                stack.append(n)
        return False

    def shape_fits(self, node: Apply) -> bool:
        """A node may join if it feeds a member (an elementwise input broadcasts into its output),
        or if it has the group's full shape and reads a member of that shape. Growing through a
        shared input to its other readers would otherwise fuse unrelated shapes. Every output a
        Composite exports has the full shape: a smaller value joins only if all its readers are in."""
        readers = [c for o in node.outputs for c, _ in self.fgraph.clients.get(o, ())]
        full = node.outputs[0].type.shape == self.full
        if any(c in self.members for c in readers):
            return full or all(c in self.members for c in readers)
        return full and any(v.owner in self.members and v.type.shape == self.full for v in node.inputs)

    def can_add(self, node: Apply, max_operands: int) -> bool:
        """Adding ``node`` keeps the group convex, of one shape, and within the operand cap."""
        if not self.shape_fits(node):
            return False
        for o in node.outputs:
            for c, _ in self.fgraph.clients.get(o, ()):
                if c != "output" and c not in self.members and self._walk(c, forward=True):
                    self.reaches.add(node)
                    return False
        for v in node.inputs:
            q = v.owner
            if q is not None and q not in self.members and self._walk(q, forward=False):
                self.reached.add(node)
                return False
        return not self.capped or self._count(node, commit=False) <= max_operands

    def add(self, node: Apply) -> None:
        if self.capped:
            self._count(node, commit=True)
        self.members.add(node)
        p = self.pos[node]
        self.lo, self.hi = min(self.lo, p), max(self.hi, p)


def _fusable(node: Apply) -> bool:
    return type(node.op) is Elemwise


def _grow(seed: Apply, fgraph: FunctionGraph, pos: dict, taken: set, max_operands: float) -> _Group:
    """The group grown from ``seed``: neighbours are tried latest first, each once."""
    g = _Group(seed, fgraph, pos)
    if max_operands != float("inf"):
        g.capped = True
        g._count(seed, commit=True)
    heap: list = []
    considered = {seed}

    def push_neighbours(node: Apply) -> None:
        near = [v.owner for v in node.inputs if v.owner is not None]
        near += [c for o in node.outputs for c, _ in fgraph.clients.get(o, ()) if c != "output"]
        for n in near:
            if n not in considered and n not in taken and n in pos and _fusable(n):
                considered.add(n)
                heapq.heappush(heap, (-pos[n], id(n), n))
    push_neighbours(seed)
    while heap:
        _, _, node = heapq.heappop(heap)
        if g.can_add(node, max_operands):
            g.add(node)
            push_neighbours(node)
    return g


def find_groups(fgraph: FunctionGraph, max_operands: int = MAX_OPERANDS,
                order: list[Apply] | None = None) -> list[list[Apply]]:
    """Disjoint convex groups of two or more Elemwise nodes, each in topological order.

    A group is first grown without the operand cap (intermediate states of a forward +
    backward chain have many operands even when the whole has three); only when the whole
    exceeds the cap is it regrown greedily under the cap. ``order`` must be topological.
    """
    order = fgraph.toposort() if order is None else order
    pos = {n: i for i, n in enumerate(order)}
    taken: set[Apply] = set()
    groups = []
    for seed in reversed(order):
        if seed in taken or not _fusable(seed):
            continue
        g = _grow(seed, fgraph, pos, taken, float("inf"))
        if g.operands() > max_operands:
            g = _grow(seed, fgraph, pos, taken, max_operands)
        taken |= g.members
        if len(g.members) > 1:
            groups.append(sorted(g.members, key=pos.__getitem__))
    return _without_cycles(order, groups)


def _without_cycles(order: list[Apply], groups: list[list[Apply]]) -> list[list[Apply]]:
    """``groups`` less those that would close a cycle once every group is one node.

    Each group is convex in the graph it grew in, yet two groups can still close a cycle
    together: a value leaves group A, runs through group B and comes back into A by a path
    that was outside both while they were separate nodes (mean's 1/n fused with the loss,
    and the gradient it feeds fused with the squared error the loss sums). A topological sort
    of the contracted graph finds such cycles; the last group grown on one is dropped (its
    nodes stay unfused) until none is left. Usually one linear check, and no cycle."""
    while groups:
        unit = {n: n for n in order}
        for k, members in enumerate(groups):
            unit.update((n, k) for n in members)
        succ: dict = {u: set() for u in unit.values()}
        indeg = dict.fromkeys(succ, 0)
        for n in order:
            for v in n.inputs:
                a, b = unit.get(v.owner), unit[n]
                if a is not None and a != b and b not in succ[a]:
                    succ[a].add(b)
                    indeg[b] += 1
        ready = [u for u, d in indeg.items() if d == 0]
        while ready:
            for b in succ[ready.pop()]:
                indeg[b] -= 1
                if indeg[b] == 0:
                    ready.append(b)
        left = {u for u, d in indeg.items() if d > 0}  # on a cycle, or downstream of one
        if not left:
            return groups
        while True:  # peel off what is only downstream: what stays lies on (or between) cycles
            sinks = {u for u in left if not succ[u] & left}
            if not sinks:
                break
            left -= sinks
        drop = max(k for k in range(len(groups)) if k in left)
        groups = groups[:drop] + groups[drop + 1:]
    return groups


def build_composite(fgraph: FunctionGraph, members: list[Apply]) -> tuple[Apply, list[Variable]]:
    """One Composite node computing ``members``; returns it and the member outputs it exports."""
    inside = set(members)
    refs: dict[Variable, tuple] = {}
    inputs: list[Variable] = []
    steps = []
    for node in members:
        args = []
        for v in node.inputs:
            if v not in refs:
                if _inlinable(v):
                    refs[v] = ("c", v.dtype, v.data.item())
                else:
                    refs[v] = ("i", len(inputs))
                    inputs.append(v)
            args.append(refs[v])
        refs[node.outputs[0]] = ("s", len(steps))
        steps.append((node.op.scalar_op.name, tuple(args)))
    exported = [n.outputs[0] for n in members
                if any(c == "output" or c not in inside for c, _ in fgraph.clients.get(n.outputs[0], ()))]
    op = Composite([v.dtype for v in inputs], steps, [refs[v] for v in exported])
    return op.make_node(*inputs), exported


def fuse(fgraph: FunctionGraph, stats: Stats, max_operands: int = MAX_OPERANDS,
         order: list[Apply] | None = None) -> None:
    """Replace every fusable group by one Composite node."""
    for members in find_groups(fgraph, max_operands, order):
        node, exported = build_composite(fgraph, members)
        for old, new in zip(exported, node.outputs):
            fgraph.replace(old, new, "fusion")
        stats.new_nodes.append(node)
        stats.count("fusion")
        stats.count("fused_nodes", len(members))
    mark_reductions(fgraph)


def reduced_producer(fgraph: FunctionGraph, node: Apply) -> Apply | None:
    """The Composite (or lone Elemwise) whose output the reduction ``node`` reads, when nothing else
    reads any of its outputs but for their shapes (mean's divisor does): a backend may then compute
    that elementwise program inside the reduction's loop."""
    from symgraph.tensor.reduction import CAReduce, ReducedSize
    from symgraph.tensor.shape import Shape, Shape_i
    src = node.inputs[0] if type(node.op) is CAReduce else None
    if src is None or src.owner is None or type(src.owner.op) not in (Composite, Elemwise):
        return None
    readers = [c for o in src.owner.outputs for c, _ in fgraph.clients[o]]
    others = [c for c in readers if c is not node]
    ok = len(others) + 1 == len(readers) and all(
        c != "output" and type(c.op) in (ReducedSize, Shape, Shape_i) for c in others)
    return src.owner if ok else None


def mark_reductions(fgraph: FunctionGraph) -> None:
    """Tag each reduction that has a ``reduced_producer`` with it (see module doc)."""
    for node in fgraph.apply_nodes:
        producer = reduced_producer(fgraph, node)
        if producer is not None:
            node.tag["fused_producer"] = producer


def fused_into(fgraph: FunctionGraph, node: Apply) -> Apply | None:
    """The matrix product (Dot, or MatMul with at most one batch axis) or reduction (CAReduce) whose
    result the elementwise ``node`` alone reads, where ``node``'s outputs have that result's rank:
    a backend may run ``node``'s program as the epilogue of that kernel, on each result before its
    one store (a bias add and activation, an SGD update), so the result never goes through memory."""
    from symgraph.tensor.math import Dot, MatMul
    from symgraph.tensor.reduction import CAReduce
    if not isinstance(node.op, (Elemwise, Composite)):
        return None
    for v in dict.fromkeys(node.inputs):
        src = v.owner
        if src is None or not all(c is node for c, _ in fgraph.clients[v]) or not all(
                o.ndim == v.ndim and all(n != 1 or m == 1 for n, m in zip(v.type.shape, o.type.shape))
                for o in node.outputs):  # outputs no larger than the result (as far as static shapes tell)
            continue
        if type(src.op) is CAReduce or (type(src.op) in (Dot, MatMul) and v.ndim in (2, 3)
                                        and all(x.ndim >= 2 for x in src.inputs)):
            return src
    return None
