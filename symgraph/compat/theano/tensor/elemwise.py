"""theano.tensor.elemwise: Elemwise and DimShuffle."""
from symgraph.tensor.elemwise import DimShuffle, Elemwise  # noqa: F401
