"""Services that the graph layer offers but layers above it implement (dependency inversion, so
that no module imports one above it): compiling a variable for ``Variable.eval``, drawing a graph
for Jupyter, the explorer page of a compiled function, and differentiating an inner graph (an op
holding one, such as IfElse, sits below ``symgraph.gradient``, which runs rewrites that know that
op). ``symgraph.compile``, ``symgraph.printing`` and ``symgraph.gradient`` register them when
imported; ``import symgraph`` imports all three, so they are always there for users."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

_compile: Callable[..., Any] | None = None
_repr_svg: Callable[[Any], str | None] | None = None
_grad: Callable[..., Any] | None = None
_explore: Callable[..., Any] | None = None


def register(compile: Callable[..., Any] | None = None, repr_svg: Callable[[Any], str | None] | None = None,
             grad: Callable[..., Any] | None = None, explore: Callable[..., Any] | None = None) -> None:
    """Install the implementations (called by symgraph.compile, symgraph.printing, symgraph.gradient)."""
    global _compile, _repr_svg, _grad, _explore
    if compile is not None:
        _compile = compile
    if repr_svg is not None:
        _repr_svg = repr_svg
    if grad is not None:
        _grad = grad
    if explore is not None:
        _explore = explore


def grad(*args: Any, **kwargs: Any) -> Any:
    """``sg.grad`` (for ops that differentiate their inner graphs)."""
    if _grad is None:
        raise RuntimeError("symgraph.gradient is not loaded: import symgraph first")
    return _grad(*args, **kwargs)


def compile_function(inputs: list, output: Any) -> Any:
    """``sg.function(inputs, output, on_unused_input='ignore')`` (for ``Variable.eval``)."""
    if _compile is None:
        raise RuntimeError("symgraph.compile is not loaded: import symgraph first")
    return _compile(inputs, output, on_unused_input="ignore")


def repr_svg(obj: Any) -> str | None:
    """The SVG drawing of ``obj`` for Jupyter, or None (plain text) when printing is not loaded."""
    return _repr_svg(obj) if _repr_svg is not None else None


def explore(obj: Any, path: str | None = None, **kwargs: Any) -> Any:
    """The interactive explorer page of ``obj`` (``f.explore()``; symgraph.printing implements it)."""
    if _explore is None:
        raise RuntimeError("symgraph.printing is not loaded: import symgraph first")
    return _explore(obj, path, **kwargs)
