"""Compilation: sg.function, Function and shared variables; the call protocol (link.py) and the
lowering seam (lowering.py) every backend implements."""
from symgraph.compile.function import CompileSpec, Function, function
from symgraph.compile.shared import Container, SharedVariable, shared
from symgraph.graph import hooks

hooks.register(compile=function)  # Variable.eval compiles through sg.function

__all__ = ["CompileSpec", "Function", "function", "Container", "SharedVariable", "shared"]
