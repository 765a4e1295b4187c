"""Reductions (sum prod max min all any argmax argmin mean var std) against numpy on hypothesis
data: every axis form, keepdims, float32/float64/ints/bool, empty and size-1 dims; op.perform,
infer_shape, gradients by central differences, and bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Variable
from symgraph.tensor.reduction import ArgReduce, BroadcastLike, CAReduce, ReducedSize
from helpers import declare, fd_grad_check

REDUCERS = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "all": np.all, "any": np.any}
# the functions under test, spelled out (tests/test_api_coverage.py looks for T.<name>)
SYMBOLIC = {"sum": T.sum, "prod": T.prod, "max": T.max, "min": T.min, "all": T.all, "any": T.any,
            "argmax": T.argmax, "argmin": T.argmin, "mean": T.mean, "var": T.var, "std": T.std}
# the backend fixture is a constant string, so reusing it across examples is safe
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])
TOL = {"float32": dict(rtol=2e-5, atol=1e-5), "float64": dict(rtol=1e-11, atol=1e-12)}


def _tol(dtype: str) -> dict:
    return TOL.get(dtype, dict(rtol=0, atol=0))


def check_infer_shape(out: Variable, values: list) -> None:
    """Compile ``out.owner.op.infer_shape`` on symbolic input lengths and compare with the real shape."""
    node = out.owner
    dims = [tuple(T.lscalar() for _ in range(i.ndim)) for i in node.inputs]
    shape = node.op.infer_shape(node, dims)[out.index]
    flat = [d for ds in dims for d in ds]
    lengths = [np.int64(n) for v in values for n in np.shape(v)]
    sym = [s for s in shape if isinstance(s, Variable)]
    got = iter(sg.function(flat, sym, on_unused_input="ignore")(*lengths) if sym else [])
    real = np.shape(node.op.perform(node, values)[out.index])
    assert tuple(int(next(got)) if isinstance(s, Variable) else int(s) for s in shape) == real


@st.composite
def array_and_axis(draw, dtypes=("float32", "float64"), min_side=0, max_dims=4, elements=None):
    """An array (values in [-2, 2]), and an axis: None, an int (maybe negative) or a tuple."""
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=min_side, max_side=4))
    if elements is None:
        elements = (st.booleans() if dtype == "bool" else
                    st.integers(-3, 3) if dtype[0] == "i" else st.integers(0, 3) if dtype[0] == "u" else
                    st.floats(-2, 2, width=32))
    value = draw(hnp.arrays(dtype, shape, elements=elements))
    nd = len(shape)
    axis = draw(st.one_of(st.none(), st.integers(-nd, nd - 1) if nd else st.none(),
                          st.lists(st.integers(0, nd - 1), unique=True, max_size=nd).map(tuple)
                          if nd else st.just(())))
    if isinstance(axis, tuple) and axis and draw(st.booleans()):
        axis = tuple(a - nd for a in axis)  # negative spellings
    return value, axis


def _reduced_empty(value: np.ndarray, axis) -> bool:
    axes = range(value.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    return any(value.shape[a] == 0 for a in axes)


@pytest.mark.parametrize("name", sorted(REDUCERS))
@fixture_ok
@given(case=array_and_axis(dtypes=("float32", "float64", "int8", "int32", "uint8", "bool")),
       keepdims=st.booleans(), static=st.booleans())
def test_careduce_matches_numpy(backend, name, case, keepdims, static):
    value, axis = case
    x = declare(value, static)
    if name in ("max", "min") and _reduced_empty(value, axis):
        if static:
            with pytest.raises(ShapeError, match="zero-size"):
                SYMBOLIC[name](x, axis=axis, keepdims=keepdims)
        else:
            f = sg.function([x], SYMBOLIC[name](x, axis=axis, keepdims=keepdims), backend=backend)
            with pytest.raises(ValueError, match="zero-size"):
                f(value)
        return
    out = SYMBOLIC[name](x, axis=axis, keepdims=keepdims)
    expected = REDUCERS[name](value, axis=axis, keepdims=keepdims)
    got = sg.function([x], out, backend=backend)(value)
    assert got.dtype == expected.dtype and out.dtype == expected.dtype.name
    assert got.shape == expected.shape
    assert all(s is None or s == e for s, e in zip(out.type.shape, expected.shape))
    np.testing.assert_allclose(got, expected, **_tol(value.dtype.name))
    np.testing.assert_allclose(out.owner.op.perform(out.owner, [value])[0], expected, **_tol(value.dtype.name))
    check_infer_shape(out, [value])


def test_sum_dtypes_follow_numpy():
    for dtype in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint32", "float16", "float32"):
        x = T.tensor(dtype, (None,))
        assert T.sum(x).dtype == np.sum(np.zeros(2, dtype)).dtype.name
        assert T.prod(x).dtype == np.prod(np.zeros(2, dtype)).dtype.name
        assert T.max(x).dtype == dtype and T.any(x).dtype == "bool"
    x = T.bvector()
    big = np.full(200, 100, dtype="int8")  # sums past int8's range: accumulated in int64 like numpy
    assert sg.function([x], x.sum())(big) == 20000
    assert sg.function([x], T.sum(x, dtype="float32"))(big).dtype == np.float32


@fixture_ok
@given(case=array_and_axis(dtypes=("float32", "float64", "int32", "bool")), keepdims=st.booleans(),
       static=st.booleans(), which=st.sampled_from(["argmax", "argmin"]))
def test_argmax_argmin_match_numpy(backend, case, keepdims, static, which):
    value, axis = case
    if isinstance(axis, tuple):
        axis = axis[0] if len(axis) == 1 else None
    x = declare(value, static)
    if _reduced_empty(value, axis):
        if static:
            with pytest.raises(ShapeError, match="empty"):
                SYMBOLIC[which](x, axis=axis, keepdims=keepdims)
        else:
            with pytest.raises(ValueError, match="empty"):
                sg.function([x], SYMBOLIC[which](x, axis, keepdims), backend=backend)(value)
        return
    out = SYMBOLIC[which](x, axis=axis, keepdims=keepdims)
    expected = getattr(np, which)(value, axis=axis, keepdims=keepdims)
    got = sg.function([x], out, backend=backend)(value)
    assert got.dtype == np.int64 and got.shape == np.shape(expected)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(out.owner.op.perform(out.owner, [value])[0], expected)
    check_infer_shape(out, [value])


@pytest.mark.parametrize("name", ["mean", "var", "std"])
@fixture_ok
@given(case=array_and_axis(dtypes=("float32", "float64", "int16"), min_side=1), keepdims=st.booleans(),
       static=st.booleans(), ddof=st.integers(0, 1))
def test_mean_var_std_match_numpy(backend, name, case, keepdims, static, ddof):
    value, axis = case
    kw = {} if name == "mean" else {"ddof": ddof}
    axes = range(value.ndim) if axis is None else axis if isinstance(axis, tuple) else (axis,)
    assume(name == "mean" or ddof < np.prod([value.shape[a] for a in axes]))  # else nan/inf, and numpy warns
    expected = getattr(np, name)(value, axis=axis, keepdims=keepdims, **kw)
    x = declare(value, static)
    out = SYMBOLIC[name](x, axis=axis, keepdims=keepdims, **kw)
    got = sg.function([x], out, backend=backend)(value)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    tol = dict(rtol=1e-4, atol=1e-5) if value.dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(got, expected, **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_mean_and_prod_take_a_dtype_as_numpy_and_theano(backend, dtype):
    """``x.mean(dtype=)``, ``T.mean(x, dtype=)`` and ``x.prod(dtype=)`` compute and return in that
    dtype, as numpy (an integer mean truncates) and Theano (the Deep Learning Tutorials' HMC sampler
    averages its bool acceptance vector with ``accept.mean(dtype=...)``, tests/test_dlt.py)."""
    b, x = T.bvector("b"), T.imatrix("x")
    outs = [T.lt(b, 1).mean(dtype=dtype), T.mean(x, axis=0, dtype=dtype), x.prod(axis=1, dtype=dtype)]
    bv, xv = np.array([0, 3, -1, 2], dtype="int8"), np.array([[1, 2, 4], [2, 7, 5]], dtype="int32")
    refs = [np.mean(bv < 1, dtype=dtype), np.mean(xv, axis=0, dtype=dtype), np.prod(xv, axis=1, dtype=dtype)]
    for got, ref in zip(sg.function([b, x], outs, backend=backend)(bv, xv), refs):
        assert got.dtype == ref.dtype
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_methods_on_variables():
    x = T.dmatrix()
    v = np.arange(6.0).reshape(2, 3)
    outs = [x.sum(axis=0), x.mean(1), x.max(), x.min(-1, keepdims=True), x.prod(0), x.var(), x.std(ddof=1),
            x.argmax(1), x.argmin(), x.all(0), x.any()]
    refs = [v.sum(0), v.mean(1), v.max(), v.min(-1, keepdims=True), v.prod(0), v.var(), v.std(ddof=1),
            v.argmax(1), v.argmin(), v.all(0), v.any()]
    for got, ref in zip(sg.function([x], outs)(v), refs):
        np.testing.assert_allclose(got, ref)


def test_lowering_calls_numpy_directly():
    x = T.dmatrix("x")
    f = sg.function([x], [x.sum(axis=0, keepdims=True), T.argmax(x, 1), x.max(axis=(0, 1))], backend="numpy")
    assert "np.add.reduce(x, axis=(0,), keepdims=True)" in f.source  # np.sum's own call, no wrapper
    assert "np.argmax(x, axis=1)" in f.source and "np.maximum.reduce(x, axis=(0, 1))" in f.source
    assert not [ln for ln in f.source.splitlines() if ".perform(" in ln]


def test_bad_axis_and_input():
    x = T.dmatrix()
    with pytest.raises(ShapeError, match="axis 2 is out of bounds for a 2-d"):
        T.sum(x, axis=2)
    with pytest.raises(ShapeError, match="out of bounds"):
        T.max(x, axis=-3)
    with pytest.raises(ShapeError, match="repeats"):
        T.sum(x, axis=(0, -2))
    with pytest.raises(GraphTypeError, match="axis must be"):
        T.mean(x, axis="rows")
    with pytest.raises(GraphTypeError, match="single int"):
        T.argmax(x, axis=(0, 1))
    with pytest.raises(ShapeError, match="out of bounds"):
        CAReduce("add", (3,))(x)
    with pytest.raises(ValueError, match="unknown scalar op"):
        CAReduce("sub", (0,))
    with pytest.raises(GraphTypeError, match="complex"):
        T.max(T.tensor("complex128", (None,)))


# --- gradients (float64, central differences) ------------------------------------------------

@pytest.mark.parametrize("name", ["sum", "mean", "var", "std"])
@given(case=array_and_axis(dtypes=("float64",), min_side=1, max_dims=3), keepdims=st.booleans())
def test_smooth_reduction_gradients(name, case, keepdims):
    value, axis = case
    if name == "std":  # sqrt is not differentiable at 0: spread values over at least 2 elements
        axes = range(value.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        assume(np.prod([value.shape[a] for a in axes]) >= 2)
        value = value + 5.0 * np.arange(value.size).reshape(value.shape)  # elements lie in [-2, 2]: distinct
    fd_grad_check(lambda x: SYMBOLIC[name](x, axis=axis, keepdims=keepdims), [value], tol=1e-5)


@pytest.mark.parametrize("name", ["max", "min"])
@given(case=array_and_axis(dtypes=("float64",), min_side=1, max_dims=3), keepdims=st.booleans())
def test_max_min_gradient_goes_to_the_extreme(name, case, keepdims):
    value, axis = case
    value = np.random.default_rng(value.size).permutation(value.size).reshape(value.shape) * 0.5  # no ties
    fd_grad_check(lambda x: SYMBOLIC[name](x, axis=axis, keepdims=keepdims), [value])


def _first_extreme(value: np.ndarray, axes: tuple, which: str) -> np.ndarray:
    """numpy reference: 1 at the position argmax/argmin picks over the flattened reduced axes."""
    kept = [d for d in range(value.ndim) if d not in axes]
    moved = np.transpose(value, kept + list(axes))
    flat = moved.reshape(moved.shape[:len(kept)] + (-1,))
    first = (np.argmax if which == "max" else np.argmin)(flat, axis=-1)
    hot = (np.arange(flat.shape[-1]) == first[..., None]).reshape(moved.shape)
    return np.transpose(hot, np.argsort(kept + list(axes))).astype(value.dtype)


@pytest.mark.parametrize("name", ["max", "min"])
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # the backend name only
@given(case=array_and_axis(dtypes=("float64",), min_side=1, max_dims=3), keepdims=st.booleans())
def test_max_min_gradient_with_ties_goes_to_the_first(backend, name, case, keepdims):
    """Issue 22 item 11: with ties the gradient was 1 at every extreme position (summing to 2 for
    [3, 3, 1]). It is a valid subgradient now: all of it at the first extreme in C order over the
    reduced axes (where argmax/argmin point; a NaN counts as extreme, as in numpy)."""
    value, axis = case
    value = np.round(value)  # many ties
    axes = tuple(range(value.ndim)) if axis is None else axis if isinstance(axis, tuple) else (axis,)
    axes = tuple(sorted(a % max(value.ndim, 1) for a in axes))
    x = T.tensor("float64", (None,) * value.ndim)
    for mode in (None, "fast_run"):
        f = sg.function([x], sg.grad(getattr(T, name)(x, axis=axis, keepdims=keepdims).sum(), x),
                        backend=backend, mode=mode, on_unused_input="ignore")  # 0-d: the gradient is 1
        expected = _first_extreme(value, axes, name) if axes else np.ones_like(value)
        np.testing.assert_array_equal(f(value), expected)


def test_max_gradient_ties_and_nan():
    x = T.dvector("x")
    f = sg.function([x], sg.grad(T.max(x), x))
    np.testing.assert_array_equal(f(np.array([3.0, 3.0, 1.0])), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(f(np.array([1.0, np.nan, 5.0, np.nan])), [0.0, 1.0, 0.0, 0.0])
    m = T.dmatrix("m")
    g = sg.function([m], sg.grad(T.min(m, axis=0).sum(), m))
    np.testing.assert_array_equal(g(np.array([[1.0, 2.0], [1.0, 0.0]])), [[1.0, 0.0], [0.0, 1.0]])


@given(case=array_and_axis(dtypes=("float64",), min_side=1, max_dims=3), keepdims=st.booleans(),
       zeros=st.integers(0, 3))
def test_prod_gradient_with_zeros(case, keepdims, zeros):
    value, axis = case
    flat = value.reshape(-1)
    flat[:zeros] = 0.0  # none, one or several zeros in the product
    fd_grad_check(lambda x: T.prod(x, axis=axis, keepdims=keepdims), [flat.reshape(value.shape)])


def test_prod_gradient_values():
    x = T.dvector()
    g = sg.function([x], sg.grad(T.prod(x), x))
    np.testing.assert_allclose(g(np.array([2.0, 3.0, 4.0])), [12.0, 8.0, 6.0])
    np.testing.assert_allclose(g(np.array([2.0, 0.0, 4.0])), [0.0, 8.0, 0.0])
    np.testing.assert_allclose(g(np.array([0.0, 0.0, 4.0])), [0.0, 0.0, 0.0])


def test_grad_flows_to_float_inputs_only():
    x, i = T.dmatrix(), T.imatrix()
    assert CAReduce("add", (0,)).grad([i], [T.lvector()]) == [None]
    assert CAReduce("and", (0,)).grad([x], [T.bvector()]) == [None]
    assert ArgReduce("max", 0).grad([x], [T.lvector()]) == [None]
    assert ReducedSize((0,)).grad([x], [T.lscalar()]) == [None]
    g = CAReduce("add", (0,), dtype="float32").grad([x], [T.fvector()])[0]
    assert g.dtype == "float64"  # cast back to the input's dtype


def test_broadcast_like_and_reduced_size():
    g, x = T.dvector(), T.dmatrix()
    out = BroadcastLike()(g, x)
    G, X = np.arange(3.0), np.zeros((2, 3))
    np.testing.assert_array_equal(sg.function([g, x], out)(G, X), np.broadcast_to(G, (2, 3)))
    check_infer_shape(out, [G, X])
    np.testing.assert_allclose(sg.function([g, x], sg.grad((out * out).sum(), g))(G, X), 4 * G)
    with pytest.raises(ShapeError, match="cannot broadcast"):
        BroadcastLike()(x, g)
    n = ReducedSize((0, 2))(T.dtensor3())
    assert sg.function(n.owner.inputs, n)(np.zeros((2, 3, 5))) == 10
    check_infer_shape(n, [np.zeros((2, 3, 5))])


_FUSED = {"sum": (T.sum, np.sum), "prod": (T.prod, np.prod), "max": (T.max, np.max), "min": (T.min, np.min),
          "mean": (T.mean, np.mean)}


@fixture_ok
@given(name=st.sampled_from(sorted(_FUSED)), dtype=st.sampled_from(["float32", "float64"]),
       shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), data=st.data())
def test_reduction_of_elementwise_work_is_one_kernel(backend, name, dtype, shape, data):
    """``reduce(exp(x) * y - n)`` with y broadcast along the first axis, x maybe a transposed array,
    n a host scalar: on OpenCL the elementwise program runs inside the reduction kernel."""
    sym, ref = _FUSED[name]
    axis = data.draw(st.none() | st.sets(st.integers(0, len(shape) - 1), min_size=1).map(tuple), "axis")
    x, y = T.tensor(dtype, (None,) * len(shape), "x"), T.tensor(dtype, (None,) * (len(shape) - 1), "y")
    n = T.lscalar("n")
    f = sg.function([x, y, n], sym(T.exp(x) * y - T.cast(n, dtype), axis=axis), backend=backend)
    elements = st.floats(-2, 2, width=32 if dtype == "float32" else 64)
    transpose = data.draw(st.booleans(), "transpose")
    a = data.draw(hnp.arrays(dtype, shape[::-1] if transpose else shape, elements=elements), "x")
    a = a.T if transpose else a
    b = data.draw(hnp.arrays(dtype, shape[1:], elements=elements), "y")
    with np.errstate(over="ignore"):  # a product of up to 125 factors of up to 17.8 overflows float32
        exact = ref(np.exp(a.astype("float64")) * b - 3.0, axis=axis)
    assume(np.all(np.abs(exact) < np.finfo(dtype).max / 1e3))  # a result near the limit may round either way
    want = ref(np.exp(a) * b - np.asarray(3, dtype), axis=axis)
    tol = dict(_tol(dtype), rtol=_tol(dtype)["rtol"] * (50 if name == "prod" else 1))
    np.testing.assert_allclose(f(a, b, 3), want, **tol)
    if backend == "opencl":
        assert not any(k.startswith("fused_exp") for k in f.kernels), sorted(f.kernels)


@pytest.mark.parametrize("xshape, yshape", [((2, 1), (3,)), ((1, 4), (1,)), ((0, 1), (2,))])
def test_fused_reduction_with_run_time_broadcasting(backend, xshape, yshape):
    """Length-1 axes that broadcast at run time: the reduced value and mean's divisor both take
    numpy's broadcast shape, including the one of an intermediate the divisor is read from."""
    x, y, n = T.dmatrix("x"), T.dvector("y"), T.lscalar("n")
    f = sg.function([x, y, n], [T.mean(T.exp(x) * y - T.cast(n, "float64"), axis=1),
                                T.sum(T.exp(x) * y)], backend=backend)
    a, b = np.full(xshape, 0.5), np.arange(yshape[0], dtype=float)
    want = [np.mean(np.exp(a) * b - 3.0, axis=1), np.sum(np.exp(a) * b)]
    for got, w in zip(f(a, b, 3), want):
        assert got.shape == w.shape
        np.testing.assert_allclose(got, w, rtol=1e-12)


@pytest.mark.parametrize("shape, axis", [((300, 3), 0), ((3, 300), 1), ((7, 70), 0), ((70, 7), 1), ((5, 6, 7), (0, 2)),
                                         ((129, 65), 0)])
def test_each_kernel_layout_agrees_with_numpy(backend, shape, axis):
    """Long reductions (a work-group each), column sums (work-items in lockstep over neighbouring
    outputs) and row sums (each work-item on its own), transposed too, against numpy."""
    x = T.fmatrix("x") if len(shape) == 2 else T.ftensor3("x")
    outs = [T.sum(x, axis=axis), T.max(T.exp(x), axis=axis), T.argmax(x, axis=axis if len(shape) == 2 else None)]
    f = sg.function([x], outs, backend=backend)
    a = np.random.default_rng(len(shape)).normal(size=shape).astype("float32")
    for v in (a, np.ascontiguousarray(a.T).T):
        got = f(v)
        np.testing.assert_allclose(got[0], v.sum(axis=axis), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got[1], np.exp(v).max(axis=axis), rtol=1e-6)
        np.testing.assert_array_equal(got[2], v.argmax(axis=axis if len(shape) == 2 else None))


@fixture_ok
@given(case=array_and_axis(dtypes=("float32", "float64")), keepdims=st.booleans(), data=st.data())
def test_elementwise_reader_of_a_reduction_runs_in_its_store(backend, case, keepdims, data):
    """``[exp(s) * c - n, exp(s) * 2]`` for ``s = sum(x, axis)``, c broadcast over the result and n a
    host scalar: on OpenCL both outputs are computed in the reduction kernel (its epilogue)."""
    value, axis = case
    dtype = value.dtype.name
    result = np.sum(value, axis=axis, keepdims=keepdims)
    assume(np.all(np.abs(result) < np.log(np.finfo(dtype).max) - 2))  # exp(s) * 2 stays finite
    cshape = tuple(data.draw(st.sampled_from([1, n]), f"axis {d}") for d, n in enumerate(result.shape))
    cshape = cshape[data.draw(st.integers(0, len(cshape)), "dropped axes"):]
    c = data.draw(hnp.arrays(dtype, cshape, elements=st.floats(-2, 2, width=32)), "c")
    x, cv, n = declare(value, static=False), declare(c, static=False), T.lscalar("n")
    s = T.sum(x, axis=axis, keepdims=keepdims)
    f = sg.function([x, cv, n], [T.exp(s) * cv - T.cast(n, dtype), T.exp(s) * 2], backend=backend)
    got = f(value, c, 3)
    for g, want in zip(got, [np.exp(result) * c - np.asarray(3, dtype), np.exp(result) * 2]):
        assert g.shape == want.shape and g.dtype == want.dtype
        np.testing.assert_allclose(g, want, **_tol(dtype))
    if backend == "opencl":
        assert not any(k.startswith("fused_") for k in f.kernels), sorted(f.kernels)


def test_reduction_reader_that_broadcasts_the_result_at_run_time(backend):
    """sum over axis 0 of a one-column matrix, plus a vector of unknown length: numpy's broadcast
    result (on OpenCL that call runs on the host, with a warning; the fused store cannot cover it)."""
    x, u = T.fmatrix("x"), T.fvector("u")
    f = sg.function([x, u], [T.sum(x, axis=0) * 2 + u, T.sum(T.exp(x) - 1, axis=0) * 3 + u], backend=backend)
    vx, vu = np.arange(6, dtype="float32").reshape(6, 1), np.arange(5, dtype="float32")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = f(vx, vu)
    np.testing.assert_allclose(got[0], vx.sum(0) * 2 + vu)
    np.testing.assert_allclose(got[1], (np.exp(vx) - 1).sum(0) * 3 + vu, rtol=1e-6)  # the sum's producer too
    assert sum("ran on the host" in str(w.message) for w in seen) == (2 if backend == "opencl" else 0)


@pytest.mark.parametrize("shape, axis, keepdims", [((300, 3), 0, False), ((7, 70), 0, False), ((70, 7), 1, False),
                                                   ((5, 6, 7), (0, 2), True), ((6, 5), 1, True)])
def test_sgd_update_of_a_bias_runs_in_the_gradient_sum(backend, shape, axis, keepdims):
    """``b - 0.01 * sum(g, axis)`` in each kernel layout (a work-group per result, lockstep columns,
    independent rows), b varying along every kept axis, against numpy."""
    rng = np.random.default_rng(7)
    g = rng.normal(size=shape).astype("float32")
    b0 = rng.normal(size=np.sum(g, axis=axis, keepdims=keepdims).shape).astype("float32")
    b = sg.shared(b0.copy(), "b")
    gv = T.tensor("float32", (None,) * len(shape), "g")
    f = sg.function([gv], [], updates=[(b, b - 0.01 * T.sum(gv, axis=axis, keepdims=keepdims))], backend=backend)
    for v in (g, np.ascontiguousarray(g.T).T):  # and transposed in memory
        b.set_value(b0.copy())
        f(v)
        np.testing.assert_allclose(b.get_value(), b0 - 0.01 * v.sum(axis=axis, keepdims=keepdims), rtol=1e-5,
                                   atol=1e-5)


def test_sum_to_undoes_broadcasting():
    """sum_to sums a broadcast gradient back to an input's shape: leading axes and static length-1 axes."""
    g, x = T.dtensor3("g"), T.tensor("float32", shape=(1, None))
    out = T.sum_to(g, x)
    assert out.type == x.type
    v = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_allclose(sg.function([g], out, on_unused_input="ignore")(v),
                               v.sum(axis=0).sum(axis=0, keepdims=True).astype("float32"))
    assert T.sum_to(x, x) is x
