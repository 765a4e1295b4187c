"""symgraph: a Theano-style symbolic graph compiler with numpy and OpenCL backends.

    import symgraph as sg, symgraph.tensor as T
    x = T.dmatrix('x'); y = T.dmatrix('y')
    f = sg.function([x, y], x + y)
"""
from __future__ import annotations

import importlib
from typing import Any

from symgraph.config import config
from symgraph import tensor
from symgraph import gradient
from symgraph.gradient import Lop, Rop, grad, hessian, jacobian
from symgraph.compile import Function, SharedVariable, function, shared
from symgraph import printing, rewrite, updates
from symgraph.serialize import load, save

__version__ = "0.1.0"
tensor.grad = grad  # Theano's T.grad (symgraph.tensor sits below symgraph.gradient, so it is attached here)


def __getattr__(name: str) -> Any:
    """``sg.testing`` needs hypothesis (a test dependency) and ``sg.distributed`` is for MPI
    programs: both load on first use."""
    if name == "testing":
        return importlib.import_module("symgraph.testing")
    if name == "distributed":  # data-parallel training over MPI: loaded on first use
        return importlib.import_module("symgraph.distributed")
    raise AttributeError(f"module 'symgraph' has no attribute {name!r}")


__all__ = ["config", "tensor", "function", "shared", "Function", "SharedVariable", "printing", "gradient",
           "grad", "jacobian", "hessian", "Lop", "Rop", "testing", "updates", "rewrite", "save", "load",
           "distributed"]
