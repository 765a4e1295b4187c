"""Graph rewriting: the ordered pipeline that sg.function runs on every FunctionGraph.

Passes, in order: ``merge``, ``constant_folding``, ``canonicalize``, ``stabilize``,
``specialize``, ``scan`` (loops: prune unread traces, hoist loop-invariant work, vectorise
sequence-only products; symgraph/rewrite/loops.py), ``merge`` again (when rules added nodes),
``merge_ifelse``, ``bucket_allreduce``
(independent MPI all-reduces become one call on one buffer), ``fusion``, ``dead_code``,
``inner_graphs`` (the same pipeline inside every inner graph: ifelse branches, loop bodies).
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

import copy
import time
from typing import Any
from collections.abc import Callable, Iterable

from symgraph.config import THEANO_MODE_NAMES
from symgraph.graph.fgraph import FunctionGraph
from symgraph.rewrite import canonicalize, inline, linalg, specialize, stabilize  # noqa: F401  (register rules)
from symgraph.rewrite.collective import bucket_allreduce
from symgraph.rewrite.core import PIPELINE, RULES, USER_PASSES, Rule, Stats, rule, run_local
from symgraph.rewrite.branches import merge_ifelse, rewrite_inner_graphs, sink_everywhere, sink_into_branches
from symgraph.rewrite.fusion import MAX_OPERANDS, fuse
from symgraph.rewrite.graph_passes import constant_fold, dead_code, merge
from symgraph.rewrite.loops import scan_pass
from symgraph.rewrite.history import RewriteHistory

_BASES = {"fast_run": set(PIPELINE), "fast_compile": {"merge", "constant_folding", "inner_graphs"}, "none": set()}
# Theano/PyTensor spellings: mode names, and rewrite names with a symgraph equivalent (None: names
# of in-place rewrites, which symgraph does not have: excluding them changes nothing)
THEANO_MODES = {**THEANO_MODE_NAMES, "o1": "fast_run", "default": "fast_run"}
THEANO_REWRITES: dict[str, str | None] = {"local_elemwise_fusion": "fusion", "elemwise_fusion": "fusion",
                                          "merge1": "merge", "constant_folding": "constant_folding",
                                          "inplace": None, "inplace_opt": None, "gpu": None}
# mode name -> factory, filled by the modules that define special modes (DebugMode, MonitorMode)
MODE_NAMES: dict[str, Callable[[], Mode]] = {}


def rewrite_names() -> list[str]:
    """Every name ``Mode.including/excluding`` accepts: passes, then rules, then user passes."""
    return list(dict.fromkeys(PIPELINE)) + [r.name for rules in RULES.values() for r in rules] + list(USER_PASSES)


def _own_names(names: Iterable[str]) -> set[str]:
    """Names checked against the known rewrites, Theano's spellings translated."""
    known, out = set(rewrite_names()), set()
    for given in names:
        name = THEANO_REWRITES.get(given, given) if given not in known else given
        if name is None:
            continue
        if name not in known:
            raise ValueError(f"unknown rewrite {name!r}; known: {sorted(known)}")
        out.add(name)
    return out


class Mode:
    """Which rewrites run: a base ('fast_run', 'fast_compile', 'none') plus names included or
    excluded (passes or single rules); ``max_operands`` caps a fused node's inputs + outputs.

    Theano's ``Mode(linker=..., optimizer=...)`` is accepted: ``optimizer`` names the base (also
    as 'FAST_RUN', None, ...); the linker has no symgraph meaning (the backend decides how code
    runs) and is kept only to be shown."""

    def __init__(self, base: str | None = "fast_run", include: Iterable[str] = (), exclude: Iterable[str] = (),
                 max_operands: int = MAX_OPERANDS, *, optimizer: Any = "default", linker: Any = None):
        if optimizer != "default":
            base = optimizer
        base = "none" if base is None else THEANO_MODES.get(base, base)
        if base not in _BASES:
            raise ValueError(f"unknown mode {base!r}; choose one of {list(_BASES)} (or None)")
        self.base, self.include, self.exclude = base, frozenset(_own_names(include)), frozenset(_own_names(exclude))
        self.max_operands = int(max_operands)
        self.linker = linker

    def _with(self, include: Iterable[str], exclude: Iterable[str]) -> Mode:
        other = copy.copy(self)  # keeps the class and the settings of special modes (DebugMode, ...)
        other.include, other.exclude = frozenset(include), frozenset(exclude)
        return other

    def including(self, *names: str) -> Mode:
        """This mode with the named passes or rules switched on (Theano's names accepted)."""
        names_ = _own_names(names)
        return self._with(self.include | names_, self.exclude - names_)

    def excluding(self, *names: str) -> Mode:
        """This mode with the named passes or rules switched off (Theano's names accepted)."""
        names_ = _own_names(names)
        return self._with(self.include - names_, self.exclude | names_)

    def runs(self, pass_name: str) -> bool:
        """Whether pass ``pass_name`` runs (a local pass runs when any of its rules is included)."""
        if pass_name in self.exclude:
            return False
        if pass_name in _BASES[self.base] or pass_name in self.include:
            return True
        if pass_name in USER_PASSES:
            return self.base == "fast_run" and USER_PASSES[pass_name][2]
        return any(r.name in self.include for r in RULES.get(pass_name, ()))

    def rules(self, pass_name: str) -> list[Rule]:
        """The rules of local pass ``pass_name`` that run in this mode."""
        whole = pass_name in _BASES[self.base] or pass_name in self.include
        return [r for r in RULES[pass_name] if r.name not in self.exclude
                and (whole and r.default or r.name in self.include)]

    def __repr__(self) -> str:
        extra = "".join(f".including({', '.join(map(repr, sorted(self.include)))})" * bool(self.include)) + \
            "".join(f".excluding({', '.join(map(repr, sorted(self.exclude)))})" * bool(self.exclude))
        return f"{type(self).__name__}({self.base!r}){extra}"


def as_mode(mode: Any) -> Mode:
    """A Mode from a name, None, a dict {'base', 'include', 'exclude'} or a Mode."""
    if isinstance(mode, Mode):
        return mode
    if isinstance(mode, str) and mode in MODE_NAMES:
        return MODE_NAMES[mode]()
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


def _run_pass(name: str, fgraph: FunctionGraph, mode: Mode, stats: Stats, order: list, inner: bool) -> None:
    if name == "merge":
        merge(fgraph, stats, order)
    elif name == "constant_folding":
        constant_fold(fgraph, stats, order, lenient=inner)
    elif name == "merge_ifelse":
        merge_ifelse(fgraph, stats)
    elif name == "scan":
        scan_pass(fgraph, stats)
    elif name == "inner_graphs":
        rewrite_inner_graphs(fgraph, stats, lambda fg: rewrite_graph(fg, mode, inner=True))
    elif name == "fusion":
        fuse(fgraph, stats, mode.max_operands, order)
    elif name == "dead_code":
        dead_code(fgraph, stats)
    elif name == "bucket_allreduce":
        bucket_allreduce(fgraph, stats, order)
    else:
        run_local(fgraph, mode.rules(name), stats, order)


def _schedule() -> list[str]:
    """The pipeline with each user pass after the (first) pass it is registered after."""
    out, seen = [], set()
    for name in PIPELINE:
        out.append(name)
        if name not in seen:
            seen.add(name)
            out += [u for u, (after, _, _) in USER_PASSES.items() if after == name]
    return out


def rewrite_graph(fgraph: FunctionGraph, mode: Any, inner: bool = False,
                  history: RewriteHistory | None = None) -> RewriteReport:
    """Rewrite ``fgraph`` in place for ``mode``; returns a report of what ran. ``inner``: the graph
    is an inner graph (a branch), where constant folding leaves a node that raises unfolded. A
    ``history`` (attached to ``fgraph`` by the caller) records the graph after each pass that ran.

    One topological order is shared by the passes: nodes a pass removes are filtered out and
    nodes it adds are appended (local passes re-queue what they touch, so an approximate order
    is enough for them); merge and fusion get a fresh exact order when the graph gained nodes.
    """
    m = as_mode(mode)
    t_start = time.perf_counter()
    record_rewrites = getattr(m, "record_rewrites", None)
    recorder = record_rewrites() if record_rewrites is not None else None
    if recorder is not None:  # DebugMode: keep every replacement to check its values when called
        fgraph.attach_feature(recorder)
    report = RewriteReport(mode=mode if isinstance(mode, (str, type(None))) else repr(m),
                           nodes_before=len(fgraph), nodes_after=len(fgraph), applied={}, passes=[], time=0.0)
    order, exact, merged = None, False, False
    inner_graphs = any(getattr(n.op, "inner_graphs", None) for n in fgraph.apply_nodes)
    for name in _schedule():
        if not m.runs(name) or (name == "merge" and merged and exact):  # nothing new to merge
            continue
        if name in ("merge_ifelse", "scan", "inner_graphs") and not inner_graphs:  # passes for ops with inner graphs
            continue
        merged = merged or name == "merge"
        stats, before, t0 = Stats(), len(fgraph), time.perf_counter()
        if name in USER_PASSES:  # a user's whole-graph rewriter: it edits through fgraph.replace
            USER_PASSES[name][1](fgraph)
            order, exact = None, False
        else:
            if order is None or (name in _NEEDS_EXACT_ORDER and not exact):
                order, exact = fgraph.toposort(), True
            _run_pass(name, fgraph, m, stats, order, inner)
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
    if recorder is not None:
        fgraph.remove_feature(recorder)
        report["replacements"] = recorder.replacements
    return report


from symgraph.rewrite.user import (NodeRewriter, node_rewriter, register_canonicalize,  # noqa: E402
                                   register_pass, register_specialize, register_stabilize, unregister)

__all__ = ["Mode", "RewriteReport", "rewrite_graph", "rewrite_names", "rule", "PIPELINE", "NodeRewriter",
           "node_rewriter", "register_canonicalize", "register_specialize", "register_stabilize", "register_pass",
           "unregister", "as_mode", "sink_into_branches", "sink_everywhere", "RewriteHistory"]
