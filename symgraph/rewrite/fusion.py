"""Elementwise fusion: connected Elemwise nodes become one Composite node.

Groups grow from the last node backwards (and to readers of their members), one node at a
time, keeping every group *convex*: no path leaves a group and comes back, so replacing each
group by one node cannot create a cycle. The check is a short bounded walk per candidate
(results that can only become more true are cached), so the pass is linear in practice.
Values used outside a group become extra outputs; 0-d constants are inlined into the
program; each Composite respects an operand cap (inputs + outputs), which OpenCL needs for
kernel arguments. DimShuffles and other views are never fused (they stay free views).

Then the fusion decisions that cross op kinds become nodes (symgraph/tensor/fused.py), which
every backend lowers and every printer shows:

- a reduction whose input is an elementwise node's output, where nothing else reads that node
  (save for shapes, which are then computed from its inputs instead), becomes one
  ``ReduceOf`` node: the elementwise program runs inside the reduction's loop;
- an elementwise node that alone reads the result of a matrix product (Dot, or MatMul with at
  most one batch axis), a convolution (Conv) or a reduction becomes an ``Epilogue`` of it, run
  on each result before its one store (a bias add and activation, an SGD update, mean's
  division).

Random draws are elementwise nodes and fuse into their readers' kernels (a dropout mask is never
written), but a program with draws is not made the prologue of a reduction or the epilogue of a
product: those loops do not compute the element index a draw reads.
"""
from __future__ import annotations

import heapq
from typing import TypeGuard

from symgraph.graph.basic import Apply, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.rewrite.core import Stats
from symgraph.tensor.composite import Composite, is_inlinable
from symgraph.tensor.convolution import Conv
from symgraph.tensor.elemwise import Elemwise
from symgraph.tensor.fused import Epilogue, ReduceOf
from symgraph.tensor.math import Dot, MatMul
from symgraph.tensor.reduction import CAReduce, ReducedSize
from symgraph.tensor.shape import MakeVector, Shape, Shape_i, entry_var, shape_tuple, sprod
from symgraph.tensor.type import TensorVariable, tensor_inputs, tensor_outputs

MAX_OPERANDS = 32
_WALK_LIMIT = 64  # nodes a convexity check may visit before it gives up (and refuses)


class _Group:
    """A growing set of nodes with its external inputs and exported outputs."""

    def __init__(self, seed: Apply, fgraph: FunctionGraph, pos: dict):
        self.fgraph, self.pos = fgraph, pos
        self.members = {seed}
        self.full = tensor_outputs(seed)[0].type.shape  # the shape every exported value broadcasts to
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
                    if v.owner not in self.members and not is_inlinable(v):
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
            elif not is_inlinable(v):
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
        full = tensor_outputs(node)[0].type.shape == self.full
        if any(c in self.members for c in readers):
            return full or all(c in self.members for c in readers)
        return full and any(v.owner in self.members and v.type.shape == self.full for v in tensor_inputs(node))

    def can_add(self, node: Apply, max_operands: float) -> bool:
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
        unit: dict[Apply, Apply | int] = {n: n for n in order}
        for k, members in enumerate(groups):
            unit.update((n, k) for n in members)
        succ: dict = {u: set() for u in unit.values()}
        indeg = dict.fromkeys(succ, 0)
        for n in order:
            for v in n.inputs:
                a, b = unit.get(v.owner) if v.owner is not None else None, unit[n]
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
    inputs: list[TensorVariable] = []
    steps: list[tuple[str, tuple]] = []
    for node in members:
        args = []
        for v in tensor_inputs(node):
            if v not in refs:
                if is_inlinable(v):
                    refs[v] = ("c", v.dtype, v.data.item())
                else:
                    refs[v] = ("i", len(inputs))
                    inputs.append(v)
            args.append(refs[v])
        refs[node.outputs[0]] = ("s", len(steps))
        steps.append((node.op_as(Elemwise).scalar_op.name, tuple(args)))
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
    fuse_reductions(fgraph, stats)
    fuse_epilogues(fgraph, stats)


_SHAPE_READERS = (Shape, Shape_i, ReducedSize)


def _elementwise(node: Apply | None) -> TypeGuard[Apply]:
    return node is not None and type(node.op) in (Composite, Elemwise)


def _only_read_by(fgraph: FunctionGraph, node: Apply, reader: Apply) -> bool:
    """Nothing but ``reader`` (and shape readers) reads any output of ``node``."""
    readers = [c for o in node.outputs for c, _ in fgraph.clients[o]]
    return readers.count(reader) == 1 and all(
        c is reader or (c != "output" and type(c.op) in _SHAPE_READERS) for c in readers)


def _shapes_from_inputs(fgraph: FunctionGraph, node: Apply, stats: Stats) -> None:
    """Point the shape readers of ``node``'s outputs at shapes computed from its inputs: an
    element count (mean's divisor) from the broadcast of the inputs the output reads, one node;
    other shapes through the op's infer_shape."""
    shapes = None
    deps = Composite.of_node(node)[0].output_deps if isinstance(node.op, Composite) else \
        [frozenset(range(len(node.inputs)))]
    for k, (out, dep) in enumerate(zip(node.outputs, deps)):
        for reader, _ in list(fgraph.clients[out]):
            if reader == "output" or type(reader.op) not in _SHAPE_READERS:
                continue
            op = reader.op
            if isinstance(op, ReducedSize) and dep and _elementwise(node):
                new = op(*[node.inputs[k] for k in sorted(dep)])
            else:
                shapes = shapes or node.op.infer_shape(node, [shape_tuple(v) for v in tensor_inputs(node)])
                entries = shapes[k]
                new = entry_var(entries[op.i]) if isinstance(op, Shape_i) else \
                    entry_var(sprod([entries[a] for a in op.axis])) if isinstance(op, ReducedSize) else \
                    MakeVector("int64")(*[entry_var(e) for e in entries])
            stats.new_nodes += fgraph.replace(reader.outputs[0], new, "fusion")


def fuse_reductions(fgraph: FunctionGraph, stats: Stats) -> None:
    """Each reduction of an elementwise node's output that nothing else reads becomes a ReduceOf."""
    for node in [n for n in fgraph.apply_nodes if type(n.op) is CAReduce]:
        src = node.inputs[0].owner
        if node not in fgraph.apply_nodes or not _elementwise(src) or not _only_read_by(fgraph, src, node) \
                or Composite.of_node(src)[0].reads_index:
            continue
        _shapes_from_inputs(fgraph, src, stats)
        whole, bound = Composite.of_node(src)
        program, keep = whole.restrict(src.outputs.index(node.inputs[0]))
        new = ReduceOf(node.op_as(CAReduce), program)(*[bound[k] for k in keep])
        stats.new_nodes += fgraph.replace(node.outputs[0], new, "fusion")
        stats.count("fused_reductions")


def _epilogue_source(fgraph: FunctionGraph, node: Apply) -> tuple[TensorVariable, Apply] | None:
    """The input of the elementwise ``node`` that is the result of a matrix product, convolution
    or reduction read by ``node`` alone (and shape readers, pointed at its inputs when it fuses),
    where ``node``'s outputs are no larger than it (as far as static shapes tell): ``node`` can then
    run on each result before its one store. Returns it and its node."""
    for v in dict.fromkeys(tensor_inputs(node)):
        src = v.owner
        if src is None or not all(c is node or (c != "output" and type(c.op) in _SHAPE_READERS)
                                  for c, _ in fgraph.clients[v]) or not all(
                o.ndim == v.ndim and all(n != 1 or m == 1 for n, m in zip(v.type.shape, o.type.shape))
                for o in tensor_outputs(node)):
            continue
        if type(src.op) in (CAReduce, ReduceOf, Conv) or (type(src.op) in (Dot, MatMul) and v.ndim in (2, 3)
                                                    and all(x.ndim >= 2 for x in tensor_inputs(src))):
            return v, src
    return None


def fuse_epilogues(fgraph: FunctionGraph, stats: Stats) -> None:
    """Each elementwise node that alone reads a product, convolution or reduction becomes its Epilogue."""
    for node in [n for n in fgraph.apply_nodes if _elementwise(n)]:
        found = _epilogue_source(fgraph, node) if node in fgraph.apply_nodes else None
        if found is None:
            continue
        v, src = found
        program, bound = Composite.of_node(node)
        if program.reads_index:
            continue
        _shapes_from_inputs(fgraph, src, stats)
        slot = bound.index(v)
        others = [b for b in bound if b is not v]
        new = Epilogue(src.op, program, slot, len(src.inputs))(*src.inputs, *others)
        for old, out in zip(node.outputs, new if isinstance(new, list) else [new]):
            stats.new_nodes += fgraph.replace(old, out, "fusion")
        stats.count("fused_epilogues")


