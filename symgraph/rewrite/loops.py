"""Rewrites of loops (``Scan`` nodes). Each is one walk over the body (linear in its size):

- ``trace_last`` (canonicalize): ``trace[-1]`` reads the final carry instead, so the trace is no
  longer needed. When the loop provably runs a step (a constant n_steps >= 1, a sequence of
  static length >= 1) that is all; otherwise a ``CheckRan`` guard keeps the IndexError an empty
  trace raises.
- ``scan`` (a whole-graph pass after specialize), per loop:
  - prune: traces, stacked outputs and carries nobody reads are dropped (a carry only when no
    kept output needs it), and so are inputs the body no longer reads: ``result[-1]`` of a long
    loop then costs O(state), not O(n_steps x state);
  - hoist: work in the body that depends on no sequence and no carry runs once, before the loop
    (except work only a lazy ifelse branch needs);
  - vectorise: products the body computes from sequences and constants alone (``x_t @ U``) run
    once over all steps before the loop, as one matrix product; the body reads their rows;
  - push out sums: a carry that only accumulates (``acc + e_t``, as a gradient's accumulators
    do) becomes ``acc0 + sum_t e_t`` after the loop, written as one product where it can
    (``sum_t h_t^T g_t`` is one tensordot over steps and rows).
"""
from __future__ import annotations

from typing import Any, cast

import numpy as np

import symgraph.tensor as T
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.inner import InnerGraph
from symgraph.graph.traversal import ancestors, clone_replace
from symgraph.ifelse import ifelse
from symgraph.rewrite.branches import sink_into_branches
from symgraph.rewrite.core import Stats, rule
from symgraph.rewrite.graph_passes import constant_fold
from symgraph.rewrite.patterns import fit
from symgraph.scan.build import loop_invariants
from symgraph.scan.op import CheckRan, Scan
from symgraph.scan.types import stacked
from symgraph.tensor.elemwise import DimShuffle, Elemwise
from symgraph.tensor.math import Dot, MatMul
from symgraph.tensor.reduction import CAReduce
from symgraph.tensor.shape import Shape_i
from symgraph.tensor.subtensor import Subtensor
from symgraph.tensor.type import TensorVariable, tensor_inputs, tensor_outputs


def _at_least_one(n: Variable) -> bool:
    """Whether ``n`` (a step count) is certainly >= 1."""
    if isinstance(n, Constant):
        return int(np.asarray(n.data)) >= 1
    node = n.owner
    if node is None:
        return False
    if isinstance(node.op, Shape_i):
        static = tensor_inputs(node)[0].type.shape[node.op.i]
        return static is not None and static >= 1
    if isinstance(node.op, Elemwise):
        name = node.op.scalar_op.name
        if name == "minimum":
            return all(_at_least_one(i) for i in node.inputs)
        if name == "maximum":
            return any(_at_least_one(i) for i in node.inputs)
        if name.startswith("cast_"):
            return _at_least_one(node.inputs[0])
    return False


@rule("canonicalize", Subtensor)
def trace_last(fgraph: FunctionGraph, node: Apply) -> Variable | None:
    """trace[-1] -> the loop's final carry (guarded by CheckRan unless a step certainly runs)"""
    if type(node.op) is not Subtensor or node.op.idx_list != ("i",):
        return None
    trace, index = node.inputs
    scan = trace.owner
    if scan is None or not isinstance(scan.op, Scan) or not isinstance(index, Constant) or int(index.data) != -1:
        return None
    slots = scan.op_as(Scan).output_slots()
    if trace.index not in slots["trace"]:
        return None
    final = tensor_outputs(scan)[slots["final"][slots["trace"].index(trace.index)]]
    n = scan.inputs[0]
    return fit(final if _at_least_one(n) else CheckRan()(final, n), tensor_outputs(node)[0])


# --- the per-loop pass ---------------------------------------------------------------------------

def _replace(fgraph: FunctionGraph, node: Apply, new: Apply, pairs: list[tuple[int, int]], stats: Stats,
             name: str) -> Apply:
    """Put ``new``'s outputs in place of ``node``'s (old index -> new index pairs)."""
    new.trace = node.trace
    for old_k, new_k in pairs:
        old = tensor_outputs(node)[old_k]
        if fgraph.clients.get(old):
            fitted = fit(tensor_outputs(new)[new_k], old)
            stats.new_nodes += fgraph.replace(old, new.outputs[new_k] if fitted is None else fitted, name)
    stats.count(name)
    return new


def _carry_masks(op: Scan) -> list[int]:
    """For each body output, the carries it reads (bit k: carry k), from one walk over the body."""
    mask: dict[int, int] = {id(v): 1 << k for k, v in enumerate(op.carry_inputs)}
    for node in op.body.nodes:
        m = 0
        for i in node.inputs:
            m |= mask.get(id(i), 0)
        for o in node.outputs:
            mask[id(o)] = m
    return [mask.get(id(o), 0) for o in op.body.outputs]


def prune(fgraph: FunctionGraph, node: Apply, stats: Stats) -> Apply | None:
    """Drop the outputs nobody reads, the carries no kept output needs, and unread inputs."""
    op = node.op_as(Scan)
    body = op.body
    nc, ny = op.n_carries, op.n_ys
    slots = op.output_slots()
    used = [bool(fgraph.clients.get(o)) for o in node.outputs]
    masks = _carry_masks(op)
    keep_y = [j for j in range(ny) if used[slots["ys"][j]]]
    need = 0
    for k in range(nc):
        if used[k] or (op.traced[k] and used[slots["trace"][k]]):
            need |= 1 << k
    for j in keep_y + ([ny] if op.until else []):
        need |= masks[nc + j]
    while True:  # carries that kept carries read
        more = need
        for k in range(nc):
            if need >> k & 1:
                more |= masks[k]
        if more == need:
            break
        need = more
    keep_c = [k for k in range(nc) if need >> k & 1]
    traced = tuple(op.traced[k] and used[slots["trace"][k]] for k in keep_c)
    outputs = [body.outputs[k] for k in keep_c] + [body.outputs[nc + j] for j in keep_y] + \
        ([body.outputs[-1]] if op.until else [])
    read = {id(v) for v in ancestors(outputs, blockers=body.inputs)}
    ins = body.inputs
    keep_s = [k for k in range(op.n_seqs) if id(ins[k]) in read]
    keep_k = [k for k in range(op.n_consts) if id(ins[op.n_seqs + nc + k]) in read]
    if (len(keep_c), len(keep_y), len(keep_s), len(keep_k)) == (nc, ny, op.n_seqs, op.n_consts) and \
            traced == op.traced:
        return None
    n, seqs, inits, consts = op.split_inputs(node.inputs)
    new_in = [ins[k] for k in keep_s] + [ins[op.n_seqs + k] for k in keep_c] + \
        [ins[op.n_seqs + nc + k] for k in keep_k]
    new_op = op.clone(body=InnerGraph(new_in, outputs), n_seqs=len(keep_s), n_carries=len(keep_c), traced=traced)
    new = new_op.make_node(n, *[seqs[k] for k in keep_s], *[inits[k] for k in keep_c], *[consts[k] for k in keep_k])
    new_slots = new_op.output_slots()
    pairs = [(k, new_slots["final"][j]) for j, k in enumerate(keep_c)]
    pairs += [(slots["trace"][k], new_slots["trace"][j]) for j, k in enumerate(keep_c) if traced[j]]
    pairs += [(slots["ys"][k], new_slots["ys"][j]) for j, k in enumerate(keep_y)]
    return _replace(fgraph, node, new, pairs, stats, "scan_prune")


def _folded(body: InnerGraph) -> InnerGraph:
    """``body`` with its work on constants alone folded first: hoisted, ``2 - 1`` would become an
    input, and the body's own rewrites (which run after this pass) could no longer fold ``x ** 1``."""
    if not any(n.inputs and all(isinstance(i, Constant) for i in n.inputs) for n in body.nodes):
        return body
    fg = body.fgraph()
    constant_fold(fg, Stats(), lenient=True)
    return InnerGraph(fg.inputs, fg.outputs)


def hoist(fgraph: FunctionGraph, node: Apply, stats: Stats) -> Apply | None:
    """Move the body's loop-invariant work before the loop (new constant inputs); constant work
    that folds is folded in the body instead."""
    op = node.op_as(Scan)
    body = _folded(op.body)
    variant = list(body.inputs[:op.n_seqs + op.n_carries])
    invariant = [v for v in loop_invariants(list(body.outputs), variant) if v.owner is not None]
    if not invariant:
        if body is op.body:
            return None
        new = op.clone(body=body).make_node(*node.inputs)
        return _replace(fgraph, node, new, [(k, k) for k in range(len(node.outputs))], stats, "scan_fold")
    n, seqs, inits, consts = op.split_inputs(node.inputs)
    const_slots = list(body.inputs[op.n_seqs + op.n_carries:])
    outer, _ = clone_replace(invariant, dict(zip(const_slots, consts)))
    new_slots = [v.type.make_variable() for v in invariant]
    outputs, _ = clone_replace(list(body.outputs), dict(zip(invariant, new_slots)))
    graph = InnerGraph(variant + const_slots + new_slots, outputs)
    new_op = op.clone(body=graph)
    new = new_op.make_node(n, *seqs, *inits, *consts, *outer)
    stats.new_nodes += [v.owner for v in outer if v.owner is not None]
    return _replace(fgraph, node, new, [(k, k) for k in range(len(node.outputs))], stats, "scan_hoist")


# --- vectorising sequence-only products ------------------------------------------------------------

def _aligned(x: TensorVariable, stacked: bool, ndim: int) -> TensorVariable:
    """``x`` as an operand of an elementwise op batched over steps whose per-step result has
    ``ndim`` axes: a stacked operand keeps its leading step axis and gets length-1 axes after it
    (a per-step scalar ``t`` of shape (n,) becomes (n, 1): right-aligned against (5,) it would
    pair steps with elements), the others a leading length-1 axis."""
    lead = [0] if stacked else ["x"]
    own = list(range(1, x.ndim)) if stacked else list(range(x.ndim))
    pad = ndim - len(own)
    return DimShuffle(x.ndim, [*lead, *(["x"] * pad), *own])(x) if pad or not stacked else x


def _batched(node: Apply, args: list[TensorVariable], stacked: list[bool]) -> Variable | None:
    """``node``'s output for all steps at once, from its inputs (stacked ones have a leading step
    axis), or None when this op is not batched here."""
    op = node.op
    if isinstance(op, Elemwise) and len(node.outputs) == 1:
        if op.scalar_op.is_random:  # a draw's numbers depend on the element's index in its output
            return None
        ndim = tensor_outputs(node)[0].ndim
        return op(*[_aligned(a, s, ndim) for a, s in zip(args, stacked)])
    if isinstance(op, DimShuffle):
        order = [0] + [o if o == "x" else o + 1 for o in op.new_order]
        return DimShuffle(op.input_ndim + 1, order)(args[0])
    if isinstance(op, (Dot, MatMul)) and stacked == [True, False] and args[1].ndim == 2:
        return T.matmul(args[0], args[1])  # x_t @ U for every t: one product
    if isinstance(op, (Dot, MatMul)) and stacked == [False, True] and args[0].ndim == 2:
        a = tensor_inputs(node)[1]
        if a.ndim == 1:  # U @ x_t = (X @ U.T)[t]
            return T.matmul(args[1], args[0].T)
        return T.matmul(args[0], args[1])
    return None


def vectorise(fgraph: FunctionGraph, node: Apply, stats: Stats) -> Apply | None:
    """Products of sequence rows and constants, computed for all steps before the loop."""
    op = node.op_as(Scan)
    body = op.body
    if op.until or not op.n_seqs:  # a while loop may stop early: computing every row could be waste
        return None
    n, seqs, inits, consts = op.split_inputs(node.inputs)
    ins = body.inputs
    outer: dict[int, TensorVariable] = {id(v): s[:n] for v, s in zip(ins[:op.n_seqs], seqs)}
    fixed: dict[int, TensorVariable] = {id(v): c for v, c in zip(ins[op.n_seqs + op.n_carries:], consts)}
    product: dict[int, bool] = {}
    for inner in body.nodes:
        if len(inner.outputs) != 1 or not all(id(i) in outer or id(i) in fixed or isinstance(i, Constant)
                                              for i in inner.inputs):
            continue
        stacked = [id(i) in outer for i in inner.inputs]
        if not any(stacked):
            continue
        args = [outer[id(i)] if id(i) in outer else fixed.get(id(i), i) for i in tensor_inputs(inner)]
        out = _batched(inner, args, stacked)
        if out is None:
            continue
        outer[id(inner.outputs[0])] = cast(TensorVariable, out)
        product[id(inner.outputs[0])] = isinstance(inner.op, (Dot, MatMul)) or any(
            product.get(id(i), False) for i in inner.inputs)
    frontier: dict[int, Variable] = {}
    for inner in body.nodes:
        if id(inner.outputs[0]) in product:  # computed before the loop: its readers there need no row
            continue
        frontier.update((id(i), i) for i in inner.inputs if product.get(id(i)))
    frontier.update((id(o), o) for o in body.outputs if product.get(id(o)))
    if not frontier:
        return None
    rows = [v.type.make_variable() for v in frontier.values()]
    outputs, _ = clone_replace(list(body.outputs), dict(zip(frontier.values(), rows)))
    graph = InnerGraph(list(ins[:op.n_seqs]) + rows + list(ins[op.n_seqs:]), outputs)
    new_op = op.clone(body=graph, n_seqs=op.n_seqs + len(rows))
    new = new_op.make_node(n, *seqs, *[outer[k] for k in frontier], *inits, *consts)
    return _replace(fgraph, node, new, [(k, k) for k in range(len(node.outputs))], stats, "scan_vectorise")


# --- sums over steps -----------------------------------------------------------------------------

def _summed(e: TensorVariable, stack: Any) -> Variable | None:
    """sum over all steps of ``e`` (a body variable) as one outer expression, where ``stack(v)``
    gives the outer stacked values of a body variable ((n, ...) rows) or None."""
    node = e.owner
    if node is not None and isinstance(node.op, (Dot, MatMul)) and all(i.ndim == 2 for i in tensor_inputs(node)):
        a, b = node.inputs
        if a.owner is not None and isinstance(a.owner.op, DimShuffle) and a.owner.op.new_order == (1, 0):
            sa, sb = stack(a.owner.inputs[0]), stack(b)
            if sa is not None and sb is not None:  # sum_t a_t^T b_t: one product over (steps x rows)
                return T.tensordot(sa, sb, axes=[[0, 1], [0, 1]])
    if node is not None and isinstance(node.op, CAReduce) and node.op.scalar_op == "add" and not node.op.keepdims:
        sv = stack(node.inputs[0])
        if sv is not None:
            return T.sum(sv, axis=(0, *[a + 1 for a in node.op.axis]), dtype=e.dtype)
    if stack(e, fresh=False) is not None:  # a sequence's rows: summed outside, nothing new to stack
        return T.sum(stack(e), axis=0, dtype=e.dtype)
    return None


def _accumulators(op: Scan, used_trace: list[bool]) -> dict[int, TensorVariable]:
    """Carries k whose step is ``acc + e`` with ``acc`` read nowhere else and ``e`` not reading
    ``acc``, and whose trace nobody reads: {k: e}."""
    body, nc = op.body, op.n_carries
    readers: dict[int, int] = {}
    for inner in body.nodes:
        for i in inner.inputs:
            readers[id(i)] = readers.get(id(i), 0) + 1
    for o in body.outputs:
        readers[id(o)] = readers.get(id(o), 0) + 1
    found: dict[int, TensorVariable] = {}
    for k, (slot, new) in enumerate(zip(cast("list[TensorVariable]", op.carry_inputs), body.outputs[:nc])):
        node = new.owner
        if used_trace[k] or readers.get(id(slot)) != 1 or node is None or not isinstance(node.op, Elemwise) \
                or node.op.scalar_op.name != "add" or len(node.inputs) != 2 or readers.get(id(new)) != 1:
            continue
        a, b = tensor_inputs(node)
        e = b if a is slot else a if b is slot else None
        if e is not None and e.type.ndim == slot.type.ndim and e.dtype == slot.dtype and \
                not _reads(e, slot, body):
            found[k] = e
    return found


def _reads(v: Variable, slot: Variable, body: InnerGraph) -> bool:
    return any(a is slot for a in ancestors([v], blockers=body.inputs))


def push_out_sums(fgraph: FunctionGraph, node: Apply, stats: Stats) -> Apply | None:
    """A carry that only accumulates (``acc + e`` each step, its trace unread) becomes
    ``acc0 + sum_t e_t`` after the loop, the sum written as one product where it can
    (``sum_t h_t^T g_t`` is one tensordot): the body no longer computes ``e``'s product."""
    op = node.op_as(Scan)
    body = op.body
    slots = op.output_slots()
    used_trace = [t >= 0 and bool(fgraph.clients.get(node.outputs[t])) for t in slots["trace"]]
    accs = _accumulators(op, used_trace)
    if not accs:
        return None
    n, seqs, inits, consts = op.split_inputs(node.inputs)
    seq_outer = {id(v): s for v, s in zip(body.inputs[:op.n_seqs], seqs)}
    wanted: list[Variable] = []  # body values to stack as new outputs, and their stand-ins outside
    standins: list[Variable] = []

    def stack(v: Variable, fresh: bool = True) -> Variable | None:
        if id(v) in seq_outer:
            return seq_outer[id(v)][:n]
        if not fresh or any(v is i for i in body.inputs):
            return None
        for w, standin in zip(wanted, standins):
            if w is v:
                return standin
        wanted.append(v)
        standins.append(stacked(cast(TensorVariable, v).type).make_variable())
        return standins[-1]
    sums = {}
    for k, e in accs.items():
        mark = len(wanted)
        total = _summed(e, stack)
        if total is None:
            del wanted[mark:], standins[mark:]
            continue
        sums[k] = total
    if not sums:
        return None
    keep = [k for k in range(op.n_carries) if k not in sums]
    nc = op.n_carries
    outputs = [body.outputs[k] for k in keep] + list(body.outputs[nc:nc + op.n_ys]) + wanted + \
        ([body.outputs[-1]] if op.until else [])
    ins = list(body.inputs)
    graph = InnerGraph(ins[:op.n_seqs] + [ins[op.n_seqs + k] for k in keep] + ins[op.n_seqs + nc:], outputs)
    new_op = op.clone(body=graph, n_carries=len(keep), traced=tuple(op.traced[k] for k in keep))
    new = new_op.make_node(n, *seqs, *[inits[k] for k in keep], *consts)
    new.trace = node.trace
    new_slots = new_op.output_slots()
    rows = [new.outputs[i] for i in new_slots["ys"][op.n_ys:]]
    pairs = [(k, new_slots["final"][j]) for j, k in enumerate(keep)]
    pairs += [(slots["trace"][k], new_slots["trace"][j]) for j, k in enumerate(keep) if new_op.traced[j]]
    pairs += [(slots["ys"][j], new_slots["ys"][j]) for j in range(op.n_ys)]
    totals, _ = clone_replace(list(sums.values()), dict(zip(standins, rows)))
    for k, total in zip(sums, totals):
        final = tensor_outputs(node)[k]
        # no step ran: the stacked rows may have no shape to sum over, and the sum is zero anyway
        fitted = fit(ifelse(T.gt(n, 0), inits[k] + total, inits[k]), final)
        if fgraph.clients.get(final) and fitted is not None:
            stats.new_nodes += fgraph.replace(final, fitted, "scan_push_out_sum")
    return _replace(fgraph, node, new, pairs, stats, "scan_push_out_sum")


def scan_pass(fgraph: FunctionGraph, stats: Stats) -> None:
    """Prune, hoist, vectorise and push out sums in every loop (see the module doc)."""
    for node in [n for n in fgraph.toposort() if isinstance(n.op, Scan)]:
        for step in (prune, hoist, vectorise, push_out_sums, prune):
            if node not in fgraph.apply_nodes:
                break
            new = step(fgraph, node, stats)
            node = new if new is not None else node
    if stats.applied.get("scan_push_out_sum"):  # its sums run only when a step ran: in the ifelse's branch
        sink_into_branches(fgraph, stats)


__all__ = ["trace_last", "scan_pass", "prune", "hoist", "vectorise"]
