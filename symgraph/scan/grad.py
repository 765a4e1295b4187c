"""Backpropagation through time: the gradient of a Scan is another scan, run backwards.

The step is differentiated once (``sg.grad(None, wrt=its inputs, known_grads=...)``). The reverse
loop reads, for each step t from the last to the first: the sequences' rows, the carries the step
started from (the initial carry, then the forward trace), the gradients flowing into the step's
results (from the trace and the stacked outputs), and the forward results themselves (so the
gradient of ``tanh`` reads the stored value instead of recomputing the step). Its carries are
the gradient of each float carry and an accumulator per float constant; its stacked output is the
gradient of each float sequence's row. The reverse loop is again a Scan, so it has a gradient
too (grad of grad, Rop, Hessian-vector products).

- ``truncate_gradient=k`` runs the reverse loop over the last k steps only (Theano's truncated
  BPTT): earlier rows and the initial carries get no gradient.
- ``checkpoint=k`` keeps only every k-th carry (a scan over segments of k steps) and, going
  backwards segment by segment, recomputes the k carries of the segment before running its
  reverse steps: peak memory O(n/k + k) carries instead of O(n), for about one more forward pass.
- A while loop is differentiated over the steps it actually ran.
- A gradient that is all zeros (an output the cost does not read) is not fed to the reverse loop
  at all; the gradient of ``trace[-1]`` is fed in as the final carry's (no n-row array of zeros).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import symgraph.tensor as T
from symgraph.graph import hooks
from symgraph.graph.basic import Constant, Variable
from symgraph.graph.traversal import ancestors, clone_replace
from symgraph.ifelse import ifelse
from symgraph.scan.build import build_scan
from symgraph.scan.op import Scan, register_grad
from symgraph.tensor.alloc import Alloc
from symgraph.tensor.gradient_ops import no_broadcast_checks
from symgraph.tensor.subtensor import IncSubtensor
from symgraph.tensor.type import TensorVariable, is_inexact, tensor_inputs


def _is_zero(g: TensorVariable | None) -> bool:
    """``g`` is certainly all zeros (what the gradient gives an unused output)."""
    if g is None:
        return True
    if isinstance(g, Constant):
        return not np.any(g.data)
    node = g.owner
    return (node is not None and isinstance(node.op, Alloc) and isinstance(node.inputs[0], Constant)
            and not np.any(node.inputs[0].data))


def _last_row(g: TensorVariable) -> TensorVariable | None:
    """The gradient ``g_last`` when ``g`` is ``inc_subtensor(zeros[-1], g_last)`` (what ``trace[-1]``
    gives), else None."""
    node = g.owner
    if node is None or not isinstance(node.op, IncSubtensor) or node.op.set_instead_of_inc:
        return None
    ins = tensor_inputs(node)
    index = ins[2:]
    if (node.op.idx_list != ("i",) or len(index) != 1 or not isinstance(index[0], Constant)
            or int(index[0].data) != -1 or not _is_zero(ins[0])):
        return None
    return ins[1]


def _step_fn(graph_inputs: Sequence[Variable], outputs: Sequence[Variable]) -> Callable:
    """A step function for ``build_scan`` computing ``outputs`` from ``graph_inputs`` (given in the
    order scan passes arguments)."""
    def step(*args: Any) -> list[Variable]:
        new, _ = clone_replace(list(outputs), dict(zip(graph_inputs, args)))
        return new
    return step


class _Problem:
    """One Scan node's gradient, sorted: which inputs carry gradients, and the step's derivative."""

    def __init__(self, op: Scan, inputs: list, output_grads: list):
        self.op = op
        self.n, self.seqs, self.inits, self.consts = op.split_inputs(inputs)
        body, nc = op.body, op.n_carries
        slots = op.output_slots()
        self.g_final = [output_grads[i] for i in slots["final"]]
        self.g_trace = [output_grads[i] if i >= 0 else None for i in slots["trace"]]
        for k, g in enumerate(self.g_trace):
            last = _last_row(g) if g is not None else None
            if last is not None:  # trace[-1] is the final carry (the forward raised if no step ran)
                self.g_final[k] = last if _is_zero(self.g_final[k]) else self.g_final[k] + last
                self.g_trace[k] = None
        self.g_trace = [None if _is_zero(g) else g for g in self.g_trace]
        self.g_ys = [output_grads[i] for i in slots["ys"]]
        self.g_ys = [None if _is_zero(g) or not is_inexact(y) else g
                     for g, y in zip(self.g_ys, body.outputs[nc:nc + op.n_ys])]
        self.seq_slots = list(body.inputs[:op.n_seqs])
        self.carry_slots = list(op.carry_inputs)
        self.const_slots = list(body.inputs[op.n_seqs + nc:])
        self.f_seq = [k for k, v in enumerate(self.seq_slots) if is_inexact(v)]
        self.f_carry = [k for k, v in enumerate(self.carry_slots) if is_inexact(v)]
        self.f_const = [k for k, v in enumerate(self.const_slots) if is_inexact(v)]

    def derivative(self, substitute: bool) -> tuple[list[Variable], dict[str, list[Any]]]:
        """The step's derivative: (its outputs [carry grads, const grads, seq-row grads], the
        placeholders it reads, by kind). ``substitute``: read the forward results (new carries,
        stacked rows) from placeholders instead of recomputing them."""
        nc = self.op.n_carries
        outputs = self.op.body_outputs
        ph: dict[str, list[Any]] = {
            "a": [self.carry_slots[k].type.make_variable(f"g_carry{k}") for k in self.f_carry],
            "acc": [self.const_slots[k].type.make_variable(f"g_const{k}") for k in self.f_const],
            "gtr": [self.carry_slots[k].type.make_variable(f"g_trace{k}") for k, g in enumerate(self.g_trace)
                    if g is not None],
            "gy": [outputs[nc + k].type.make_variable(f"g_ys{k}") for k, g in enumerate(self.g_ys)
                   if g is not None]}
        known: dict[TensorVariable, TensorVariable] = {}

        def seed(v: TensorVariable, g: TensorVariable) -> None:
            known[v] = known[v] + g if v in known else g
        gtr = iter(ph["gtr"])
        for j, k in enumerate(self.f_carry):
            seed(outputs[k], ph["a"][j])
        for k, g in enumerate(self.g_trace):
            if g is not None:
                seed(outputs[k], next(gtr))
        gy = iter(ph["gy"])
        for k, g in enumerate(self.g_ys):
            if g is not None:
                seed(outputs[nc + k], next(gy))
        wrt = ([self.carry_slots[k] for k in self.f_carry] + [self.const_slots[k] for k in self.f_const]
               + [self.seq_slots[k] for k in self.f_seq])
        with no_broadcast_checks():  # (see gradient_ops.BROADCAST_CHECKS)
            grads = hooks.grad(None, wrt, disconnected_inputs="ignore", known_grads=known) if known else \
                [T.zeros_like(w) for w in wrt]
        acc = iter(ph["acc"])
        consts = grads[len(self.f_carry):len(wrt) - len(self.f_seq)]
        outs: list[Variable] = grads[:len(self.f_carry)] + [next(acc) + g for g in consts]
        outs += grads[len(wrt) - len(self.f_seq):]
        ph["cnext"], ph["yv"] = [], []
        if substitute:
            used = {id(v) for v in ancestors(outs)}
            inputs = {id(v) for v in self.op.body.inputs}
            swap = {}
            for k in range(nc):
                v = outputs[k]
                if id(v) in used and v.owner is not None and id(v) not in inputs and v not in swap:
                    swap[v] = v.type.make_variable(f"carry{k}_next")
                    ph["cnext"].append((k, swap[v]))
            if swap:
                outs, _ = clone_replace(outs, swap)
        return outs, ph


def _reverse(p: _Problem, rows: dict[str, list[TensorVariable]], a0: list[TensorVariable],
             acc0: list[TensorVariable], consts: list[TensorVariable], n: TensorVariable,
             name: str | None) -> tuple[list, list, list]:
    """The reverse loop over ``n`` steps whose forward rows are ``rows`` (each in forward order,
    ``n`` rows: 'seq', 'prev' carries, 'gtr', 'gy', 'cnext' as listed by the derivative): (the
    carry gradients before the first of these steps, the constants' accumulated gradients, each
    float sequence's row gradients in forward order)."""
    outs, ph = p.derivative(substitute=bool(rows.get("next")))
    cnext = [(k, v) for k, v in ph["cnext"]]
    seq_args = p.seq_slots + p.carry_slots + ph["gtr"] + ph["gy"] + [v for _, v in cnext]
    seqs = rows["seq"] + rows["prev"] + rows["gtr"] + rows["gy"] + [rows["next"][k] for k, _ in cnext]
    rev = [s[:n][::-1] for s in seqs]
    graph_inputs = seq_args + ph["a"] + ph["acc"] + p.const_slots
    info = list(a0) + list(acc0) + [None] * len(p.f_seq)
    if not (p.f_carry or p.f_const or p.f_seq):
        return [], [], []
    results, last, _ = build_scan(_step_fn(graph_inputs, outs), rev, info, consts, n, -1, False,
                               f"grad_{name}" if name else "grad", False, None)
    nca, ncc = len(p.f_carry), len(p.f_const)
    gx = [r[::-1] for r in results[nca + ncc:]]
    return last[:nca], last[nca:nca + ncc], gx


def _prev(inits: list[TensorVariable], traces: list[TensorVariable], n: TensorVariable) -> list[TensorVariable]:
    """For each carry, the value each step started from: the initial carry, then the trace."""
    return [T.concatenate([T.shape_padleft(c0), tr[:n - 1]]) for c0, tr in zip(inits, traces)]


def _place(x: TensorVariable, g_rows: TensorVariable, start: TensorVariable, stop: TensorVariable,
           nonempty: TensorVariable) -> TensorVariable:
    """A gradient for sequence ``x``: ``g_rows`` at rows [start, stop), zeros elsewhere."""
    placed = T.inc_subtensor(T.zeros_like(x)[start:stop], g_rows)
    if all(s is not None for s in x.type.shape[1:]):
        return placed
    return ifelse(nonempty, placed, T.zeros_like(x))  # no step ran: g_rows has no row shape to add


def scan_grad(op: Scan, inputs: list, outputs: list, output_grads: list) -> list:
    """The gradients of a Scan node's inputs (see the module doc)."""
    p = _Problem(op, inputs, output_grads)
    result: list = [None] * len(inputs)
    if not (p.f_carry or p.f_const or p.f_seq):
        return result
    node = outputs[0].owner
    if not all(op.traced):  # a rewritten node without some traces: recompute them
        node = op.clone(traced=(True,) * op.n_carries).make_node(*inputs)
    slots = node.op.output_slots()
    traces = [node.outputs[i] for i in slots["trace"]]
    n_run = p.n if not op.until else T.shape_i(traces[0] if traces else node.outputs[slots["ys"][0]], 0)
    a0 = [p.g_final[k] if not _is_zero(p.g_final[k]) else T.zeros_like(p.inits[k]) for k in p.f_carry]
    acc0 = [T.zeros_like(p.consts[k]) for k in p.f_const]
    gtr = [g for g in p.g_trace if g is not None]
    gy = [g for g in p.g_ys if g is not None]
    if op.checkpoint is not None and op.truncate_gradient < 0:
        ga, gk, gx = checkpointed(p, a0, acc0, gtr, gy, n_run)
        start = T.constant(np.int64(0))
    else:
        m = n_run if op.truncate_gradient < 0 else T.minimum(n_run, op.truncate_gradient)
        start = n_run - m
        prev = _prev(p.inits, traces, n_run)
        rows = {"seq": [s[start:n_run] for s in p.seqs], "prev": [v[start:n_run] for v in prev],
                "gtr": [g[start:n_run] for g in gtr], "gy": [g[start:n_run] for g in gy],
                "next": [tr[start:n_run] for tr in traces]}
        ga, gk, gx = _reverse(p, rows, a0, acc0, list(p.consts), m, op.name)
        if op.truncate_gradient >= 0:
            ga = [T.switch(T.le(n_run, op.truncate_gradient), g, T.zeros_like(g)) for g in ga]
    base = 1 + op.n_seqs
    for j, k in enumerate(p.f_carry):
        result[base + k] = ga[j]
    for j, k in enumerate(p.f_const):
        result[base + op.n_carries + k] = gk[j]
    for j, k in enumerate(p.f_seq):
        result[1 + k] = _place(p.seqs[k], gx[j], start, n_run, T.gt(n_run, start))
    return result


def checkpointed(p: _Problem, a0: list, acc0: list, gtr: list, gy: list, n: TensorVariable) -> tuple[list, list, list]:
    """Checkpointed BPTT (see the module doc): segments of k steps, their starting carries kept by
    one scan over segments, then a reverse scan over segments that recomputes each segment's
    carries and runs its reverse steps."""
    op, nc = p.op, p.op.n_carries
    k = int(op.checkpoint or 1)
    forward = _step_fn(p.seq_slots + p.carry_slots + p.const_slots, list(op.body.outputs[:nc]))
    n_seg = (n + (k - 1)) // k
    one, zero = T.constant(np.int64(1)), T.constant(np.int64(0))

    def segment(s: TensorVariable, seqs: Any) -> tuple[TensorVariable, TensorVariable, list]:
        lo = s * k
        length = T.minimum(k, n - lo)
        return lo, length, [x[lo:lo + length] for x in seqs]

    def keep(s: TensorVariable, *rest: TensorVariable) -> list:
        carries, outer = rest[:nc], rest[nc:]
        _, length, seg = segment(s, outer[:op.n_seqs])
        _, last, _ = build_scan(forward, seg, list(carries), list(outer[op.n_seqs:]), length, -1, False, None, False,
                                None)
        return [s + one] + last
    ends, _, _ = build_scan(keep, [], [zero] + list(p.inits), list(p.seqs) + list(p.consts), n_seg, -1, False,
                         "checkpoints", False, None)
    starts = _prev(list(p.inits), ends[1:], n_seg)  # the carries each segment starts from
    nca, ncc, ns, nk = len(a0), len(acc0), op.n_seqs, op.n_consts

    def back(*args: TensorVariable) -> list:
        firsts, j = args[:nc], args[nc]
        a, acc, outer = args[nc + 1:nc + 1 + nca], args[nc + 1 + nca:nc + 1 + nca + ncc], args[nc + 1 + nca + ncc:]
        seqs, consts = outer[:ns], outer[ns:ns + nk]
        g_tr, g_y = outer[ns + nk:ns + nk + len(gtr)], outer[ns + nk + len(gtr):]
        lo, length, seg = segment(n_seg - one - j, seqs)
        traces, _, _ = build_scan(forward, seg, list(firsts), list(consts), length, -1, False, None, False, None)
        rows = {"seq": seg, "prev": _prev(list(firsts), traces, length), "gtr": [g[lo:lo + length] for g in g_tr],
                "gy": [g[lo:lo + length] for g in g_y], "next": traces}
        ga, gk, gx = _reverse(p, rows, list(a), list(acc), list(consts), length, op.name)
        pads = [T.concatenate([g, T.alloc(T.constant(np.zeros((), g.dtype)), k - length,
                                          *[T.shape_i(g, d) for d in range(1, g.ndim)])]) for g in gx]
        return [j + one] + ga + gk + pads
    outer_consts = list(p.seqs) + list(p.consts) + gtr + gy
    results, last, _ = build_scan(back, [s[::-1] for s in starts], [zero] + a0 + acc0 + [None] * len(p.f_seq),
                               outer_consts, n_seg, -1, False, "checkpointed_grad", False, None)
    gx = []
    for j, kx in enumerate(p.f_seq):
        x = p.seqs[kx]
        flat = T.reshape(results[1 + nca + ncc + j][::-1], [n_seg * k] + [T.shape_i(x, d) for d in range(1, x.ndim)])
        gx.append(flat[:n])
    return last[1:1 + nca], last[1 + nca:1 + nca + ncc], gx


register_grad(scan_grad)
