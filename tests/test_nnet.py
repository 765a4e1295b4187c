"""T.nnet against numpy references on hypothesis data: softmax/log_softmax (every axis, large
values, empty and size-1 dims), crossentropies (index and distribution targets), activations,
op.perform, infer_shape, gradients by central differences, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.tensor.nnet import LogSoftmax, OneHot, Softmax
from helpers import declare, fd_grad_check
from test_reduction import check_infer_shape

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


def ref_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Independent float64 reference: log-sum-exp written out with the max shift."""
    x = x.astype(np.float64)
    if x.shape[axis] == 0:
        return x.copy()  # empty along the axis: nothing to normalise
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


@st.composite
def array_and_axis(draw, scale=100.0):
    """A float array (values up to +-scale, so a naive exp would overflow float32) and an axis."""
    dtype = draw(st.sampled_from(["float32", "float64"]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
    value = draw(hnp.arrays(dtype, shape, elements=st.floats(-scale, scale, width=32)))
    return value, draw(st.integers(-len(shape), len(shape) - 1))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@fixture_ok
@given(case=array_and_axis(), static=st.booleans())
def test_softmax_family_matches_numpy(backend, name, case, static):
    value, axis = case
    x = declare(value, static)
    out = getattr(T.nnet, name)(x, axis=axis)
    ref = ref_log_softmax(value, axis)
    expected = np.exp(ref) if name == "softmax" else ref
    got = sg.function([x], out, backend=backend)(value)
    assert got.dtype == value.dtype and got.shape == value.shape and out.type.shape == x.type.shape
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, **TOL[value.dtype.name])
    np.testing.assert_allclose(out.owner.op.perform(out.owner, [value])[0], expected, **TOL[value.dtype.name])
    check_infer_shape(out, [value])


def test_softmax_of_integers_is_float():
    x = T.ivector()
    got = sg.function([x], T.softmax(x))(np.array([1, 2, 3], dtype="int32"))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np.exp(ref_log_softmax(np.array([1, 2, 3]), 0)))


@fixture_ok
@given(case=array_and_axis(scale=5.0), idx_dtype=st.sampled_from(["int32", "int64", "uint8"]),
       seed=st.integers(0, 100))
def test_categorical_crossentropy_with_class_indices(backend, case, idx_dtype, seed):
    value, _ = case
    if value.shape[-1] == 0:
        value = np.zeros(value.shape[:-1] + (1,), value.dtype)
    k = value.shape[-1]
    idx = np.random.default_rng(seed).integers(0, k, size=value.shape[:-1]).astype(idx_dtype)
    probs = np.exp(ref_log_softmax(value, -1)).astype(value.dtype)
    c, i = declare(probs, False), declare(idx, False)
    out = T.nnet.categorical_crossentropy(c, i)
    expected = -np.log(np.take_along_axis(probs.astype(np.float64), idx[..., None].astype(np.int64), -1)[..., 0])
    got = sg.function([c, i], out, backend=backend)(probs, idx)
    assert got.dtype == probs.dtype and got.shape == idx.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5 if probs.dtype == np.float32 else 1e-12)
    # the same as with a one-hot target matrix
    onehot = (idx[..., None] == np.arange(k)).astype(probs.dtype)
    t = declare(onehot, False)
    got2 = sg.function([c, t], T.nnet.categorical_crossentropy(c, t), backend=backend)(probs, onehot)
    np.testing.assert_allclose(got2, expected, rtol=1e-5 if probs.dtype == np.float32 else 1e-12)


@fixture_ok
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4), seed=st.integers(0, 100))
def test_one_hot(backend, shape, seed):
    k = shape[-1] or 1
    idx = np.random.default_rng(seed).integers(0, k, size=shape[:-1])
    i, like = declare(idx, False), T.dmatrix()
    out = OneHot()(i, like)
    f = sg.function([i, like], out, backend=backend)
    np.testing.assert_array_equal(f(idx, np.zeros((2, k))), idx[..., None] == np.arange(k))
    check_infer_shape(out, [idx, np.zeros((2, k))])
    bad = idx.copy() if idx.size else np.zeros((1,) * idx.ndim, idx.dtype)
    bad.flat[0] = k
    with pytest.raises(IndexError, match=f"class index {k} is out of range for {k} classes"):
        f(bad, np.zeros((2, k)))


@fixture_ok
@given(value=hnp.arrays(st.sampled_from(["float32", "float64"]), hnp.array_shapes(min_dims=0, max_dims=3,
                        min_side=0, max_side=4), elements=st.floats(-30, 30, width=32)), seed=st.integers(0, 99))
def test_binary_crossentropies_and_activations(backend, value, seed):
    target = np.random.default_rng(seed).uniform(0, 1, size=value.shape).astype(value.dtype)
    x, t = declare(value, False), declare(target, False)
    outs = [T.nnet.sigmoid_binary_crossentropy(x, t), T.nnet.binary_crossentropy(T.nnet.sigmoid(x * 0.1), t),
            T.nnet.leaky_relu(x), T.nnet.leaky_relu(x, alpha=0.2), T.nnet.elu(x), T.nnet.elu(x, alpha=0.5),
            T.nnet.relu(x), T.nnet.softplus(x), T.nnet.tanh(x)]
    v, tt = value.astype(np.float64), target.astype(np.float64)
    p = 1 / (1 + np.exp(-0.1 * v))
    refs = [np.maximum(v, 0) - v * tt + np.log1p(np.exp(-np.abs(v))),
            -(tt * np.log(p) + (1 - tt) * np.log(1 - p)),
            np.where(v > 0, v, 0.01 * v), np.where(v > 0, v, 0.2 * v),
            np.where(v > 0, v, np.exp(np.minimum(v, 0)) - 1), np.where(v > 0, v, 0.5 * (np.exp(np.minimum(v, 0)) - 1)),
            np.maximum(v, 0), np.log1p(np.exp(-np.abs(v))) + np.maximum(v, 0), np.tanh(v)]
    got = sg.function([x, t], outs, backend=backend)(value, target)
    tol = dict(rtol=1e-5, atol=1e-5) if value.dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for g, r, o in zip(got, refs, outs):
        assert g.dtype == value.dtype and g.shape == value.shape, o
        np.testing.assert_allclose(g, r, **tol, err_msg=str(o))


def test_sigmoid_binary_crossentropy_is_stable_where_the_naive_form_is_not():
    x, t = T.fvector(), T.fvector()
    big = np.array([-100.0, 100.0], dtype="float32")
    stable = sg.function([x, t], T.nnet.sigmoid_binary_crossentropy(x, t))(big, np.array([1.0, 0.0], "float32"))
    np.testing.assert_allclose(stable, [100.0, 100.0])


def test_nnet_namespace():
    for name in ("sigmoid", "relu", "softplus", "tanh", "softmax", "log_softmax", "binary_crossentropy",
                 "categorical_crossentropy"):
        assert getattr(T.nnet, name) is getattr(T, name)
    assert T.nnet.sigmoid is T.sigmoid


def test_lowering_calls_numpy_helpers():
    x, i = T.dmatrix("x"), T.lvector("i")
    f = sg.function([x, i], [T.softmax(x), T.log_softmax(x, axis=0),
                             T.nnet.categorical_crossentropy(T.softmax(x), i)], backend="numpy")
    assert "_np_softmax(x, 1)" in f.source and "_np_log_softmax(x, 0)" in f.source
    assert "one_hot(i, " in f.source
    assert not [ln for ln in f.source.splitlines() if ".perform(" in ln and "Composite" not in ln]


def test_bad_input():
    with pytest.raises(ShapeError, match="axis 2 is out of bounds"):
        T.softmax(T.dmatrix(), axis=2)
    with pytest.raises(ShapeError, match="out of bounds"):
        Softmax(1)(T.dvector())
    with pytest.raises(GraphTypeError, match="real-valued"):
        LogSoftmax(0)(T.bvector() > 0)
    with pytest.raises(ShapeError, match="class indices with 1 dimensions or a distribution with 2"):
        T.nnet.categorical_crossentropy(T.dmatrix(), T.dtensor3())
    with pytest.raises(GraphTypeError, match="integers"):
        T.nnet.one_hot(T.dvector(), T.dmatrix())
    c, i = T.dmatrix(), T.lvector()
    f = sg.function([c, i], T.nnet.categorical_crossentropy(c, i))
    with pytest.raises(IndexError, match="class index -1"):
        f(np.full((2, 3), 1 / 3), np.array([0, -1]))


# --- gradients (float64, central differences) ------------------------------------------------

@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(case=array_and_axis(scale=3.0))
def test_softmax_family_gradients(name, case):
    value, axis = case
    fd_grad_check(lambda x: getattr(T.nnet, name)(x, axis=axis), [value])


@given(case=array_and_axis(scale=3.0), seed=st.integers(0, 99))
def test_crossentropy_gradients(case, seed):
    value, _ = case
    if value.shape[-1] == 0:
        return
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, value.shape[-1], size=value.shape[:-1])
    i = T.constant(idx)
    fd_grad_check(lambda x: T.nnet.categorical_crossentropy(T.softmax(x), i), [value])
    target = np.exp(ref_log_softmax(rng.normal(size=value.shape), -1))
    fd_grad_check(lambda x, t: T.nnet.categorical_crossentropy(T.softmax(x), t), [value, target])
    fd_grad_check(lambda x, t: T.nnet.sigmoid_binary_crossentropy(x, t), [value, target])
    fd_grad_check(lambda x, t: T.nnet.binary_crossentropy(T.nnet.sigmoid(x), t), [value, target])


@given(value=hnp.arrays("float64", hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
                        elements=st.floats(-30, 30).filter(lambda v: abs(v) > 1e-3)))
def test_activation_gradients(value):
    for fn in (T.nnet.leaky_relu, lambda x: T.nnet.elu(x, alpha=0.7)):
        fd_grad_check(fn, [value])
