"""Decompositions: cholesky, eigh/eigvalsh, qr and svd (numpy's LAPACK calls, batched), with
gradients written in linalg ops so that second derivatives work.

**Symmetric convention** (cholesky, eigh, eigvalsh; as JAX and PyTorch). These ops read one
triangle of a matrix that stands for a symmetric one. A gradient of the function as LAPACK sees
it (only that triangle matters) would be triangular and would change the moment a caller
symmetrises the input; and perturbing one off-diagonal entry alone leaves the set of symmetric
matrices, where the decomposition has no meaning. So the gradient returned is the symmetric
matrix G with <G, dA> equal to the derivative along every *symmetric* direction dA. Feed these
ops symmetric matrices (``A = X X^T + n I`` and the like) and the chain rule through them is exact;
a finite-difference check must perturb through such a parametrisation, not entry by entry.

**eigh** assumes distinct eigenvalues: the eigenvector gradient has terms 1 / (w_j - w_i), and at
exactly repeated eigenvalues, where eigenvectors are not unique and have no derivative, those
terms are infinite: a cost that uses the eigenvectors gets inf/NaN in its gradient there (as in
JAX and PyTorch), never a silently wrong number. Nearly repeated eigenvalues give large,
ill-conditioned eigenvector gradients. A cost that uses only the eigenvalues (eigvalsh, or eigh's
``w`` alone) skips those terms and gets its exact gradient whatever the spectrum. The same holds
for singular values and vectors in ``svd``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.tensor.alloc import Alloc
from symgraph.tensor.elemwise import ELEMWISE_OPS as E
from symgraph.tensor.elemwise import switch
from symgraph.tensor.linalg.base import LinalgOp, as_matrices, check_matrix, check_on_error
from symgraph.tensor.linalg.solve import solve_triangular
from symgraph.tensor.linalg.structure import (
    band_mask,
    diag_embed,
    diagonal,
    dim_len,
    expand,
    matrix_transpose,
    sym,
    tril,
)
from symgraph.tensor.math import matmul
from symgraph.tensor.type import TensorType, TensorVariable


def _square_n(x: TensorVariable) -> Any:
    n, m = x.type.shape[-2:]
    return n if n is not None else m


def is_zero_grad(g: Variable) -> bool:
    """True for the zeros grad() passes for an output the cost does not use (so its terms can go)."""
    node = g.owner
    return (node is not None and isinstance(node.op, Alloc) and isinstance(node.inputs[0], Constant)
            and not np.any(node.inputs[0].data))


class Cholesky(LinalgOp):
    """The Cholesky factor of symmetric positive-definite matrices: lower L with A = L L^T
    (``lower=False``: upper U with A = U^T U), reading only that triangle of A. Symmetric
    gradient convention (module docstring)."""

    __props__ = ("lower", "on_error")
    gufunc = True
    failure = "is not positive definite"

    def __init__(self, lower: bool = True, on_error: str = "raise"):
        self.lower, self.on_error = bool(lower), check_on_error(on_error)

    def make_node(self, x: Any) -> Apply:
        (x,) = as_matrices(x)
        check_matrix(x, "cholesky")
        n = _square_n(x)
        return Apply(self, [x], [TensorType(x.dtype, x.type.shape[:-2] + (n, n)).make_variable()])

    def core(self, x: np.ndarray) -> tuple:
        if self.lower:
            return (np.linalg.cholesky(x),)
        return (np.swapaxes(np.linalg.cholesky(np.swapaxes(x, -1, -2)), -1, -2),)  # upper of A = lower of A^T

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [item_shapes[0]]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[0])]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (c,), (gc,) = outputs, output_grads
        lo = c if self.lower else matrix_transpose(c)
        glo = gc if self.lower else matrix_transpose(gc)
        # Murray (2016): with P = Phi(L^T Lbar) (lower triangle, halved diagonal),
        # Abar = sym(L^-T P L^-1)
        p = tril(matmul(matrix_transpose(lo), glo))
        p = p - diag_embed(diagonal(p)) * np.asarray(0.5, dtype=p.dtype)
        y = solve_triangular(lo, p, lower=True, trans=1, on_error=self.on_error)  # L^-T P
        s_t = solve_triangular(lo, matrix_transpose(y), lower=True, trans=1, on_error=self.on_error)
        return [sym(s_t)]


class Eigh(LinalgOp):
    """Eigenvalues (ascending) and orthonormal eigenvectors (columns) of symmetric matrices,
    reading the ``lower`` or upper triangle (numpy.linalg.eigh). Symmetric gradient convention;
    distinct eigenvalues assumed (module docstring)."""

    __props__ = ("lower", "on_error")
    gufunc = True
    failure = "did not converge"

    def __init__(self, lower: bool = True, on_error: str = "raise"):
        self.lower, self.on_error = bool(lower), check_on_error(on_error)

    def make_node(self, x: Any) -> Apply:
        (x,) = as_matrices(x)
        check_matrix(x, "eigh")
        n, batch = _square_n(x), x.type.shape[:-2]
        return Apply(self, [x], [TensorType(x.dtype, batch + (n,)).make_variable(),
                                 TensorType(x.dtype, batch + (n, n)).make_variable()])

    def core(self, x: np.ndarray) -> tuple:
        return tuple(np.linalg.eigh(x, UPLO="L" if self.lower else "U"))

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [item_shapes[0][-1:], item_shapes[0]]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        s = tuple(input_shapes[0])
        return [s[:-1], s]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (w, v), (gw, gv) = outputs, output_grads
        inner = diag_embed(gw)
        if not is_zero_grad(gv):
            inner = inner + pair_factor(w) * matmul(matrix_transpose(v), gv)
        return [sym(matmul(matmul(v, inner), matrix_transpose(v)))]


def pair_factor(w: TensorVariable) -> TensorVariable:
    """F[..., i, j] = 1 / (w_j - w_i) off the diagonal (inf where two values are equal), 0 on it."""
    d = expand(w, -2) - expand(w, -1)
    n = dim_len(w, -1)
    diag = band_mask(n, n, 0, "eq")
    return switch(diag, 0, E["reciprocal"](switch(diag, 1, d)))


class Eigvalsh(LinalgOp):
    """Eigenvalues (ascending) of symmetric matrices, reading one triangle (numpy.linalg.eigvalsh).
    Its gradient V diag(gw) V^T is exact whatever the spectrum."""

    __props__ = ("lower", "on_error")
    gufunc = True
    failure = "did not converge"

    def __init__(self, lower: bool = True, on_error: str = "raise"):
        self.lower, self.on_error = bool(lower), check_on_error(on_error)

    def make_node(self, x: Any) -> Apply:
        (x,) = as_matrices(x)
        check_matrix(x, "eigvalsh")
        return Apply(self, [x], [TensorType(x.dtype, x.type.shape[:-2] + (_square_n(x),)).make_variable()])

    def core(self, x: np.ndarray) -> tuple:
        return (np.linalg.eigvalsh(x, UPLO="L" if self.lower else "U"),)

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [item_shapes[0][-1:]]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[0])[:-1]]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (gw,) = inputs, output_grads
        _, v = Eigh(self.lower, self.on_error)(x)
        return [matmul(v * expand(gw, -2), matrix_transpose(v))]


def cholesky(x: Any, lower: bool = True, on_error: str = "raise") -> TensorVariable:
    """Cholesky factor of symmetric positive-definite matrices (lower by default, as
    numpy.linalg.cholesky; scipy's default is upper). LinAlgError for a matrix that is not
    positive definite, or NaN for it with ``on_error='nan'``."""
    return Cholesky(lower, on_error)(x)


def eigh(x: Any, UPLO: str = "L", on_error: str = "raise") -> tuple:
    """(w, v): ascending eigenvalues and eigenvectors (columns of v) of symmetric matrices
    (numpy.linalg.eigh). Compare invariants (v diag(w) v^T, |v|), not raw v: signs are free."""
    return tuple(Eigh(_uplo(UPLO), on_error)(x))


def eigvalsh(x: Any, UPLO: str = "L", on_error: str = "raise") -> TensorVariable:
    """Ascending eigenvalues of symmetric matrices (numpy.linalg.eigvalsh)."""
    return Eigvalsh(_uplo(UPLO), on_error)(x)


def _uplo(uplo: str) -> bool:
    if uplo not in ("L", "U"):
        raise ValueError(f"UPLO must be 'L' or 'U', got {uplo!r}")
    return uplo == "L"


__all__ = ["Cholesky", "Eigh", "Eigvalsh", "cholesky", "eigh", "eigvalsh"]
