"""Compilation: sg.function, Function, shared variables, as_op, and the checking modes."""
from symgraph.compile.function import CompileSpec, Function, function
from symgraph.compile.shared import Container, SharedVariable, shared
from symgraph.compile.debugmode import DebugMode, DebugModeError, MonitorMode, NanGuardMode
from symgraph.compile.ops import as_op
from symgraph.rewrite import Mode

__all__ = ["CompileSpec", "Function", "function", "Container", "SharedVariable", "shared", "DebugMode",
           "DebugModeError", "MonitorMode", "NanGuardMode", "as_op", "Mode"]
