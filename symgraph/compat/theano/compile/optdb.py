"""theano.compile.optdb: Theano's optimizer database, over symgraph's pipeline.

``optdb.query(Query(include=['fast_run'], exclude=[...]))`` gives the matching symgraph Mode;
``optdb.register(name, optimizer, position, *tags)`` runs a whole-graph optimizer as a pass of its
own, placed by Theano's positions (merge 0, canonicalize 1, stabilize 1.5, specialize 2, fusion 49).
"""
from __future__ import annotations

from typing import Any

from symgraph.rewrite import Mode, register_pass

# Theano's optdb positions of the passes symgraph has, in order
_POSITIONS = [(0.0, "merge"), (0.1, "constant_folding"), (1.0, "canonicalize"), (1.5, "stabilize"),
              (2.0, "specialize"), (49.0, "fusion"), (100.0, "dead_code")]


class OptDB:
    """The optimizer database: query modes, register whole-graph optimizers."""

    def query(self, query: Any) -> Mode:
        include = set(getattr(query, "include", ()))
        base = "fast_run" if "fast_run" in include else "fast_compile" if "fast_compile" in include else "none"
        return Mode(base).excluding(*getattr(query, "exclude", ()))

    def register(self, name: str, optimizer: Any, position: float = 1.0, *tags: str, **kwargs: Any) -> None:
        after = [p for pos, p in _POSITIONS if pos <= float(position)][-1] if position >= 0 else "merge"
        run = optimizer.optimize if hasattr(optimizer, "optimize") else optimizer
        register_pass(name, run, after=after, default="fast_run" in tags or not tags)


optdb = OptDB()
