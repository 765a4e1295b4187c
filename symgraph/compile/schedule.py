"""The backend-neutral schedule of a rewritten graph: the order nodes run in, where each value's
memory comes from (alias roots through ``view_map``), when each value dies, and which results
must be copied so that every returned array and every committed shared value owns its memory.

A backend's emitter walks this schedule; the rules here are the same for every backend."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph


@dataclass(frozen=True)
class UpdateSlot:
    """One shared-variable update: the graph output holding the new value (``output``, an index
    of ``fgraph.outputs``), the container index, and the static lengths the value must have."""
    output: int
    container: int
    required: tuple[tuple[int, int], ...]  # (axis, length) the shared variable's type fixes


@dataclass(frozen=True)
class ArgSpec:
    """How a call takes one user input (``sg.In``'s options): the keyword it may be given by
    (None: by position only), the container holding its default or state (None: every call
    gives it), the graph output holding its next stored value, and what its memory may be used
    for: written into (``mutable``), returned as an output's memory (``borrow``)."""
    keyword: str | None = None
    container: Any = None
    update: int | None = None
    mutable: bool = False
    borrow: bool = False
    strict: bool = False
    allow_downcast: bool | None = None


class Schedule:
    """What a call does, in order, for ``fgraph`` compiled under ``spec`` (a CompileSpec)."""

    def __init__(self, fgraph: FunctionGraph, spec) -> None:
        self.fgraph, self.spec = fgraph, spec
        self.order: list[Apply] = fgraph.toposort()
        self.user_inputs = fgraph.inputs[:spec.n_inputs]
        self.shared_inputs = fgraph.inputs[spec.n_inputs:]
        self.args: list[ArgSpec] = list(getattr(spec, "args", None) or [ArgSpec()] * spec.n_inputs)
        self.mutable = {v for v, a in zip(self.user_inputs, self.args) if a.mutable}
        self.external = set(fgraph.inputs)
        self.protected = set(fgraph.outputs)
        self.roots = _alias_roots(self.order)
        self.last_use = _last_uses(self.order)
        self.buffer_end = _buffer_ends(self.order, self.roots, fgraph.outputs)
        self.copies = self._copies(getattr(spec, "borrow_outputs", ()))
        self.updates = [UpdateSlot(o, c, _required(fgraph.outputs[o], self.shared_inputs[c]))
                        for o, c in spec.updates]
        self.input_updates = [UpdateSlot(a.update, k, _required(fgraph.outputs[a.update], self.user_inputs[k]))
                              for k, a in enumerate(self.args) if a.update is not None]
        """Updates of inputs given with ``sg.In(x, update=...)``: ``container`` is the user input's index."""

    def root(self, v: Variable) -> Variable:
        """The variable whose memory ``v`` may share (itself when it owns its memory)."""
        return self.roots.get(v, v)

    def frees(self, step: int, node: Apply) -> list[Variable]:
        """Intermediate arrays that die at ``step`` (their last reader): the code drops them there."""
        return list(dict.fromkeys(
            v for v in node.inputs if self.last_use.get(v) == step and v.owner is not None
            and v not in self.protected and getattr(v.type, "ndim", 0) > 0))

    def may_overwrite(self, x: Variable, step: int) -> bool:
        """May the node at ``step`` (a reader of ``x``) write its result into ``x``'s memory? Only
        when that memory is an intermediate's or a mutable input's (``sg.In(x, mutable=True)``),
        and nothing reads it later, through ``x`` or a view of it, nor returns or stores it."""
        return (self.root(x) is x and (x.owner is not None or x in self.mutable)
                and self.buffer_end.get(x) == step)

    def _copies(self, borrow_outputs: tuple) -> list[bool]:
        """For each graph output (the user's outputs, then the update values): must it be copied?
        Each returned array and each committed value owns its memory, so one is copied when its
        memory belongs to an input, a shared variable, a constant, or an earlier output; except
        an output given with ``sg.Out(y, borrow=True)``, which may share the memory of a shared
        variable, a constant, another borrowed output or an input given with ``sg.In(x,
        borrow=True)`` (Theano's rule: both sides must allow it)."""
        lent = {v for v, a in zip(self.user_inputs, self.args) if a.borrow}
        shared_by: dict[Variable, bool] = {}  # memory handed out so far -> only to borrowed outputs
        copies = []
        for k, v in enumerate(self.fgraph.outputs):
            root, borrow = self.root(v), k < len(borrow_outputs) and borrow_outputs[k]
            if root in shared_by:
                copy = not (borrow and shared_by[root])
            elif root in self.external:
                copy = not (borrow and (root in lent or root not in self.user_inputs))
            else:
                copy = isinstance(root, Constant) and not borrow
            copies.append(copy)
            if not copy:
                shared_by[root] = shared_by.get(root, True) and borrow
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


def _buffer_ends(order: list[Apply], roots: dict[Variable, Variable], outputs: list[Variable]) -> dict[Variable, float]:
    """For each memory owner (an alias root): the last step that reads it, through itself or a
    view of it (infinite when a graph output shares it: it is returned or stored)."""
    end: dict[Variable, float] = {}
    for step, node in enumerate(order):
        for v in node.inputs:
            end[roots.get(v, v)] = step
    for v in outputs:
        end[roots.get(v, v)] = math.inf
    return end


def _required(value: Variable, target: Variable) -> tuple[tuple[int, int], ...]:
    """The (axis, length) pairs the shared variable's static shape fixes and the update's type
    does not already guarantee: checked at run time before anything is committed."""
    shapes = zip(getattr(target.type, "shape", ()), getattr(value.type, "shape", ()))  # () for non-tensor types
    return tuple((d, s) for d, (s, v) in enumerate(shapes)
                 if s is not None and v != s)
