"""Elementwise conveniences over the scalar table that take parameters: cast, switch, clip, round."""
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


def round(x: Any, mode: str | None = None) -> Variable:
    """Round elementwise to the nearest integer: ``mode='half_to_even'`` (numpy's rint, the default)
    or ``'half_away_from_zero'`` (C's round, Theano's old default)."""
    if mode in (None, "half_to_even"):
        return ELEMWISE_OPS["round"](x)
    if mode == "half_away_from_zero":
        return ELEMWISE_OPS["round_half_away_from_zero"](x)
    raise ValueError(f"round: mode must be 'half_to_even' or 'half_away_from_zero', got {mode!r}")


def clip(x: Any, lo: Any, hi: Any) -> Variable:
    """Limit ``x`` to [lo, hi] elementwise."""
    return ELEMWISE_OPS["clip"](x, lo, hi)


__all__ = ["cast", "switch", "clip", "round"]
