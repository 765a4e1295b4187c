"""theano.tensor.signal.downsample: Theano 0.7's pooling module (moved to ``pool`` in 0.8, gone in
0.9), still imported by classic tutorials: ``max_pool_2d(input, ds, ignore_border=None, st=None,
padding=(0, 0), mode='max')`` is ``pool_2d`` with that version's default, ``ignore_border=False``
(a partial window at the border is pooled too: a 13-wide map pooled by 2 is 7 wide)."""
from typing import Any

from symgraph.tensor.signal.pool import pool_2d
from symgraph.tensor.type import TensorVariable


def max_pool_2d(input: Any, ds: Any, ignore_border: bool | None = None, st: Any = None, padding: Any = (0, 0),
                mode: str = "max") -> TensorVariable:
    """Pool the last two axes of ``input`` with windows ``ds`` every ``st`` (default ``ds``)."""
    return pool_2d(input, ws=ds, ignore_border=bool(ignore_border), stride=st, pad=padding, mode=mode)
