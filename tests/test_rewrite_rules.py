"""Each rewrite rule: a graph where it fires and one where it must not, both checked against
the unrewritten graph (mode=None) for values, dtype and shape."""
from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.rewrite import Mode

NO_FUSION = Mode("fast_run").excluding("fusion")


def _values(inputs, rng):
    vals = []
    for v in inputs:
        shape = tuple(3 if s is None else s for s in v.type.shape)
        if v.dtype.startswith("float"):
            vals.append(rng.uniform(0.2, 0.9, shape).astype(v.dtype))
        else:
            vals.append(rng.integers(-5, 6, shape).astype(v.dtype))
    return vals


def check(inputs, out, rule, fires=True, values=None, backend="numpy"):
    """Compile with and without rewriting; the rule fired (or not) and the results agree."""
    f = sg.function(inputs, out, mode=NO_FUSION, backend=backend, on_unused_input="ignore")
    ref = sg.function(inputs, out, mode=None, backend=backend, on_unused_input="ignore")
    applied = f.rewrite_report()["applied"]
    assert (applied.get(rule, 0) > 0) == fires, (rule, applied)
    vals = values if values is not None else _values(inputs, np.random.default_rng(0))
    got, want = f(*vals), ref(*vals)
    assert got.dtype == want.dtype and got.shape == want.shape
    tol = 1e-5 if got.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    return f


x, y = T.dvector("x"), T.dvector("y")
xi = T.ivector("xi")
xf = T.fvector("xf")
m = T.dmatrix("m")

CASES = [
    # rule, inputs, fires, does not fire
    ("mul_one", [x], lambda: x * 1, lambda: x * 2),
    ("mul_one", [x], lambda: 1 * x, lambda: x * T.constant(np.ones(3))),  # would widen the static shape
    ("add_zero", [x], lambda: x + 0, lambda: 0 - x),
    ("add_zero", [x], lambda: x - 0, lambda: x + 1),
    ("sub_self", [xi], lambda: xi - xi, lambda: xi - (xi + 1)),
    ("sub_self", [xi, x], lambda: xi - xi, lambda: x - x),  # floats: NaN - NaN is NaN
    ("mul_zero", [xi], lambda: xi * 0, lambda: xi * 2),
    ("mul_zero", [xi, x], lambda: xi * 0, lambda: x * 0),  # floats: Inf * 0 is NaN
    ("neg_neg", [x], lambda: -(-x), lambda: -x),
    ("add_neg", [x, y], lambda: x + (-y), lambda: x + y),
    ("add_neg", [x, y], lambda: x - (-y), lambda: x - y),
    ("div_by_constant", [x, y], lambda: x / 4.0, lambda: x / y),
    ("div_by_constant", [xf], lambda: xf / 3.0, lambda: xf / 0.0),
    ("pow_one", [x, y], lambda: x ** 1, lambda: x ** y),
    ("remove_identity", [x], lambda: T.exp(x).copy(), lambda: T.exp(x)),
    ("useless_cast", [xi], lambda: T.cast(T.cast(xi, "int64"), "int32"), lambda: T.cast(xi, "int64")),
    ("useless_cast", [x], lambda: T.ELEMWISE_OPS["cast_float64"](x) * 2,
     lambda: T.cast(T.cast(x, "float32"), "float64")),  # narrowing: not the identity
    ("dimshuffle_merge", [m], lambda: m.T.T + 1, lambda: m.T + 1),
    ("dimshuffle_merge", [x], lambda: x.dimshuffle(0, "x").dimshuffle("x", 0, 1) * 2, lambda: x.dimshuffle(0, "x")),
    ("collect_constants", [x, y], lambda: (x + 1) + (y + 2), lambda: x + y + 1),
    ("collect_constants", [x], lambda: (x * 2) * 3, lambda: x * 2),
    ("shape_of_elemwise", [m], lambda: T.exp(m).shape, lambda: m.shape),
    ("shape_of_elemwise", [x], lambda: sg.grad(T.exp(x).sum(), x), lambda: sg.grad(x.sum(), x)),
    ("shape_of_reduction", [m], lambda: T.mean(T.exp(m).sum(axis=1)), lambda: T.mean(T.exp(m))),
    ("shape_of_reduction", [m], lambda: T.exp(m).sum(axis=0).shape[0] * 1.0,
     lambda: m.sum(axis=0, keepdims=True).shape[0] * 1.0),
    ("reshape_reshape", [m], lambda: m.reshape((-1,)).reshape((3, -1)), lambda: m.reshape((3, -1))),
    ("sum_of_broadcast", [m], lambda: T.broadcast_like(T.constant(2.0), m).sum(),
     lambda: T.broadcast_like(T.constant(2.0), m).sum(axis=0)),
    ("log_sigmoid", [x], lambda: T.log(T.sigmoid(x)), lambda: T.log(T.tanh(x))),
    ("log_sigmoid", [x], lambda: T.log(1 - T.sigmoid(x)), lambda: T.log(2 - T.sigmoid(x))),
    ("log1p_neg_sigmoid", [x], lambda: T.log1p(-T.sigmoid(x)), lambda: T.log1p(T.sigmoid(x))),
    ("log1p", [x], lambda: T.log(1 + x), lambda: T.log(2 + x)),
    ("log1p", [x], lambda: T.log(1 - x), lambda: T.log(x - 1)),
    ("expm1", [x], lambda: T.exp(x) - 1, lambda: T.exp(x) - 2),
    ("log_softmax", [m], lambda: T.log(T.nnet.softmax(m)), lambda: T.log(T.exp(m))),
    ("sigmoid_by_hand", [x], lambda: 1 / (1 + T.exp(-x)), lambda: 1 / (2 + T.exp(-x))),
    ("sigmoid_by_hand", [x, y], lambda: T.exp(x) / (1 + T.exp(x)), lambda: T.exp(x) / (1 + T.exp(y))),
    ("softplus_by_hand", [x], lambda: T.log(1 + T.exp(x)), lambda: T.log(1 + T.exp(x) * 2)),
    ("logsumexp", [m], lambda: T.log(T.exp(m).sum(axis=1)), lambda: T.log(T.exp(m) + 1).sum(axis=1)),
    ("logsumexp", [m], lambda: T.log(T.exp(m).sum(keepdims=True)), lambda: T.log(m.sum())),
    ("softmax_by_hand", [m], lambda: T.exp(m) / T.exp(m).sum(axis=0, keepdims=True),
     lambda: T.exp(m) / T.exp(m).sum(axis=0)),
    ("pow_specialize", [x], lambda: x ** 2, lambda: x ** 2.5),
    ("pow_specialize", [x], lambda: x ** 3 + x ** 4, lambda: x ** 5),
    ("pow_specialize", [x], lambda: x ** 0.5, lambda: x ** -0.5),
    ("pow_specialize", [x], lambda: x ** -1 + x ** -2, lambda: x ** -3),
    ("pow_specialize", [xi], lambda: xi ** 2, lambda: xi ** 5),
]


@pytest.mark.parametrize("rule,inputs,fires,quiet", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_fires_and_keeps_values(rule, inputs, fires, quiet):
    vals = _values(inputs, np.random.default_rng(1))
    check(inputs, fires(), rule, True, vals)
    with np.errstate(divide="ignore", invalid="ignore"):  # x / 0.0 and log(x - 1) (x < 1) are inf/NaN on purpose
        check(inputs, quiet(), rule, False, vals)


def test_rules_through_the_backend_fixture(backend):
    check([x], T.log(1 + x) * 1 + 0, "log1p", backend=backend)


def test_mul_one_keeps_broadcast_shape():
    """x * ones(3) must not become x: the static shape would change (None -> 3)."""
    f = check([x], x * T.constant(np.ones(3)), "mul_one", fires=False)
    assert f.graph.outputs[0].type.shape == (3,)


def test_sub_self_zeros_have_the_shape_and_dtype():
    f = check([xi], xi - xi, "sub_self")
    out = f(np.arange(4, dtype="int32"))
    assert out.dtype == np.int32 and out.shape == (4,) and not out.any()


def test_float_x_minus_x_keeps_nan():
    f = sg.function([x], x - x)
    with pytest.warns(RuntimeWarning, match="invalid value encountered in subtract"):  # inf - inf
        out = f(np.array([np.nan, np.inf, 1.0]))
    assert np.isnan(out[0]) and np.isnan(out[1]) and out[2] == 0


def test_collect_constants_folds_to_one_constant():
    f = sg.function([x], ((x + 1) + 2) + 3, mode=NO_FUSION)
    (node,) = f.graph.apply_nodes
    assert float(node.inputs[1].data) == 6.0


def test_stable_log_sigmoid_at_minus_800():
    f = sg.function([x], T.log(T.sigmoid(x)))
    out = f(np.array([-800.0, 0.0, 800.0]))
    np.testing.assert_allclose(out, [-800.0, np.log(0.5), 0.0], atol=1e-12)


def test_stable_log_one_minus_sigmoid():
    out = sg.function([x], T.log(1 - T.sigmoid(x)))(np.array([800.0, 0.0]))
    np.testing.assert_allclose(out, [-800.0, np.log(0.5)])


def test_binary_crossentropy_of_sigmoid_is_finite():
    t = T.dvector("t")
    f = sg.function([x, t], T.nnet.binary_crossentropy(T.sigmoid(x), t))
    out = f(np.array([-800.0, 800.0, 0.0]), np.array([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(out, [800.0, 800.0, np.log(2)])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_crossentropy_with_logits_1000_is_finite(dtype):
    z = T.matrix("z", dtype=dtype)
    idx, dist = T.lvector("idx"), T.matrix("dist", dtype=dtype)
    f = sg.function([z, idx, dist], [T.nnet.categorical_crossentropy(T.nnet.softmax(z), idx),
                                     T.nnet.categorical_crossentropy(T.nnet.softmax(z), dist)])
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 1.0, 2.0]], dtype)
    a, b = f(logits, np.array([2, 0]), np.eye(3, dtype=dtype)[[2, 0]])
    assert np.isfinite(a).all() and np.isfinite(b).all()
    np.testing.assert_allclose(a, [2000.0, 2.40760596], rtol=1e-5)
    np.testing.assert_allclose(b, a, rtol=1e-5)


def test_expm1_and_log1p_are_accurate_for_tiny_x():
    f = sg.function([x], [T.log(1 + x), T.exp(x) - 1])
    a, b = f(np.array([1e-20]))
    assert a[0] == pytest.approx(1e-20) and b[0] == pytest.approx(1e-20)


def test_sqrt_matches_pow_on_special_values():
    """x ** 0.5 -> sqrt(x) agrees with numpy's pow bit for bit, NaN/Inf/-0.0 included."""
    special = np.array([-np.inf, -1.0, -0.0, 0.0, np.nan, np.inf, 2.0])
    with pytest.warns(RuntimeWarning, match="invalid value encountered in sqrt"):  # of -1 and -inf
        a = sg.function([x], x ** 0.5)(special)
    with pytest.warns(RuntimeWarning, match="invalid value encountered in power"):
        b = sg.function([x], x ** 0.5, mode=None)(special)
    assert np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))


def test_integer_powers_stay_integer():
    f = sg.function([xi], [xi ** 2, xi ** 3])
    a, b = f(np.array([-3, 2], dtype="int32"))
    assert a.dtype == np.int32 and list(a) == [9, 4] and list(b) == [-27, 8]
