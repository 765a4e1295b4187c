"""Orthogonal factorisations: qr, svd and pinv (numpy's LAPACK calls, batched), with gradients
written in linalg ops.

- qr: the gradient of the reduced (or 'r') factorisation, for tall, square and wide matrices
  (a wide A = [X | Y] is differentiated as X = Q R1, Y = Q R2); 'complete' only where it equals
  the reduced one (m <= n). R must be nonsingular (full rank). LAPACK chooses the signs of R's
  diagonal; its choice jumps where a column is already zero below the diagonal (a triangular A,
  say), and the gradient there is that of the smooth branch on one side.
- svd: singular values have an exact gradient whatever the spectrum; U and Vh assume distinct
  singular values (repeated ones give inf/NaN, as for eigh: see decomp.py) and, for non-square
  matrices, nonzero ones. ``full_matrices=True`` has a gradient only for square matrices (the
  extra columns are not unique), as in JAX.
- pinv: the gradient holds where the rank is constant (no singular value crosses the cutoff).
"""
from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np

from symgraph.errors import GradientError
from symgraph.graph.basic import Apply
from symgraph.tensor.elemwise import ELEMWISE_OPS as E
from symgraph.tensor.linalg.base import LinalgOp, as_matrices, check_matrix, check_on_error
from symgraph.tensor.linalg.decomp import is_zero_grad, pair_factor
from symgraph.tensor.linalg.solve import solve_triangular
from symgraph.tensor.linalg.structure import diag_embed, dim_len, expand, matrix_transpose, tril
from symgraph.tensor.math import matmul
from symgraph.tensor.shape import concatenate, sfold
from symgraph.tensor.type import TensorType, TensorVariable

QRMode = Literal["reduced", "complete", "r"]
QR_MODES: tuple[QRMode, ...] = get_args(QRMode)


def _qr_mode(mode: str) -> QRMode:
    """``mode`` checked against numpy.linalg.qr's modes (its 'raw' has no gradient here)."""
    for m in QR_MODES:
        if mode == m:
            return m
    raise ValueError(f"qr mode must be one of {QR_MODES}, got {mode!r}")


def _static_min(m: Any, n: Any) -> Any:
    if m is not None and n is not None:
        return min(m, n)
    return None


class QR(LinalgOp):
    """Q R = A with orthonormal columns in Q and upper-triangular R (numpy.linalg.qr; ``mode``
    'reduced', 'complete' or 'r'). LAPACK's signs: the diagonal of R may be negative."""

    __props__ = ("mode", "on_error")
    gufunc = True
    failure = "could not be factored"
    square_inputs = ()

    def __init__(self, mode: str = "reduced", on_error: str = "raise"):
        self.mode, self.on_error = _qr_mode(mode), check_on_error(on_error)

    def make_node(self, x: Any) -> Apply:
        (x,) = as_matrices(x)
        check_matrix(x, "qr", square=False)
        batch, (m, n) = x.type.shape[:-2], x.type.shape[-2:]
        k = m if self.mode == "complete" else _static_min(m, n)
        r = TensorType(x.dtype, batch + (k, n)).make_variable()
        if self.mode == "r":
            return Apply(self, [x], [r])
        return Apply(self, [x], [TensorType(x.dtype, batch + (m, k)).make_variable(), r])

    def core(self, x: np.ndarray) -> tuple:
        out = np.linalg.qr(x, mode=self.mode)
        return (out,) if self.mode == "r" else tuple(out)

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        m, n = item_shapes[0]
        k = m if self.mode == "complete" else min(m, n)
        return [(k, n)] if self.mode == "r" else [(m, k), (k, n)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        s = tuple(input_shapes[0])
        m, n = s[-2:]
        k = m if self.mode == "complete" else sfold("minimum", m, n)
        r = s[:-2] + (k, n)
        return [r] if self.mode == "r" else [s[:-2] + (m, k), r]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (a,) = inputs
        if self.mode == "r":
            q, r = QR("reduced", self.on_error)(a)
            gq, gr = None, output_grads[0]
        else:
            (q, r), (gq, gr) = outputs, output_grads
            m, n = a.type.shape[-2:]
            if self.mode == "complete" and not (m is not None and n is not None and m <= n):
                raise GradientError("qr: mode='complete' has a gradient only for matrices known to have no more "
                                    "rows than columns (Q's extra columns are not unique); use mode='reduced'")
            gq = None if is_zero_grad(gq) else gq
        return [qr_grad(a, q, r, gq, gr, self.on_error)]


def qr_grad(a: TensorVariable, q: TensorVariable, r: TensorVariable, gq: TensorVariable | None, gr: TensorVariable,
            on_error: str) -> TensorVariable:
    """Abar of the reduced QR: with A = [X | Y], X = Q R1 square or tall, Y = Q R2,
    M = R1 gR1^T - gQ'^T Q and gQ' = gQ + Y gR2^T: gX = (gQ' + Q copyltu(M)) R1^-T, gY = Q gR2."""
    m, n = a.type.shape[-2:]
    tall = m is not None and n is not None and m >= n  # then R1 = R and Y is empty
    k = sfold("minimum", dim_len(a, -2), dim_len(a, -1))
    r1, gr1 = (r, gr) if tall else (r[..., :, :k], gr[..., :, :k])
    if not tall:
        gr2, y = gr[..., :, k:], a[..., :, k:]
        extra = matmul(y, matrix_transpose(gr2))
        gq = extra if gq is None else gq + extra
    mm = matmul(r1, matrix_transpose(gr1))
    if gq is not None:
        mm = mm - matmul(matrix_transpose(gq), q)
    b = matmul(q, tril(mm) + matrix_transpose(tril(mm, -1)))
    if gq is not None:
        b = gq + b
    gx = matrix_transpose(solve_triangular(r1, matrix_transpose(b), lower=False, on_error=on_error))
    if tall:
        return gx
    return concatenate([gx, matmul(q, gr2)], axis=-1)


class SVD(LinalgOp):
    """A = U diag(s) Vh with descending s (numpy.linalg.svd): outputs (U, s, Vh), or s alone
    without ``compute_uv``. Compare invariants, not U and Vh: their signs are free."""

    __props__ = ("full_matrices", "compute_uv", "on_error")
    gufunc = True
    square_inputs = ()
    failure = "did not converge"

    def __init__(self, full_matrices: bool = True, compute_uv: bool = True, on_error: str = "raise"):
        self.full_matrices, self.compute_uv = bool(full_matrices), bool(compute_uv)
        self.on_error = check_on_error(on_error)

    def make_node(self, x: Any) -> Apply:
        (x,) = as_matrices(x)
        check_matrix(x, "svd", square=False)
        batch, (m, n) = x.type.shape[:-2], x.type.shape[-2:]
        k = _static_min(m, n)
        s = TensorType(x.dtype, batch + (k,)).make_variable()
        if not self.compute_uv:
            return Apply(self, [x], [s])
        ku, kv = (m, n) if self.full_matrices else (k, k)
        return Apply(self, [x], [TensorType(x.dtype, batch + (m, ku)).make_variable(), s,
                                 TensorType(x.dtype, batch + (kv, n)).make_variable()])

    def core(self, x: np.ndarray) -> tuple:
        if not self.compute_uv:
            return (np.linalg.svd(x, compute_uv=False),)
        return tuple(np.linalg.svd(x, full_matrices=self.full_matrices))

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        m, n = item_shapes[0]
        k = min(m, n)
        if not self.compute_uv:
            return [(k,)]
        ku, kv = (m, n) if self.full_matrices else (k, k)
        return [(m, ku), (k,), (kv, n)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        s = tuple(input_shapes[0])
        batch, (m, n) = s[:-2], s[-2:]
        k = sfold("minimum", m, n)
        if not self.compute_uv:
            return [batch + (k,)]
        ku, kv = (m, n) if self.full_matrices else (k, k)
        return [batch + (m, ku), batch + (k,), batch + (kv, n)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (a,) = inputs
        if not self.compute_uv:
            u, _, vh = SVD(False, True, self.on_error)(a)
            return [matmul(u * expand(output_grads[0], -2), vh)]
        m, n = a.type.shape[-2:]
        square = m is not None and m == n
        if self.full_matrices and not square:
            raise GradientError("svd: full_matrices=True has a gradient only for matrices known to be square "
                                "(the extra singular vectors are not unique); use full_matrices=False")
        (u, s, vh), (gu, gs, gvh) = outputs, output_grads
        return [svd_grad(u, s, vh, None if is_zero_grad(gu) else gu, gs, None if is_zero_grad(gvh) else gvh,
                         square)]


def svd_grad(u: TensorVariable, s: TensorVariable, vh: TensorVariable, gu: TensorVariable | None,
             gs: TensorVariable, gvh: TensorVariable | None, square: bool) -> TensorVariable:
    """Townsend (2016), real case: U [(J + J^T) S + diag(gs) + S (K + K^T)] Vh with J = F o U^T gU,
    K = F o V^T gV, F_ij = 1 / (s_j^2 - s_i^2); plus, unless square, the parts of gU and gV
    outside the spans of U and V."""
    f = pair_factor(E["sqr"](s))
    inner = diag_embed(gs)
    ut, v = matrix_transpose(u), matrix_transpose(vh)
    if gu is not None:
        j = f * matmul(ut, gu)
        inner = inner + (j + matrix_transpose(j)) * expand(s, -2)
    if gvh is not None:
        kk = f * matmul(vh, matrix_transpose(gvh))
        inner = inner + expand(s, -1) * (kk + matrix_transpose(kk))
    ga = matmul(matmul(u, inner), vh)
    if not square and gu is not None:
        ga = ga + matmul((gu - matmul(u, matmul(ut, gu))) / expand(s, -2), vh)
    if not square and gvh is not None:
        ga = ga + matmul(u, (gvh - matmul(matmul(gvh, v), vh)) / expand(s, -1))
    return ga


class Pinv(LinalgOp):
    """The Moore-Penrose pseudo-inverse (numpy.linalg.pinv), through the SVD: singular values at
    most ``rtol`` times the largest count as zero (``rtol=None``: max(m, n) * eps, numpy 2's default)."""

    __props__ = ("rtol", "on_error")
    gufunc = True
    square_inputs = ()
    failure = "did not converge"

    def __init__(self, rtol: float | None = None, on_error: str = "raise"):
        self.rtol = None if rtol is None else float(rtol)
        self.on_error = check_on_error(on_error)

    def make_node(self, x: Any) -> Apply:
        (x,) = as_matrices(x)
        check_matrix(x, "pinv", square=False)
        s = x.type.shape
        return Apply(self, [x], [TensorType(x.dtype, s[:-2] + (s[-1], s[-2])).make_variable()])

    def core(self, x: np.ndarray) -> tuple:
        m, n = x.shape[-2:]
        if x.size == 0:
            return (np.zeros(x.shape[:-2] + (n, m), x.dtype),)
        u, s, vh = np.linalg.svd(x, full_matrices=False)
        rtol = max(m, n) * np.finfo(x.dtype).eps if self.rtol is None else self.rtol
        cut = rtol * np.max(s, axis=-1, keepdims=True)
        with np.errstate(divide="ignore"):
            sinv = np.where(s > cut, 1 / s, 0)
        return (np.matmul(np.swapaxes(vh, -1, -2) * sinv[..., None, :], np.swapaxes(u, -1, -2)),)

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [item_shapes[0][::-1]]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        s = tuple(input_shapes[0])
        return [s[:-2] + (s[-1], s[-2])]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (a,), (x,), (g,) = inputs, outputs, output_grads
        xt, gt = matrix_transpose(x), matrix_transpose(g)
        # Golub & Pereyra: dX = -X dA X + X X^T dA^T (I - A X) + (I - X A) dA^T X^T X
        ga = -matmul(matmul(xt, g), xt)
        m1 = matmul(gt, matmul(x, xt))
        ga = ga + m1 - matmul(a, matmul(x, m1))
        m2 = matmul(matmul(xt, x), gt)
        return [ga + m2 - matmul(matmul(m2, x), a)]


def qr(x: Any, mode: str = "reduced", on_error: str = "raise") -> Any:
    """numpy.linalg.qr: (Q, R), or R alone with ``mode='r'``."""
    out = QR(mode, on_error)(x)
    return out if mode == "r" else tuple(out)


def svd(x: Any, full_matrices: bool = True, compute_uv: bool = True, on_error: str = "raise") -> Any:
    """numpy.linalg.svd: (U, s, Vh), or s alone with ``compute_uv=False``."""
    out = SVD(full_matrices, compute_uv, on_error)(x)
    return tuple(out) if compute_uv else out


def pinv(x: Any, rtol: float | None = None, hermitian: bool = False, rcond: float | None = None) -> TensorVariable:
    """numpy.linalg.pinv (``rcond`` is the older name of ``rtol``; ``hermitian`` is accepted and
    gives the same result through the SVD)."""
    return Pinv(rtol if rtol is not None else rcond)(x)


__all__ = ["QR", "SVD", "Pinv", "qr", "svd", "pinv"]
