"""Every row of the scalar table against an independent numpy reference, on hypothesis data,
through every backend: float32 and float64, broadcasting, empty and size-1 dimensions."""
from __future__ import annotations

import decimal
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
import symgraph.testing.strategies as sgs
from symgraph import scalar
from symgraph.errors import GraphTypeError, ShapeError
from helpers import fd_grad_check

_erf = np.vectorize(math.erf, otypes=[float])
# rounding halves away from zero, exactly (Decimal holds a float's exact value)
_round_away = np.vectorize(lambda v: float(decimal.Decimal(float(v)).quantize(0, decimal.ROUND_HALF_UP)),
                           otypes=[float])

# Independent references: written from the mathematical definition, not from the table.
REFERENCE = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "true_div": np.divide,
    "int_div": lambda a, b: np.floor(a / b), "mod": lambda a, b: a - np.floor(a / b) * b,
    "pow": np.power, "maximum": np.maximum, "minimum": np.minimum, "arctan2": np.arctan2,
    "hypot": lambda a, b: np.sqrt(a * a + b * b), "neg": lambda a: -a, "abs": np.abs,
    "sign": np.sign, "lt": np.less, "gt": np.greater, "le": np.less_equal, "ge": np.greater_equal,
    "eq": np.equal, "neq": np.not_equal, "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite,
    "exp": np.exp, "exp2": lambda a: 2.0 ** a, "expm1": lambda a: np.exp(a) - 1, "log": np.log,
    "log2": lambda a: np.log(a) / np.log(2), "log10": lambda a: np.log(a) / np.log(10),
    "log1p": lambda a: np.log(1 + a), "sqrt": np.sqrt, "sqr": lambda a: a * a,
    "reciprocal": lambda a: 1 / a, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "tanh": np.tanh, "arcsinh": np.arcsinh, "arccosh": np.arccosh, "arctanh": np.arctanh,
    "floor": np.floor, "ceil": np.ceil, "round": np.round, "trunc": np.trunc,
    "round_half_away_from_zero": _round_away,
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "softplus": lambda a: np.log1p(np.exp(-np.abs(a))) + np.maximum(a, 0),
    "relu": lambda a: np.where(a > 0, a, 0), "softsign": lambda a: a / (1 + np.abs(a)), "erf": _erf, "erfc": lambda a: 1 - _erf(a),
    "xlogx": lambda a: np.where(a == 0, 0.0, a * np.log(np.where(a == 0, 1.0, a))),
    "xlogy0": lambda a, b: np.where(a == 0, 0.0, a * np.log(np.where(a == 0, 1.0, b))),
    "clip": lambda a, lo, hi: np.minimum(np.maximum(a, lo), hi),
    "switch": lambda c, a, b: np.where(c, a, b), "identity": lambda a: a,
    "second": lambda a, b: np.broadcast_to(b, np.broadcast_shapes(a.shape, b.shape)),
}
LOGIC = {"and_": np.logical_and, "or_": np.logical_or, "xor": np.logical_xor, "invert": np.logical_not}
FLOAT_OPS = [n for n in scalar.SCALAR_OPS if not n.startswith("cast_") and n not in LOGIC
             and n not in scalar.RANDOM_ROWS]  # random rows: tests/test_random*.py


def test_the_table_is_covered_by_references():
    assert set(FLOAT_OPS) <= set(REFERENCE)
    assert len(scalar.SCALAR_OPS) >= 45


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)


@st.composite
def _case(draw, name):
    """Shapes that broadcast (some dims size 1 or 0) and values in the op's domain (its row of the
    table says where it is finite, so tolerances mean something; NaN handling is tested separately)."""
    sop = scalar.SCALAR_OPS[name]
    dtype = draw(st.sampled_from(["float32", "float64"]))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=sop.nin, min_dims=0, max_dims=3, min_side=0,
                                                    max_side=4)).input_shapes
    values = []
    for domain, shape in zip(sop.domain, shapes):
        if domain == "bool":
            values.append(draw(hnp.arrays(bool, shape)))
            continue
        elems = sgs.scalars(domain).map(lambda v, dt=dtype: float(np.asarray(v, dt)))  # representable in dtype
        values.append(draw(hnp.arrays(dtype, shape, elements=elems)))
    return dtype, values


def _static_shape(v: np.ndarray) -> tuple:
    return tuple(1 if s == 1 else None for s in v.shape)


@pytest.mark.parametrize("name", FLOAT_OPS)
def test_op_matches_numpy(name, backend):
    fn = getattr(T, name) if name not in ("switch", "clip") else {"switch": T.switch, "clip": T.clip}[name]

    @given(_case(name))
    def check(case):
        dtype, values = case
        ins = [T.tensor(v.dtype, _static_shape(v)) for v in values]
        f = sg.function(ins, fn(*ins), backend=backend)
        with np.errstate(all="ignore"):
            expected = np.asarray(REFERENCE[name](*[v.astype(np.float64) for v in values]))
        got = f(*values)
        assert got.shape == expected.shape
        assert got.dtype == scalar.SCALAR_OPS[name].out_dtype(*(v.dtype for v in values))
        if got.dtype.kind == "b":
            np.testing.assert_array_equal(got, expected)
        else:
            np.testing.assert_allclose(got, expected, **_tol(dtype), equal_nan=True)
    check()


@pytest.mark.parametrize("name", list(LOGIC))
def test_logic_ops_on_bools(name, backend):
    @given(hnp.mutually_broadcastable_shapes(num_shapes=scalar.SCALAR_OPS[name].nin, max_dims=3, max_side=4),
           st.data())
    def check(shapes, data):
        values = [data.draw(hnp.arrays(bool, s)) for s in shapes.input_shapes]
        ins = [T.tensor("bool", _static_shape(v)) for v in values]
        f = sg.function(ins, getattr(T, name)(*ins), backend=backend)
        np.testing.assert_array_equal(f(*values), LOGIC[name](*values))
    check()


@pytest.mark.parametrize("name", ["add", "sub", "mul", "int_div", "mod", "maximum", "minimum", "abs", "neg",
                                  "lt", "eq", "and_", "or_", "xor", "invert", "sqr", "sign"])
def test_integer_ops(name, backend):
    @given(hnp.mutually_broadcastable_shapes(num_shapes=scalar.SCALAR_OPS[name].nin, max_dims=2, max_side=4),
           st.sampled_from(["int32", "int64"]), st.data())
    def check(shapes, dtype, data):
        elems = st.integers(1, 50) if name in ("int_div", "mod") else st.integers(-50, 50)
        values = [data.draw(hnp.arrays(dtype, s, elements=elems)) for s in shapes.input_shapes]
        ins = [T.tensor(dtype, _static_shape(v)) for v in values]
        out = getattr(T, name)(*ins)
        got = sg.function(ins, out, backend=backend)(*values)
        expected = scalar.SCALAR_OPS[name].np_fn(*values)
        assert got.dtype == expected.dtype == np.dtype(out.dtype)
        np.testing.assert_array_equal(got, expected)
    check()


@pytest.mark.parametrize("dtype", scalar.CAST_DTYPES)
def test_cast(dtype, backend):
    x = T.dvector("x")
    if backend == "opencl" and dtype == "float16":  # OpenCL C has no half arithmetic here: a host fallback
        with pytest.warns(RuntimeWarning, match="cast_float16 .*runs on the host"):
            f = sg.function([x], T.cast(x, dtype), backend=backend)
    else:
        f = sg.function([x], T.cast(x, dtype), backend=backend)
    v = np.array([0.0, 1.0, 2.7, 3.2])
    np.testing.assert_array_equal(f(v), v.astype(dtype))
    assert f(v).dtype == np.dtype(dtype)


def test_python_numbers_are_weak():
    x = T.fvector("x")
    assert (x + 1.5).dtype == "float32"
    assert (x * 2).dtype == "float32"
    assert (T.ivector() + 1.5).dtype == "float64"
    assert (T.ivector() + 1).dtype == "int32"
    assert T.switch(x > 0, x, 0).dtype == "float32"
    with pytest.raises(GraphTypeError, match="does not fit"):
        T.bvector() + 1000


def test_static_broadcasting_decided_at_build_time():
    a = T.tensor("float64", (None, 3))
    b = T.tensor("float64", (1, 3))
    assert (a + b).type.shape == (None, 3)
    assert (a + T.dvector()).type.shape == (None, 3)
    with pytest.raises(ShapeError, match=r"\(\?, 3\).*\(4,\)|disagree in dimension 1"):
        a + T.tensor("float64", (4,))


def test_runtime_shape_mismatch_names_the_node_and_line(backend):
    x, y = T.dmatrix("x"), T.dmatrix("y")
    z = x * y  # the line the error must point at
    f = sg.function([x, y], z, backend=backend)
    with pytest.raises(ValueError) as info:
        f(np.ones((2, 3)), np.ones((4, 3)))
    msg = str(info.value)
    assert "mul" in msg and "z = x * y" in msg and "test_elemwise.py" in msg


def test_undefined_dtype_combination_is_a_clear_error():
    with pytest.raises(GraphTypeError, match="neg is not defined for dtypes"):
        -T.tensor("bool", (None,))


def test_dimshuffle_and_transpose(backend):
    x = T.tensor("float64", (None, 1, None))
    f = sg.function([x], [x.dimshuffle(2, "x", 0), x.T, T.transpose(x, (1, 0, 2))], backend=backend)
    v = np.arange(6.0).reshape(2, 1, 3)
    a, b, c = f(v)
    np.testing.assert_array_equal(a, v[:, 0, :].T[:, None, :])
    np.testing.assert_array_equal(b, v.T)
    np.testing.assert_array_equal(c, v.transpose(1, 0, 2))
    with pytest.raises(ShapeError, match="not known to have length 1"):
        x.dimshuffle(1, 2)


_FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # backend is a constant str


@_FIXTURE_OK
@given(v=hnp.arrays("float64", hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=3),
                    elements=st.floats(-5, 5)))
def test_dimshuffle_function(backend, v):
    """T.dimshuffle(x, pattern), the function spelling, on arrays and on plain nested lists."""
    x = T.dmatrix("x")
    f = sg.function([x], [T.dimshuffle(x, (1, "x", 0)), T.dimshuffle(x, ["x", 0, 1])], backend=backend)
    a, b = f(v)
    np.testing.assert_array_equal(a, v.T[:, None, :])
    np.testing.assert_array_equal(b, v[None])
    const = sg.function([], T.dimshuffle([[1.0, 2.0, 3.0]], (1, 0)), backend=backend)()
    np.testing.assert_array_equal(const, [[1.0], [2.0], [3.0]])


@_FIXTURE_OK
@given(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, min_side=0, max_side=3),
       st.data())
def test_where_is_numpy_where(backend, shapes, data):
    """T.where(cond, a, b): numpy.where's three-argument form, broadcasting all three; a
    non-boolean condition means cond != 0; the gradient flows to the chosen side only."""
    cs, as_, bs = shapes.input_shapes
    cond = data.draw(hnp.arrays("int32", cs, elements=st.integers(-1, 1)), "cond")
    a = data.draw(hnp.arrays("float64", as_, elements=st.floats(-5, 5)), "a")
    b = data.draw(hnp.arrays("float32", bs, elements=st.floats(-5, 5, width=32)), "b")
    c, x, y = T.tensor("int32", _static_shape(cond)), T.tensor("float64", _static_shape(a)), \
        T.tensor("float32", _static_shape(b))
    got = sg.function([c, x, y], T.where(c, x, y), backend=backend)(cond, a, b)
    expected = np.where(cond, a, b)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    fd_grad_check(lambda x_, y_: T.where(cond, x_, y_), [a, b])


def test_where_with_one_argument_is_nonzero():
    """numpy.where(c) with one argument: the indices where c holds (T.nonzero)."""
    x = T.dvector("x")
    (idx,) = sg.function([x], T.where(x > 0))(np.array([0.5, -1.0, 2.0]))
    np.testing.assert_array_equal(idx, [0, 2])


def test_elemwise_infer_shape():
    a, b = T.dmatrix("a"), T.tensor("float64", (1, None))
    out = a + b
    (shape,) = out.owner.op.infer_shape(out.owner, [tuple(a.shape[i] for i in range(2)), (1, b.shape[1])])
    f = sg.function([a, b], list(shape), on_unused_input="ignore")
    assert [int(s) for s in f(np.zeros((3, 4)), np.zeros((1, 4)))] == [3, 4]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_of_large_arrays_agrees_with_the_reference_within_2_ulp(dtype):
    """Arrays of SIGMOID_PASSES_MIN elements or more take numpy passes instead of scipy's expit:
    against the per-element reference, within 2 ulp where the result is a normal number and
    within the smallest normal of it in the far tail, -inf, inf and NaN exact, no warning;
    alone, fused with other work, and written in place."""
    import warnings

    import math_reference as mr

    from symgraph.scalar import SIGMOID_PASSES_MIN
    rng = np.random.default_rng(3)
    xv = (rng.standard_normal(SIGMOID_PASSES_MIN + 10) * 40).astype(dtype)
    xv[:5] = [-np.inf, np.inf, np.nan, 0.0, -1000.0]
    want = np.array([mr.SCALAR["sigmoid"](v) for v in xv.tolist()])
    x = T.tensor(dtype, (None,), "x")
    fs = [sg.function([x], T.nnet.sigmoid(x)), sg.function([x], T.nnet.sigmoid(x * 1.0) + 0.0),
          sg.function([sg.In(x, mutable=True)], T.nnet.sigmoid(-(-x)))]
    tiny, eps = np.finfo(dtype).tiny, np.finfo(dtype).eps
    for f in fs:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = f(xv.copy()).astype(np.float64)
        normal = want > tiny
        assert np.all(np.abs(got - want)[normal] <= 2 * eps * want[normal])
        assert np.all(np.abs(got - want)[~normal & ~np.isnan(want)] <= tiny)
        assert np.array_equal(got[:4], [0.0, 1.0, np.nan, 0.5], equal_nan=True)
