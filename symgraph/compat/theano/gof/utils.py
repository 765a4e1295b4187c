"""theano.gof.utils."""
from symgraph.errors import MethodNotDefined  # noqa: F401
from symgraph.graph.basic import Scratchpad  # noqa: F401
