"""Determinants: det, slogdet and the adjugate (batched).

``det`` and ``slogdet`` never fail: a singular matrix has det 0 (slogdet: sign 0, log|det| -inf),
as in numpy. Gradients:

- d det / dA = adj(A)^T, the transposed adjugate, which exists everywhere: it is computed through
  the SVD, so the gradient at a singular matrix is exact (det(A) inv(A)^T would be 0 * inf there).
  The second derivative is written as d adj = (tr(adj dA) adj - adj dA adj) / det: exact wherever
  det != 0, NaN at singular matrices.
- d log|det| / dA = inv(A)^T (the sign has a zero gradient); at a singular matrix log|det| is
  -inf and the gradient raises LinAlgError (inv of a singular matrix).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.graph.basic import Apply
from symgraph.tensor.elemwise import ELEMWISE_OPS as E
from symgraph.tensor.linalg.base import LinalgOp, as_matrices, check_matrix
from symgraph.tensor.linalg.decomp import is_zero_grad
from symgraph.tensor.linalg.solve import inv
from symgraph.tensor.linalg.structure import expand, matrix_transpose
from symgraph.tensor.math import matmul
from symgraph.tensor.reduction import sum as tsum
from symgraph.tensor.type import TensorType, TensorVariable


def _scalar_grad(g: TensorVariable) -> TensorVariable:
    """A per-matrix gradient (..., ) as (..., 1, 1), to scale matrices."""
    return expand(expand(g, -1), -1)


class _DetLike(LinalgOp):
    """A function of square matrices with one value per matrix of the batch."""

    gufunc = True
    n_out: int  # outputs per matrix (set by each op class)

    def make_node(self, x: Any) -> Apply:
        (x,) = as_matrices(x)
        check_matrix(x, self.name)
        batch = x.type.shape[:-2]
        return Apply(self, [x], [TensorType(x.dtype, batch).make_variable() for _ in range(self.n_out)])

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [()] * self.n_out

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[0])[:-2]] * self.n_out


class Det(_DetLike):
    """The determinant of square matrices (numpy.linalg.det)."""

    name, n_out = "det", 1

    def core(self, x: np.ndarray) -> tuple:
        return (np.linalg.det(x),)

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (g,) = inputs, output_grads
        return [_scalar_grad(g) * matrix_transpose(adjugate(x))]


class SLogDet(_DetLike):
    """(sign, log|det|) of square matrices (numpy.linalg.slogdet): no overflow for large matrices."""

    name, n_out = "slogdet", 2

    def core(self, x: np.ndarray) -> tuple:
        return tuple(np.linalg.slogdet(x))

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (_, g) = inputs, output_grads
        if is_zero_grad(g):
            return [None]
        return [_scalar_grad(g) * matrix_transpose(inv(x))]


class Adjugate(LinalgOp):
    """adj(A) = det(A) inv(A), defined for every square matrix: computed as
    det(U) det(Vh) Vh^T diag(prod_{j != i} s_j) U^T from the SVD A = U diag(s) Vh."""

    gufunc = True
    failure = "did not converge"

    def make_node(self, x: Any) -> Apply:
        (x,) = as_matrices(x)
        check_matrix(x, "adjugate")
        n = x.type.shape[-1] if x.type.shape[-1] is not None else x.type.shape[-2]
        return Apply(self, [x], [TensorType(x.dtype, x.type.shape[:-2] + (n, n)).make_variable()])

    def core(self, x: np.ndarray) -> tuple:
        n = x.shape[-1]
        if n == 0:
            return (np.zeros_like(x),)
        u, s, vh = np.linalg.svd(x)
        ones = np.ones(s.shape[:-1] + (1,), s.dtype)
        left = np.cumprod(np.concatenate([ones, s[..., :-1]], axis=-1), axis=-1)  # prod of s_j, j < i
        right = np.cumprod(np.concatenate([ones, s[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]  # j > i
        sign = np.linalg.det(u) * np.linalg.det(vh)
        adj = np.matmul(np.swapaxes(vh, -1, -2) * (left * right)[..., None, :], np.swapaxes(u, -1, -2))
        return (np.round(sign)[..., None, None] * adj,)

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [item_shapes[0]]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[0])]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (adj,), (g,) = inputs, outputs, output_grads
        adj_t = matrix_transpose(adj)
        inner = expand(expand(tsum(g * adj, axis=(-2, -1)), -1), -1)
        return [(inner * adj_t - matmul(matmul(adj_t, g), adj_t)) / _scalar_grad(det(x))]


def det(x: Any) -> TensorVariable:
    """The determinant of (a stack of) square matrices (numpy.linalg.det)."""
    return Det()(x)


def slogdet(x: Any) -> tuple:
    """(sign, log|det|) of (a stack of) square matrices (numpy.linalg.slogdet)."""
    return tuple(SLogDet()(x))


def adjugate(x: Any) -> TensorVariable:
    """The adjugate (classical adjoint) det(A) inv(A), finite for singular matrices too."""
    return Adjugate()(x)


def logdet(x: Any) -> TensorVariable:
    """log(det(x)) computed as slogdet: NaN where det < 0, -inf where det = 0."""
    sign, logabs = slogdet(x)
    return E["switch"](E["lt"](sign, 0), np.asarray(np.nan, dtype=logabs.dtype), logabs)


__all__ = ["Det", "SLogDet", "Adjugate", "det", "slogdet", "adjugate", "logdet"]
