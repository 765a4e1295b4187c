"""theano.compile.ops: ``as_op`` (symgraph.compile.ops)."""
from symgraph.compile.ops import FromFunctionOp, as_op  # noqa: F401
