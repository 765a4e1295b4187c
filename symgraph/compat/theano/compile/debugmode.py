"""theano.compile.debugmode: DebugMode (symgraph.compile.debugmode)."""
from symgraph.compile.debugmode import DebugMode, DebugModeError  # noqa: F401
