"""Rewrite history: the graph before and after each pass of the pipeline, which rules fired on
which nodes, and a stable identity for every node, so that one expression can be followed from
the user's code to the kernel it ends up in (``sg.function(..., history=True)``; the explorer's
slider, ``sg.printing.to_html``).

Recording is opt-in: ``rewrite_graph`` takes a :class:`RewriteHistory` only when asked, and an
unrecorded compile pays nothing (the graph's listener list stays empty).

Identity: an Apply node keeps its id (``n0``, ``n1``, ...) for as long as the node object lives
in the graph; rewrites edit graphs in place, so untouched nodes keep theirs. Each step's
``links`` say where the nodes that changed went: a node whose output a rule replaced links to
the node computing the replacement (and the nodes the replacement brought in); a node removed
because all its readers were replaced (the members of a fused group) links to wherever those
readers went.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from symgraph.graph.basic import Apply, Variable
from symgraph.graph.fgraph import FunctionGraph


@dataclass(frozen=True)
class Firing:
    """One replacement: ``rule`` replaced an output of node ``old`` by a value computed by the
    nodes ``new`` (empty when the replacement is an input or a constant)."""
    rule: str
    old: str
    new: tuple[str, ...]


@dataclass
class NodeState:
    """A node as it was at one step (rewrites edit ``Apply.inputs`` in place, so they are copied)."""
    sid: str
    node: Apply
    inputs: tuple[Variable, ...]


@dataclass
class Step:
    """The graph after one pass (``label`` names the pass; the first step is the input graph)."""
    label: str
    nodes: list[NodeState]
    outputs: list[Variable]
    applied: dict[str, int] = field(default_factory=dict)
    fired: list[Firing] = field(default_factory=list)
    links: dict[str, list[str]] = field(default_factory=dict)  # previous step's sid -> this step's sids
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def sids(self) -> list[str]:
        return [s.sid for s in self.nodes]


class RewriteHistory:
    """Records the steps of one FunctionGraph's rewriting (and of a backend's placement edits)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.nodes: dict[str, Apply] = {}  # every node ever seen, by stable id
        self._sids: dict[int, str] = {}
        self._fired: list[tuple[str, Apply, list[Apply]]] = []
        self._t = time.perf_counter()

    def sid(self, node: Apply) -> str:
        """The stable id of ``node`` (assigned on first sight; the node is kept alive here, so
        its ``id()`` is never reused for another node)."""
        key = id(node)
        if key not in self._sids:
            self._sids[key] = sid = f"n{len(self._sids)}"
            self.nodes[sid] = node
        return self._sids[key]

    def attach(self, fgraph: FunctionGraph, label: str = "input graph") -> None:
        """Start listening to ``fgraph``'s replacements and record its current state."""
        fgraph.attach_feature(self)
        self.snapshot(fgraph, label)

    def detach(self, fgraph: FunctionGraph) -> None:
        """Stop listening (the recorded steps stay)."""
        fgraph.remove_feature(self)

    def on_replace(self, fgraph: FunctionGraph, old: Variable, new: Variable, reason: str) -> None:
        """A feature of the graph being rewritten: note which node each replacement replaced, and by what."""
        if old.owner is None:  # an input or constant replaced (merged constants): no node changed
            return
        targets = ([new.owner] if new.owner is not None else []) + list(fgraph.new_nodes)
        self._fired.append((reason or "replace", old.owner, targets))

    def snapshot(self, fgraph: FunctionGraph, label: str, applied: dict[str, int] | None = None) -> Step:
        """Record the graph as it is now, as the step after pass ``label``."""
        now = time.perf_counter()
        states = [NodeState(self.sid(n), n, tuple(n.inputs)) for n in fgraph.toposort()]  # new ids in graph order
        fired = [Firing(rule, self.sid(old), tuple(dict.fromkeys(self.sid(n) for n in new)))
                 for rule, old, new in self._fired]  # then nodes a pass made and removed again
        step = Step(label, states, list(fgraph.outputs), dict(applied or {}), fired, seconds=now - self._t)
        self._fired, self._t = [], now
        if self.steps:
            _link(self.steps[-1], step)
        self.steps.append(step)
        return step

    def step_of(self, sid: str) -> int | None:
        """The first step whose graph holds node ``sid``."""
        return next((k for k, s in enumerate(self.steps) if sid in set(s.sids)), None)

    def follow(self, sid: str, start: int, stop: int) -> list[str]:
        """The nodes of step ``stop`` that node ``sid`` of step ``start`` became (``stop`` later)
        or came from (``stop`` earlier), through each step's links (the explorer does the same)."""
        current = [sid]
        if stop >= start:
            for step in self.steps[start + 1:stop + 1]:
                alive = set(step.sids)
                current = list(dict.fromkeys(t for s in current for t in step.links.get(s, [s] if s in alive else [])))
            return current
        for k in range(start, stop, -1):
            links, before = self.steps[k].links, set(self.steps[k - 1].sids)
            current = list(dict.fromkeys([o for s in current for o, ts in links.items() if s in ts]
                                         + [s for s in current if s in before]))
        return current


def _link(prev: Step, step: Step) -> None:
    """Fill ``step.new``, ``step.removed`` and ``step.links`` (previous sid -> current sids)."""
    alive = set(step.sids)
    before = set(prev.sids)
    step.new = [s for s in step.sids if s not in before]
    step.removed = [s for s in prev.sids if s not in alive]
    direct: dict[str, list[str]] = {}
    for f in step.fired:
        direct.setdefault(f.old, []).extend(f.new)
    memo: dict[str, list[str]] = {}

    def reach(sid: str, seen: frozenset) -> list[str]:
        """Where ``sid`` went: through this step's firings (chains included) to live nodes."""
        if sid in memo:
            return memo[sid]
        out = [sid] if sid in alive else []
        for nxt in direct.get(sid, ()):
            if nxt not in seen:
                out += reach(nxt, seen | {sid})
        memo[sid] = out = list(dict.fromkeys(out))
        return out

    readers = _readers(prev)
    for state in reversed(prev.nodes):  # readers before the nodes they read
        sid = state.sid
        if sid in alive and sid not in direct:
            continue
        targets = reach(sid, frozenset())
        if not targets and sid not in direct:  # removed with its readers: it went where they went
            for r in readers.get(sid, ()):
                targets += step.links.get(r, [r] if r in alive else [])
        step.links[sid] = list(dict.fromkeys(targets))


def _readers(step: Step) -> dict[str, list[str]]:
    """For each node of ``step``, the nodes that read one of its outputs at that step."""
    owner_sid = {id(s.node): s.sid for s in step.nodes}
    readers: dict[str, list[str]] = {}
    for s in step.nodes:
        for v in s.inputs:
            src = owner_sid.get(id(v.owner)) if v.owner is not None else None
            if src is not None:
                readers.setdefault(src, []).append(s.sid)
    return readers


def graph_changed(prev: Step, step: Any) -> bool:
    """Whether ``step`` differs from ``prev`` (other nodes, or the same nodes wired differently)."""
    if prev.sids != step.sids or [id(v) for v in prev.outputs] != [id(v) for v in step.outputs]:
        return True
    return any(tuple(map(id, a.inputs)) != tuple(map(id, b.inputs)) for a, b in zip(prev.nodes, step.nodes))
