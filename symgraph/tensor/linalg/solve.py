"""Linear solves and the inverse: solve (general, symmetric, positive definite), solve_triangular,
cho_solve and inv. Each gradient is written with these same ops, so second derivatives work.

Right-hand sides follow numpy's rule: a 1-d ``b`` is one vector, anything else a stack of
matrices; ``b_ndim=1`` makes a stack of vectors (``b`` of shape (..., n)).

Symmetric convention: ``solve(assume_a='sym'|'pos')`` and ``cho_solve`` read one triangle of a
matrix that stands for a symmetric one, so their gradient with respect to it is the symmetric
matrix (G + G^T)/2, as for cholesky (see decomp.py); a triangular solve reads one triangle of a
genuinely triangular matrix, and its gradient is that triangle.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla

from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Apply
from symgraph.tensor.elemwise import _fmt
from symgraph.tensor.linalg.base import (
    LinalgOp,
    as_matrices,
    b_core_ndim,
    batch_shape,
    check_matrix,
    check_on_error,
    symbolic_batch,
)
from symgraph.tensor.linalg.structure import matrix_transpose, outer_last, sym, tril, triu
from symgraph.tensor.math import matmul
from symgraph.tensor.reduction import sum_to
from symgraph.tensor.type import TensorType, TensorVariable, tensor_outputs

ASSUME_A = {"gen": "gen", "general": "gen", "sym": "sym", "symmetric": "sym", "pos": "pos",
            "positive definite": "pos"}


class _RhsSolve(LinalgOp):
    """Shared make_node/infer_shape of ops that solve A x = b: a square (stack of) matrix ``a``
    and a right-hand side ``b`` of ``b_ndim`` core axes; x has b's core shape."""

    rhs_input = True
    b_ndim: int  # core axes of the right-hand side (set by each op's __init__)

    def make_node(self, a: Any, b: Any) -> Apply:
        a, b = as_matrices(a, b)
        check_matrix(a, str(self))
        if b.ndim < self.b_ndim:
            raise GraphTypeError(f"{self}: the right-hand side needs {self.b_ndim} dimension(s), got {b.type}")
        n, nb = a.type.shape[-1], b.type.shape[b.ndim - self.b_ndim]
        if n is not None and nb is not None and n != nb:
            raise ShapeError(f"{self}: the right-hand side has {nb} rows but the matrices are {n}x{n} "
                             f"(shapes {_fmt(a.type.shape)} and {_fmt(b.type.shape)})")
        batch = batch_shape([a, b], (2, self.b_ndim), str(self))
        core = (n if n is not None else nb,) + b.type.shape[b.ndim + 1 - self.b_ndim:]
        return Apply(self, [a, b], [TensorType(a.dtype, batch + core).make_variable()])

    def core_ndims(self, node: Apply) -> tuple[int, ...]:
        return (2, self.b_ndim)

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [item_shapes[1]]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        out = tensor_outputs(node)[0].type.shape
        batch = symbolic_batch(input_shapes, (2, self.b_ndim), out[:len(out) - self.b_ndim])
        core = tuple(input_shapes[1])[len(input_shapes[1]) - self.b_ndim:]
        return [batch + core]


class Solve(_RhsSolve):
    """x = A^-1 b. ``assume_a``: 'gen' (LU, numpy.linalg.solve), 'sym' (symmetric indefinite,
    reading the ``lower`` or upper triangle), 'pos' (positive definite, by Cholesky, one triangle)."""

    __props__ = ("assume_a", "lower", "b_ndim", "on_error")

    def __init__(self, assume_a: str = "gen", lower: bool = False, b_ndim: int = 2, on_error: str = "raise"):
        if assume_a not in ASSUME_A:
            raise ValueError(f"assume_a must be one of 'gen', 'sym', 'pos', got {assume_a!r}")
        self.assume_a, self.lower, self.b_ndim = ASSUME_A[assume_a], bool(lower), int(b_ndim)
        self.on_error = check_on_error(on_error)
        self.gufunc = self.assume_a == "gen"
        self.failure = "is not positive definite" if self.assume_a == "pos" else "is singular"

    def core(self, a: np.ndarray, b: np.ndarray) -> tuple:
        if self.assume_a == "gen":
            if self.b_ndim == 1:
                return (np.linalg.solve(a, b[..., None])[..., 0],)
            return (np.linalg.solve(a, b),)
        return (sla.solve(a, b, assume_a=self.assume_a, lower=self.lower, check_finite=False),)

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (a, b), (x,), (gx,) = inputs, outputs, output_grads
        vectors = self.b_ndim == 1
        if self.assume_a == "gen":
            gb = Solve("gen", False, self.b_ndim, self.on_error)(matrix_transpose(a), gx)
            ga = -outer_last(gb, x, vectors)
        else:  # the matrix stands for a symmetric one: A^T = A, and a symmetric gradient
            gb = Solve(self.assume_a, self.lower, self.b_ndim, self.on_error)(a, gx)
            ga = -sym(outer_last(gb, x, vectors))
        return [sum_to(ga, a), sum_to(gb, b)]


class SolveTriangular(_RhsSolve):
    """x = A^-1 b (``trans=1``: A^-T b) for triangular A, reading only its ``lower`` or upper
    triangle (and not its diagonal with ``unit_diagonal``): scipy.linalg.solve_triangular."""

    __props__ = ("lower", "trans", "unit_diagonal", "b_ndim", "on_error")
    failure = "is singular (a zero on its diagonal)"

    def __init__(self, lower: bool = False, trans: int = 0, unit_diagonal: bool = False, b_ndim: int = 2,
                 on_error: str = "raise"):
        self.lower, self.trans, self.unit_diagonal = bool(lower), _trans(trans), bool(unit_diagonal)
        self.b_ndim, self.on_error = int(b_ndim), check_on_error(on_error)

    def core(self, a: np.ndarray, b: np.ndarray) -> tuple:
        return (sla.solve_triangular(a, b, trans=self.trans, lower=self.lower, unit_diagonal=self.unit_diagonal,
                                     check_finite=False),)

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (a, b), (x,), (gx,) = inputs, outputs, output_grads
        gb = SolveTriangular(self.lower, 1 - self.trans, self.unit_diagonal, self.b_ndim, self.on_error)(a, gx)
        ga = -outer_last(x, gb, self.b_ndim == 1) if self.trans else -outer_last(gb, x, self.b_ndim == 1)
        k = -1 if self.unit_diagonal else 0  # the op never reads the other triangle (nor a unit diagonal)
        ga = tril(ga, k) if self.lower else triu(ga, -k)
        return [sum_to(ga, a), sum_to(gb, b)]


class CholeskySolve(_RhsSolve):
    """x = (C C^T)^-1 b for a lower Cholesky factor C (``lower``), or (C^T C)^-1 b for an upper
    one: scipy.linalg.cho_solve, reading only that triangle of C."""

    __props__ = ("lower", "b_ndim", "on_error")
    failure = "is a singular factor (a zero on its diagonal)"

    def __init__(self, lower: bool = True, b_ndim: int = 2, on_error: str = "raise"):
        self.lower, self.b_ndim, self.on_error = bool(lower), int(b_ndim), check_on_error(on_error)

    def core(self, c: np.ndarray, b: np.ndarray) -> tuple:
        if not np.all(np.diagonal(c)):  # LAPACK's potrs does not check: it would divide by zero
            raise np.linalg.LinAlgError("zero diagonal element")
        return (sla.cho_solve((c, self.lower), b, check_finite=False),)

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (c, b), (x,), (gx,) = inputs, outputs, output_grads
        gb = CholeskySolve(self.lower, self.b_ndim, self.on_error)(c, gx)
        s = outer_last(gb, x, self.b_ndim == 1)
        s = s + matrix_transpose(s)  # A = C C^T: dA = dC C^T + C dC^T
        gc = tril(-matmul(s, tril(c))) if self.lower else triu(-matmul(triu(c), s))  # only one triangle is C
        return [sum_to(gc, c), sum_to(gb, b)]


class MatrixInverse(LinalgOp):
    """The inverse of square matrices (numpy.linalg.inv, batched)."""

    __props__ = ("on_error",)
    gufunc = True
    failure = "is singular"

    def __init__(self, on_error: str = "raise"):
        self.on_error = check_on_error(on_error)

    def make_node(self, x: Any) -> Apply:
        (x,) = as_matrices(x)
        check_matrix(x, "inv")
        n = x.type.shape[-1] if x.type.shape[-1] is not None else x.type.shape[-2]
        return Apply(self, [x], [TensorType(x.dtype, x.type.shape[:-2] + (n, n)).make_variable()])

    def core(self, x: np.ndarray) -> tuple:
        return (np.linalg.inv(x),)

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [item_shapes[0]]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (xinv,), (g,) = outputs, output_grads
        xt = matrix_transpose(xinv)
        return [-matmul(matmul(xt, g), xt)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[0])]


def _trans(trans: Any) -> int:
    table = {0: 0, 1: 1, "N": 0, "T": 1, "C": 1}
    if trans not in table:
        raise ValueError(f"trans must be 0, 1, 'N', 'T' or 'C', got {trans!r}")
    return table[trans]


def solve(a: Any, b: Any, assume_a: str = "gen", lower: bool = False, b_ndim: int | None = None,
          on_error: str = "raise") -> TensorVariable:
    """x with a x = b (scipy.linalg.solve, batched like numpy.linalg.solve). ``assume_a``: 'gen',
    'sym' or 'pos'; for 'sym' and 'pos' only the ``lower`` (or upper) triangle of ``a`` is read."""
    a, b = as_matrices(a, b)
    return Solve(assume_a, lower, b_core_ndim(b, b_ndim), on_error)(a, b)


def solve_triangular(a: Any, b: Any, trans: Any = 0, lower: bool = False, unit_diagonal: bool = False,
                     b_ndim: int | None = None, on_error: str = "raise") -> TensorVariable:
    """x with a x = b (``trans``: a^T x = b) for triangular ``a`` (scipy.linalg.solve_triangular, batched)."""
    a, b = as_matrices(a, b)
    return SolveTriangular(lower, trans, unit_diagonal, b_core_ndim(b, b_ndim), on_error)(a, b)


def cho_solve(c_and_lower: Any, b: Any, b_ndim: int | None = None, on_error: str = "raise") -> TensorVariable:
    """x with A x = b given A's Cholesky factor: ``cho_solve((c, lower), b)`` as in scipy."""
    try:
        c, lower = c_and_lower
    except (TypeError, ValueError):
        raise GraphTypeError("cho_solve takes (c, lower) as its first argument, as scipy.linalg.cho_solve "
                             "does") from None
    c, b = as_matrices(c, b)
    return CholeskySolve(lower, b_core_ndim(b, b_ndim), on_error)(c, b)


def inv(a: Any, on_error: str = "raise") -> TensorVariable:
    """The inverse of (a stack of) square matrices (numpy.linalg.inv)."""
    return MatrixInverse(on_error)(a)


__all__ = ["Solve", "SolveTriangular", "CholeskySolve", "MatrixInverse", "solve", "solve_triangular",
           "cho_solve", "inv"]
