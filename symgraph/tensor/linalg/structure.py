"""Matrix structure: eye, tril/triu, diagonal, trace, matrix_transpose, and the small helpers the
linalg gradients are written with, built from existing ops (so every backend runs them and
gradients are free) except the main diagonal of square matrices, one small op (SquareDiagonal)
that reads n elements instead of masking n^2. All act on the last two axes and broadcast over
the leading ones."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError, ShapeError, node_context
from symgraph.graph.basic import Apply, Op
from symgraph.tensor.alloc import arange
from symgraph.tensor.elemwise import ELEMWISE_OPS as E
from symgraph.tensor.elemwise import DimShuffle, switch
from symgraph.tensor.math import matmul
from symgraph.tensor.reduction import sum as tsum
from symgraph.tensor.shape import sfold, shape_i
from symgraph.tensor.structured import eye, tril, triu  # noqa: F401  (T.linalg.eye, ... are T.eye, ...)
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, is_inexact


def _need_matrix(x: TensorVariable, what: str) -> None:
    if x.ndim < 2:
        raise GraphTypeError(f"{what}: expected a matrix or a stack of matrices, got {x} of type {x.type}")


def dim_len(x: TensorVariable, axis: int) -> Any:
    """Length of ``x`` along ``axis``: a Python int when static, else a symbolic scalar."""
    s = x.type.shape[axis]
    return s if s is not None else shape_i(x, axis % x.ndim)


def matrix_transpose(x: Any) -> TensorVariable:
    """Swap the last two axes (numpy.linalg.matrix_transpose): a view."""
    x = as_tensor_variable(x)
    _need_matrix(x, "matrix_transpose")
    order = list(range(x.ndim))
    order[-2:] = order[-1], order[-2]
    return DimShuffle(x.ndim, order)(x)


def band_mask(n: Any, m: Any, k: int, op: str) -> TensorVariable:
    """Boolean (n, m) mask of ``j - i <op> k`` (op one of 'le', 'ge', 'eq')."""
    i, j = arange(n, dtype="int64"), arange(m, dtype="int64")
    return E[op](E["sub"](DimShuffle(1, ("x", 0))(j), DimShuffle(1, (0, "x"))(i)), k)


def diagonal(x: Any, offset: int = 0) -> TensorVariable:
    """Diagonal ``offset`` of the last two axes (numpy.linalg.diagonal), as the last axis."""
    x = as_tensor_variable(x)
    _need_matrix(x, "diagonal")
    offset = int(offset)
    if offset > 0:
        x = x[..., :, offset:]
    elif offset < 0:
        x = x[..., -offset:, :]
    n, m = x.type.shape[-2:]
    if n is None or n != m:  # not known to be square: its leading square part
        k = sfold("minimum", dim_len(x, -2), dim_len(x, -1))
        x = x[..., :k, :k]
    return SquareDiagonal()(x)


class SquareDiagonal(Op):
    """The main diagonal of square matrices (numpy.diagonal over the last two axes), as the last axis."""

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        _need_matrix(x, "diagonal")
        n, m = x.type.shape[-2:]
        if n is not None and m is not None and n != m:
            raise ShapeError(f"SquareDiagonal: expected square matrices, got {x.type}")
        return Apply(self, [x], [TensorType(x.dtype, x.type.shape[:-2] + (n if n is not None else m,)).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        (x,) = inputs
        if x.shape[-1] != x.shape[-2]:
            raise ShapeError(f"SquareDiagonal: expected square matrices, got shape {x.shape}\n"
                             f"{node_context(node, inputs)}")
        return [np.diagonal(x, axis1=-2, axis2=-1).copy()]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (g,) = inputs, output_grads
        return [diag_embed(g) if is_inexact(x) else None]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[0])[:-1]]


def trace(x: Any, offset: int = 0) -> TensorVariable:
    """Sum of diagonal ``offset`` of the last two axes (numpy.linalg.trace)."""
    x = as_tensor_variable(x)
    _need_matrix(x, "trace")
    mask = band_mask(dim_len(x, -2), dim_len(x, -1), int(offset), "eq")
    return tsum(switch(mask, x, 0), axis=(-2, -1))


def diag_embed(v: TensorVariable) -> TensorVariable:
    """Square matrices with ``v`` (..., n) on their diagonal."""
    n = dim_len(v, -1)
    return switch(band_mask(n, n, 0, "eq"), expand(v, -2), 0)


def expand(x: TensorVariable, axis: int) -> TensorVariable:
    """``x`` with a new length-1 axis at ``axis`` (-1 appends, -2 inserts before the last)."""
    order: list = list(range(x.ndim))
    order.insert(x.ndim + 1 + axis if axis < 0 else axis, "x")
    return DimShuffle(x.ndim, order)(x)


def outer_last(u: TensorVariable, v: TensorVariable, vectors: bool) -> TensorVariable:
    """u v^T per problem: batched outer products of vectors (``vectors``) or u @ v^T of matrices."""
    if vectors:
        return expand(u, -1) * expand(v, -2)
    return matmul(u, matrix_transpose(v))


def sym(x: TensorVariable) -> TensorVariable:
    """(x + x^T) / 2 over the last two axes."""
    return (x + matrix_transpose(x)) * np.asarray(0.5, dtype=x.dtype)


__all__ = ["matrix_transpose", "eye", "tril", "triu", "diagonal", "trace"]
