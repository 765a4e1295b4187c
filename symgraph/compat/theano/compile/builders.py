"""theano.compile.builders: ``OpFromGraph`` (symgraph.opfromgraph)."""
from symgraph.opfromgraph import OpFromGraph

__all__ = ["OpFromGraph"]
