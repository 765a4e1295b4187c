"""Structured matrices, built from arange, comparisons and indexing (so both backends run them
and gradients come for free): ``eye``, ``tri``, ``tril``, ``triu``, ``diag``, and the
``mgrid``/``ogrid`` index grids."""
from __future__ import annotations

from typing import Any

from symgraph.config import config
from symgraph.errors import GraphTypeError
from symgraph.tensor.alloc import alloc, arange, zeros
from symgraph.tensor.elemwise import FUNCTIONS, DimShuffle, cast, switch
from symgraph.tensor.shape import shape_i
from symgraph.tensor.subtensor import set_subtensor
from symgraph.tensor.type import TensorVariable, as_tensor_variable

__all__ = ["eye", "tri", "tril", "triu", "diag", "mgrid", "ogrid"]


def _mask(n: Any, m: Any, k: Any, cmp: str) -> TensorVariable:
    """Boolean (n, m): ``cmp(i + k, j)`` for row i and column j."""
    rows = DimShuffle(1, (0, "x"))(arange(n))
    cols = DimShuffle(1, ("x", 0))(arange(m))
    return FUNCTIONS[cmp](rows + k, cols)


def eye(n: Any, m: Any = None, k: Any = 0, dtype: str | None = None) -> TensorVariable:
    """numpy.eye: an (n, m) matrix with ones on the k-th diagonal (k > 0 above the main one)."""
    return cast(_mask(n, n if m is None else m, k, "eq"), dtype or config.floatX)


def tri(N: Any, M: Any = None, k: Any = 0, dtype: str | None = None) -> TensorVariable:
    """numpy.tri: an (N, M) matrix with ones at and below the k-th diagonal."""
    return cast(_mask(N, N if M is None else M, k, "ge"), dtype or config.floatX)


def _tri_of(x: TensorVariable, k: Any) -> TensorVariable:
    """tri's boolean mask for the last two axes of ``x`` (broadcasting over the leading ones)."""
    if x.ndim < 2:
        raise GraphTypeError(f"tril/triu need at least 2 dimensions, got {x} ({x.type})")
    n, m = (s if s is not None else shape_i(x, d) for d, s in ((x.ndim - 2, x.type.shape[-2]),
                                                                 (x.ndim - 1, x.type.shape[-1])))
    return _mask(n, m, k, "ge")


def tril(m: Any, k: Any = 0) -> TensorVariable:
    """numpy.tril: ``m`` with the elements above the k-th diagonal zeroed (last two axes)."""
    m = as_tensor_variable(m)
    return switch(_tri_of(m, k), m, 0)


def triu(m: Any, k: Any = 0) -> TensorVariable:
    """numpy.triu: ``m`` with the elements below the k-th diagonal zeroed (last two axes)."""
    m = as_tensor_variable(m)
    return switch(_tri_of(m, k - 1), 0, m)


def diag(v: Any, k: int = 0) -> TensorVariable:
    """numpy.diag: a vector becomes a square matrix with it on the k-th diagonal; a matrix gives
    its k-th diagonal as a vector (k an int)."""
    v = as_tensor_variable(v)
    k = int(k)
    if v.ndim == 1:
        length = shape_i(v, 0)
        n = length + abs(k)
        idx = arange(length)
        rows, cols = (idx, idx + k) if k >= 0 else (idx - k, idx)
        return set_subtensor(zeros((n, n), dtype=v.dtype)[rows, cols], v)
    if v.ndim == 2:
        r0, c0 = (0, k) if k >= 0 else (-k, 0)
        rows_left = FUNCTIONS["maximum"](shape_i(v, 0) - r0, 0)
        cols_left = FUNCTIONS["maximum"](shape_i(v, 1) - c0, 0)
        idx = arange(FUNCTIONS["minimum"](rows_left, cols_left))
        return v[idx + r0, idx + c0]
    raise GraphTypeError(f"diag takes a vector or a matrix, got {v} ({v.type})")


class _Grid:
    """``mgrid[0:5, 0:3]`` / ``ogrid[...]``: a list of index arrays, dense (mgrid) or open (ogrid)."""

    def __init__(self, sparse: bool):
        self.sparse = sparse

    def __getitem__(self, key: Any) -> list[TensorVariable]:
        key = key if isinstance(key, tuple) else (key,)
        ranges = []
        for s in key:
            if not isinstance(s, slice):
                raise TypeError(f"{'ogrid' if self.sparse else 'mgrid'} takes slices such as [0:5, 0:3], got {s!r}")
            start = 0 if s.start is None else s.start
            ranges.append(arange(start, s.stop, 1 if s.step is None else s.step))
        nd = len(ranges)
        shaped = [DimShuffle(1, tuple(0 if d == i else "x" for d in range(nd)))(r) for i, r in enumerate(ranges)]
        if self.sparse:
            return shaped
        lengths = [shape_i(r, 0) for r in ranges]
        return [alloc(s, *lengths) for s in shaped]

    def __repr__(self) -> str:
        return "ogrid" if self.sparse else "mgrid"


mgrid = _Grid(sparse=False)
ogrid = _Grid(sparse=True)
