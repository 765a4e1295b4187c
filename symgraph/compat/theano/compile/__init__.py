"""theano.compile: function, shared, Mode, the checking modes, as_op, OpFromGraph and the optimizer database."""
from symgraph.compile import DebugMode, In, MonitorMode, NanGuardMode, Out, function, shared  # noqa: F401
from symgraph.compile.ops import as_op  # noqa: F401
from symgraph.rewrite import Mode  # noqa: F401
from symgraph.compat.theano.compile import builders, debugmode, io, monitormode, nanguardmode, ops  # noqa: F401
from symgraph.compat.theano.compile.builders import OpFromGraph  # noqa: F401
from symgraph.compat.theano.compile.optdb import optdb  # noqa: F401
