"""Type rules of loops: when a value may stand for another, and the type of a stack of values."""
from __future__ import annotations

from symgraph.tensor.type import TensorType


def compatible(a: TensorType, b: TensorType) -> bool:
    """Same dtype and rank, and no static length that contradicts the other's."""
    return (a.dtype == b.dtype and a.ndim == b.ndim
            and all(x is None or y is None or x == y for x, y in zip(a.shape, b.shape)))


def stacked(t: TensorType) -> TensorType:
    """The type of a stack of values of type ``t`` along a new first axis of unknown length."""
    return TensorType(t.dtype, (None,) + t.shape)


def relaxed(t: TensorType) -> TensorType:
    """``t`` with every static length that is not 1 forgotten (None)."""
    return TensorType(t.dtype, tuple(1 if s == 1 else None for s in t.shape))
