"""theano.tensor.signal: ``pool`` (``from theano.tensor.signal import pool``, as LeNet's tutorial
imports it), the module symgraph.tensor.signal.pool under Theano's path."""
from symgraph.compat.theano.tensor.signal import pool  # noqa: F401
