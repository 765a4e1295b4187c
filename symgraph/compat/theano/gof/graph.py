"""theano.gof.graph: graph classes and walks."""
from symgraph.graph.basic import Apply, Constant, Variable  # noqa: F401
from symgraph.graph.traversal import ancestors, clone, graph_inputs, toposort  # noqa: F401

inputs = graph_inputs
