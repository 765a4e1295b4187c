"""theano.tensor.utils."""
from symgraph.tensor.shape import shape_tuple  # noqa: F401
