"""The fuzzer's independent reference (tests/math_reference.py) on values whose answers are
known without numpy: IEEE special cases, integer wrap-around, rounding to float32; its layout
(broadcasting, reductions, dimshuffle) against numpy's; and the fuzzer's per-element tolerance."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import symgraph.tensor as T
import math_reference as mr
from test_fuzz import Case, check_agree

INF, NAN = math.inf, math.nan


def same(a: float, b: float) -> bool:
    """Equal, NaN equal to NaN, and -0.0 told apart from 0.0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


@pytest.mark.parametrize("name, args, expected", [
    ("log", (0.0,), -INF), ("log", (-1.0,), NAN), ("log", (INF,), INF), ("log1p", (-1.0,), -INF),
    ("log1p", (-2.0,), NAN), ("sqrt", (-0.0,), -0.0), ("sqrt", (-4.0,), NAN), ("exp", (1000.0,), INF),
    ("exp", (-INF,), 0.0), ("expm1", (1000.0,), INF), ("sin", (INF,), NAN), ("tanh", (-INF,), -1.0),
    ("true_div", (1.0, -0.0), -INF), ("true_div", (-1.0, 0.0), -INF), ("true_div", (0.0, 0.0), NAN),
    ("int_div", (7.0, 2.0), 3.0), ("int_div", (-7.0, 2.0), -4.0), ("int_div", (1.0, 0.0), INF),
    ("int_div", (-1.0, INF), -1.0), ("mod", (-7.0, 2.0), 1.0), ("mod", (7.0, -2.0), -1.0),
    ("mod", (1.0, 0.0), NAN), ("mod", (0.0, -1.5), -0.0),
    ("pow", (-8.0, 1 / 3), NAN), ("pow", (0.0, -1.0), INF), ("pow", (-0.0, -1.0), -INF),
    ("pow", (-0.0, -2.0), INF), ("pow", (-10.0, 309.0), -INF), ("pow", (-10.0, 310.0), INF),
    ("pow", (NAN, 0.0), 1.0), ("pow", (1.0, NAN), 1.0),
    ("maximum", (NAN, 1.0), NAN), ("minimum", (1.0, NAN), NAN), ("clip", (NAN, -1.0, 1.0), NAN),
    ("clip", (5.0, -1.0, 1.0), 1.0), ("relu", (-2.0,), 0.0), ("sign", (NAN,), NAN), ("sign", (-0.0,), 0.0),
    ("sign", (-3.0,), -1.0), ("floor", (-0.5,), -1.0), ("floor", (-0.0,), -0.0), ("floor", (INF,), INF),
    ("sigmoid", (-INF,), 0.0), ("sigmoid", (INF,), 1.0), ("sigmoid", (0.0,), 0.5),
    ("softplus", (-INF,), 0.0), ("softplus", (INF,), INF), ("softplus", (0.0,), math.log(2.0)),
    ("arctan2", (0.0, -1.0), math.pi), ("arctan2", (-0.0, -1.0), -math.pi), ("hypot", (INF, NAN), INF),
])
def test_ieee_special_values(name, args, expected):
    got = mr.SCALAR[name](*args)
    assert same(got, expected), (name, args, got)


def test_integers_wrap_and_floats_round_once():
    big = np.array([2**30, 2**30], np.int32)
    assert mr.elemwise("add", [big, big], "int32").tolist() == [-2**31, -2**31]
    assert mr.elemwise("mul", [np.array([-2**31], np.int32)] * 2, "int32").tolist() == [0]
    assert mr.elemwise("neg", [np.array([-2**31], np.int32)], "int32").tolist() == [-2**31]
    third = mr.elemwise("true_div", [np.float32([1.0]), np.float32([3.0])], "float32")
    assert third.dtype == np.float32 and third[0] == np.float32(1 / 3)
    assert mr.elemwise("sqr", [np.float32([1e20])], "float32")[0] == np.float32(INF)  # past float32's range
    assert mr.elemwise("cast_int32", [np.array([-2.7, 2.7])], "int32").tolist() == [-2, 2]
    assert mr.elemwise("cast_bool", [np.array([NAN, 0.0])], "bool").tolist() == [True, False]


def test_sums_are_exact_then_rounded():
    x = np.array([1e16, 1.0, -1e16, 1.0])
    assert mr.reduce("add", x, None, False, "float64") == 2.0  # naive left-to-right gives 1.0
    assert math.isnan(mr.reduce("add", np.array([INF, -INF]), None, False, "float64"))
    assert mr.reduce("add", np.array([1e308, 1e308]), None, False, "float64") == INF
    assert math.isnan(mr.reduce("maximum", np.array([1.0, NAN, 3.0]), None, False, "float64"))
    with pytest.raises(ValueError, match="zero-size"):
        mr.reduce("maximum", np.zeros((0, 2)), (0,), False, "float64")
    assert mr.reduce("add", np.array([2**62, 2**62], np.int64), None, False, "int64") == -2**63


@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
       keepdims=st.booleans())
def test_layout_follows_numpy(data, shape, keepdims):
    x = data.draw(hnp.arrays("int64", shape, elements=st.integers(-9, 9)))
    axes = tuple(d for d in range(x.ndim) if data.draw(st.booleans(), f"reduce axis {d}"))
    for name, ref in (("add", np.sum), ("mul", np.prod)):
        got = mr.reduce(name, x, axes, keepdims, "int64")
        np.testing.assert_array_equal(got, ref(x, axis=axes, keepdims=keepdims))
        assert got.shape == ref(x, axis=axes, keepdims=keepdims).shape
    y = x.reshape(tuple(s for s in x.shape) + (1,))
    order = tuple(data.draw(st.permutations(range(x.ndim)))) if x.ndim else ()
    new = ("x",) + order  # add a leading axis, permute the rest, drop the trailing length-1 axis
    np.testing.assert_array_equal(mr.dimshuffle(y, new), np.transpose(x, order)[None])
    b = data.draw(hnp.arrays("int64", shape[-1:] if shape else (), elements=st.integers(-9, 9)))
    np.testing.assert_array_equal(mr.elemwise("sub", [x, b], "int64"), x - b)


def test_unknown_ops_are_refused():
    with pytest.raises(NotImplementedError, match="no rule for the elementwise op 'erf'"):
        mr.elemwise("erf", [np.zeros(2)], "float64")
    x = T.dmatrix("x")
    with pytest.raises(NotImplementedError, match="no rule for"):
        mr.evaluate([x], [T.dot(x, x)], [np.eye(2)])


def test_fuzz_tolerance_is_per_element():
    """A small element may not hide behind a large one: each element within rtol*(1 + |ref|)."""
    x = T.dvector("x")
    case = Case([x], [x * 1.0], [np.zeros(2)], "test")
    ref = ("ok", [np.array([1e6, 1e-3])])
    check_agree(case, ref, "close", ("ok", [np.array([1e6 * (1 + 5e-10), 1e-3 + 5e-10])]))
    with pytest.raises(AssertionError):  # 1e-4 off on 1e-3: within 1e-9 * max|ref| = 1e-3, not per element
        check_agree(case, ref, "off", ("ok", [np.array([1e6, 1.1e-3])]))
    with pytest.raises(AssertionError):
        check_agree(case, ("ok", [np.array([NAN, 1.0])]), "nan", ("ok", [np.array([0.0, 1.0])]))
