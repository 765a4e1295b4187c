"""Rendering and inspecting graphs: debugprint (text tree), pprint (math), graphviz (to_dot,
pydotprint, notebook SVG), networkx export, and the interactive explorer page (to_html,
``f.explore()``). Every printer accepts a variable, a list of
variables, an Apply, a FunctionGraph or a compiled Function (its optimized graph).

The graphviz and networkx parts load on first use (optional, heavy libraries), so
``import symgraph`` stays light.
"""
from __future__ import annotations

import importlib
from typing import Any

from symgraph.graph import hooks
from symgraph.printing.collect import GraphView, collect
from symgraph.printing.debugprint import debugprint
from symgraph.printing.pprint import pprint
from symgraph.printing.print_op import Print

pp = pprint  # Theano's short name

_LAZY = dict.fromkeys(("to_dot", "pydotprint", "render", "dot_binary", "GraphvizError", "STYLES", "FORMATS"), "render")
_LAZY["to_networkx"] = "nx"
_LAZY.update(to_html="explore", Explorer="explore")


def repr_svg(obj: Any) -> str | None:
    """SVG of ``obj`` for Jupyter (``_repr_svg_``), or None when Graphviz's ``dot`` is missing."""
    return importlib.import_module("symgraph.printing.render").repr_svg(obj)


def _explore(obj: Any, path: Any = None, **kwargs: Any) -> Any:
    """``f.explore()``: the interactive page (symgraph.printing.explore, loaded on first use)."""
    return importlib.import_module("symgraph.printing.explore").explore(obj, path, **kwargs)


hooks.register(repr_svg=repr_svg, explore=_explore)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"symgraph.printing.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'symgraph.printing' has no attribute {name!r}")


__all__ = ["debugprint", "pprint", "pp", "Print", "repr_svg", "GraphView", "collect", *_LAZY]
