"""The public API for user-defined rewrites (PyTensor's names; Theano's ``local_optimizer`` in compat).

    @sg.rewrite.register_canonicalize
    @sg.rewrite.node_rewriter([T.true_div])
    def local_mul_div(fgraph, node):          # (x * y) / y  ->  x
        x, y = node.inputs
        if x.owner and x.owner.op == T.mul and y in x.owner.inputs:
            a, b = x.owner.inputs
            return [b if a is y else a]

A rewriter receives a node whose op is one of ``tracks`` (elementwise ops such as ``T.true_div``,
op instances, or op classes; None: every node) and returns None/False (no change), a list with one
replacement per output (None keeps an output), or a dict {old output: new}. A rewriter written for
Theano, taking ``(node)`` only, works too. ``register_canonicalize`` / ``register_stabilize`` /
``register_specialize`` add it to that pass, on by default; with ``default=False`` it runs only in
modes that name it: ``Mode('fast_run').including('local_mul_div')``. Theano's tags (extra positional
arguments) are accepted and not used. Replacements are checked like built-in ones (same type,
errors name the rewrite and the user line).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from symgraph.graph.basic import Apply, Op, positional_arity
from symgraph.rewrite.core import PIPELINE, RULES, USER_PASSES, Rule
from symgraph.tensor.elemwise import Elemwise

_USER_RULES: set[str] = set()  # names registered through this module (built-in rules cannot be replaced)


class NodeRewriter:
    """A function from a node to its replacements, restricted to the ops in ``tracks``."""

    def __init__(self, fn: Callable, tracks: Sequence[Any] | None, name: str | None = None):
        self.fn, self.tracks = fn, list(tracks) if tracks is not None else None
        self.name: str = name or str(getattr(fn, "__name__", type(self).__name__))
        self.__doc__ = fn.__doc__
        self._takes_fgraph = positional_arity(fn) >= 2

    def keys(self) -> tuple:
        """The lookup keys of the rewrite core: scalar-op names for Elemwise, else op classes."""
        if self.tracks is None:
            raise ValueError(f"rewrite {self.name}: tracks=None (every node) cannot be registered in a pass; "
                             "list the ops it rewrites")
        keys: list[str | type[Op]] = []
        for t in self.tracks:
            if isinstance(t, Elemwise):
                keys.append(t.scalar_op.name)
            elif isinstance(t, Op):
                keys.append(type(t))
            elif isinstance(t, type) and issubclass(t, Op):
                keys.append(t)
            else:
                raise TypeError(f"rewrite {self.name}: cannot track {t!r}; give ops (T.exp), op instances or "
                                "Op classes")
        return tuple(dict.fromkeys(keys))

    def matches(self, node: Apply) -> bool:
        """Whether ``node`` has one of the tracked ops (instances compare by equality)."""
        if self.tracks is None:
            return True
        for t in self.tracks:
            if isinstance(t, type) and isinstance(node.op, t) or not isinstance(t, type) and node.op == t:
                return True
        return False

    def transform(self, fgraph: Any, node: Apply) -> Any:
        """The replacements for ``node`` (None when the rewrite does not apply)."""
        if not self.matches(node):
            return None
        result = self.fn(fgraph, node) if self._takes_fgraph else self.fn(node)
        if isinstance(result, dict):
            result = [result.get(o) for o in node.outputs]
        return result

    __call__ = transform

    def __repr__(self) -> str:
        return f"NodeRewriter({self.name})"


def node_rewriter(tracks: Sequence[Any] | None, inplace: bool = False) -> Callable[[Callable], NodeRewriter]:
    """Decorator: ``fn(fgraph, node)`` (or ``fn(node)``) as a NodeRewriter for the ops in ``tracks``."""
    if inplace:
        raise ValueError("node_rewriter(inplace=True): symgraph has no in-place rewrites (backends reuse "
                         "buffers themselves)")

    def wrap(fn: Callable) -> NodeRewriter:
        return fn if isinstance(fn, NodeRewriter) else NodeRewriter(fn, tracks)
    return wrap


def _register(pass_name: str, rewriter: Any, tags: tuple, name: str | None, default: bool) -> Any:
    """Add ``rewriter`` to pass ``pass_name``; usable as ``@register_x`` or ``@register_x('tag', ...)``."""
    if isinstance(rewriter, str):  # @register_x('tag', ...) form: the tags come first
        return lambda r: _register(pass_name, r, (rewriter, *tags), name, default)
    if not isinstance(rewriter, NodeRewriter):
        raise TypeError(f"register_{pass_name} takes a rewriter made with @node_rewriter, got {rewriter!r}")
    rule_name = name or rewriter.name
    if rule_name in _USER_RULES:  # registering again (a re-run cell, a reloaded module) replaces it
        unregister(rule_name)
    elif any(r.name == rule_name for rules in RULES.values() for r in rules):
        raise ValueError(f"{rule_name!r} is the name of a built-in rewrite; pass name= to register yours "
                         "under another name")
    RULES[pass_name].append(Rule(rule_name, rewriter.transform, rewriter.keys(), default=default))
    _USER_RULES.add(rule_name)
    return rewriter


def register_canonicalize(rewriter: Any = None, *tags: str, name: str | None = None, default: bool = True) -> Any:
    """Add a rewriter to the canonicalize pass (on in fast_run unless ``default=False``)."""
    if rewriter is None:
        return lambda r: _register("canonicalize", r, tags, name, default)
    return _register("canonicalize", rewriter, tags, name, default)


def register_stabilize(rewriter: Any = None, *tags: str, name: str | None = None, default: bool = True) -> Any:
    """Add a rewriter to the stabilize pass (on in fast_run unless ``default=False``)."""
    if rewriter is None:
        return lambda r: _register("stabilize", r, tags, name, default)
    return _register("stabilize", rewriter, tags, name, default)


def register_specialize(rewriter: Any = None, *tags: str, name: str | None = None, default: bool = True) -> Any:
    """Add a rewriter to the specialize pass (on in fast_run unless ``default=False``)."""
    if rewriter is None:
        return lambda r: _register("specialize", r, tags, name, default)
    return _register("specialize", rewriter, tags, name, default)


def register_pass(name: str, fn: Callable[[Any], Any], after: str = "canonicalize", default: bool = True) -> Callable:
    """Run ``fn(fgraph)`` (which edits the graph through ``fgraph.replace``) as a pass of its own,
    right after pipeline pass ``after``; on in fast_run unless ``default=False`` (then only in modes
    that include ``name``). Registering a name again replaces it."""
    if after not in PIPELINE:
        raise ValueError(f"register_pass: after={after!r} is not a pass; choose one of {list(dict.fromkeys(PIPELINE))}")
    if name in PIPELINE or any(r.name == name for rules in RULES.values() for r in rules):
        raise ValueError(f"register_pass: {name!r} is already the name of a rewrite")
    USER_PASSES[name] = (after, fn, default)
    return fn


def unregister(name: str) -> None:
    """Remove the user rewrite called ``name`` from whichever pass holds it (tests, notebooks)."""
    if name in USER_PASSES:
        del USER_PASSES[name]
        return
    if name not in _USER_RULES:
        raise ValueError(f"no user rewrite called {name!r}; registered: {sorted(_USER_RULES | set(USER_PASSES))}")
    _USER_RULES.discard(name)
    for rules in RULES.values():
        rules[:] = [r for r in rules if r.name != name]
