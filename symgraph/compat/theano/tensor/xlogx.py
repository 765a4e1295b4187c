"""theano.tensor.xlogx: ``xlogx(x)`` (x log x, 0 at 0) and ``xlogy0(x, y)`` (x log y, 0 where x is
0), two rows of symgraph's elementwise table (``symgraph.tensor.xlogx``, ``symgraph.tensor.xlogy0``)."""
from symgraph.tensor import xlogx, xlogy0  # noqa: F401
