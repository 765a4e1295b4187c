"""theano.compile.nanguardmode: NanGuardMode (symgraph.compile.debugmode)."""
from symgraph.compile.debugmode import NanGuardMode  # noqa: F401
