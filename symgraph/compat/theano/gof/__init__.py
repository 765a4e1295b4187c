"""theano.gof: the graph classes (symgraph.graph) and Theano's optimizer API (gof.opt)."""
from symgraph.graph.basic import Apply, Constant, Op, Type, Variable  # noqa: F401
from symgraph.graph.fgraph import FunctionGraph  # noqa: F401
from symgraph.errors import MethodNotDefined, MissingInputError  # noqa: F401
from symgraph.compat.theano.gof import graph, opt, toolbox, type, utils  # noqa: F401
from symgraph.compat.theano.gof.opt import (EquilibriumOptimizer, LocalOptimizer, MergeOptimizer, OpRemove,  # noqa: F401
                                            OpSub, Optimizer, PatternSub, Query, TopoOptimizer, local_optimizer)
from symgraph.compat.theano.gof.type import Generic  # noqa: F401
