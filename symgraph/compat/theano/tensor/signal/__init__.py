"""theano.tensor.signal: ``pool`` (``from theano.tensor.signal import pool``, as LeNet's tutorial
imports it), the module symgraph.tensor.signal.pool under Theano's path, and Theano 0.7's
``downsample`` (``max_pool_2d``)."""
from symgraph.compat.theano.tensor.signal import downsample, pool  # noqa: F401
