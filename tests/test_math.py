"""dot, matmul, tensordot and outer against numpy on hypothesis shapes (0-d to batched 4-d,
size-1 and empty dims, broadcast batch axes), float32/float64/int, op.perform, infer_shape,
gradients by central differences, and build-time shape errors naming both shapes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.tensor.math import Dot, MatMul, TensorDot
from helpers import declare, fd_grad_check
from test_reduction import check_infer_shape

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])
DTYPES = ("float32", "float64", "int32")
TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-12)}
side = st.integers(0, 4)


def _values(draw, shapes, dtypes=DTYPES):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return [rng.integers(-3, 4, size=s).astype(draw(st.sampled_from(dtypes))) if draw(st.booleans())
            else rng.uniform(-2, 2, size=s).astype(draw(st.sampled_from(dtypes))) for s in shapes]


@st.composite
def dot_operands(draw, dtypes=DTYPES):
    """Two arrays numpy.dot accepts: 0-d to 3-d, inner dimensions equal."""
    na, nb = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    k = draw(side)
    sa = tuple(draw(side) for _ in range(max(na - 1, 0))) + ((k,) if na else ())
    sb = () if nb == 0 else ((k,) if nb == 1 else tuple(draw(side) for _ in range(nb - 2)) + (k, draw(side)))
    return _values(draw, [sa, sb], dtypes)


@st.composite
def matmul_operands(draw, dtypes=DTYPES):
    """Two arrays numpy.matmul accepts: 1-d to 4-d, batch axes broadcasting (some of length 1)."""
    na, nb = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    n, k, m = draw(side), draw(side), draw(side)
    batch = [draw(st.integers(1, 3)) for _ in range(max(na, nb) - 2)]
    ba = [1 if draw(st.booleans()) else b for b in batch][len(batch) - max(na - 2, 0):]
    bb = [1 if draw(st.booleans()) else b for b in batch][len(batch) - max(nb - 2, 0):]
    sa = (k,) if na == 1 else tuple(ba) + (n, k)
    sb = (k,) if nb == 1 else tuple(bb) + (k, m)
    return _values(draw, [sa, sb], dtypes)


def _check(backend, fn, np_fn, values, static, **kw):
    xs = [declare(v, static) for v in values]
    out = fn(*xs, **kw)
    expected = np.asarray(np_fn(*values, **kw))
    got = sg.function(xs, out, backend=backend)(*values)
    assert got.dtype == expected.dtype and out.dtype == expected.dtype.name
    assert got.shape == expected.shape and out.ndim == expected.ndim
    assert all(s is None or s == e for s, e in zip(out.type.shape, expected.shape))
    tol = TOL.get(np.result_type(*values).name, dict(rtol=0, atol=0))
    np.testing.assert_allclose(got, expected, **tol)
    if isinstance(out.owner.op, (Dot, MatMul, TensorDot)):
        np.testing.assert_allclose(out.owner.op.perform(out.owner, values)[0], expected, **tol)
        check_infer_shape(out, values)


@fixture_ok
@given(values=dot_operands(), static=st.booleans())
def test_dot_matches_numpy(backend, values, static):
    _check(backend, T.dot, np.dot, values, static)


@fixture_ok
@given(values=matmul_operands(), static=st.booleans())
def test_matmul_matches_numpy(backend, values, static):
    _check(backend, T.matmul, np.matmul, values, static)
    a, b = (declare(v, static) for v in values)
    assert (a @ b).type == T.matmul(a, b).type


@fixture_ok
@given(values=matmul_operands(), static=st.booleans(), axes=st.integers(0, 2))
def test_tensordot_matches_numpy(backend, values, static, axes):
    a, b = values
    b = b.reshape(b.shape[::-1]) if b.ndim > 1 else b  # give it various leading lengths
    if axes > min(a.ndim, b.ndim) or a.shape[a.ndim - axes:] != b.shape[:axes]:
        axes = ([a.ndim - 1], [0]) if a.shape[-1] == b.shape[0] else 0
    _check(backend, T.tensordot, np.tensordot, [a, b], static, axes=axes)


@settings(deadline=None, max_examples=25)
@given(lead=st.lists(st.integers(0, 5), min_size=1, max_size=2), rest_a=st.lists(st.integers(0, 4), max_size=2),
       rest_b=st.lists(st.integers(0, 4), max_size=2), reverse=st.booleans(),
       dtype=st.sampled_from(["float32", "float64", "int64"]))
def test_tensordot_over_leading_axes_matches_numpy(lead, rest_a, rest_b, reverse, dtype):
    """The numpy backend's one-matmul form of a contraction over both operands' leading axes
    (BPTT's sum over steps of x_t^T dz_t), on time-reversed views, empty axes and integers."""
    rng = np.random.default_rng(len(lead) * 100 + len(rest_a) * 10 + len(rest_b))
    a = (rng.normal(size=lead + rest_a) * 4).astype(dtype)
    b = (rng.normal(size=lead + rest_b) * 4).astype(dtype)
    n = len(lead)
    x, y = T.tensor(dtype, (None,) * a.ndim, "x"), T.tensor(dtype, (None,) * b.ndim, "y")
    out = T.tensordot(x[::-1] if reverse else x, y, axes=(list(range(n)), list(range(n))))
    f = sg.function([x, y], out, backend="numpy")
    assert "contract_leading" in f.source
    want = np.tensordot(a[::-1] if reverse else a, b, axes=(list(range(n)), list(range(n))))
    got = f(a, b)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@fixture_ok
@given(values=st.tuples(st.integers(0, 2), st.integers(0, 2)).flatmap(
    lambda nd: st.builds(lambda a, b: [a, b], *(st.lists(side, min_size=n, max_size=n).map(
        lambda s: np.random.default_rng(len(s)).normal(size=s)) for n in nd))), static=st.booleans())
def test_outer_matches_numpy(backend, values, static):
    _check(backend, T.outer, np.outer, values, static)


def test_lowering_calls_numpy_directly():
    a, b, c = T.dmatrix("a"), T.dmatrix("b"), T.dtensor3("c")
    f = sg.function([a, b, c], [T.dot(a, b), a @ b, T.tensordot(c, a, axes=1)], backend="numpy")
    assert "np.dot(a, b)" in f.source and "np.matmul(a, b)" in f.source
    assert "np.tensordot(c, a, axes=((2,), (0,)))" in f.source
    assert not [ln for ln in f.source.splitlines() if ".perform(" in ln]


def test_a_stack_times_a_matrix_is_one_product():
    """The numpy backend multiplies a C-ordered stack by a matrix as one product of the stack's
    rows (backends/numpy/lower_ops.matmul_stacked); a strided stack takes numpy's matmul."""
    c, a = T.dtensor3("c"), T.dmatrix("a")
    f = sg.function([c, a], [c @ a, c.dimshuffle(1, 0, 2) @ a], backend="numpy")
    assert "matmul_stacked(c, a)" in f.source
    cv, av = np.random.default_rng(0).normal(size=(4, 3, 5)), np.random.default_rng(1).normal(size=(5, 2))
    for got, want in zip(f(cv, av), [cv @ av, cv.transpose(1, 0, 2) @ av]):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_build_time_shape_errors_name_both_shapes():
    with pytest.raises(ShapeError, match=r"\(2, 3\) and \(4, 5\)"):
        T.dot(T.tensor("float64", (2, 3)), T.tensor("float64", (4, 5)))
    with pytest.raises(ShapeError, match=r"\(\?, 3\) and \(2,\)"):
        T.dot(T.tensor("float64", (None, 3)), T.tensor("float64", (2,)))
    with pytest.raises(ShapeError, match=r"\(5, 2, 3\) and \(4, 3, 5\)"):
        T.matmul(T.tensor("float64", (5, 2, 3)), T.tensor("float64", (4, 3, 5)))
    with pytest.raises(ShapeError, match=r"\(2, 3\) and \(2, 5\)"):
        T.tensor("float64", (2, 3)) @ T.tensor("float64", (2, 5))
    with pytest.raises(ShapeError, match="not aligned"):
        T.tensordot(T.tensor("float64", (2, 3)), T.tensor("float64", (4, 3)), axes=1)
    with pytest.raises(GraphTypeError, match="at least 1 dimension"):
        T.matmul(T.dscalar(), T.dvector())
    with pytest.raises(GraphTypeError, match="1-d or 2-d"):
        Dot()(T.dtensor3(), T.dmatrix())
    with pytest.raises(ShapeError, match="out of bounds"):
        T.tensordot(T.dmatrix(), T.dmatrix(), axes=([2], [0]))
    with pytest.raises(ShapeError, match="same length"):
        T.tensordot(T.dmatrix(), T.dmatrix(), axes=([0, 1], [0]))


def test_runtime_shape_mismatch_names_the_node():
    a, b = T.dmatrix(), T.dmatrix()
    f = sg.function([a, b], T.dot(a, b))
    with pytest.raises(ValueError, match="Dot") as info:
        f(np.ones((2, 3)), np.ones((4, 5)))
    assert "test_math.py" in str(info.value)


# --- gradients (float64, central differences) ------------------------------------------------

@given(values=dot_operands(dtypes=("float64",)))
def test_dot_gradient(values):
    fd_grad_check(T.dot, values)


@given(values=matmul_operands(dtypes=("float64",)))
def test_matmul_gradient_sums_broadcast_batch_axes(values):
    fd_grad_check(T.matmul, values)


@given(values=matmul_operands(dtypes=("float64",)), axes=st.integers(0, 2))
def test_tensordot_gradient(values, axes):
    a, b = values
    if axes > min(a.ndim, b.ndim) or a.shape[a.ndim - axes:] != b.shape[:axes]:
        axes = 0
    fd_grad_check(lambda x, y: T.tensordot(x, y, axes=axes), [a, b])
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[0] == b.shape[1]:
        fd_grad_check(lambda x, y: T.tensordot(x, y, axes=([0], [1])), [a, b])


def test_outer_gradient():
    fd_grad_check(T.outer, [np.arange(3.0), np.arange(4.0) - 1])


def test_integer_operands_get_no_gradient_and_mixed_dtypes_cast_back():
    i, f = T.ivector(), T.fvector()
    ga, gb = Dot().grad([i, f], [T.dscalar()])
    assert ga is None and gb.dtype == "float32"
    a, b = T.fmatrix(), T.dmatrix()
    ga, gb = MatMul().grad([a, b], [T.dmatrix()])
    assert (ga.dtype, gb.dtype) == ("float32", "float64")
