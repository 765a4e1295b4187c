"""``T.signal``: Theano's signal-processing namespace (``T.signal.pool.pool_2d``)."""
from __future__ import annotations

from symgraph.tensor.signal import pool

__all__ = ["pool"]
