"""LU factorisation shared between several users of one matrix (the ``share_lu_factorization``
rewrite builds these nodes; users write solve, inv and slogdet).

A solve and its gradient solve with the same matrix and its transpose; slogdet's gradient needs
the inverse of the matrix whose determinant it took. Each would factor the matrix again: the
rewrite factors it once (LUFactor, LAPACK getrf) and lets every user read the factors: LUSolve
(getrs, either orientation), LUInverse (getri) and slogdet from the factor's diagonal and pivots.
These nodes appear only in rewritten graphs, after gradients were taken, so they have none.

LUFactor never fails: a singular matrix has a zero on the factor's diagonal, which LUSolve and
LUInverse report as the LinAlgError their unfactored forms raise (slogdet gives sign 0, -inf).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.linalg as sla

from symgraph.graph.basic import Apply
from symgraph.tensor.alloc import arange
from symgraph.tensor.elemwise import ELEMWISE_OPS as E
from symgraph.tensor.elemwise import cast
from symgraph.tensor.linalg.base import LinalgOp, as_matrices, batch_shape, check_matrix, check_on_error, symbolic_batch
from symgraph.tensor.linalg.structure import diagonal, dim_len
from symgraph.tensor.reduction import prod
from symgraph.tensor.reduction import sum as tsum
from symgraph.tensor.type import TensorType, TensorVariable, tensor_outputs


class LUFactor(LinalgOp):
    """(lu, piv): the LU factors of square matrices with partial pivoting (scipy.linalg.lu_factor)."""

    def make_node(self, a: Any) -> Apply:
        (a,) = as_matrices(a)
        check_matrix(a, "lu_factor")
        batch, n = a.type.shape[:-2], a.type.shape[-1]
        return Apply(self, [a], [TensorType(a.dtype, a.type.shape).make_variable(),
                                 TensorType("int32", batch + (n,)).make_variable()])

    def core(self, a: np.ndarray) -> tuple:
        with warnings.catch_warnings():  # a singular matrix: its users raise, with their own context
            warnings.simplefilter("ignore", sla.LinAlgWarning)
            return sla.lu_factor(a, check_finite=False)

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [item_shapes[0], item_shapes[0][-1:]]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        s = tuple(input_shapes[0])
        return [s, s[:-1]]


def _check_factor(lu: np.ndarray) -> None:
    if not np.all(np.diagonal(lu)):
        raise np.linalg.LinAlgError("Singular matrix")


class LUSolve(LinalgOp):
    """x with A x = b (``trans=1``: A^T x = b) from A's LU factors (scipy.linalg.lu_solve)."""

    __props__ = ("trans", "b_ndim", "on_error")
    failure = "is singular"
    square_inputs = (0,)

    def __init__(self, trans: int = 0, b_ndim: int = 2, on_error: str = "raise"):
        self.trans, self.b_ndim, self.on_error = int(trans), int(b_ndim), check_on_error(on_error)

    def make_node(self, lu: TensorVariable, piv: TensorVariable, b: TensorVariable) -> Apply:
        batch = batch_shape([lu, piv, b], (2, 1, self.b_ndim), str(self))
        core = lu.type.shape[-1:] + b.type.shape[b.ndim + 1 - self.b_ndim:]
        return Apply(self, [lu, piv, b], [TensorType(lu.dtype, batch + core).make_variable()])

    def core_ndims(self, node: Apply) -> tuple[int, ...]:
        return (2, 1, self.b_ndim)

    def core(self, lu: np.ndarray, piv: np.ndarray, b: np.ndarray) -> tuple:
        _check_factor(lu)
        return (sla.lu_solve((lu, piv), b, trans=self.trans, check_finite=False),)

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [item_shapes[2]]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        out = tensor_outputs(node)[0].type.shape
        batch = symbolic_batch(input_shapes, (2, 1, self.b_ndim), out[:len(out) - self.b_ndim])
        return [batch + tuple(input_shapes[2])[len(input_shapes[2]) - self.b_ndim:]]


class LUInverse(LinalgOp):
    """The inverse of A from its LU factors (LAPACK getri, as scipy.linalg.inv does after getrf)."""

    __props__ = ("on_error",)
    failure = "is singular"

    def __init__(self, on_error: str = "raise"):
        self.on_error = check_on_error(on_error)

    def make_node(self, lu: TensorVariable, piv: TensorVariable) -> Apply:
        return Apply(self, [lu, piv], [TensorType(lu.dtype, lu.type.shape).make_variable()])

    def core_ndims(self, node: Apply) -> tuple[int, ...]:
        return (2, 1)

    def core(self, lu: np.ndarray, piv: np.ndarray) -> tuple:
        _check_factor(lu)
        getri, getri_lwork = sla.lapack.get_lapack_funcs(("getri", "getri_lwork"), (lu,))
        lwork, _ = getri_lwork(lu.shape[0])
        inv, info = getri(lu, piv, lwork=max(int(lwork), 1))
        if info > 0:
            raise np.linalg.LinAlgError("Singular matrix")
        return (inv,)

    def out_core_shapes(self, node: Apply, item_shapes: list) -> list:
        return [item_shapes[0]]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[0])]


def slogdet_from_lu(lu: TensorVariable, piv: TensorVariable) -> tuple:
    """(sign, log|det|) from LU factors: the diagonal's product, one sign flip per row swap."""
    d = diagonal(lu)
    swaps = tsum(E["neq"](piv, arange(dim_len(lu, -1), dtype="int32")), axis=-1)
    parity = 1 - 2 * E["mod"](swaps, 2)
    sign = cast(parity, lu.dtype) * prod(E["sign"](d), axis=-1)
    return sign, tsum(E["log"](E["abs"](d)), axis=-1)


__all__ = ["LUFactor", "LUSolve", "LUInverse", "slogdet_from_lu"]
