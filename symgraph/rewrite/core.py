"""The rewriter core: rules keyed by op, local passes run to a fixed point, fast replacement.

A *rule* is a small function ``fn(fgraph, node) -> replacement`` registered for the ops it
looks at: an elementwise op's name from the scalar table (``"log"``) or an Op class
(``DimShuffle``). A *local pass* visits only nodes whose key has rules, in topological
order, and re-queues the neighbours of every replacement until nothing fires (or a cap is
hit). A replacement is a Variable for a single-output node, or a list with one entry (or
None to keep it) per output. Replacements must keep each variable's type (dtype and static
shape); anything else, or an exception inside a rule, is a :class:`RewriteError` naming the
rule and the node (``config.rewrite_errors = 'warn'`` turns those into warnings).
"""
from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Iterable

from symgraph.config import config
from symgraph.errors import RewriteError, node_context
from symgraph.graph.basic import Apply, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.tensor.elemwise import Elemwise


class Rule:
    """One named pattern -> replacement function, and the op keys it applies to."""

    __slots__ = ("name", "fn", "keys", "doc", "default")

    def __init__(self, name: str, fn: Callable, keys: tuple, default: bool = True):
        self.name, self.fn, self.keys, self.default = name, fn, keys, default  # default: runs in fast_run
        self.doc = (fn.__doc__ or "").strip().split("\n")[0]

    def __repr__(self) -> str:
        return f"Rule({self.name})"


# the passes, in order; local passes (lists of rules) and whole-graph passes
PIPELINE = ("merge", "constant_folding", "canonicalize", "stabilize", "specialize", "scan", "merge", "merge_ifelse",
            "bucket_allreduce", "fusion", "dead_code", "inner_graphs")
# pass name -> rules, in the order they are tried
RULES: dict[str, list[Rule]] = {"canonicalize": [], "stabilize": [], "specialize": []}
# user whole-graph rewriters: name -> (the pipeline pass they run after, fn(fgraph), on in fast_run)
USER_PASSES: dict[str, tuple[str, Callable, bool]] = {}


def rule(pass_name: str, *keys: str | type, name: str | None = None) -> Callable:
    """Register ``fn(fgraph, node)`` in local pass ``pass_name`` for nodes whose key is in ``keys``."""
    def register(fn: Callable) -> Callable:
        RULES[pass_name].append(Rule(name or fn.__name__.lstrip("_"), fn, keys))
        return fn
    return register


def node_key(node: Apply):
    """What rules are looked up by: the scalar op's name for Elemwise, else the Op class."""
    op = node.op
    return op.scalar_op.name if type(op) is Elemwise else type(op)


class Stats:
    """Counts of applied rules for one pass (merged into the report)."""

    def __init__(self) -> None:
        self.applied: dict[str, int] = {}
        self.new_nodes: list[Apply] = []  # nodes the pass added, in the order they were added

    def count(self, name: str, k: int = 1) -> None:
        self.applied[name] = self.applied.get(name, 0) + k


# --- running rules ------------------------------------------------------------------------

def _fail(rule_name: str, node: Apply, err: BaseException) -> None:
    msg = f"rewrite {rule_name!r} failed on node {node.op}: {type(err).__name__}: {err}\n{node_context(node)}"
    if config.rewrite_errors == "warn":
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return
    raise RewriteError(msg) from err


def commit(fgraph: FunctionGraph, r: Rule, node: Apply, result, stats: Stats) -> list[Apply] | None:
    """Put rule ``r``'s ``result`` in place of ``node``'s outputs; returns the nodes to look at
    again (new nodes and the readers of the replacements), or None when nothing changed."""
    try:
        if isinstance(result, Variable):
            result = [result]
        if len(result) != len(node.outputs):
            raise RewriteError(f"returned {len(result)} replacements for {len(node.outputs)} outputs")
        pairs = [(o, n) for o, n in zip(node.outputs, result) if n is not None and n is not o]
        for old, new in pairs:
            if old.type != new.type:
                raise RewriteError(f"the replacement changes the type of {old}: {old.type} -> {new.type}")
        if not pairs:
            return None
        added: list[Apply] = []
        for old, new in pairs:
            added += fgraph.replace(old, new, r.name)
        stats.new_nodes += added
        for _, new in pairs:  # the replacements' readers may match now
            added += [c for c, _ in fgraph.clients.get(new, ()) if c != "output"]
    except Exception as err:
        _fail(r.name, node, err)
        return None
    stats.count(r.name)
    return added


def run_local(fgraph: FunctionGraph, rules: Iterable[Rule], stats: Stats, order: list[Apply] | None = None,
              max_steps: int | None = None) -> None:
    """Apply ``rules`` everywhere until none fires. Each node is looked at once (in ``order``,
    by default topological), then again only when a neighbour changed; ``max_steps`` (default
    20 per node) stops rewrite loops."""
    by_key: dict = {}
    for r in rules:
        for k in r.keys:
            by_key.setdefault(k, []).append(r)
    if not by_key:
        return
    work = deque(n for n in (fgraph.toposort() if order is None else order) if node_key(n) in by_key)
    queued = set(work)
    budget = max_steps if max_steps is not None else 20 * len(fgraph.apply_nodes) + 100
    apply_nodes = fgraph.apply_nodes
    while work:
        node = work.popleft()
        queued.discard(node)
        if node not in apply_nodes:
            continue
        for r in by_key.get(node_key(node), ()):
            try:
                result = r.fn(fgraph, node)
            except Exception as err:  # a rewrite that raises is a bug: name it and the node
                _fail(r.name, node, err)
                continue
            if result is None or result is False:
                continue
            added = commit(fgraph, r, node, result, stats)
            if added is None:
                continue
            budget -= 1
            if budget < 0:
                warnings.warn(f"rewriting stopped after too many steps (last rule {r.name!r}); "
                              "a rule probably undoes another", RuntimeWarning, stacklevel=2)
                return
            for n in added:
                if n not in queued and n in apply_nodes and node_key(n) in by_key:
                    queued.add(n)
                    work.append(n)
            if node in apply_nodes and node not in queued:  # a partial replacement: look at it again later
                queued.add(node)
                work.append(node)
            break
