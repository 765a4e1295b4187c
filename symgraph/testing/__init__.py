"""Tools for testing symbolic gradients: ``verify_grad`` (finite-difference checks) and
``strategies`` (hypothesis strategies for arrays, broadcastable shapes and random graphs).

    import symgraph.testing as sgt
    sgt.verify_grad(lambda x: T.tanh(x).sum(), [np.random.rand(3)])
"""
from __future__ import annotations

import importlib

from symgraph.testing.verify import GradientCheckError, numeric_grad, verify_grad

__all__ = ["verify_grad", "GradientCheckError", "numeric_grad", "strategies"]


def __getattr__(name: str):
    """``strategies`` needs hypothesis (a test dependency), so it is imported on first use."""
    if name == "strategies":
        return importlib.import_module("symgraph.testing.strategies")
    raise AttributeError(f"module 'symgraph.testing' has no attribute {name!r}")
