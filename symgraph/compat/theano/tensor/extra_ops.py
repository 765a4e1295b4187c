"""theano.tensor.extra_ops: cumsum, cumprod, repeat, ... (symgraph.tensor.extra_ops)."""
from symgraph.tensor.dims import *  # noqa: F401,F403
from symgraph.tensor.extra_ops import *  # noqa: F401,F403
from symgraph.tensor.structured import diag as diag  # noqa: F401
