"""theano.tensor.signal.pool: ``pool_2d`` and ``pool_3d`` (symgraph/tensor/signal/pool.py, the same
functions, Theano's argument names included)."""
from symgraph.tensor.signal.pool import MODES, pool_2d, pool_3d

__all__ = ["pool_2d", "pool_3d", "MODES"]
