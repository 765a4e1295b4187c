"""Compilation: sg.function, Function and shared variables; the call protocol (link.py) and the
seams every backend implements (backend.py, lowering.py); as_op and the checking modes."""
from symgraph.compile.compiled import CompileSpec, Function, FunctionMaker
from symgraph.compile.function import function
from symgraph.compile.io import In, Out
from symgraph.compile.shared import Container, SharedVariable, shared
from symgraph.compile.debugmode import DebugMode, DebugModeError, MonitorMode, NanGuardMode
from symgraph.compile.ops import as_op
from symgraph.graph import hooks
from symgraph.rewrite import Mode

hooks.register(compile=function)  # Variable.eval compiles through sg.function

__all__ = ["CompileSpec", "Function", "FunctionMaker", "function", "In", "Out",
           "Container", "SharedVariable", "shared", "DebugMode",
           "DebugModeError", "MonitorMode", "NanGuardMode", "as_op", "Mode"]
