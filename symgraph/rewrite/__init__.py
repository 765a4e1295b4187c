"""Graph rewriting: the ordered pipeline that sg.function runs on every FunctionGraph.

Passes, in order: ``merge``, ``constant_folding``, ``canonicalize``, ``stabilize``,
``specialize``, ``merge`` again (when rules added nodes), ``fusion``, ``dead_code``.
``mode`` chooses what runs:

- ``'fast_run'``: everything; ``'fast_compile'``: merge and constant folding; ``None`` or
  ``'none'``: nothing;
- ``Mode('fast_run').excluding('fusion', 'log1p')`` / ``.including(...)`` (PyTensor style),
  or the dict ``{'base': 'fast_run', 'exclude': [...], 'include': [...]}``. Names are pass
  names or rule names (``rewrite_names()`` lists them); ``include`` adds passes or rules the
  base leaves out, ``exclude`` wins over it.

``rewrite_graph`` returns a :class:`RewriteReport` (``f.rewrite_report()``): rules applied
with counts, node counts before and after, and the time of each pass.
"""
from __future__ import annotations

import time
from typing import Any, Iterable

from symgraph.graph.fgraph import FunctionGraph
from symgraph.rewrite import canonicalize, linalg, specialize, stabilize  # noqa: F401  (register rules)
from symgraph.rewrite.core import RULES, Rule, Stats, rule, run_local
from symgraph.rewrite.fusion import MAX_OPERANDS, fuse
from symgraph.rewrite.graph_passes import constant_fold, dead_code, merge
from symgraph.rewrite.history import RewriteHistory

PIPELINE = ("merge", "constant_folding", "canonicalize", "stabilize", "specialize", "merge", "fusion",
            "dead_code")
_BASES = {"fast_run": set(PIPELINE), "fast_compile": {"merge", "constant_folding"}, "none": set()}


def rewrite_names() -> list[str]:
    """Every name ``Mode.including/excluding`` accepts: passes, then rules."""
    return list(dict.fromkeys(PIPELINE)) + [r.name for rules in RULES.values() for r in rules]


class Mode:
    """Which rewrites run: a base ('fast_run', 'fast_compile', 'none') plus names included or
    excluded (passes or single rules); ``max_operands`` caps a fused node's inputs + outputs."""

    def __init__(self, base: str = "fast_run", include: Iterable[str] = (), exclude: Iterable[str] = (),
                 max_operands: int = MAX_OPERANDS):
        base = "none" if base is None else base
        if base not in _BASES:
            raise ValueError(f"unknown mode {base!r}; choose one of {list(_BASES)} (or None)")
        known = set(rewrite_names())
        for name in [*include, *exclude]:
            if name not in known:
                raise ValueError(f"unknown rewrite {name!r}; known: {sorted(known)}")
        self.base, self.include, self.exclude = base, frozenset(include), frozenset(exclude)
        self.max_operands = int(max_operands)

    def including(self, *names: str) -> "Mode":
        """This mode with the named passes or rules switched on."""
        return Mode(self.base, self.include | set(names), self.exclude - set(names), self.max_operands)

    def excluding(self, *names: str) -> "Mode":
        """This mode with the named passes or rules switched off."""
        return Mode(self.base, self.include - set(names), self.exclude | set(names), self.max_operands)

    def runs(self, pass_name: str) -> bool:
        """Whether pass ``pass_name`` runs (a local pass runs when any of its rules is included)."""
        if pass_name in self.exclude:
            return False
        if pass_name in _BASES[self.base] or pass_name in self.include:
            return True
        return any(r.name in self.include for r in RULES.get(pass_name, ()))

    def rules(self, pass_name: str) -> list[Rule]:
        """The rules of local pass ``pass_name`` that run in this mode."""
        whole = pass_name in _BASES[self.base] or pass_name in self.include
        return [r for r in RULES[pass_name]
                if r.name not in self.exclude and (whole or r.name in self.include)]

    def __repr__(self) -> str:
        extra = "".join(f".including({', '.join(map(repr, sorted(self.include)))})" * bool(self.include)) + \
            "".join(f".excluding({', '.join(map(repr, sorted(self.exclude)))})" * bool(self.exclude))
        return f"Mode({self.base!r}){extra}"


def as_mode(mode: Any) -> Mode:
    """A Mode from a name, None, a dict {'base', 'include', 'exclude'} or a Mode."""
    if isinstance(mode, Mode):
        return mode
    if mode is None or isinstance(mode, str):
        return Mode("none" if mode is None else mode)
    if isinstance(mode, dict):
        unknown = set(mode) - {"base", "include", "exclude", "max_operands"}
        if unknown:
            raise ValueError(f"mode dict has unknown keys {sorted(unknown)}; use base, include, exclude")
        return Mode(mode.get("base", "fast_run"), mode.get("include", ()), mode.get("exclude", ()),
                    mode.get("max_operands", MAX_OPERANDS))
    raise ValueError(f"unknown mode {mode!r}; use 'fast_run', 'fast_compile', None, a dict or a Mode")


class RewriteReport(dict):
    """What rewriting did: ``mode``, ``nodes_before``, ``nodes_after``, ``applied`` (rule ->
    count), ``passes`` (name, seconds, nodes before/after, applied) and total ``time``."""

    def __str__(self) -> str:
        lines = [f"rewrite report ({self['mode']}): {self['nodes_before']} -> {self['nodes_after']} nodes "
                 f"in {self['time'] * 1e3:.1f} ms"]
        for p in self["passes"]:
            applied = ", ".join(f"{k} x{v}" for k, v in p["applied"].items()) or "-"
            lines.append(f"  {p['name']:<17}{p['time'] * 1e3:7.2f} ms  {p['nodes_before']:>5} -> "
                         f"{p['nodes_after']:<5} {applied}")
        return "\n".join(lines)


_NEEDS_EXACT_ORDER = {"merge", "fusion"}  # passes whose result depends on a true topological order


def _run_pass(name: str, fgraph: FunctionGraph, mode: Mode, stats: Stats, order: list) -> None:
    if name == "merge":
        merge(fgraph, stats, order)
    elif name == "constant_folding":
        constant_fold(fgraph, stats, order)
    elif name == "fusion":
        fuse(fgraph, stats, mode.max_operands, order)
    elif name == "dead_code":
        dead_code(fgraph, stats)
    else:
        run_local(fgraph, mode.rules(name), stats, order)


def rewrite_graph(fgraph: FunctionGraph, mode: Any, history: RewriteHistory | None = None) -> RewriteReport:
    """Rewrite ``fgraph`` in place for ``mode``; returns a report of what ran. A ``history``
    (attached to ``fgraph`` by the caller) records the graph after each pass that ran.

    One topological order is shared by the passes: nodes a pass removes are filtered out and
    nodes it adds are appended (local passes re-queue what they touch, so an approximate order
    is enough for them); merge and fusion get a fresh exact order when the graph gained nodes.
    """
    m = as_mode(mode)
    t_start = time.perf_counter()
    report = RewriteReport(mode=mode if isinstance(mode, (str, type(None))) else repr(m),
                           nodes_before=len(fgraph), nodes_after=len(fgraph), applied={}, passes=[], time=0.0)
    order, exact, merged = None, False, False
    for name in PIPELINE:
        if not m.runs(name) or (name == "merge" and merged and exact):  # nothing new to merge
            continue
        merged = merged or name == "merge"
        stats, before, t0 = Stats(), len(fgraph), time.perf_counter()
        if order is None or (name in _NEEDS_EXACT_ORDER and not exact):
            order, exact = fgraph.toposort(), True
        _run_pass(name, fgraph, m, stats, order)
        live = fgraph.apply_nodes
        order = [n for n in order if n in live] + [n for n in dict.fromkeys(stats.new_nodes) if n in live]
        exact = exact and not stats.new_nodes
        report["passes"].append({"name": name, "time": time.perf_counter() - t0, "nodes_before": before,
                                 "nodes_after": len(fgraph), "applied": stats.applied})
        for k, v in stats.applied.items():
            report["applied"][k] = report["applied"].get(k, 0) + v
        if history is not None:
            history.snapshot(fgraph, name, stats.applied)
    report["nodes_after"] = len(fgraph)
    report["time"] = time.perf_counter() - t_start
    return report


__all__ = ["Mode", "RewriteReport", "RewriteHistory", "rewrite_graph", "rewrite_names", "rule", "PIPELINE"]
