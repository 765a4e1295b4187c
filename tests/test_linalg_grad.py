"""T.linalg gradients: finite differences (verify_grad) on hypothesis batches, through symmetric
parametrisations A = X X^T + n I for the ops that read one triangle; JAX's gradients from the
committed fixture (float64, 1e-10, made by tests/fixtures/make_linalg_jax.py); second order
(gradients of gradients, and the Hessian of logdet through Rop); the symmetric convention and
repeated eigenvalues; det at a singular matrix."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GradientError
from symgraph.testing import verify_grad
from linalg_cases import fixture_ok, stacks

L = T.linalg
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "linalg_jax.npz")
# finite differences cost two calls per input element: a fifth of the profile's examples
few = settings(fixture_ok, max_examples=max(1, settings.default.max_examples // 5))


def eye_like(x):
    return T.eye(x.shape[-1], dtype=x.dtype)


def spd(x):
    """X X^T + n I (symmetric positive definite) from any square X: the symmetric parametrisation."""
    return T.matmul(x, L.matrix_transpose(x)) + T.cast(x.shape[-1], x.dtype) * eye_like(x)


def shifted(x):
    """x + (n + 1) I: nonsingular for entries in [-1, 1]."""
    return x + T.cast(x.shape[-1] + 1, x.dtype) * eye_like(x)


SQUARE_CASES = {
    "cholesky": lambda x: L.cholesky(spd(x)),
    "cholesky_upper": lambda x: L.cholesky(spd(x), lower=False),
    "inv": lambda x: L.inv(shifted(x)),
    "det": lambda x: L.det(x),
    "slogdet": lambda x: L.slogdet(shifted(x))[1],
    "eigh": lambda x: L.eigh(spd(x))[0] + (L.eigh(spd(x))[1] ** 2).sum(-1),
    "eigvalsh": lambda x: L.eigvalsh(spd(x), UPLO="U"),
    "adjugate": lambda x: L.adjugate(shifted(x)),  # its own derivative divides by det
}
RHS_CASES = {
    "solve_gen": lambda x, b: L.solve(shifted(x), b),
    "solve_sym": lambda x, b: L.solve(spd(x), b, assume_a="sym", lower=True),
    "solve_pos": lambda x, b: L.solve(spd(x), b, assume_a="pos"),
    "solve_triangular": lambda x, b: L.solve_triangular(shifted(x), b, lower=True),
    "solve_triangular_trans": lambda x, b: L.solve_triangular(shifted(x), b, trans=1),
    "solve_triangular_unit": lambda x, b: L.solve_triangular(x, b, lower=True, unit_diagonal=True),
    "cho_solve": lambda x, b: L.cho_solve((L.cholesky(spd(x)), True), b),
    "cho_solve_upper": lambda x, b: L.cho_solve((shifted(x), False), b),
}
RECT_CASES = {
    "qr": lambda x: (L.qr(x)[0] ** 3).sum() + (L.qr(x)[1] ** 3).sum(),
    "qr_r": lambda x: L.qr(x, mode="r"),
    "svd_values": lambda x: L.svd(x, compute_uv=False),
    "svd_vectors": lambda x: sum((q ** 4).sum() for q in L.svd(x, full_matrices=False)[::2]),
    "pinv": lambda x: L.pinv(x),
}


def _well_separated(x: np.ndarray) -> np.ndarray:
    """x with an added diagonal ramp on its leading square part (distinct, nonzero singular values)
    and a small dense generic part: LAPACK's Householder QR flips signs where a column below the
    diagonal is exactly zero, a kink finite differences would straddle."""
    k = min(x.shape[-2:])
    ramp = np.zeros(x.shape[-2:])
    ramp[range(k), range(k)] = 2.0 * np.arange(1, k + 1)
    generic = np.random.default_rng(x.size).uniform(-0.1, 0.1, x.shape)
    return (x + ramp + generic).astype(np.float64)


@pytest.mark.parametrize("name", sorted(SQUARE_CASES))
@few
@given(x=stacks(m="n", dtypes=("float64",), max_side=3))
def test_square_gradients_by_finite_differences(name, x):
    if name in ("eigh", "eigvalsh"):  # (eigvalsh was left out: make fuzz drew X = I, eigenvalues 3, 3)
        x = _well_separated(x)  # distinct eigenvalues of X X^T + n I
    verify_grad(SQUARE_CASES[name], [x], rng=0)


@pytest.mark.parametrize("name", sorted(RHS_CASES))
@few
@given(x=stacks(m="n", dtypes=("float64",), max_side=3), k=st.integers(0, 2))
def test_solve_gradients_by_finite_differences(name, x, k):
    shape = x.shape[:-1] + ((k,) if k else ())  # k = 0: a stack of vectors (b_ndim=1)
    b = np.random.default_rng(x.size).uniform(-1, 1, shape)
    fn = RHS_CASES[name]
    build = (lambda a, v: fn(a, v)) if k else (lambda a, v: _with_vectors(fn, a, v))
    verify_grad(build, [x, b], rng=0, backend="numpy")


def _with_vectors(fn, a, v):
    """The case with a stack of right-hand-side vectors: b_ndim=1 through the public functions."""
    cases = {"solve": L.solve, "solve_triangular": L.solve_triangular, "cho_solve": L.cho_solve}
    originals = dict(cases)
    try:
        for name, f in originals.items():
            setattr(L, name, lambda *args, _f=f, **kw: _f(*args, b_ndim=1, **kw))
        return fn(a, v)
    finally:
        for name, f in originals.items():
            setattr(L, name, f)


@pytest.mark.parametrize("name", sorted(RECT_CASES))
@few
@given(x=stacks(dtypes=("float64",), min_side=1, max_side=4))
def test_rectangular_gradients_by_finite_differences(name, x):
    verify_grad(RECT_CASES[name], [_well_separated(x)], rng=0)


def test_every_gradient_runs_the_same_on_each_backend(backend):
    """The gradients checked by finite differences above (on the numpy backend, where they are
    cheap), compiled as one function on each backend: on OpenCL every linalg node of the
    gradient graph is a warned host fallback and the values agree with numpy's."""
    rng = np.random.default_rng(4)
    x, b = T.dmatrix("x"), T.dmatrix("b")
    xv, bv = _well_separated(rng.uniform(-1, 1, (3, 3))), rng.uniform(-1, 1, (3, 2))
    cost = sum((fn(x) ** 2).sum() for fn in [*SQUARE_CASES.values(), *RECT_CASES.values()])
    cost = cost + sum((fn(x, b) ** 2).sum() for fn in RHS_CASES.values())
    grads = sg.grad(cost, [x, b])
    expected = sg.function([x, b], grads)(xv, bv)
    with pytest.warns(RuntimeWarning, match="runs on the host") if backend == "opencl" else _nothing():
        got = sg.function([x, b], grads, backend=backend)(xv, bv)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)


# --- JAX's gradients --------------------------------------------------------------------------

def _sq(u):
    return u * u


JAX_CASES = {
    "cholesky": lambda a: L.cholesky(a),
    "cholesky_upper": lambda a: L.cholesky(a, lower=False),
    "solve_gen": lambda a, b: L.solve(a, b),
    "solve_pos_param": lambda x, b: L.solve(T.matmul(x, x.T) + 4 * T.eye(4), b, assume_a="pos"),
    "solve_triangular_lower": lambda a, b: L.solve_triangular(a, b, lower=True),
    "solve_triangular_upper_trans": lambda a, b: L.solve_triangular(a, b, trans=1, lower=False),
    "cho_solve": lambda c, b: L.cho_solve((c, True), b),
    "inv": lambda a: L.inv(a),
    "det": lambda a: L.det(a),
    "det_singular": lambda a: L.det(a),
    "slogdet": lambda a: L.slogdet(a)[1],
    "eigh": lambda a: T.concatenate([L.eigh(a)[0][None, :], _sq(L.eigh(a)[1])]),
    "eigvalsh": lambda a: L.eigvalsh(a),
    "qr_tall": lambda a: T.concatenate([L.qr(a)[0].T, L.qr(a)[1]], axis=1),
    "qr_wide": lambda a: T.concatenate([L.qr(a)[0], L.qr(a)[1]], axis=1),
    "svd_values": lambda a: L.svd(a, compute_uv=False),
    "svd_vectors": lambda a: T.concatenate([_sq(L.svd(a, full_matrices=False)[0]),
                                            _sq(L.svd(a, full_matrices=False)[2]).T]),
    "pinv": lambda a: L.pinv(a),
    "lstsq": lambda a, b: L.lstsq(a, b)[0],
    "matrix_power": lambda a: L.matrix_power(a, 3),
    "norm_nuc": lambda a: L.norm(a, "nuc"),
    "norm_2": lambda a: L.norm(a, 2),
}


@pytest.fixture(scope="module")
def jax_figures():
    with np.load(FIXTURE, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("name", sorted(JAX_CASES))
def test_gradients_match_jax(jax_figures, name):
    ins = [jax_figures[f"{name}__in{k}"] for k in range(2) if f"{name}__in{k}" in jax_figures]
    proj = jax_figures[f"{name}__p0"]
    xs = [T.dmatrix(f"in{k}") for k in range(len(ins))]
    cost = (JAX_CASES[name](*xs) * proj).sum()
    f = sg.function(xs, [cost] + sg.grad(cost, xs))
    got = f(*ins)
    np.testing.assert_allclose(got[0], jax_figures[f"{name}__cost"], rtol=1e-10, atol=1e-10)
    for k, g in enumerate(got[1:]):
        np.testing.assert_allclose(g, jax_figures[f"{name}__grad{k}"], rtol=1e-10, atol=1e-10,
                                   err_msg=f"{name}: gradient of input {k}")


@pytest.mark.parametrize("name", ["hvp_logdet", "hvp_cholesky"])
def test_hessian_vector_products_through_rop_match_jax(jax_figures, backend, name):
    a, v = T.dmatrix("a"), T.dmatrix("v")
    cost = L.slogdet(a)[1] if name == "hvp_logdet" else (L.cholesky(a) * np.arange(16.0).reshape(4, 4)).sum()
    hv = sg.Rop(sg.grad(cost, a), a, v)
    with pytest.warns(RuntimeWarning) if backend == "opencl" else _nothing():
        f = sg.function([a, v], hv, backend=backend)
    point, direction = jax_figures[f"{name}__in0"], jax_figures[f"{name}__v"]
    got = f(point, direction)
    np.testing.assert_allclose(got, jax_figures[f"{name}__hvp"], rtol=1e-10, atol=1e-10)
    if name == "hvp_logdet":  # d^2 log det [V] = -A^-T V^T A^-T (as a gradient: -(A^-1 V A^-1)^T)
        ai = np.linalg.inv(point)
        np.testing.assert_allclose(got, -(ai @ direction @ ai).T, rtol=1e-10, atol=1e-12)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --- second order -----------------------------------------------------------------------------

SECOND_ORDER = {
    "cholesky": lambda x: (L.cholesky(spd(x)) ** 3).sum(),
    "solve_pos": lambda x: (L.solve(spd(x), T.ones_like(x[..., 0]), assume_a="pos", b_ndim=1) ** 3).sum(),
    "solve_triangular": lambda x: (L.solve_triangular(shifted(x), x, lower=True) ** 3).sum(),
    "cho_solve": lambda x: (L.cho_solve((L.cholesky(spd(x)), True), x) ** 3).sum(),
    "inv": lambda x: (L.inv(shifted(x)) ** 3).sum(),
    "det": lambda x: (L.det(shifted(x)) ** 2).sum(),
    "eigh": lambda x: (L.eigh(spd(x))[0] ** 3).sum() + (L.eigh(spd(x))[1] ** 4).sum(),
    "qr": lambda x: (L.qr(x)[0] ** 3).sum() + (L.qr(x)[1] ** 3).sum(),
    "svd": lambda x: (L.svd(x, full_matrices=False)[0] ** 4).sum() + (L.svd(x, compute_uv=False) ** 3).sum(),
    "pinv": lambda x: (L.pinv(x) ** 3).sum(),
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_gradients_of_gradients(name):
    x = _well_separated(np.random.default_rng(3).uniform(-1, 1, (2, 3, 3)))
    verify_grad(lambda v: sg.grad(SECOND_ORDER[name](v), v), [x], rng=0)


# --- conventions ----------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["cholesky", "eigvalsh", "solve_pos"])
def test_symmetric_convention(op):
    """The gradient with respect to the matrix itself is symmetric, and matches finite differences
    along symmetric directions (the only ones the op is defined on)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 4))
    a_val, p, direction = x @ x.T + 4 * np.eye(4), rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    direction = direction + direction.T
    a = T.dmatrix("a")
    out = {"cholesky": lambda: L.cholesky(a), "eigvalsh": lambda: L.eigvalsh(a)[:, None] * T.ones((1, 4)),
           "solve_pos": lambda: L.solve(a, T.eye(4), assume_a="pos")}[op]()
    cost = (out * p).sum()
    f_cost, f_grad = sg.function([a], cost), sg.function([a], sg.grad(cost, a))
    g = f_grad(a_val)
    np.testing.assert_allclose(g, g.T, rtol=1e-12, atol=1e-14)
    eps = 1e-6
    numeric = (f_cost(a_val + eps * direction) - f_cost(a_val - eps * direction)) / (2 * eps)
    np.testing.assert_allclose((g * direction).sum(), numeric, rtol=1e-6)


def test_eigh_with_repeated_eigenvalues():
    """Exactly repeated eigenvalues: costs of the eigenvalues alone keep their exact gradient; a
    cost of the eigenvectors, which have no derivative there, gets non-finite values (never a
    silently wrong finite number)."""
    a = T.dmatrix("a")
    w, v = L.eigh(a)
    point = np.diag([1.0, 1.0, 2.0])
    for cost, expected in [((w ** 2).sum(), 2 * point), (T.log(w).sum(), np.linalg.inv(point)),
                           (L.eigvalsh(a)[-1], np.diag([0.0, 0.0, 1.0]))]:
        g = sg.function([a], sg.grad(cost, a))(point)
        np.testing.assert_allclose(g, expected, atol=1e-12)
    p = np.random.default_rng(1).normal(size=(3, 3))
    with np.errstate(all="ignore"):
        g = sg.function([a], sg.grad((v * p).sum() + w.sum(), a))(point)
    assert not np.all(np.isfinite(g))
    g = sg.function([a], sg.grad((v * p).sum(), a))(np.diag([1.0, 2.0, 3.0]))
    assert np.all(np.isfinite(g))


def test_det_gradient_at_a_singular_matrix_is_the_adjugate():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(4, 3)) @ rng.normal(size=(3, 4))  # rank 3
    a = T.dmatrix("a")
    g = sg.function([a], sg.grad(L.det(a), a))(m)
    cof = np.array([[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(m, i, 0), j, 1)) for j in range(4)]
                    for i in range(4)])  # the cofactor matrix = adj(A)^T
    np.testing.assert_allclose(g, cof, rtol=1e-9, atol=1e-12)
    assert np.abs(g).max() > 1e-3  # a genuinely nonzero gradient, not det * inv = 0 * inf


def test_undefined_gradients_raise():
    a = T.dmatrix("a")
    with pytest.raises(GradientError, match="full_matrices=False"):
        sg.grad(L.svd(a)[0].sum(), a)
    with pytest.raises(GradientError, match="mode='reduced'"):
        sg.grad(L.qr(a, mode="complete")[0].sum(), a)
    sq = T.tensor("float64", (3, 3))
    sg.grad(L.svd(sq)[0].sum() + L.qr(T.tensor("float64", (2, 3)), mode="complete")[0].sum(), sq,
            disconnected_inputs="ignore")  # square / wide: defined


def test_slogdet_gradient_at_a_singular_matrix_raises_with_context():
    a = T.dmatrix("a")
    g = sg.function([a], sg.grad(L.slogdet(a)[1], a))
    with pytest.raises(np.linalg.LinAlgError, match="(?s)MatrixInverse.*singular.*test_linalg_grad.py"):
        g(np.ones((2, 2)))


def test_float32_gradients_stay_float32_and_agree_with_float64():
    rng = np.random.default_rng(0)
    xv = _well_separated(rng.uniform(-1, 1, (2, 3, 3)))
    bv = rng.uniform(-1, 1, (2, 3, 2))
    results = {}
    for dtype in ("float32", "float64"):
        x, b = T.tensor(dtype, (None,) * 3), T.tensor(dtype, (None,) * 3)
        outs = [fn(x) for fn in [*SQUARE_CASES.values(), *RECT_CASES.values()]]
        outs += [fn(x, b) for fn in RHS_CASES.values()]
        grads = [g for o in outs for g in sg.grad((o ** 2).sum(), [x, b], disconnected_inputs="ignore")]
        results[dtype] = sg.function([x, b], grads)(xv.astype(dtype), bv.astype(dtype))
    for g32, g64 in zip(results["float32"], results["float64"]):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=2e-3, atol=2e-3 * max(1.0, np.abs(g64).max()))
