"""Compilation: sg.function, Function and shared variables."""
from symgraph.compile.function import CompileSpec, Function, function
from symgraph.compile.shared import Container, SharedVariable, shared

__all__ = ["CompileSpec", "Function", "function", "Container", "SharedVariable", "shared"]
