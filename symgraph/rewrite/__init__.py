"""Graph rewriting: the ordered pipeline that sg.function runs on every FunctionGraph."""
from __future__ import annotations

from typing import Any

from symgraph.graph.fgraph import FunctionGraph

MODES = ("fast_run", "fast_compile", None, "none")


def rewrite_graph(fgraph: FunctionGraph, mode: Any) -> dict:
    """Rewrite ``fgraph`` in place for ``mode``; returns a report of what ran."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    return {"mode": mode, "nodes_before": len(fgraph), "nodes_after": len(fgraph), "applied": []}
