"""T.linalg forward values against numpy/scipy, matrix by matrix, on hypothesis batches of
well-conditioned matrices (both dtypes, static and unknown shapes, both backends); eigen, QR
and SVD results compared through invariants (signs and order of vectors are free); static types
and infer_shape; dtype rules and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from linalg_cases import TOL, compile_on, declare, fixture_ok, general, per_matrix, spd, stacks
from test_reduction import check_infer_shape

L = T.linalg


def _rhs(data, a: np.ndarray, kind: str) -> np.ndarray:
    """A right-hand side for ``a``: one vector, a stack of vectors, or a stack of matrices whose
    batch is a's, none, or a's with length-1 axes (broadcast)."""
    n, batch = a.shape[-1], a.shape[:-2]
    if kind == "vector":
        shape = (n,)
    else:
        b_batch = data.draw(st.sampled_from([batch, (), tuple(1 if i % 2 else s for i, s in enumerate(batch))]))
        shape = b_batch + ((n,) if kind == "vectors" else (n, data.draw(st.integers(1, 3))))
    return np.random.default_rng(a.size).uniform(-1, 1, shape).astype(a.dtype)


def _junk_triangle(a: np.ndarray, keep_lower: bool) -> np.ndarray:
    """``a`` with its other triangle overwritten: an op that reads only one triangle must not care."""
    n = a.shape[-1]
    keep = np.tril(np.ones((n, n), bool)) if keep_lower else np.triu(np.ones((n, n), bool))
    return np.where(keep, a, np.float32(7.5)).astype(a.dtype)


def _check(got, expected, dtype) -> None:
    np.testing.assert_allclose(got, expected, **TOL[np.dtype(dtype).name])


def _run(backend, static, values, build):
    """Compile ``build(*vars)`` for symbolic inputs declared from ``values``; its outputs, run."""
    xs = [declare(v, static) for v in values]
    outs = build(*xs)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    got = compile_on(backend, xs, outs, on_unused_input="ignore")(*values)
    for o, g in zip(outs, got):
        assert o.dtype == np.asarray(g).dtype
        assert all(s is None or s == gs for s, gs in zip(o.type.shape, np.shape(g))), (o.type, np.shape(g))
    return outs, got


@pytest.mark.parametrize("kind", ["vector", "vectors", "matrix"])
@pytest.mark.parametrize("assume_a", ["gen", "sym", "pos"])
@fixture_ok
@given(data=st.data(), static=st.booleans())
def test_solve_matches_scipy(backend, assume_a, kind, data, static):
    x = data.draw(stacks(m="n"))
    lower = data.draw(st.booleans())
    a = general(x) if assume_a == "gen" else _junk_triangle(spd(x), lower)
    full = general(x) if assume_a == "gen" else spd(x)
    b = _rhs(data, a, kind)
    b_ndim = 1 if kind != "matrix" else None
    _, (got,) = _run(backend, static, [a, b], lambda A, B: L.solve(A, B, assume_a=assume_a, lower=lower,
                                                                    b_ndim=b_ndim))
    cores = [2, 1 if kind != "matrix" else 2]
    _check(got, per_matrix(lambda m, v: np.linalg.solve(m, v), full, b, cores=cores), a.dtype)


@pytest.mark.parametrize("kind", ["vector", "matrix"])
@fixture_ok
@given(data=st.data(), lower=st.booleans(), trans=st.sampled_from([0, 1, "T"]), unit=st.booleans(),
       static=st.booleans())
def test_solve_triangular_reads_one_triangle(backend, kind, data, lower, trans, unit, static):
    x = data.draw(stacks(m="n"))
    a = _junk_triangle(general(x), lower)
    b = _rhs(data, a, kind)
    _, (got,) = _run(backend, static, [a, b], lambda A, B: L.solve_triangular(A, B, trans=trans, lower=lower,
                                                                               unit_diagonal=unit))
    tri = np.tril(a) if lower else np.triu(a)
    if unit:
        tri = tri - np.diagonal(tri, axis1=-2, axis2=-1)[..., None] * np.eye(a.shape[-1]) + np.eye(a.shape[-1])
    if trans in (1, "T"):
        tri = np.swapaxes(tri, -1, -2)
    _check(got, per_matrix(np.linalg.solve, tri, b, cores=[2, 1 if kind == "vector" else 2]), a.dtype)


@fixture_ok
@given(data=st.data(), lower=st.booleans(), static=st.booleans())
def test_cho_solve_and_cholesky_match_scipy(backend, data, lower, static):
    x = data.draw(stacks(m="n"))
    a = spd(x)
    b = _rhs(data, a, "matrix")
    factor = per_matrix(lambda m: sla.cholesky(m, lower=lower), a).astype(a.dtype)
    _, (c, sol) = _run(backend, static, [_junk_triangle(a, lower), b],
                       lambda A, B: [L.cholesky(A, lower=lower), L.cho_solve((L.cholesky(A, lower=lower), lower), B)])
    _check(c, factor, a.dtype)
    _check(sol, per_matrix(np.linalg.solve, a, b), a.dtype)
    _, (sol2,) = _run(backend, static, [_junk_triangle(factor, lower), b],
                      lambda C, B: L.cho_solve((C, lower), B))  # the factor's other triangle is never read
    _check(sol2, per_matrix(np.linalg.solve, a, b), a.dtype)


@fixture_ok
@given(x=stacks(m="n"), static=st.booleans(), flip=st.booleans())
def test_inv_det_slogdet_match_scipy(backend, x, static, flip):
    a = general(x)
    if flip:  # negative determinants too
        a[..., 0, :] *= -1
    _, (inv, det, sign, logdet) = _run(backend, static, [a], lambda A: [L.inv(A), L.det(A), *L.slogdet(A)])
    _check(inv, per_matrix(sla.inv, a), a.dtype)
    ref_det = per_matrix(sla.det, a)
    np.testing.assert_allclose(det, ref_det, rtol=TOL[a.dtype.name]["rtol"] * 10)
    np.testing.assert_array_equal(sign, np.sign(ref_det))
    _check(logdet, np.log(np.abs(ref_det)), a.dtype)


@fixture_ok
@given(x=stacks(m="n"), static=st.booleans(), lower=st.booleans())
def test_eigh_invariants(backend, x, static, lower):
    sym = (x + np.swapaxes(x, -1, -2)).astype(x.dtype)
    uplo = "L" if lower else "U"
    _, (w, v, w2) = _run(backend, static, [_junk_triangle(sym, lower)],
                         lambda A: [*L.eigh(A, UPLO=uplo), L.eigvalsh(A, UPLO=uplo)])
    ref_w = per_matrix(lambda m: sla.eigh(m, eigvals_only=True), sym)
    _check(w, ref_w, x.dtype)
    _check(w2, ref_w, x.dtype)
    vt = np.swapaxes(v, -1, -2)
    _check((v * w[..., None, :]) @ vt, sym, x.dtype)  # V diag(w) V^T = A
    _check(vt @ v, np.broadcast_to(np.eye(x.shape[-1]), v.shape), x.dtype)


@pytest.mark.parametrize("mode", ["reduced", "complete", "r"])
@fixture_ok
@given(x=stacks(), static=st.booleans())
def test_qr_invariants(backend, mode, x, static):
    _, got = _run(backend, static, [x], lambda A: L.qr(A, mode=mode))
    ref_r = per_matrix(lambda m: sla.qr(m, mode="r" if mode != "complete" else "full")[-1], x)
    r = got[-1]
    _check(np.abs(np.diagonal(r, axis1=-2, axis2=-1)), np.abs(np.diagonal(ref_r, axis1=-2, axis2=-1)), x.dtype)
    _check(np.tril(r, -1), np.zeros_like(r), x.dtype)
    if mode != "r":
        q = got[0]
        _check(q @ r, x, x.dtype)
        _check(np.swapaxes(q, -1, -2) @ q, np.broadcast_to(np.eye(q.shape[-1]), q.shape[:-2] + (q.shape[-1],) * 2),
               x.dtype)


@pytest.mark.parametrize("full", [True, False])
@fixture_ok
@given(x=stacks(), static=st.booleans())
def test_svd_invariants(backend, full, x, static):
    _, (u, s, vh, s2) = _run(backend, static, [x], lambda A: [*L.svd(A, full_matrices=full),
                                                                L.svd(A, compute_uv=False)])
    ref_s = per_matrix(sla.svdvals, x)
    _check(s, ref_s, x.dtype)
    _check(s2, ref_s, x.dtype)
    k = s.shape[-1]
    _check((u[..., :, :k] * s[..., None, :]) @ vh[..., :k, :], x, x.dtype)
    for q in (u, np.swapaxes(vh, -1, -2)):
        _check(np.swapaxes(q, -1, -2) @ q, np.broadcast_to(np.eye(q.shape[-1]), q.shape[:-2] + (q.shape[-1],) * 2),
               x.dtype)


@fixture_ok
@given(x=stacks(), data=st.data(), static=st.booleans())
def test_pinv_and_lstsq_match_numpy(x, data, static):
    backend = "numpy"
    x = (x + (max(x.shape[-2:]) + 1) * np.eye(*x.shape[-2:])).astype(x.dtype)  # full rank, well-conditioned
    b = np.random.default_rng(x.size).uniform(-1, 1, x.shape[:-1] + (data.draw(st.integers(1, 3)),)).astype(x.dtype)
    _, (p, sol, res, rank, s) = _run(backend, static, [x, b], lambda A, B: [L.pinv(A), *L.lstsq(A, B)])
    tol = dict(rtol=1e-3, atol=1e-3) if x.dtype == np.float32 else TOL["float64"]
    np.testing.assert_allclose(p, per_matrix(sla.pinv, x), **tol)
    ref_x, ref_rank, ref_s = per_matrix(lambda m, v: _lstsq(m, v), x, b)
    np.testing.assert_allclose(sol, ref_x, **tol)
    np.testing.assert_allclose(s, ref_s, **tol)
    np.testing.assert_array_equal(rank, ref_rank)
    resid = b - per_matrix(lambda m, v: m @ v, x, ref_x)
    np.testing.assert_allclose(res, (resid.astype(np.float64) ** 2).sum(-2), **tol)


def _lstsq(a, b):
    x, _, rank, s = np.linalg.lstsq(a, b, rcond=None)  # residuals: empty for wide a (ours are computed)
    return x, rank, s


@fixture_ok
@given(x=stacks(m="n", max_side=3), power=st.integers(-3, 4), static=st.booleans())
def test_matrix_power_matches_numpy(x, power, static):
    backend = "numpy"
    a = general(x) / x.shape[-1]
    _, (got,) = _run(backend, static, [a], lambda A: L.matrix_power(A, power))
    _check(got, per_matrix(lambda m: np.linalg.matrix_power(m, power), a), a.dtype)


MATRIX_ORDS = [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]
VECTOR_ORDS = [None, 1, 2, 3, 0.5, 0, np.inf, -np.inf]


@fixture_ok
@given(x=stacks(), data=st.data())
def test_norm_matches_numpy(x, data):
    backend = "numpy"
    nd = x.ndim
    if data.draw(st.booleans()):
        ord_, axis = data.draw(st.sampled_from(MATRIX_ORDS)), tuple(data.draw(st.permutations(range(nd)))[:2])
    else:
        ord_, axis = data.draw(st.sampled_from(VECTOR_ORDS)), data.draw(st.integers(-nd, nd - 1))
    keepdims = data.draw(st.booleans())
    _, (got,) = _run(backend, False, [x], lambda A: L.norm(A, ord_, axis=axis, keepdims=keepdims))
    expected = np.linalg.norm(x.astype(np.float64), ord_, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(got, expected, rtol=1e-4 if x.dtype == np.float32 else 1e-10, atol=1e-5)


def test_composed_functions_on_each_backend(backend):
    """pinv/lstsq, matrix_power and norm are graphs of other ops (hypothesis-tested on numpy above):
    one fixed case each on every backend."""
    v = np.arange(6.0).reshape(2, 3) - 2.5
    x, sq = T.dmatrix("x"), T.dmatrix("sq")
    outs = [L.norm(x), L.norm(x, "nuc"), L.norm(x, np.inf), L.norm(x, keepdims=True), L.norm(x, 3, axis=1),
            L.pinv(x), L.lstsq(x.T, sq[:3, :1])[0], L.matrix_power(sq, -2), L.matrix_power(sq, 3)]
    m = general(np.arange(9.0).reshape(3, 3) / 9)
    got = compile_on(backend, [x, sq], outs)(v, m)
    expected = [np.linalg.norm(v), np.linalg.norm(v, "nuc"), np.linalg.norm(v, np.inf),
                np.linalg.norm(v, keepdims=True), np.linalg.norm(v, 3, axis=1), np.linalg.pinv(v),
                np.linalg.lstsq(v.T, m[:, :1], rcond=None)[0], np.linalg.matrix_power(m, -2),
                np.linalg.matrix_power(m, 3)]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    with pytest.raises(GraphTypeError, match="1-d or 2-d"):
        L.norm(T.dtensor3(), 2)
    with pytest.raises(ValueError, match="invalid matrix norm"):
        L.norm(x, 3, axis=(0, 1))


@fixture_ok
@given(x=stacks(), k=st.integers(-2, 2))
def test_structure_matches_numpy(x, k):
    xs = declare(x, False)
    f = sg.function([xs], [T.tril(xs, k), T.triu(xs, k), L.trace(xs, k), L.diagonal(xs, k), L.matrix_transpose(xs),
                           T.eye(x.shape[-2], x.shape[-1], k=k, dtype=x.dtype)])
    tril, triu, trace, diag, xt, eye = f(x)
    np.testing.assert_array_equal(tril, np.tril(x, k))
    np.testing.assert_array_equal(triu, np.triu(x, k))
    np.testing.assert_allclose(trace, np.trace(x, k, axis1=-2, axis2=-1), rtol=1e-5)
    np.testing.assert_array_equal(diag, np.diagonal(x, k, axis1=-2, axis2=-1))
    np.testing.assert_array_equal(xt, np.swapaxes(x, -1, -2))
    np.testing.assert_array_equal(eye, np.eye(x.shape[-2], x.shape[-1], k, dtype=x.dtype))


def test_infer_shape_of_every_op():
    rng = np.random.default_rng(0)
    a, tall, b = general(rng.uniform(-1, 1, (2, 3, 3))), rng.uniform(-1, 1, (2, 5, 3)), rng.uniform(-1, 1, (3, 2))
    cases = [(lambda A, B: L.solve(A, B), [a, b]), (lambda A, B: L.solve_triangular(A, B), [a, b]),
             (lambda A, B: L.cho_solve((A, True), B), [a, b]), (lambda A, B: L.solve(A, B), [a, b[:, 0]]),
             (lambda A, B: L.solve(A, B, b_ndim=1), [a, b[None, :, 0]])]
    for build, values in cases:
        check_infer_shape(build(*[declare(v, False) for v in values]), values)
    for fn in (L.inv, L.cholesky, L.det, L.adjugate, lambda A: L.slogdet(A)[1], lambda A: L.eigh(A)[0],
               lambda A: L.eigh(A)[1], L.eigvalsh):
        check_infer_shape(fn(declare(spd(a), False)), [spd(a)])
    for x in (tall, np.swapaxes(tall, -1, -2)):
        for out in [*L.qr(declare(x, False)), *L.qr(declare(x, False), mode="complete"), L.qr(declare(x, False), "r"),
                    *L.svd(declare(x, False)), *L.svd(declare(x, False), full_matrices=False),
                    L.svd(declare(x, False), compute_uv=False), L.pinv(declare(x, False))]:
            check_infer_shape(out, [x])


def test_static_shapes_and_dtypes():
    a, b = T.tensor("float32", (4, 3, 3)), T.tensor("float64", (1, 3, 2))
    x = L.solve(a, b)
    assert x.dtype == "float64" and x.type.shape == (4, 3, 2)
    assert L.solve(a, T.fvector()).type.shape == (4, 3)
    assert L.inv(T.imatrix()).dtype == "float64"  # integers compute in float64, as numpy.linalg
    assert L.cholesky(T.tensor("float16", (2, 2))).dtype == "float32"  # LAPACK has no half precision
    u, s, vh = L.svd(T.tensor("float32", (5, 3)), full_matrices=False)
    assert (u.type.shape, s.type.shape, vh.type.shape) == ((5, 3), (3,), (3, 3))
    q, r = L.qr(T.tensor("float64", (2, 6)), mode="complete")
    assert (q.type.shape, r.type.shape) == ((2, 2), (2, 6))
    assert L.pinv(T.tensor("float64", (2, 6))).type.shape == (6, 2)
    assert L.slogdet(T.dtensor3())[1].ndim == 1
    np.testing.assert_allclose(L.inv(T.constant(np.array([[2, 0], [0, 4]]))).eval(), [[0.5, 0], [0, 0.25]])


def test_bad_input_is_rejected_at_build_time():
    with pytest.raises(ShapeError, match="square"):
        L.cholesky(T.tensor("float64", (3, 4)))
    with pytest.raises(ShapeError, match="right-hand side has 4 rows"):
        L.solve(T.tensor("float64", (3, 3)), T.tensor("float64", (4,)))
    with pytest.raises(ShapeError, match="batch axes"):
        L.solve(T.tensor("float64", (2, 3, 3)), T.tensor("float64", (5, 3, 1)))
    with pytest.raises(GraphTypeError, match="at least 2 dimensions"):
        L.inv(T.dvector())
    with pytest.raises(GraphTypeError, match="complex"):
        L.det(T.zmatrix())
    with pytest.raises(ValueError, match="assume_a"):
        L.solve(T.dmatrix(), T.dvector(), assume_a="banded")
    with pytest.raises(ValueError, match="on_error"):
        L.inv(T.dmatrix(), on_error="ignore")
    with pytest.raises(GraphTypeError, match=r"\(c, lower\)"):
        L.cho_solve(T.dmatrix(), T.dvector())
    with pytest.raises(GraphTypeError, match="integer"):
        L.matrix_power(T.dmatrix(), 1.5)


def test_non_square_values_raise_shape_error_naming_the_line(backend):
    a, b = T.dmatrix("a"), T.dmatrix("b")
    f = compile_on(backend, [a, b], [L.solve(a, b)])  # this line is named
    with pytest.raises(ShapeError, match=r"(?s)square.*test_linalg\.py.*compile_on\(backend, \[a, b\]"):
        f(np.ones((2, 3)), np.ones((2, 1)))
    with pytest.raises(ShapeError, match="right-hand side has 3 rows"):
        f(np.eye(2), np.ones((3, 1)))


def test_theano_aliases():
    assert T.nlinalg.matrix_inverse is L.inv and T.nlinalg.det is L.det and T.nlinalg.eigh is L.eigh
    assert T.slinalg.cholesky is L.cholesky and T.slinalg.solve is L.solve
    a = T.dmatrix("a")
    v = spd(np.arange(9.0).reshape(3, 3) / 10)
    f = sg.function([a], [T.nlinalg.matrix_inverse(a), T.slinalg.cholesky(a), T.nlinalg.extract_diag(a),
                          T.nlinalg.alloc_diag(T.nlinalg.extract_diag(a))])
    inv, chol, diag, dmat = f(v)
    np.testing.assert_allclose(inv, np.linalg.inv(v))
    np.testing.assert_allclose(chol, np.linalg.cholesky(v))
    np.testing.assert_array_equal(diag, np.diag(v))
    np.testing.assert_array_equal(dmat, np.diag(np.diag(v)))
