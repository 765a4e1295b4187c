"""theano.tensor.shared_randomstreams: ``RandomStreams(seed)`` with Theano's signatures, drawing
from symgraph's counter-based generator (symgraph/random/ports.py; docs/porting.md says how its
numbers and state differ from Theano's numpy RandomState per draw)."""
from symgraph.random.ports import RandomStreams

__all__ = ["RandomStreams"]
