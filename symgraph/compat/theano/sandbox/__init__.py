"""theano.sandbox: only ``rng_mrg`` (MRG_RandomStreams) has a symgraph counterpart."""
from symgraph.compat.theano.sandbox import rng_mrg  # noqa: F401
