"""Theano's array constructors and shape helpers against numpy, on every backend: eye, tri, tril,
triu, diag, mgrid/ogrid, shape_padleft/right/axis, join, the old stack(a, b, c), stacklists,
specify_shape, batched_dot, batched_tensordot, round's two modes, clip with symbolic bounds, mod,
isnan/isinf; gradients by finite differences (verify_grad)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.testing import check_infer_shape, verify_grad
from helpers import declare, perform_eval

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large], max_examples=15)


def check(backend: str, fn, values: list, expected, rtol: float = 1e-6) -> None:
    """Compiled on ``backend`` and through perform, fn equals numpy's ``expected`` (value and dtype);
    the static shape fits and every node's infer_shape agrees."""
    xs = [declare(np.asarray(v), static=False) for v in values]
    out = fn(*xs)
    got = sg.function(xs, out, backend=backend, on_unused_input="ignore")(*values)
    for r in (got, perform_eval(xs, out, values)):
        assert np.asarray(r).dtype == np.asarray(expected).dtype
        np.testing.assert_allclose(r, expected, rtol=rtol, atol=rtol)
    assert all(s is None or s == e for s, e in zip(out.type.shape, np.shape(expected)))
    check_infer_shape(fn, xs, values, warn=False)


matrices = hnp.arrays("float64", hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4),
                      elements=st.floats(-3, 3))


# ---------------------------------------------------------------- eye, tri, tril, triu, diag
@fixture_ok
@given(st.integers(0, 4), st.integers(0, 4), st.integers(-4, 4))
def test_eye_and_tri_match_numpy(backend, n, m, k):
    nn, mm = np.array(n), np.array(m)
    check(backend, lambda a, b: T.eye(a, b, k), [nn, mm], np.eye(n, m, k))
    check(backend, lambda a, b: T.tri(a, b, k, dtype="int32"), [nn, mm], np.tri(n, m, k, dtype="int32"))
    check(backend, lambda a: T.eye(a), [nn], np.eye(n))


@fixture_ok
@given(matrices, st.integers(-3, 3))
def test_tril_triu_match_numpy_with_gradients(backend, x, k):
    check(backend, lambda v: T.tril(v, k), [x], np.tril(x, k))
    check(backend, lambda v: T.triu(v, k), [x], np.triu(x, k))


def test_tril_triu_diag_gradients():
    x = np.arange(12.0).reshape(3, 4) / 7
    verify_grad(lambda v: T.tril(v, 1), [x])
    verify_grad(lambda v: T.triu(v, -1), [x])
    for k in (-1, 0, 2):
        verify_grad(lambda v: T.diag(v, k), [x])
        verify_grad(lambda v: T.diag(v, k), [np.arange(3.0)])


@fixture_ok
@given(st.data())
def test_diag_matches_numpy(backend, data):
    v = data.draw(hnp.arrays("float64", hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=4),
                             elements=st.floats(-3, 3)))
    k = data.draw(st.integers(-3, 3))
    check(backend, lambda x: T.diag(x, k), [v], np.diag(v, k))


def test_diag_rejects_other_ranks():
    with pytest.raises(GraphTypeError, match="vector or a matrix"):
        T.diag(T.dtensor3())


def test_mgrid_and_ogrid(backend):
    a = T.mgrid[0:5, 1:7:2]
    b = T.ogrid[0:5, 0:3]
    got = sg.function([], list(a) + list(b), backend=backend)()
    for g, e in zip(got, list(np.mgrid[0:5, 1:7:2]) + list(np.ogrid[0:5, 0:3])):
        np.testing.assert_array_equal(g, e)
    n = T.lscalar("n")
    np.testing.assert_array_equal(sg.function([n], T.mgrid[0:n][0])(4), np.arange(4))


# ---------------------------------------------------------------- padding, joining, stacking
def test_shape_pad_helpers(backend):
    x = np.arange(6.0).reshape(2, 3)
    check(backend, lambda v: T.shape_padleft(v, 2), [x], x[None, None])
    check(backend, lambda v: T.shape_padright(v), [x], x[:, :, None])
    for axis in (0, 1, 2, -1, -3):
        check(backend, lambda v: T.shape_padaxis(v, axis), [x], np.expand_dims(x, axis))
    assert T.shape_padaxis(T.tensor3(), 1).broadcastable == (False, True, False, False)
    with pytest.raises(IndexError, match="out of range"):
        T.shape_padaxis(T.matrix(), 3)
    verify_grad(lambda v: T.shape_padaxis(v, 1) * 2, [x])


def test_join_and_the_old_stack_form(backend):
    a, b = np.ones((2, 3)), np.arange(6.0).reshape(2, 3)
    check(backend, lambda x, y: T.join(1, x, y), [a, b], np.concatenate([a, b], 1))
    check(backend, lambda x, y: T.join(T.constant(0), [x, y]), [a, b], np.concatenate([a, b], 0))
    check(backend, lambda x, y: T.stack(x, y, x), [a, b], np.stack([a, b, a]))
    check(backend, lambda x, y: T.stack([x, y], 2), [a, b], np.stack([a, b], 2))
    s = T.scalars("abc")
    assert T.stack(*s).ndim == 1 and T.stack(s, axis=0).ndim == 1
    with pytest.raises(TypeError, match="known when the graph is built"):
        T.join(T.lscalar(), T.matrix(), T.matrix())
    verify_grad(lambda x, y: T.join(0, x, y), [a, b])


def test_stacklists(backend):
    a, b, c, d = T.scalars("abcd")
    f = sg.function([a, b, c, d], T.stacklists([[a, b], [c, d]]), backend=backend)
    np.testing.assert_array_equal(f(1, 2, 3, 4), [[1, 2], [3, 4]])
    m = T.matrices("wxyz")
    g = sg.function(m, T.stacklists([[m[0], m[1]], [m[2], m[3]]]), backend=backend)
    assert g(*[np.ones((4, 4))] * 4).shape == (2, 2, 4, 4)


def test_specify_shape_pins_static_shape_and_checks_at_run_time(backend):
    x = T.dmatrix("x")
    y = T.specify_shape(x, (2, None))
    assert y.type.shape == (2, None)
    f = sg.function([x], y * 2, backend=backend)
    np.testing.assert_array_equal(f(np.ones((2, 5))), np.full((2, 5), 2.0))
    with pytest.raises(ShapeError, match="specified 2"):
        f(np.ones((3, 5)))
    n = T.lscalar("n")
    g = sg.function([x, n], T.specify_shape(x, (n, 3)).sum(), backend=backend)
    assert g(np.ones((4, 3)), 4) == 12.0
    with pytest.raises(ShapeError):
        g(np.ones((4, 3)), 5)
    with pytest.raises(ShapeError, match="static length 3"):
        T.specify_shape(T.tensor("float64", (3, None)), (4, 2))
    verify_grad(lambda v: T.specify_shape(v, (2, 3)) ** 2, [np.ones((2, 3))])


# ---------------------------------------------------------------- batched products
@fixture_ok
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.sampled_from([(1, 1), (2, 2), (3, 3), (3, 2), (2, 3), (4, 3), (3, 4)]))
def test_batched_dot_matches_a_loop_of_dots(backend, b, n, m, p, ranks):
    rng = np.random.default_rng(b * 100 + n * 10 + m)
    shapes = {1: (b,), 2: (b, n), 3: (b, n, m), 4: (b, n, p, m)}
    ra, rb = ranks
    x = rng.standard_normal(shapes[ra])
    y = rng.standard_normal({1: (b,), 2: (b, x.shape[-1]), 3: (b, x.shape[-1], p), 4: (b, n, x.shape[-1], p)}[rb])
    if ra == 1 or rb == 1:
        expected = np.array([x[i] * y[i] for i in range(b)])
    elif ra == 4 or rb == 4:
        expected = np.array([np.tensordot(x[i], y[i], [[x.ndim - 2], [max(0, y.ndim - 3)]]) for i in range(b)])
    else:
        expected = np.array([np.dot(x[i], y[i]) for i in range(b)])
    check(backend, T.batched_dot, [x, y], expected, rtol=1e-10)


def test_batched_tensordot_and_gradients(backend):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 5, 4, 6))
    expected = np.array([np.tensordot(x[i], y[i], [[1, 2], [1, 0]]) for i in range(2)])
    check(backend, lambda a, b: T.batched_tensordot(a, b, [[2, 3], [2, 1]]), [x, y], expected, rtol=1e-10)
    x2, y2 = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))
    check(backend, lambda a, b: T.batched_tensordot(a, b, 1), [x2, y2], np.einsum("bij,bjk->bik", x2, y2), rtol=1e-10)
    verify_grad(lambda a, b: T.batched_dot(a, b), [x2, y2])
    verify_grad(lambda a, b: T.batched_tensordot(a, b, [[2, 3], [2, 1]]), [x, y])
    with pytest.raises(ShapeError):
        T.batched_tensordot(T.tensor3(), T.tensor3(), [[0], [1]])


# ---------------------------------------------------------------- elementwise extras
@fixture_ok
@given(hnp.arrays("float64", hnp.array_shapes(max_dims=2), elements=st.floats(-4, 4)).map(lambda a: np.round(a * 2) / 2))
def test_round_modes(backend, x):
    check(backend, lambda v: T.round(v, mode="half_to_even"), [x], np.round(x))
    away = np.where(np.abs(x - np.trunc(x)) >= 0.5, np.trunc(x) + np.sign(x), np.trunc(x))
    check(backend, lambda v: T.round(v, mode="half_away_from_zero"), [x], away)
    check(backend, lambda v: v.round(), [x], np.round(x))
    with pytest.raises(ValueError, match="half_to_even"):
        T.round(T.dvector(), mode="up")


def test_clip_with_symbolic_bounds(backend):
    x = np.linspace(-2, 2, 9)
    check(backend, lambda v, lo, hi: T.clip(v, lo, hi), [x, np.array(-0.75), np.array(1.25)], np.clip(x, -0.75, 1.25))
    verify_grad(lambda v, lo, hi: T.clip(v, lo, hi), [x + 0.1, np.array(-0.75), np.array(1.25)])


def test_mod_isnan_isinf(backend):
    x, y = np.array([5.5, -5.5, 3.0]), np.array([2.0, 2.0, -2.0])
    check(backend, lambda a, b: T.mod(a, b), [x, y], np.mod(x, y))
    z = np.array([0.0, np.nan, np.inf, -np.inf])
    check(backend, T.isnan, [z], np.isnan(z))
    check(backend, T.isinf, [z], np.isinf(z))
