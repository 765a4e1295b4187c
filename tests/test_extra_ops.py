"""numpy's array helpers (cumsum, cumprod, repeat, tile, roll, sort, argsort, take/scatter along an
axis, nonzero and one-argument where) against numpy on hypothesis data, on every backend: values,
dtypes, static shapes, infer_shape, perform, and gradients by finite differences (verify_grad)."""
from __future__ import annotations

import warnings

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
    """fn(*inputs) compiled on ``backend`` and run through perform equals ``expected`` (numpy), with
    numpy's dtype; its static shape fits; every node's infer_shape agrees with what it computes."""
    xs = [declare(v, static=False) for v in values]
    out = fn(*xs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # OpenCL host fallbacks warn
        got = sg.function(xs, out, backend=backend, on_unused_input="ignore")(*values)
    for r in (got, perform_eval(xs, out, values)):
        assert np.asarray(r).dtype == np.asarray(expected).dtype, (np.asarray(r).dtype, np.asarray(expected).dtype)
        np.testing.assert_allclose(r, expected, rtol=rtol, atol=rtol)
    assert all(s is None or s == e for s, e in zip(out.type.shape, np.shape(expected)))
    check_infer_shape(fn, xs, values, warn=False)


def arrays(min_dims=1, max_dims=3, max_side=4, lo=-3.0, hi=3.0, dtype=None):
    dtypes = st.just(dtype) if dtype else st.sampled_from(["float32", "float64"])
    return dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1,
                                                                       max_side=max_side),
                                                 elements=st.floats(lo, hi, width=32)))


def _axis(data, x, allow_none=True):
    choices = list(range(-x.ndim, x.ndim)) + ([None] if allow_none else [])
    return data.draw(st.sampled_from(choices))


# ---------------------------------------------------------------- cumsum / cumprod
@fixture_ok
@given(st.data())
def test_cumsum_cumprod_match_numpy(backend, data):
    x = data.draw(arrays())
    axis = _axis(data, x)
    tol = 1e-4 if x.dtype == np.float32 else 1e-9
    check(backend, lambda v: T.cumsum(v, axis), [x], np.cumsum(x, axis), tol)
    check(backend, lambda v: T.cumprod(v, axis), [x], np.cumprod(x, axis), tol)


def test_cumulative_ops_of_integers_widen_like_numpy(backend):
    x = np.array([[1, 2], [3, 4]], dtype="int8")
    check(backend, lambda v: T.cumsum(v, 1), [x], np.cumsum(x, 1))
    check(backend, lambda v: T.cumprod(v), [x], np.cumprod(x))


@settings(max_examples=10, deadline=None)
@given(arrays(max_side=3, dtype="float64"), st.sampled_from([0, 1, -1, None]))
def test_cumulative_gradients(x, axis):
    axis = None if axis is None else min(axis, x.ndim - 1) if axis >= 0 else axis
    verify_grad(lambda v: T.cumsum(v, axis), [x])
    verify_grad(lambda v: T.cumprod(v, axis), [np.abs(x) + 0.5])  # away from zero, as the rule needs


# ---------------------------------------------------------------- repeat / tile / roll
@fixture_ok
@given(st.data())
def test_repeat_by_a_count_and_by_counts(backend, data):
    x = data.draw(arrays())
    axis = _axis(data, x)
    r = data.draw(st.integers(0, 3))
    check(backend, lambda v: T.repeat(v, r, axis), [x], np.repeat(x, r, axis))
    n = x.size if axis is None else x.shape[axis]
    counts = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype="int64")
    check(backend, lambda v: T.repeat(v, counts, axis), [x], np.repeat(x, counts, axis))


def test_repeat_gradients_and_bad_counts():
    x = np.arange(6.0).reshape(2, 3) + 1
    verify_grad(lambda v: T.repeat(v, 2, 1), [x])
    verify_grad(lambda v: T.repeat(v, np.array([2, 0, 3]), 1), [x])
    verify_grad(lambda v: T.repeat(v, np.array([1, 2]), 0) ** 2, [x])
    v = T.dmatrix("v")
    f = sg.function([v], T.repeat(v, np.array([1, 2]), 1))
    with pytest.raises(ShapeError, match="counts"):
        f(x)  # 2 counts for an axis of 3
    with pytest.raises(GraphTypeError, match="integers"):
        T.repeat(v, 1.5)


@fixture_ok
@given(st.data())
def test_tile_matches_numpy(backend, data):
    x = data.draw(arrays(max_dims=2, max_side=3))
    reps = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    check(backend, lambda v: T.tile(v, reps), [x], np.tile(x, reps))
    check(backend, lambda v: T.tile(v, reps[0]), [x], np.tile(x, reps[0]))  # one number, as numpy takes


def test_tile_gradient_and_symbolic_reps():
    x = np.arange(6.0).reshape(2, 3)
    verify_grad(lambda v: T.tile(v, (2, 1, 3)), [x])
    v, r = T.dmatrix("v"), T.lscalar("r")
    np.testing.assert_array_equal(sg.function([v, r], T.tile(v, (r, 2)))(x, 3), np.tile(x, (3, 2)))


@fixture_ok
@given(st.data())
def test_roll_matches_numpy(backend, data):
    x = data.draw(arrays())
    axis = _axis(data, x)
    shift = data.draw(st.integers(-7, 7))
    check(backend, lambda v: T.roll(v, shift, axis), [x], np.roll(x, shift, axis))


def test_roll_gradient_and_symbolic_shift():
    x = np.arange(12.0).reshape(3, 4)
    verify_grad(lambda v: T.roll(v, 1, 1) * np.arange(12.0).reshape(3, 4), [x])
    v, s = T.dmatrix("v"), T.lscalar("s")
    f = sg.function([v, s], T.roll(v, s, 0))
    for shift in (-4, 0, 2, 5):
        np.testing.assert_array_equal(f(x, shift), np.roll(x, shift, 0))


# ---------------------------------------------------------------- sort / argsort / take / scatter
@fixture_ok
@given(st.data())
def test_sort_and_argsort_match_numpy(backend, data):
    x = data.draw(arrays())
    axis = _axis(data, x)
    check(backend, lambda v: T.sort(v, axis), [x], np.sort(x, axis))
    check(backend, lambda v: T.argsort(v, axis, kind="stable"), [x], np.argsort(x, axis, kind="stable"))


def test_sort_puts_nan_last_and_sorts_integers(backend):
    x = np.array([3.0, np.nan, -1.0, 2.0])
    check(backend, T.sort, [x], np.sort(x))
    i = np.array([[5, -2, 7], [0, 0, -9]], dtype="int32")
    check(backend, lambda v: T.sort(v, 0), [i], np.sort(i, 0))


@settings(max_examples=10, deadline=None)
@given(arrays(max_side=4, dtype="float64"), st.sampled_from([0, -1, None]))
def test_sort_gradient(x, axis):
    # distinct values: the gradient of sort is defined where the order does not change
    x = x + np.arange(x.size).reshape(x.shape) * 1e-3
    w = np.linspace(0.5, 2, x.size)
    verify_grad(lambda v: T.sort(v, axis) * w.reshape(x.shape if axis is not None else (-1,)), [x])


def test_take_along_axis_and_scatter_add(backend):
    x = np.arange(12.0).reshape(3, 4)
    idx = np.array([[3, 0], [1, 1], [2, 0]])
    check(backend, lambda v: T.take_along_axis(v, idx, 1), [x], np.take_along_axis(x, idx, 1))
    expected = x.copy()
    np.add.at(expected, (np.arange(3)[:, None], idx), 1.5)
    check(backend, lambda v: T.scatter_add_along_axis(v, idx, np.full((3, 2), 1.5), 1), [x], expected)
    verify_grad(lambda v: T.take_along_axis(v, idx, 1), [x])
    verify_grad(lambda v, u: T.scatter_add_along_axis(v, idx, u, 1), [x, np.ones((3, 2))])
    with pytest.raises(GraphTypeError, match="integers"):
        T.take_along_axis(T.dmatrix(), T.dmatrix(), 1)


# ---------------------------------------------------------------- nonzero / where
@fixture_ok
@given(hnp.arrays("int64", hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
                  elements=st.integers(-1, 1)))
def test_nonzero_family_matches_numpy(backend, x):
    xs = [declare(x, static=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = sg.function(xs, list(T.nonzero(xs[0])) + [T.flatnonzero(xs[0]), T.nonzero_values(xs[0])],
                        backend=backend)
        got = f(x)
        where = sg.function(xs, list(T.where(xs[0])), backend=backend)(x)
        matrix = sg.function(xs, T.nonzero(xs[0], return_matrix=True), backend=backend)(x)
    for g, e in zip(got, list(np.nonzero(x)) + [np.flatnonzero(x), x[np.nonzero(x)]]):
        np.testing.assert_array_equal(g, e)
        assert g.dtype == e.dtype
    for g, e in zip(where, np.where(x)):
        np.testing.assert_array_equal(g, e)
    np.testing.assert_array_equal(matrix, np.array(np.nonzero(x)).reshape(x.ndim, -1))


def test_where_with_three_arguments_is_switch():
    c, a = T.bvector("c"), T.dvector("a")
    f = sg.function([c, a], T.where(c, a, -a))
    np.testing.assert_array_equal(f(np.array([1, 0], "int8"), np.array([2.0, 3.0])), [2.0, -3.0])
    with pytest.raises(TypeError, match="one argument"):
        T.where(c, a)


def test_gradients_on_every_backend(backend):
    """The gradient graphs (reversed cumsum, scatter through argsort, alloc/reshape sums) run on each backend."""
    x = np.arange(12.0).reshape(3, 4) / 5 + 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Repeat/RepeatGrad run as host fallbacks on OpenCL
        for fn in (lambda v: T.cumsum(v, 1), lambda v: T.cumprod(v, 0), lambda v: T.sort(v, 1) * np.arange(4.0),
                   lambda v: T.tile(v, (2, 1)), lambda v: T.repeat(v, np.array([1, 0, 2]), 0),
                   lambda v: T.roll(v, 1, 1) * np.arange(4.0), lambda v: T.take_along_axis(v, np.argsort(x, 1), 1)):
            verify_grad(fn, [x], backend=backend)
