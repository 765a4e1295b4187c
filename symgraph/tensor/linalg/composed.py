"""numpy.linalg functions written with other ops (so they batch, differentiate and run on every
backend without a dedicated op): lstsq, matrix_power and norm."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError
from symgraph.tensor.elemwise import ELEMWISE_OPS as E
from symgraph.tensor.elemwise import cast, transpose
from symgraph.tensor.linalg.base import as_matrices
from symgraph.tensor.linalg.orthogonal import pinv, svd
from symgraph.tensor.linalg.solve import inv
from symgraph.tensor.linalg.structure import dim_len, eye
from symgraph.tensor.math import matmul
from symgraph.tensor.reduction import broadcast_like, normalize_axis
from symgraph.tensor.reduction import max as tmax
from symgraph.tensor.reduction import min as tmin
from symgraph.tensor.reduction import sum as tsum
from symgraph.tensor.shape import expand_dims
from symgraph.tensor.type import TensorVariable, as_tensor_variable, is_inexact


def lstsq(a: Any, b: Any, rcond: float | None = None) -> tuple:
    """Least squares (numpy.linalg.lstsq): (x, residuals, rank, s) with x = pinv(a) b minimising
    ||b - a x||, ``rank`` the number of singular values above ``rcond`` times the largest
    (None: max(m, n) * eps) and ``s`` the singular values. Differs from numpy in one way, as JAX
    does: ``residuals`` (the squared norm of each column of b - a x) is always computed, where
    numpy returns an empty array for rank-deficient or wide ``a``. Batched over leading axes."""
    a, b = as_matrices(a, b)
    x = matmul(pinv(a, rtol=rcond), b)
    r = b - matmul(a, x)
    residuals = tsum(E["sqr"](r), axis=-2 if b.ndim >= 2 else -1)
    s = svd(a, compute_uv=False)
    if rcond is None:
        eps = float(np.finfo(a.dtype).eps)
        rcond_v = cast(E["maximum"](dim_len(a, -2), dim_len(a, -1)), a.dtype) * eps
    else:
        rcond_v = rcond
    cut = tmax(s, axis=-1, keepdims=True) * rcond_v
    rank = tsum(E["gt"](s, cut), axis=-1, dtype="int64")
    return x, residuals, rank, s


def matrix_power(a: Any, n: int) -> TensorVariable:
    """a to the integer power ``n`` by repeated squaring (numpy.linalg.matrix_power); n < 0 uses inv(a)."""
    (a,) = as_matrices(a)
    if not isinstance(n, (int, np.integer)):
        raise GraphTypeError(f"matrix_power: the exponent must be an integer, got {n!r}")
    n = int(n)
    if n == 0:
        return broadcast_like(eye(dim_len(a, -1), dtype=a.dtype), a)
    base, n = (inv(a) if n < 0 else a), abs(n)
    while not n & 1:  # the lowest set bit of n starts the product
        base, n = matmul(base, base), n >> 1
    result, n = base, n >> 1
    while n:
        base = matmul(base, base)
        if n & 1:
            result = matmul(result, base)
        n >>= 1
    return result


_MATRIX_ORDS = (None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf)


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> TensorVariable:
    """numpy.linalg.norm: vector norms along one axis, matrix norms ('fro', 'nuc', 1, -1, 2, -2,
    inf, -inf) over a pair of axes, the 2-norm of everything when ``ord`` and ``axis`` are None."""
    x = as_tensor_variable(x)
    if not is_inexact(x):
        x = cast(x, "float64")
    if axis is None:
        if ord is None:
            out = E["sqrt"](tsum(E["sqr"](x)))
            return _keep(out, tuple(range(x.ndim)), x.ndim) if keepdims else out
        if x.ndim not in (1, 2):
            raise GraphTypeError(f"norm: ord={ord!r} without axis needs a 1-d or 2-d input, got {x.type}")
        axis = tuple(range(x.ndim))
    axes = _ordered_axes(axis, x.ndim)
    if len(axes) == 1:
        out = _vector_norm(x, ord, axes[0])
    elif len(axes) == 2:
        if axes[0] == axes[1]:
            raise ValueError(f"norm: the two axes of a matrix norm must differ, got {axis!r}")
        out = _matrix_norm(x, ord, axes)
    else:
        raise ValueError(f"norm: axis must be an int or a pair of ints, got {axis!r}")
    return _keep(out, axes, x.ndim) if keepdims else out


def _ordered_axes(axis: Any, ndim: int) -> tuple:
    """``axis`` as non-negative axes in the order given (for a matrix norm: rows, then columns)."""
    items = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    for a in items:
        normalize_axis(a, ndim, "norm")  # type and bounds checks
    return tuple(int(a) % ndim for a in items)


def _keep(out: TensorVariable, axes: tuple, ndim: int) -> TensorVariable:
    for ax in sorted(axes):
        out = expand_dims(out, ax)
    return out


def _vector_norm(x: TensorVariable, ord: Any, axis: int) -> TensorVariable:
    abs_ = E["abs"](x)
    if ord is None or ord == 2:
        return E["sqrt"](tsum(E["sqr"](x), axis=axis))
    if ord == np.inf:
        return tmax(abs_, axis=axis)
    if ord == -np.inf:
        return tmin(abs_, axis=axis)
    if ord == 0:
        return tsum(cast(E["neq"](x, 0), x.dtype), axis=axis)
    if ord == 1:
        return tsum(abs_, axis=axis)
    if isinstance(ord, str):
        raise ValueError(f"norm: ord={ord!r} is a matrix norm; vector norms take a number")
    p = float(ord)
    return E["pow"](tsum(E["pow"](abs_, np.asarray(p, x.dtype)), axis=axis), np.asarray(1 / p, x.dtype))


def _matrix_norm(x: TensorVariable, ord: Any, axes: tuple) -> TensorVariable:
    if ord not in _MATRIX_ORDS:
        raise ValueError(f"norm: invalid matrix norm order {ord!r}; choose from {_MATRIX_ORDS}")
    r, c = axes
    if ord in (None, "fro"):
        return E["sqrt"](tsum(E["sqr"](x), axis=axes))
    if ord in (1, -1):  # max/min over columns of the column sums
        sums = tsum(E["abs"](x), axis=r)
        red = tmax if ord == 1 else tmin
        return red(sums, axis=c - (r < c))
    if ord in (np.inf, -np.inf):
        sums = tsum(E["abs"](x), axis=c)
        red = tmax if ord == np.inf else tmin
        return red(sums, axis=r - (c < r))
    rest = [d for d in range(x.ndim) if d not in axes]
    s = svd(transpose(x, rest + [r, c]), compute_uv=False)  # singular values, descending
    if ord == "nuc":
        return tsum(s, axis=-1)
    return tmax(s, axis=-1) if ord == 2 else tmin(s, axis=-1)


__all__ = ["lstsq", "matrix_power", "norm"]
