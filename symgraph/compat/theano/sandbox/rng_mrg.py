"""theano.sandbox.rng_mrg: ``MRG_RandomStreams(seed)`` (symgraph/random/ports.py), the same
counter-based generator as every symgraph stream; ``nstreams`` is accepted and has no effect."""
from symgraph.random.ports import MRG_RandomStreams

__all__ = ["MRG_RandomStreams"]
