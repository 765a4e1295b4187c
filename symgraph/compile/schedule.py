"""The backend-neutral schedule of a rewritten graph: the order nodes run in, where each value's
memory comes from (alias roots through ``view_map``), when each value dies, and which results
must be copied so that every returned array and every committed shared value owns its memory.

A backend's emitter walks this schedule; the rules here are the same for every backend."""
from __future__ import annotations

from dataclasses import dataclass

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.tensor.type import TensorVariable


@dataclass(frozen=True)
class UpdateSlot:
    """One shared-variable update: the graph output holding the new value (``output``, an index
    of ``fgraph.outputs``), the container index, and the static lengths the value must have."""
    output: int
    container: int
    required: tuple[tuple[int, int], ...]  # (axis, length) the shared variable's type fixes


class Schedule:
    """What a call does, in order, for ``fgraph`` compiled under ``spec`` (a CompileSpec)."""

    def __init__(self, fgraph: FunctionGraph, spec) -> None:
        self.fgraph, self.spec = fgraph, spec
        self.order: list[Apply] = fgraph.toposort()
        self.user_inputs = fgraph.inputs[:spec.n_inputs]
        self.shared_inputs = fgraph.inputs[spec.n_inputs:]
        self.external = set(fgraph.inputs)
        self.protected = set(fgraph.outputs)
        self.roots = _alias_roots(self.order)
        self.last_use = _last_uses(self.order)
        self.copies = self._copies()
        self.updates = [UpdateSlot(o, c, _required(fgraph.outputs[o], self.shared_inputs[c]))
                        for o, c in spec.updates]

    def root(self, v: Variable) -> Variable:
        """The variable whose memory ``v`` may share (itself when it owns its memory)."""
        return self.roots.get(v, v)

    def frees(self, step: int, node: Apply) -> list[Variable]:
        """Intermediate arrays that die at ``step`` (their last reader): the code drops them there."""
        return list(dict.fromkeys(
            v for v in node.inputs if self.last_use.get(v) == step and v.owner is not None
            and v not in self.protected and getattr(v.type, "ndim", 0) > 0))

    def _copies(self) -> list[bool]:
        """For each graph output (the user's outputs, then the update values): must it be copied?
        Each returned array and each committed value owns its memory, so one is copied when its
        memory belongs to an input, a shared variable, a constant, or an earlier output."""
        owned: set[Variable] = set()
        copies = []
        for v in self.fgraph.outputs:
            root = self.root(v)
            copies.append(root in self.external or isinstance(root, Constant) or root in owned)
            owned.add(root)
        return copies


def _alias_roots(order: list[Apply]) -> dict[Variable, Variable]:
    """For each view (through view_map chains), the variable whose buffer it may share."""
    root: dict[Variable, Variable] = {}
    for node in order:
        for o_idx, i_idx in node.op.view_map.items():
            inp = node.inputs[i_idx]
            root[node.outputs[o_idx]] = root.get(inp, inp)
    return root


def _last_uses(order: list[Apply]) -> dict[Variable, int]:
    """For each variable, the step of the last node that reads it."""
    last: dict[Variable, int] = {}
    for step, node in enumerate(order):
        for v in node.inputs:
            last[v] = step
    return last


def _required(value: TensorVariable, target: TensorVariable) -> tuple[tuple[int, int], ...]:
    """The (axis, length) pairs the shared variable's static shape fixes and the update's type
    does not already guarantee: checked at run time before anything is committed."""
    return tuple((d, s) for d, (s, v) in enumerate(zip(target.type.shape, value.type.shape))
                 if s is not None and v != s)
