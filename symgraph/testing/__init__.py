"""Tools for testing symbolic gradients and ops: ``verify_grad`` (finite-difference checks),
``check_rop_lop`` (R- and L-operators), ``check_infer_shape`` (an op's infer_shape against the
shapes it computes) and ``strategies`` (hypothesis strategies for arrays, shapes and random graphs).

    import symgraph.testing as sgt
    sgt.verify_grad(lambda x: T.tanh(x).sum(), [np.random.rand(3)])
"""
from __future__ import annotations

import importlib

from symgraph.testing.verify import GradientCheckError, numeric_grad, verify_grad
from symgraph.testing.rop_lop import RopLopError, check_rop_lop
from symgraph.testing.shapes import InferShapeError, check_infer_shape

__all__ = ["verify_grad", "GradientCheckError", "numeric_grad", "check_rop_lop", "RopLopError",
           "check_infer_shape", "InferShapeError", "strategies"]


def __getattr__(name: str):
    """``strategies`` needs hypothesis (a test dependency), so it is imported on first use."""
    if name == "strategies":
        return importlib.import_module("symgraph.testing.strategies")
    raise AttributeError(f"module 'symgraph.testing' has no attribute {name!r}")
