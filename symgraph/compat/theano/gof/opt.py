"""theano.gof.opt: Theano's optimizer classes as thin adapters over symgraph's rewriter.

A global ``Optimizer`` has ``apply(fgraph)``; a ``LocalOptimizer`` has ``transform(node)`` (or
``transform(fgraph, node)``) returning replacements; ``TopoOptimizer`` / ``EquilibriumOptimizer``
apply local ones over a graph until nothing changes; ``OpSub``, ``OpRemove`` and ``PatternSub``
are local optimizers from a description. Replacements go through symgraph's checked commit
(same type, errors name the rewrite and the user line). New code should use
``symgraph.rewrite.node_rewriter`` and ``register_canonicalize`` & co. instead.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from symgraph.graph.basic import Apply, Variable, positional_arity
from symgraph.graph.fgraph import FunctionGraph
from symgraph.rewrite.core import Rule, Stats, commit
from symgraph.rewrite.graph_passes import merge
from symgraph.rewrite.user import NodeRewriter, node_rewriter

MAX_ROUNDS = 100


class Optimizer:
    """A whole-graph optimizer: ``optimize(fgraph)`` adds its requirements, then runs ``apply``."""

    def add_requirements(self, fgraph: FunctionGraph) -> None:
        pass

    def apply(self, fgraph: FunctionGraph) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define apply(fgraph)")

    def optimize(self, fgraph: FunctionGraph, *args: Any, **kwargs: Any) -> Any:
        self.add_requirements(fgraph)
        return self.apply(fgraph, *args, **kwargs)

    def __call__(self, fgraph: FunctionGraph) -> Any:
        return self.optimize(fgraph)


class LocalOptimizer:
    """A node-level optimizer: ``transform(node)`` returns replacements (list/dict) or False/None."""

    def tracks(self) -> Sequence[Any] | None:
        return None

    def transform(self, node: Apply) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define transform(node)")

    def apply_to(self, fgraph: FunctionGraph, node: Apply) -> Any:
        fn: Callable[..., Any] = self.transform  # Theano's transform(node), or the newer transform(fgraph, node)
        result = fn(fgraph, node) if positional_arity(fn) >= 2 else fn(node)
        return [result.get(o) for o in node.outputs] if isinstance(result, dict) else result

    def __str__(self) -> str:
        return type(self).__name__


def local_optimizer(tracks: Sequence[Any] | None, inplace: bool = False) -> Any:
    """Theano's decorator: symgraph's ``node_rewriter`` (the function may take ``(node)``)."""
    return node_rewriter(tracks, inplace)


def _applier(local: Any) -> tuple[str, Any]:
    if isinstance(local, NodeRewriter):
        return local.name, local.transform
    if isinstance(local, LocalOptimizer):
        return str(local), local.apply_to
    raise TypeError(f"expected a local optimizer, got {local!r}")


def _rewrite_until_stable(fgraph: FunctionGraph, locals_: Sequence[Any]) -> int:
    """Apply the local optimizers to every node, repeatedly, until none changes the graph."""
    appliers = [_applier(lo) for lo in locals_]
    stats, changes = Stats(), 0
    for _ in range(MAX_ROUNDS):
        changed = False
        for node in fgraph.toposort():
            for name, apply in appliers:
                if node not in fgraph.apply_nodes:
                    break
                result = apply(fgraph, node)
                if result and commit(fgraph, Rule(name, apply, ()), node, result, stats) is not None:
                    changed, changes = True, changes + 1
        if not changed:
            return changes
    return changes


class TopoOptimizer(Optimizer):
    """Applies one local optimizer to the nodes in topological order (repeated until stable)."""

    def __init__(self, local_opt: Any, order: str = "in_to_out", ignore_newtrees: bool = False,
                 failure_callback: Any = None):
        self.local_opt = local_opt

    def apply(self, fgraph: FunctionGraph) -> tuple:
        changes = _rewrite_until_stable(fgraph, [self.local_opt])
        return (self, changes, len(fgraph.apply_nodes))


class EquilibriumOptimizer(Optimizer):
    """Applies several local optimizers until none of them changes the graph."""

    def __init__(self, optimizers: Sequence[Any], max_use_ratio: float | None = None, **kwargs: Any):
        self.optimizers = list(optimizers)

    def apply(self, fgraph: FunctionGraph) -> tuple:
        return (self, _rewrite_until_stable(fgraph, self.optimizers))


class MergeOptimizer(Optimizer):
    """Merges equal constants and equal computations (symgraph's merge pass)."""

    def apply(self, fgraph: FunctionGraph) -> tuple:
        stats = Stats()
        merge(fgraph, stats)
        return (0, sum(stats.applied.values()), None, None, dict(stats.applied), 1, 0)


class OpSub(LocalOptimizer):
    """Replace every application of ``op1`` by ``op2`` on the same inputs."""

    def __init__(self, op1: Any, op2: Any, transfer_tags: bool = True):
        self.op1, self.op2 = op1, op2

    def tracks(self) -> list:
        return [self.op1]

    def transform(self, node: Apply) -> Any:
        if node.op != self.op1:
            return False
        return self.op2.make_node(*node.inputs).outputs

    def __str__(self) -> str:
        return f"{self.op1} -> {self.op2}"


class OpRemove(LocalOptimizer):
    """Remove applications of ``op`` (one input, one output): its output becomes its input."""

    def __init__(self, op: Any):
        self.op = op

    def tracks(self) -> list:
        return [self.op]

    def transform(self, node: Apply) -> Any:
        return list(node.inputs) if node.op == self.op else False

    def __str__(self) -> str:
        return f"{self.op}(x) -> x"


class PatternSub(LocalOptimizer):
    """Replace ``in_pattern`` by ``out_pattern``: nested tuples ``(op, arg, ...)`` whose string
    leaves are variables, equal names matching the same variable, e.g.
    ``PatternSub((true_div, (mul, 'x', 'y'), 'y'), 'x')``."""

    def __init__(self, in_pattern: Any, out_pattern: Any, allow_multiple_clients: bool = False, **kwargs: Any):
        if not isinstance(in_pattern, tuple):
            raise TypeError(f"PatternSub: the input pattern must be a tuple (op, ...), got {in_pattern!r}")
        self.in_pattern, self.out_pattern = in_pattern, out_pattern

    def tracks(self) -> list:
        return [self.in_pattern[0]]

    def transform(self, node: Apply) -> Any:
        bound = _match(self.in_pattern, node.outputs[0], {})
        if bound is None:
            return False
        new = _build(self.out_pattern, bound)
        return [new] if new.type == node.outputs[0].type else False

    def __str__(self) -> str:
        return f"{self.in_pattern} -> {self.out_pattern}"


def _match(pattern: Any, var: Variable, bound: dict) -> dict | None:
    if isinstance(pattern, str):
        if pattern in bound:
            return bound if bound[pattern] is var else None
        return {**bound, pattern: var}
    if not isinstance(pattern, tuple):
        return None
    node = var.owner
    if node is None or node.op != pattern[0] or len(node.inputs) != len(pattern) - 1:
        return None
    for sub, inp in zip(pattern[1:], node.inputs):
        matched = _match(sub, inp, bound)
        if matched is None:
            return None
        bound = matched
    return bound


def _build(pattern: Any, bound: dict) -> Variable:
    if isinstance(pattern, str):
        return bound[pattern]
    op, *args = pattern
    return op(*[_build(a, bound) for a in args])


class Query:
    """Which optimizations a mode runs: tags or names to include, require and exclude."""

    def __init__(self, include: Sequence[str] = (), require: Sequence[str] | None = None,
                 exclude: Sequence[str] | None = None, subquery: Any = None, position_cutoff: Any = None):
        self.include, self.require = list(include), list(require or ())
        self.exclude, self.subquery = list(exclude or ()), subquery

    def __repr__(self) -> str:
        return f"Query(include={self.include}, exclude={self.exclude})"
