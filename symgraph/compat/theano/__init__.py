"""Theano's module layout over symgraph: port Theano code by changing its imports only.

    import symgraph.compat.theano as theano            # was: import theano
    import symgraph.compat.theano.tensor as T          # was: import theano.tensor as T
    from symgraph.compat.theano import function, pp    # was: from theano import function, pp

Every name here is symgraph's own object (``theano.tensor.dmatrix is symgraph.tensor.dmatrix``);
the submodules (``gof``, ``compile``, ``tensor.opt``, ``tests.unittest_tools``, ...) only give
Theano's paths to them, plus thin adapters where Theano's API differs (gof.opt's optimizer
classes). Names that symgraph does not have raise AttributeError/ImportError; docs/porting.md
lists what is deliberately different.
"""
from __future__ import annotations

from typing import Any

import symgraph
from symgraph import function, shared
from symgraph.compile.ops import as_op
from symgraph.gradient import Lop, Rop, grad, hessian, jacobian
from symgraph.graph.basic import Apply, Constant, Op, Type, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.rewrite import Mode
from symgraph.tensor import dot
from symgraph.compat.theano import compile, configparser, d3viz, gof, gradient, ifelse, printing, sandbox, scalar, scan_module, tensor  # noqa: F401,E501
from symgraph.compat.theano.configparser import change_flags, config
from symgraph.compat.theano.printing import pp

__all__ = ["config", "change_flags", "configparser", "function", "shared", "as_op", "grad", "Lop", "Rop", "jacobian",
           "hessian", "Apply", "Constant", "Op", "Type", "Variable", "FunctionGraph", "Mode", "compile", "gof",
           "gradient", "printing", "scalar", "tensor", "pp", "dot", "scan_module"]


def __getattr__(name: str) -> Any:
    """Anything else symgraph exports at the top level (sg.In, sg.Out, ... as they land)."""
    try:
        return getattr(symgraph, name)
    except AttributeError:
        raise AttributeError(f"symgraph.compat.theano has no {name!r} (symgraph has no equivalent of "
                             f"theano.{name}; see docs/porting.md)") from None
