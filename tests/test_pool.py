"""Pooling (``Pool``, ``MaxPoolGrad``, ``MaxPoolGradGrad`` via T.signal.pool.pool_2d/pool_3d,
T.max_pool, T.avg_pool) on both backends, against loop references (Theano's pool_2d
semantics, the first-maximum gradient) and JAX's reduce_window (tests/fixtures/conv_jax.npz):
every mode, ignore_border both ways, stride != window, padding, 1-d/2-d/3-d, the tie rule,
gradients by finite differences and second order of the max-pool."""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph import toposort
from symgraph.tensor.pooling import MaxPoolGrad, MaxPoolGradGrad, Pool, pool
from symgraph.testing import verify_grad
from conftest import BACKENDS
from conv_reference import fixture_cases, ref_max_pool_first_max_grad, ref_pool_2d, ref_pool_nd
from test_reduction import check_infer_shape

LONG = os.environ.get("SYMGRAPH_LONG_TESTS") == "1" or os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MODES = ["max", "sum", "average_inc_pad", "average_exc_pad"]
THEANO_GRID = [(mode, ib, ws, st_, pad) for mode, ib, (ws, st_, pad) in itertools.product(
    MODES, [True, False], [((2, 2), None, (0, 0)), ((3, 2), (2, 3), (0, 0)), ((3, 3), (1, 2), (1, 2)),
                           ((2, 3), (3, 1), (1, 0))]) if ib or pad == (0, 0)]


@pytest.mark.parametrize("mode,ignore_border,ws,stride,pad", THEANO_GRID)
def test_pool_2d_matches_theano_semantics(backend, mode, ignore_border, ws, stride, pad):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 8)).astype("float32")
    X = T.ftensor4()
    y = T.signal.pool.pool_2d(X, ws, ignore_border=ignore_border, stride=stride, pad=pad, mode=mode)
    got = sg.function([X], y, backend=backend)(x)
    ref = ref_pool_2d(x, ws, ignore_border, stride or ws, pad, mode)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    static = T.signal.pool.pool_2d(T.tensor("float32", x.shape), ws, ignore_border, stride, pad, mode)
    assert static.type.shape == ref.shape
    if mode != "max":
        verify_grad(lambda a: T.signal.pool.pool_2d(a, ws, ignore_border, stride, pad, mode),
                    [x[:1, :2].astype("float64")], n_tests=1, backend=backend)


def test_max_pool_gradient_goes_to_the_first_maximum_of_each_window(backend):
    # ties everywhere: integers in a small range, overlapping windows, padding
    x = np.random.default_rng(1).integers(-2, 3, (2, 2, 7, 6)).astype("float64")
    X = T.dtensor4()
    y = pool(X, "max", (3, 3), (1, 2), [(1, 1), (0, 1)])
    g = np.random.default_rng(2).standard_normal(sg.function([X], y)(x).shape)
    got = sg.function([X], sg.grad((y * g).sum(), X), backend=backend)(x)
    np.testing.assert_allclose(got, ref_max_pool_first_max_grad(x, g, (3, 3), (1, 2), [(1, 1), (0, 1)]),
                               rtol=1e-12, atol=1e-12)
    # exactly one position per window receives its gradient
    ones = sg.function([X], sg.grad(y.sum(), X), backend=backend)(np.zeros((1, 1, 4, 4)))
    assert ones.sum() == sg.function([X], y)(np.zeros((1, 1, 4, 4))).size


def test_max_pool_tie_rule_with_nan_and_inf(backend):
    x = np.array([[[[1.0, 1.0], [np.nan, 1.0]], [[-np.inf, -np.inf], [-np.inf, -np.inf]]]])
    X = T.dtensor4()
    y = T.max_pool(X, (2, 2))
    f = sg.function([X], [y, sg.grad(y.sum(), X)], backend=backend)
    out, gx = f(x)
    assert np.isnan(out[0, 0, 0, 0]) and out[0, 1, 0, 0] == -np.inf
    np.testing.assert_array_equal(gx, [[[[0, 0], [1, 0]], [[1, 0], [0, 0]]]])  # first NaN; first -inf


POOL_FIXTURE = fixture_cases("pool")


@pytest.mark.parametrize("case", POOL_FIXTURE, ids=[m["name"] for m, _ in POOL_FIXTURE])
def test_matches_jax_reduce_window(backend, case):
    meta, a = case
    X = T.tensor("float64", (None,) * a["x"].ndim)
    y = pool(X, meta["mode"], meta["window"], meta["strides"], [tuple(p) for p in meta["padding"]])
    got_y, got_g = sg.function([X], [y, sg.grad((y * a["proj"]).sum(), X)], backend=backend)(a["x"])
    np.testing.assert_allclose(got_y, a["y"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_g, a["gx"], rtol=1e-12, atol=1e-12)  # JAX's max gradient: first maximum too
    check_infer_shape(y, [a["x"]])


def test_max_pool_second_order(backend):
    """The max-pool gradient is linear in the output gradient: its derivative selects, per window,
    the value at the first maximum (MaxPoolGradGrad), whose derivative scatters again."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 6, 5))
    X, G = T.dtensor4(), T.dtensor4()
    y = pool(X, "max", (2, 3), (2, 1), [(0, 1), (1, 1)])
    gx = sg.grad((y * G).sum(), X)
    assert isinstance(gx.owner.op, MaxPoolGrad)
    g = rng.standard_normal(sg.function([X], y)(x).shape)
    verify_grad(lambda gg: MaxPoolGrad((2, 3), (2, 1), ((0, 1), (1, 1)))(x, gg), [g], backend=backend)
    verify_grad(lambda h: MaxPoolGradGrad((2, 3), (2, 1), ((0, 1), (1, 1)))(x, h), [x], backend=backend)
    h = sg.grad((gx ** 2).sum(), G)
    assert any(isinstance(n.op, MaxPoolGradGrad) for n in toposort([h]))
    got = sg.function([X, G], h, backend=backend)(x, g)
    ref = 2 * np.array([[[[np.sum(ref_max_pool_first_max_grad(x, g, (2, 3), (2, 1), [(0, 1), (1, 1)])
                                  * _unit_scatter(x, (0, c, i, j)))
                           for j in range(g.shape[3])] for i in range(g.shape[2])] for c in range(2)]])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def _unit_scatter(x, at):
    e = np.zeros((1, 2, 3, 5))
    e[at] = 1.0
    return ref_max_pool_first_max_grad(x, e, (2, 3), (2, 1), [(0, 1), (1, 1)])


@st.composite
def pool_problems(draw):
    nd = draw(st.integers(1, 3))
    window = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    shape = (2,) + tuple(draw(st.integers(w, 6 if nd < 3 else 4)) for w in window)
    strides = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, w - 1)), draw(st.integers(0, w - 1))) for w in window)  # no all-padding window
    return shape, window, strides, pads, draw(st.sampled_from(["max", "avg", "avg_exc"])), draw(st.integers(0, 999))


@fixture_ok
@given(problem=pool_problems())
def test_random_pools_match_loops(backend, problem):
    shape, window, strides, pads, kind, seed = problem
    x = np.random.default_rng(seed).standard_normal(shape)
    X = T.tensor("float64", (None,) * len(shape))
    if kind == "max":
        y, ref = T.max_pool(X, window, strides, pads), ref_pool_nd(x, "max", window, strides, pads)
    else:
        inc = kind == "avg"
        y = T.avg_pool(X, window, strides, pads, count_include_pad=inc)
        ref = ref_pool_nd(x, "mean", window, strides, pads, count_include_pad=inc)
    np.testing.assert_allclose(sg.function([X], y, backend=backend)(x), ref, rtol=1e-12, atol=1e-12)


def test_same_padding_unknown_lengths_and_gradients(backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 5))
    X = T.dtensor4()  # lengths unknown: 'same' padding and the exclusive counts are computed in the graph
    y = T.avg_pool(X, (3, 2), stride=(2, 2), padding="same", count_include_pad=False)
    pads = [(1, 1), (0, 1)]  # ceil(7/2) = 4 outputs: total 2; ceil(5/2) = 3: total 1 (high side)
    np.testing.assert_allclose(sg.function([X], y, backend=backend)(x),
                               ref_pool_nd(x, "mean", (3, 2), (2, 2), pads, count_include_pad=False), rtol=1e-12)
    verify_grad(lambda a: T.avg_pool(a, (3, 2), stride=(2, 2), padding="same", count_include_pad=False),
                [x[:1, :2]], n_tests=1, backend=backend)
    verify_grad(lambda a: T.max_pool(a, (2, 2), stride=1, padding="same"), [x[:1, :2]], n_tests=1, backend=backend)


def test_pool_3d_and_integer_max_pool(backend):
    x = np.random.default_rng(6).integers(-50, 50, (2, 5, 4, 6)).astype("int32")
    X = T.itensor4()
    got = sg.function([X], T.signal.pool.pool_3d(X, (2, 2, 3), pad=(1, 0, 1)), backend=backend)(x)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ref_pool_nd(x, "max", (2, 2, 3), (2, 2, 3), [(1, 1), (0, 0), (1, 1)]))


def test_bad_pool_arguments():
    X = T.dtensor4()
    with pytest.raises(ValueError, match="mode"):
        T.signal.pool.pool_2d(X, (2, 2), mode="median")
    with pytest.raises(ValueError, match="smaller than the window"):
        T.signal.pool.pool_2d(X, (2, 2), pad=(2, 0))
    with pytest.raises(ValueError, match="padding works only with ignore_border=True"):  # Theano's rule
        T.signal.pool.pool_2d(X, (3, 3), ignore_border=False, pad=(1, 0))
    with pytest.raises(GraphTypeError, match="float"):
        Pool("sum", (2,))(T.ivector())
    with pytest.raises(GraphTypeError, match="last 3 axes"):
        T.signal.pool.pool_3d(T.dmatrix(), (2, 2, 2))
    with pytest.raises(ValueError, match="lhs_dilation"):
        Pool("max", (2,), lhs_dilation=(2,))
    G = T.dtensor4()
    f = sg.function([X, G], MaxPoolGrad((2, 2))(X, G))
    with pytest.raises(ShapeError, match="output gradient"):
        f(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)))


def test_gradients_are_bit_identical_across_calls_and_backends():
    """No atomics: every gradient element is summed by one work-item in a fixed order, the same
    order as the numpy implementation's."""
    rng = np.random.default_rng(9)
    x = rng.integers(-3, 4, (4, 3, 9, 8)).astype("float64")  # ties
    w = rng.standard_normal((6, 3, 3, 3))
    X, W = T.dtensor4(), T.dtensor4()
    y = T.max_pool(T.conv(X, W, stride=2, padding="same"), (3, 3), stride=1, padding=1)
    y = y + T.max_pool(X, (3, 2), stride=(1, 2), padding=((1, 1), (0, 1))).sum()
    outs = sg.grad((y * y).sum(), [X, W])
    results = {b: [sg.function([X, W], outs, backend=b)(x, w) for _ in range(2)] for b in BACKENDS}
    for runs in results.values():
        for a, b in zip(*runs):
            np.testing.assert_array_equal(a, b)
    if "opencl" in results:
        np.testing.assert_allclose(results["opencl"][0][0], results["numpy"][0][0], rtol=1e-12, atol=1e-12)
