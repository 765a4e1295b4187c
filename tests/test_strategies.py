"""symgraph.testing.strategies: arrays honour dtype, shape and domain; broadcastable shapes and their
static shapes build valid graphs; op specs cover the table; random expression graphs are smooth
where their values are drawn, and their gradients pass verify_grad.

Random graphs: SYMGRAPH_LONG_TESTS=1 (or HYPOTHESIS_PROFILE=fuzz) runs many more."""
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


@pytest.mark.parametrize("domain, check", [
    ("any", lambda a: np.all(np.abs(a) <= 5)),
    ("positive", lambda a: np.all(a >= 0.1)),
    ("negative", lambda a: np.all(a <= -0.1)),
    ("unit", lambda a: np.all(np.abs(a) <= 0.9)),
    ("nonzero", lambda a: np.all(np.abs(a) >= 0.1)),
    ("away_from_kinks", lambda a: np.all(np.abs(a * 2 - np.round(a * 2)) >= 0.2 - 1e-6)),
    ("integers", lambda a: np.all(a == np.round(a))),
    ((2, 3), lambda a: np.all((a >= 2) & (a <= 3))),
    (st.sampled_from([7.0]), lambda a: np.all(a == 7)),
])
@given(data=st.data())
def test_arrays_respect_the_domain(domain, check, data):
    dtype = data.draw(st.sampled_from(["float64", "float32"]))
    a = data.draw(sgs.arrays(dtype, domain=domain))
    assert a.dtype == dtype and a.ndim <= 3 and check(a.astype(np.float64) + 0)


@given(data=st.data())
def test_arrays_fit_a_tensor_type(data):
    ttype = T.tensor("float32", shape=(None, 3, 1)).type
    a = data.draw(sgs.arrays(ttype, domain="positive"))
    assert a.dtype == np.float32 and a.shape[1:] == (3, 1) and 1 <= a.shape[0] <= 4
    ttype.filter(a)  # accepted by the type itself


@given(sgs.arrays("int32", shape=(4,), domain="positive"), sgs.arrays("bool", shape=(2,)))
def test_integer_and_bool_arrays(i, b):
    assert i.dtype == np.int32 and np.all(i >= 0) and b.dtype == bool


def test_unknown_domain_is_an_error():
    with pytest.raises(ValueError, match="unknown domain"):
        sgs.scalars("huge")


@given(data=st.data())
def test_broadcastable_shapes_declare_what_must_broadcast(data):
    n = data.draw(st.integers(1, 3))
    static = data.draw(st.sampled_from(["mixed", "known", "unknown"]))
    case = data.draw(sgs.broadcastable_shapes(n, min_side=0, static=static))
    assert np.broadcast_shapes(*case.shapes) == case.result_shape
    for shape, decl in zip(case.shapes, case.static_shapes):
        assert len(shape) == len(decl)
        assert all(d is None or d == s for s, d in zip(shape, decl))
        if static == "known":
            assert decl == shape
    xs = [T.tensor("float64", shape=s) for s in case.static_shapes]
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    values = [np.ones(s) for s in case.shapes]
    out = sg.function(xs, total)(*values)
    assert out.shape == case.result_shape


def test_op_specs_cover_the_table():
    specs = {s.name: s for s in sgs.op_specs()}
    assert set(specs) == {n for n in SCALAR_OPS if not n.startswith("cast_")} - RANDOM_ROWS
    assert specs["exp"].differentiable and not specs["floor"].differentiable
    assert not specs["and_"].float_inputs and specs["log"].domains == ("positive",)
    with pytest.raises(KeyError, match="OP_DOMAINS"):
        sgs.op_specs(["cast_int8"])


@given(sgs.elemwise_ops(arity=2, differentiable=True))
def test_elemwise_ops_filters(spec):
    assert spec.nin == 2 and spec.differentiable and spec.float_inputs


@given(data=st.data())
def test_elemwise_ops_values_are_in_the_domain(data):
    """Every op evaluated on values from its domains gives finite numbers."""
    spec = data.draw(sgs.elemwise_ops())
    vals = [data.draw(sgs.arrays("bool" if d == "bool" else "float64", shape=(3,), domain=d)) for d in spec.domains]
    with np.errstate(all="raise", under="ignore"):
        out = SCALAR_OPS[spec.name].np_fn(*vals)
    assert np.all(np.isfinite(out))


@given(data=st.data())
def test_expression_graphs_are_finite_and_use_the_given_ops(data):
    ops = data.draw(st.lists(st.sampled_from(["add", "mul", "exp", "log", "sqrt", "arcsin", "maximum", "clip"]),
                             min_size=1, unique=True))
    g = data.draw(sgs.expression_graphs(depth=3, ops=ops, n_inputs=2, shape=(2,)))
    assert set(g.ops) <= set(ops) and len(g.inputs) == 2
    vals = data.draw(g.values)
    with np.errstate(all="raise", under="ignore"):
        out = sg.function(g.inputs, g.output, on_unused_input="ignore", mode=None)(*vals)
    assert out.shape == (2,) and np.all(np.isfinite(out))
    assert "ExpressionGraph(" in repr(g)


def test_expression_graphs_reject_non_float_ops():
    @given(sgs.expression_graphs(ops=["and_"]))
    def draw(graph):
        pass
    with pytest.raises(ValueError, match="not an elementwise op on floats"):
        draw()


@settings(max_examples=2000 if LONG else 300)
@given(data=st.data())
def test_random_expression_graph_gradients(data):
    """The gradient of sum(graph) for random graphs over the whole op table."""
    shape = data.draw(st.sampled_from([(), (3,), (2, 2)]))
    g = data.draw(sgs.expression_graphs(depth=data.draw(st.integers(1, 4)), n_inputs=data.draw(st.integers(1, 3)),
                                        shape=shape))
    verify_grad(lambda *xs: g(*xs).sum(), data.draw(g.values), n_tests=1)


@settings(max_examples=200 if LONG else 20)
@given(data=st.data())
def test_random_expression_graph_gradients_float32(data):
    g = data.draw(sgs.expression_graphs(depth=3, dtype="float32", shape=(2,)))
    verify_grad(lambda *xs: g(*xs), data.draw(g.values), n_tests=1)
