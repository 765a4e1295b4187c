"""The linalg rewrites: each fires on its pattern (named in the rewrite report), keeps the values
of the unrewritten graph on hypothesis batches (both backends), and stays away from look-alikes
whose values would change."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.rewrite import Mode, rewrite_names
from linalg_cases import compile_on, declare, fixture_ok, general, spd, stacks

L = T.linalg
RULES = ("inv_matmul_to_solve", "log_det_to_slogdet", "cholesky_solves_to_cho_solve", "solve_reuses_cholesky",
         "share_lu_factorization")


def _chol_pair(a, b, lower):
    """A^-1 b through a Cholesky factor and two triangular solves, written the textbook way."""
    c = L.cholesky(a, lower=lower)
    if lower:
        return L.solve_triangular(c.T if c.ndim == 2 else L.matrix_transpose(c),
                                  L.solve_triangular(c, b, lower=True), lower=False)
    return L.solve_triangular(c, L.solve_triangular(c, b, trans=1), lower=False)


# rule: (build(a, b), matrix maker, op class names that must be gone, op class names that must appear)
CASES = {
    "inv_matmul_to_solve": (lambda a, b: T.matmul(L.inv(a), b), general, {"MatrixInverse"}, {"Solve"}),
    "inv_matmul_to_solve/right": (lambda a, b: T.matmul(L.matrix_transpose(b), L.inv(a)), general,
                                  {"MatrixInverse"}, {"Solve"}),
    "log_det_to_slogdet": (lambda a, b: T.log(L.det(a)) + b.sum(), general, {"Det"}, {"SLogDet"}),
    "log_det_to_slogdet/abs": (lambda a, b: T.log(abs(L.det(a))) + b.sum(), None, {"Det"}, {"SLogDet"}),
    "cholesky_solves_to_cho_solve": (lambda a, b: _chol_pair(a, b, True), spd, {"SolveTriangular"},
                                     {"CholeskySolve"}),
    "cholesky_solves_to_cho_solve/upper": (lambda a, b: _chol_pair(a, b, False), spd, {"SolveTriangular"},
                                           {"CholeskySolve"}),
    "solve_reuses_cholesky": (lambda a, b: L.solve(a, b, assume_a="pos", lower=True) + L.cholesky(a).sum(), spd,
                              {"Solve"}, {"CholeskySolve"}),
    "share_lu_factorization": (lambda a, b: L.solve(a, b) + L.solve(L.matrix_transpose(a), b), general, {"Solve"},
                               {"LUFactor", "LUSolve"}),
    "share_lu_factorization/slogdet": (lambda a, b: _slogdet_and_inv(a) + b.sum(), general,
                                       {"SLogDet", "MatrixInverse"}, {"LUFactor", "LUInverse"}),
}


def _slogdet_and_inv(a):
    sign, logabs = L.slogdet(a)
    return (sign * logabs)[..., None, None] + L.inv(a)


def _ops(f) -> set:
    """Op class names in the compiled graph (those inside OpenCL host fallbacks included)."""
    return {type(getattr(n.op, "op", n.op)).__name__ for n in f.graph.apply_nodes}


@pytest.mark.parametrize("case", sorted(CASES))
@fixture_ok
@given(x=stacks(m="n"), k=st.integers(1, 3), static=st.booleans(), flip=st.booleans())
def test_rewrite_fires_and_keeps_values(backend, case, x, k, static, flip):
    build, make, gone, added = CASES[case]
    a = make(x) if make is not None else x
    if flip and make is general:  # negative determinants: log(det) is NaN there, and stays NaN
        a = a.copy()
        a[..., 0, :] *= -1
    b = np.random.default_rng(a.size).uniform(-1, 1, a.shape[:-1] + (k,)).astype(a.dtype)
    xs = [declare(a, static), declare(b, static)]
    out = build(*xs)
    f = compile_on(backend, xs, [out])
    rule = case.split("/")[0]
    assert f.rewrite_report()["applied"].get(rule, 0) >= 1, f.rewrite_report()
    assert not (gone & _ops(f)) and added <= _ops(f), _ops(f)
    plain = sg.function(xs, [out], mode=Mode().excluding(rule))
    assert gone <= _ops(plain)
    tol = dict(rtol=2e-3, atol=2e-4) if a.dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(f(a, b)[0], plain(a, b)[0], **tol)


def test_rules_are_named_and_can_be_excluded():
    names = rewrite_names()
    assert all(r in names for r in RULES)
    a, b = T.dmatrix("a"), T.dmatrix("b")
    f = sg.function([a, b], T.dot(L.inv(a), b), mode=Mode().excluding("inv_matmul_to_solve"))
    assert "MatrixInverse" in _ops(f)
    assert "inv_matmul_to_solve" in str(sg.function([a, b], T.dot(L.inv(a), b)).rewrite_report())


def test_look_alikes_are_left_alone():
    a, b = T.dmatrix("a"), T.dmatrix("b")
    inv = L.inv(a)
    f = sg.function([a, b], [T.dot(inv, b), inv])  # inv(A) is needed anyway: a solve would add work
    assert "inv_matmul_to_solve" not in f.rewrite_report()["applied"]
    c = L.cholesky(a)
    cases = [
        L.solve(a, b, assume_a="gen") + c.sum(),  # a general solve may see a non-symmetric A
        L.solve(a, b, assume_a="pos", lower=False) + c.sum(),  # reads the other triangle
        L.solve(a, b, assume_a="sym", lower=True, on_error="nan") + L.cholesky(a, on_error="nan").sum(),
        L.solve_triangular(c.T, L.solve_triangular(c, b, lower=True), lower=True),  # wrong triangle
        L.solve_triangular(c, L.solve_triangular(c, b, lower=True), lower=True),  # L^-1 L^-1 b
        L.solve_triangular(c.T, L.solve_triangular(c, b, lower=True, unit_diagonal=True), lower=False),
    ]
    for out in cases:
        applied = sg.function([a, b], out).rewrite_report()["applied"]
        assert not {"solve_reuses_cholesky", "cholesky_solves_to_cho_solve"} & set(applied), (out, applied)
    for out in [L.solve(a, b), L.inv(a) + L.solve(a, b, assume_a="pos"), L.slogdet(a)[1] + L.det(a)]:
        assert "share_lu_factorization" not in sg.function([a, b], out, on_unused_input="ignore").rewrite_report()[
            "applied"]  # one LU user only: nothing to share


def test_shared_lu_keeps_errors_and_singular_slogdet():
    a, b = T.dmatrix("a"), T.dmatrix("b")
    sign, logabs = L.slogdet(a)
    f = sg.function([a, b], [L.solve(a, b) + L.solve(a.T, b), sign, logabs])
    assert f.rewrite_report()["applied"].get("share_lu_factorization") == 3  # two solves and slogdet
    with pytest.raises(np.linalg.LinAlgError, match="(?s)LUSolve.*singular.*test_linalg_rewrites.py"):
        f(np.ones((2, 2)), np.ones((2, 1)))
    g = sg.function([a], [sign, logabs, L.inv(a, on_error="nan")])
    with np.errstate(all="ignore"):
        s, la, inv = g(np.ones((2, 2)))
    assert s == 0 and la == -np.inf and np.all(np.isnan(inv))


def test_log_det_keeps_nan_and_minus_inf():
    a = T.dmatrix("a")
    f = sg.function([a], T.log(L.det(a)))
    assert "log_det_to_slogdet" in f.rewrite_report()["applied"]
    with np.errstate(all="ignore"):
        assert np.isnan(f(np.diag([-1.0, 2.0]))) and f(np.zeros((2, 2))) == -np.inf
    big = np.eye(400) * 10.0  # det overflows float64; log|det| does not
    np.testing.assert_allclose(f(big), 400 * np.log(10.0))
