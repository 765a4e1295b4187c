"""verify_grad over every op of symgraph.tensor that has a gradient: every elementwise op of the
scalar table (first and second order, broadcasting shapes, float64 and float32), reductions over
each axis, dot/matmul, indexing and inc/set_subtensor, softmax and crossentropies.

Set SYMGRAPH_LONG_TESTS=1 (or HYPOTHESIS_PROFILE=fuzz) for many more examples per test."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
import symgraph.tensor as T
import symgraph.testing.strategies as sgs
from symgraph.scalar import RANDOM_ROWS, SCALAR_OPS
from symgraph.testing import verify_grad

LONG = os.environ.get("SYMGRAPH_LONG_TESTS") == "1" or os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
few = settings(max_examples=300 if LONG else 6)

SPECS = sgs.op_specs()  # every non-cast op of the table; KeyError if one lacks a domain
DIFFERENTIABLE = [s for s in SPECS if s.differentiable]
PIECEWISE_FLOAT = [s for s in SPECS if not s.differentiable and s.float_inputs
                   and SCALAR_OPS[s.name].out_dtype(*["float64"] * s.nin) == "float64"]
BOOL_VALUED = [s for s in SPECS if s.float_inputs and SCALAR_OPS[s.name].out_dtype(*["float64"] * s.nin) == "bool"]


def test_every_table_op_is_classified():
    """A new row in the scalar table must get a domain (OP_DOMAINS) and so lands in a test below."""
    names = {s.name for s in DIFFERENTIABLE + PIECEWISE_FLOAT + BOOL_VALUED}
    bitwise = {s.name for s in SPECS if not s.float_inputs}
    assert names | bitwise == {n for n in SCALAR_OPS if not n.startswith("cast_")} - RANDOM_ROWS
    assert len(DIFFERENTIABLE) >= 40


def _draw_case(data, spec, dtype):
    """Broadcasting shapes and values in the op's domains; boolean inputs become constants."""
    case = data.draw(sgs.broadcastable_shapes(spec.nin, max_dims=2, max_side=3), label="shapes")
    values = [data.draw(sgs.arrays("bool" if d == "bool" else dtype, shape=s, domain=d), label=f"x{k}")
              for k, (s, d) in enumerate(zip(case.shapes, spec.domains))]
    fixed = {k: v for k, v in enumerate(values) if v.dtype == bool}
    point = [v for k, v in enumerate(values) if k not in fixed]

    def build(*xs):
        args, it = [], iter(xs)
        for k in range(spec.nin):
            args.append(T.constant(fixed[k]) if k in fixed else next(it))
        return T.ELEMWISE_OPS[spec.name](*args)
    return build, point


@pytest.mark.parametrize("spec", DIFFERENTIABLE, ids=lambda s: s.name)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@few
@given(data=st.data())
def test_elemwise_first_order(spec, dtype, data):
    build, point = _draw_case(data, spec, dtype)
    verify_grad(build, point, rng=0)


@pytest.mark.parametrize("spec", DIFFERENTIABLE, ids=lambda s: s.name)
@few
@given(data=st.data())
def test_elemwise_second_order(spec, data):
    build, point = _draw_case(data, spec, "float64")
    for k in range(len(point)):  # d/dx_j of (d sum(op) / d x_k), through the gradient graph
        verify_grad(lambda *xs: sg.grad(build(*xs).sum(), xs[k]), point, rng=k)


@pytest.mark.parametrize("spec", PIECEWISE_FLOAT, ids=lambda s: s.name)
@few
@given(data=st.data())
def test_piecewise_constant_ops_have_zero_gradient(spec, data):
    build, point = _draw_case(data, spec, "float64")
    verify_grad(build, point, rng=0)
    xs = [T.tensor("float64", shape=tuple(1 if s == 1 else None for s in p.shape)) for p in point]
    grads = sg.function(xs, sg.grad(build(*xs).sum(), xs), on_unused_input="ignore")(*point)
    for g in grads:
        assert not np.any(g)


@pytest.mark.parametrize("spec", BOOL_VALUED, ids=lambda s: s.name)
def test_bool_valued_ops_pass_no_gradient(spec):
    xs = [T.dvector(f"x{k}") for k in range(spec.nin)]
    cost = T.cast(T.ELEMWISE_OPS[spec.name](*xs), "float64").sum() + xs[0].sum()
    g = sg.function(xs, sg.grad(cost, xs[0]), on_unused_input="ignore")(*[np.array([0.5, -2.0])] * spec.nin)
    np.testing.assert_array_equal(g, [1.0, 1.0])


@pytest.mark.parametrize("target", ["float32", "float64", "float16"])
def test_cast_gradients(target):
    verify_grad(lambda x: T.cast(x, target) * 2, [np.array([0.5, -1.5, 2.0])], rel_tol=2e-2 if target == "float16" else None,
                abs_tol=2e-2 if target == "float16" else None)
    x = T.dvector("x")
    g = sg.function([x], sg.grad(T.cast(T.cast(x, "int32"), "float64").sum() + x.sum(), x))
    np.testing.assert_array_equal(g(np.array([1.5, 2.5])), [1.0, 1.0])


# --- reductions --------------------------------------------------------------------------------

AWAY = "away_from_kinks"  # max/min need distinct values: draw them from a kink-free set


@pytest.mark.parametrize("name", ["sum", "prod", "mean", "var", "std", "max", "min"])
@few
@given(data=st.data())
def test_reductions_over_each_axis(name, data):
    lo = 2 if name == "std" else 1  # std over a single value is sqrt at 0: no gradient
    shape = data.draw(st.tuples(*[st.integers(lo, 3)] * 3), label="shape")
    x = data.draw(sgs.arrays("float64", shape=shape, domain="nonzero" if name in ("prod", "std") else AWAY)
                  .filter(lambda a: name not in ("max", "min") or len(np.unique(a)) == a.size), label="x")
    if name == "std":  # std has a kink where every value is equal: values 3 apart, plus less than 1
        x = x / (1 + np.abs(x).max()) + 3.0 * np.arange(x.size).reshape(x.shape)
    fn = getattr(T, name)
    for axis in [None, 0, 1, 2, (0, 2), -1]:
        for keepdims in (False, True):
            verify_grad(lambda v: fn(v, axis=axis, keepdims=keepdims), [x], n_tests=1)


# --- dot / matmul ------------------------------------------------------------------------------

@few
@given(data=st.data())
def test_dot_and_matmul(data):
    n, k, m, b = [data.draw(st.integers(1, 3)) for _ in range(4)]
    arr = lambda *s: data.draw(sgs.arrays("float64", shape=s))  # noqa: E731
    verify_grad(T.dot, [arr(n, k), arr(k, m)])
    verify_grad(T.dot, [arr(k), arr(k, m)])
    verify_grad(T.dot, [arr(k), arr(k)])
    verify_grad(T.matmul, [arr(b, n, k), arr(k, m)])
    verify_grad(T.matmul, [arr(1, n, k), arr(b, k, m)])
    verify_grad(T.outer, [arr(n), arr(m)])
    verify_grad(lambda a, c: T.tensordot(a, c, axes=[[0, 2], [1, 0]]), [arr(n, k, m), arr(m, n)])


# --- indexing --------------------------------------------------------------------------------------

@few
@given(data=st.data())
def test_indexing(data):
    x = data.draw(sgs.arrays("float64", shape=(4, 3)))
    idx = np.array(data.draw(st.lists(st.integers(-4, 3), min_size=1, max_size=5)))  # repeats accumulate
    verify_grad(lambda v: v[1:3, ::2], [x])
    verify_grad(lambda v: v[-1], [x])
    verify_grad(lambda v: v[2, 1] * v[0, 0], [x])
    verify_grad(lambda v: v[::-1, 1:], [x])
    verify_grad(lambda v: v[idx], [x])
    verify_grad(lambda v: v[idx, 1], [x])


@few
@given(data=st.data())
def test_inc_and_set_subtensor(data):
    x = data.draw(sgs.arrays("float64", shape=(4, 3)))
    y = data.draw(sgs.arrays("float64", shape=(2, 3)))
    row = data.draw(sgs.arrays("float64", shape=(3,)))
    idx = np.array(data.draw(st.lists(st.integers(0, 3), min_size=2, max_size=2)))
    verify_grad(lambda a, b: T.inc_subtensor(a[1:3], b), [x, y])
    verify_grad(lambda a, b: T.set_subtensor(a[1:3], b), [x, y])
    verify_grad(lambda a, b: T.inc_subtensor(a[idx], b), [x, y])  # repeated indices add up
    verify_grad(lambda a, b: T.set_subtensor(a[0], b) * a, [x, row])
    verify_grad(lambda a, b: T.inc_subtensor(a[:, 1], a[:, 0] * b.sum()), [x, row])


# --- softmax and crossentropies ------------------------------------------------------------------

@few
@given(data=st.data())
def test_softmax_family(data):
    n, k = data.draw(st.integers(1, 3)), data.draw(st.integers(2, 4))
    x = data.draw(sgs.arrays("float64", shape=(n, k)))
    p = data.draw(sgs.arrays("float64", shape=(n, k), domain=(0.05, 0.95)))
    labels = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    verify_grad(T.softmax, [x])
    verify_grad(lambda v: T.softmax(v, axis=0), [x])
    verify_grad(T.log_softmax, [x])
    verify_grad(lambda v: T.categorical_crossentropy(T.softmax(v), labels), [x])
    verify_grad(lambda v, t: T.categorical_crossentropy(T.softmax(v), t / t.sum(axis=-1, keepdims=True)), [x, p])
    verify_grad(T.binary_crossentropy, [p, p[::-1].copy()])
    verify_grad(T.sigmoid_binary_crossentropy, [x, p])
