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
from symgraph.gradient import Lop, Rop, disconnected_grad, grad, hessian, jacobian, zero_grad
from symgraph.ifelse import ifelse
from symgraph.scan import foldl, foldr, map, reduce, scan, scan_updates, until  # noqa: A004 (Theano's names)
from symgraph.opfromgraph import OpFromGraph
from symgraph.compile import Function, In, Out, SharedVariable, function, shared
from symgraph.compile.ops import as_op
from symgraph import compile, printing, rewrite, updates
from symgraph.rewrite import Mode
from symgraph.serialize import load, save
from symgraph import random, shared_randomstreams
from symgraph.random import MRG_RandomStreams, RandomStream

__version__ = "0.1.0"
# Theano's T.grad, T.Rop, ...: symgraph.tensor sits below symgraph.gradient, so they are attached here
for _name in ("grad", "Lop", "Rop", "jacobian", "hessian"):
    setattr(tensor, _name, getattr(gradient, _name))


def __getattr__(name: str) -> Any:
    """``sg.testing`` needs hypothesis (a test dependency) and ``sg.distributed`` is for MPI
    programs: both load on first use."""
    if name == "testing":
        return importlib.import_module("symgraph.testing")
    if name == "distributed":  # data-parallel training over MPI: loaded on first use
        return importlib.import_module("symgraph.distributed")
    raise AttributeError(f"module 'symgraph' has no attribute {name!r}")


__all__ = ["config", "tensor", "function", "In", "Out", "shared", "Function", "SharedVariable", "printing", "gradient",
           "grad", "jacobian", "hessian", "Lop", "Rop", "zero_grad", "disconnected_grad", "ifelse", "scan", "until",
           "map", "reduce", "foldl", "foldr", "scan_updates", "testing",
           "updates", "rewrite", "save", "load", "compile", "as_op", "Mode", "random", "RandomStream",
           "MRG_RandomStreams", "shared_randomstreams", "distributed", "OpFromGraph"]
