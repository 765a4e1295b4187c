"""Elementwise conveniences over the scalar table that take parameters: cast, switch/where, clip."""
from __future__ import annotations

from typing import Any

from symgraph.config import config
from symgraph.graph.basic import Variable
from symgraph.scalar import dtype_name
from symgraph.tensor.elemwise import ELEMWISE_OPS
from symgraph.tensor.type import as_tensor_variable


def cast(x: Any, dtype: str) -> Variable:
    """``x`` converted to ``dtype`` (no-op when it already has it); 'floatX' means config.floatX."""
    x = as_tensor_variable(x)
    dtype = config.floatX if dtype == "floatX" else dtype_name(dtype)
    if x.dtype == dtype:
        return x
    return ELEMWISE_OPS[f"cast_{dtype}"](x)


def switch(cond: Any, if_true: Any, if_false: Any) -> Variable:
    """Elementwise ``if_true`` where ``cond`` holds, else ``if_false`` (numpy.where)."""
    cond = as_tensor_variable(cond)
    if cond.dtype != "bool":
        cond = ELEMWISE_OPS["neq"](cond, 0)
    return ELEMWISE_OPS["switch"](cond, if_true, if_false)


def where(cond: Any, if_true: Any = None, if_false: Any = None) -> Variable:
    """numpy.where with three arguments (the one-argument form has a data-dependent shape)."""
    if if_true is None or if_false is None:
        raise TypeError("T.where needs three arguments (cond, if_true, if_false); "
                        "the one-argument form has a shape known only at run time: use T.nonzero-free masks")
    return switch(cond, if_true, if_false)


def clip(x: Any, lo: Any, hi: Any) -> Variable:
    """Limit ``x`` to [lo, hi] elementwise."""
    return ELEMWISE_OPS["clip"](x, lo, hi)


__all__ = ["cast", "switch", "where", "clip"]
