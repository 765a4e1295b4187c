"""Linear-algebra rewrites: cheaper and more accurate forms of common formulas.

- stabilize ``inv_matmul_to_solve``: inv(A) @ b -> solve(A, b), b @ inv(A) -> solve(A^T, b^T)^T
  (one LU solve instead of an inverse and a product; only when nothing else reads inv(A)).
- stabilize ``log_det_to_slogdet``: log(det(A)) -> log|det| from slogdet (NaN where det < 0, as
  log gives), log(abs(det(A))) -> log|det|: det over- or underflows long before slogdet does.
- specialize ``cholesky_solves_to_cho_solve``: two triangular solves with a Cholesky factor and its
  transpose (L^-T (L^-1 b), the textbook A^-1 b) -> cho_solve((L, lower), b).
- specialize ``solve_reuses_cholesky``: solve(A, b, assume_a='pos' or 'sym') when cholesky(A) of the
  same triangle is computed anyway -> cho_solve on that factor (one factorisation instead of two).
- specialize ``share_lu_factorization``: when two or more of solve(A, .) (assume_a='gen'),
  solve(A^T, .), inv(A) and slogdet(A) read one matrix A (a solve and its gradient, slogdet and
  its gradient), A is LU-factored once and each reads the factors (lu.py).
"""
from __future__ import annotations

import numpy as np

from symgraph.graph.basic import Apply
from symgraph.rewrite.core import rule
from symgraph.rewrite.patterns import E, elem, fit, single_client
from symgraph.tensor.elemwise import DimShuffle
from symgraph.tensor.linalg.decomp import Cholesky
from symgraph.tensor.linalg.det import Det, SLogDet, slogdet
from symgraph.tensor.linalg.lu import LUFactor, LUInverse, LUSolve, slogdet_from_lu
from symgraph.tensor.linalg.solve import CholeskySolve, MatrixInverse, Solve, SolveTriangular
from symgraph.tensor.linalg.structure import matrix_transpose
from symgraph.tensor.math import Dot, MatMul


def _inverse_of(fgraph, var):
    """A when ``var`` is inv(A) read by nothing else, else None."""
    node = var.owner
    if node is None or type(node.op) is not MatrixInverse or not single_client(fgraph, var):
        return None
    return node


@rule("stabilize", MatMul, Dot)
def inv_matmul_to_solve(fgraph, node):
    """inv(A) @ b -> solve(A, b); b @ inv(A) -> solve(A^T, b^T)^T"""
    x, y = node.inputs
    out = node.out
    if not (x.dtype == y.dtype == out.dtype):
        return None
    inv_node = _inverse_of(fgraph, x)
    if inv_node is not None and y.ndim >= 1:
        op = Solve("gen", False, 1 if y.ndim == 1 else 2, inv_node.op.on_error)
        return fit(op(inv_node.inputs[0], y), out)
    inv_node = _inverse_of(fgraph, y)
    if inv_node is not None and x.ndim >= 2:
        a_t = matrix_transpose(inv_node.inputs[0])
        op = Solve("gen", False, 2, inv_node.op.on_error)
        return fit(matrix_transpose(op(a_t, matrix_transpose(x))), out)
    return None


@rule("stabilize", "log")
def log_det_to_slogdet(fgraph, node):
    """log(det(A)) -> slogdet's log|det| (NaN where det < 0); log(abs(det(A))) -> log|det|"""
    x = node.inputs[0]
    absolute = elem(x, "abs")
    inner = absolute.inputs[0] if absolute is not None else x
    if inner.owner is None or type(inner.owner.op) is not Det:
        return None
    sign, logabs = slogdet(inner.owner.inputs[0])
    if absolute is not None:
        return fit(logabs, node.out)
    nan = np.asarray(np.nan, dtype=logabs.dtype)
    return fit(E["switch"](E["lt"](sign, 0), nan, logabs), node.out)


def _is_matrix_transpose(var) -> bool:
    node = var.owner
    if node is None or type(node.op) is not DimShuffle:
        return False
    nd = node.op.input_ndim
    return node.op.new_order == tuple(range(nd - 2)) + (nd - 1, nd - 2)


def _factor_system(op: SolveTriangular, m):
    """For a triangular solve with matrix ``m``: (F, t) when m is a Cholesky factor F (or F^T) and
    the solve reads F's own triangle, the system solved being F x = b (t = 0) or F^T x = b (t = 1)."""
    transposed = _is_matrix_transpose(m)
    base = m.owner.inputs[0] if transposed else m
    if base.owner is None or type(base.owner.op) is not Cholesky or op.unit_diagonal:
        return None
    if (op.lower != transposed) != base.owner.op.lower:  # the triangle read is not the factor's
        return None
    return base, int(transposed) ^ op.trans


@rule("specialize", SolveTriangular)
def cholesky_solves_to_cho_solve(fgraph, node):
    """solve_triangular(L^T, solve_triangular(L, b)) with L = cholesky(A) -> cho_solve((L, True), b)
    (and the upper-factor form U^-1 (U^-T b))"""
    outer_op, (m_out, inner) = node.op, node.inputs
    if inner.owner is None or type(inner.owner.op) is not SolveTriangular or not single_client(fgraph, inner):
        return None
    inner_op, (m_in, b) = inner.owner.op, inner.owner.inputs
    if inner_op.b_ndim != outer_op.b_ndim or inner_op.on_error != outer_op.on_error:
        return None
    first, second = _factor_system(inner_op, m_in), _factor_system(outer_op, m_out)
    if first is None or second is None or first[0] is not second[0]:
        return None
    factor = first[0]
    lower = factor.owner.op.lower
    # A = L L^T: A^-1 b = L^-T (L^-1 b); A = U^T U: A^-1 b = U^-1 (U^-T b)
    if (first[1], second[1]) != ((0, 1) if lower else (1, 0)):
        return None
    return fit(CholeskySolve(lower, outer_op.b_ndim, outer_op.on_error)(factor, b), node.out)


@rule("specialize", Solve)
def solve_reuses_cholesky(fgraph, node):
    """solve(A, b, assume_a='pos'|'sym') where cholesky(A) of the same triangle is in the graph
    -> cho_solve((cholesky(A), lower), b)"""
    op, (a, b) = node.op, node.inputs
    if op.assume_a == "gen" or (op.assume_a == "sym" and op.on_error != "raise"):
        return None  # an indefinite symmetric matrix with on_error='nan': the factor is NaN, the solve is not
    for client, _ in fgraph.clients.get(a, ()):
        if client == "output" or type(client.op) is not Cholesky:
            continue
        if client.op.lower == op.lower and client.op.on_error == op.on_error:
            return fit(CholeskySolve(op.lower, op.b_ndim, op.on_error)(client.outputs[0], b), node.out)
    return None


def _lu_base(node):
    """(A, transposed) for the matrix an LU-capable node reads, else None."""
    op = node.op
    if type(op) is Solve and op.assume_a == "gen" or type(op) in (MatrixInverse, SLogDet):
        m = node.inputs[0]
    else:
        return None
    transposed = _is_matrix_transpose(m) and type(op) is Solve
    return (m.owner.inputs[0], True) if transposed else (m, False)


def _lu_readers(fgraph, a) -> tuple[int, list]:
    """How many nodes would read A's LU factors (existing LUFactor nodes of A included), and those."""
    count, factors = 0, list[Apply]()
    views = [a] + [c.outputs[0] for c, _ in fgraph.clients.get(a, ())
                   if c != "output" and _is_matrix_transpose(c.outputs[0])]
    for v in views:
        for c, _ in fgraph.clients.get(v, ()):
            if c == "output":
                continue
            if type(c.op) is LUFactor:
                count, factors = count + 1, factors + [c]
            elif (base := _lu_base(c)) is not None and base[0] is a:
                count += 1
    return count, factors


@rule("specialize", Solve, MatrixInverse, SLogDet)
def share_lu_factorization(fgraph, node):
    """solve(A, .), solve(A^T, .), inv(A), slogdet(A): two or more on one A -> one LU factorisation of A"""
    base = _lu_base(node)
    if base is None:
        return None
    a, transposed = base
    count, factors = _lu_readers(fgraph, a)
    if count < 2:
        return None
    lu, piv = factors[0].outputs if factors else LUFactor()(a)
    op = node.op
    if type(op) is SLogDet:
        return [fit(v, o) for v, o in zip(slogdet_from_lu(lu, piv), node.outputs)]
    if type(op) is MatrixInverse:
        return fit(LUInverse(op.on_error)(lu, piv), node.out)
    return fit(LUSolve(int(transposed), op.b_ndim, op.on_error)(lu, piv, node.inputs[1]), node.out)
