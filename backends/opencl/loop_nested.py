"""A scan inside a one-kernel loop's body (backends/opencl/loop_plan.py): its steps run in a
``for (long u<d> = 0; u<d> < n; u<d>++)`` inside each outer step, so a training loop whose model
is itself a loop (an RNN's forward and backward scans) still runs in one launch.

Its values live in the outer kernel's scratch: each carry in two regions used in turn (step u
reads the one ``u & 1`` names, writes the other; the initial value is copied into the first
before the loop), each trace and stacked output in a region of n rows written a row a step. A
sequence's row u is a view of the outer value (an offset ``u * stride``). Its step count must be
known for the call's shapes (a constant, or a length), and a while loop inside a body runs step
by step (the outer loop declines)."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.backends.opencl.loop_slots import Decline, Slot, Step, copy_step
from symgraph.graph.basic import Apply, Variable
from symgraph.scan.op import Scan


def _rows_of(region: Slot, var: str) -> Slot:
    """Row ``var`` of ``region`` (a view: its offset moves with the loop variable)."""
    step = region.strides[0] if region.shape else 0
    ptr = f"({region.ptr} + {var} * {step})" if step else region.ptr
    return Slot(ptr, region.shape[1:], region.strides[1:], region.dtype, region.key, deps=region.deps)


class InnerLoop:
    """The frame of one nested scan while the plan walks its body: where its body's inputs live
    and where its outputs go (``dest_slot``); then the node's outputs (``outputs``)."""

    def __init__(self, plan: Any, node: Apply, depth: int):
        op = node.op_as(Scan)
        if op.until:
            raise Decline(f"{op}: a while loop inside a loop body")
        self.op, self.var = op, f"u{depth}"
        self.n = plan.int_value(node.inputs[0])
        _, seqs, inits, consts = op.split_inputs([plan.slot(v) for v in node.inputs])
        for k, s in enumerate(seqs):
            if not s.ptr or s.shape[0] < self.n:
                raise Decline(f"{op}: sequence {k} of shape {s.shape} for {self.n} steps")
        self.inits = inits
        self.pairs = [self._pair(plan, s) for s in inits]
        self.traces = {j: plan.scratch_slot(s.dtype, (self.n,) + s.shape)
                       for j, s in enumerate(inits) if op.traced[j]}
        self.ys: dict[int, Slot] = {}
        self.plan = plan
        ins = [_rows_of(s, self.var) for s in seqs] + [self._carry(j, 0) for j in range(len(inits))] + consts
        for v, s in zip(op.body.inputs, ins):
            plan.slots[v] = s
        self.dests: dict[Variable, list[tuple[str, int]]] = {}
        outs = op.body.outputs
        for j in range(op.n_carries):
            self.dests.setdefault(outs[j], []).append(("nxt", j))
            if op.traced[j]:
                self.dests[outs[j]].append(("trr", j))
        for k in range(op.n_ys):
            self.dests.setdefault(outs[op.n_carries + k], []).append(("yr", k))

    @staticmethod
    def _pair(plan: Any, init: Slot) -> tuple[Slot, Slot]:
        a, b = plan.scratch_slot(init.dtype, init.shape), plan.scratch_slot(init.dtype, init.shape)
        return a, Slot(b.ptr, b.shape, b.strides, b.dtype, a.key)  # one key: the barriers see one carry

    def _carry(self, j: int, writes: int) -> Slot:
        """Carry j's region the step reads (``writes`` 0) or writes (1): they alternate with u."""
        a, b = self.pairs[j]
        first, second = (b, a) if writes else (a, b)
        return Slot(f"(({self.var} & 1) ? {second.ptr} : {first.ptr})", a.shape, a.strides, a.dtype, a.key)

    def dest_slot(self, kind: str, j: int, shape: tuple, dtype: np.dtype) -> Slot:
        """Where body output destination (kind, j) is stored at step u."""
        if kind == "nxt":
            init = self.inits[j]
            if shape != init.shape or dtype != init.dtype:
                raise Decline(f"{self.op}: carry {j} changes from {init.shape} to {shape}")
            return self._carry(j, 1)
        if kind == "trr":
            return _rows_of(self.traces[j], self.var)
        if j not in self.ys:
            self.ys[j] = self.plan.scratch_slot(dtype, (self.n,) + shape)
        elif self.ys[j].shape[1:] != shape:
            raise Decline(f"{self.op}: stacked output {j} changes shape")
        return _rows_of(self.ys[j], self.var)

    def before(self) -> list[Step]:
        """The initial carries copied into their first regions."""
        return [copy_step(s, [a], "loop carry") for s, (a, _) in zip(self.inits, self.pairs)]

    def outputs(self) -> list[Slot]:
        """The node's outputs: final carries (the region the last step wrote), traces, stacked outputs."""
        last = [a if self.n == 0 or (self.n - 1) % 2 else b for a, b in self.pairs]
        return last + list(self.traces.values()) + [self.ys[k] for k in range(self.op.n_ys)]



def loop_step(frame: InnerLoop, inner: list[Step], label: str) -> Step:
    """The nested loop as one step of the outer body: ``inner`` run ``frame.n`` times."""
    return Step("loop", label, (), [], [], branches=(inner, []), var=frame.var, count=frame.n)


__all__ = ["InnerLoop", "loop_step"]
