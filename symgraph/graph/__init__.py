"""Graph IR: Type, Variable, Constant, Apply, Op, graph walks and FunctionGraph."""
from symgraph.graph.basic import Apply, Constant, Op, SourceLine, Type, Variable, user_source_line
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.traversal import ancestors, clone, clone_replace, graph_inputs, toposort

__all__ = ["Apply", "Constant", "Op", "SourceLine", "Type", "Variable", "user_source_line",
           "FunctionGraph", "ancestors", "clone", "clone_replace", "graph_inputs", "toposort"]
