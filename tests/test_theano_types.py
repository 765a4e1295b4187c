"""Theano's type system and build-time test values (issue 20 items 1 and 2): a user-defined Type
used in make_node and compiled, Ops written in Theano's style, test values computed as the graph
is built, and the errors bad test values and bad values give."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import Apply, Constant, Op, Type


class Double(Type):
    """The documentation's ``Double``: Python floats, with its own filter and values_eq_approx."""

    def filter(self, x, strict=False, allow_downcast=None):
        if strict and not isinstance(x, float):
            raise TypeError("Expected a float!")
        if allow_downcast:
            return float(x)
        x_float = float(x)
        if x_float != x:
            raise TypeError(f"The double type cannot accurately represent value {x} (of type {type(x)})")
        return x_float

    def values_eq_approx(self, x, y, tolerance=1e-4):
        return abs(x - y) / (abs(x) + abs(y)) < tolerance

    def __str__(self):
        return "double"


double = Double()


class BinaryDoubleOp(Op):
    """The documentation's op on doubles: Theano's perform signature, constants wrapped by hand."""

    __props__ = ("name", "fn")

    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def make_node(self, x, y):
        x = Constant(double, double.filter(x)) if isinstance(x, (int, float)) else x
        y = Constant(double, double.filter(y)) if isinstance(y, (int, float)) else y
        if x.type != double or y.type != double:
            raise TypeError(f"{self.name} only works on doubles")
        return Apply(self, [x, y], [double()])

    def perform(self, node, inp, out):
        out[0][0] = self.fn(*inp)

    def __str__(self):
        return self.name


mul = BinaryDoubleOp("mul", lambda a, b: a * b)


def test_a_user_defined_type_is_callable_and_compiles():
    x, y = double("x"), double("y")
    assert x.type is double and x.name == "x"
    f = sg.function([x, y], mul(x, y))
    assert f(5, 6) == 30.0 and f(5.6, 6.7) == pytest.approx(37.52)
    g = sg.function([x], mul(x, 2))  # a constant of the user type
    assert g(10) == 20.0
    assert mul.name == "mul" and str(mul(x, y).owner.op) == "mul"


def test_a_user_defined_type_on_every_backend(backend):
    """The one call protocol filters a user Type's values with its own filter (its op runs on the
    host, an explicit fallback on a device backend)."""
    x, y = double("x"), double("y")
    if backend == "opencl":
        with pytest.warns(RuntimeWarning, match="runs on the host"):
            f = sg.function([x, y], mul(x, y), backend=backend)
    else:
        f = sg.function([x, y], mul(x, y), backend=backend)
    assert f(5, 6) == 30.0


def test_a_type_that_rejects_a_value_names_it():
    x = double("x")
    f = sg.function([x], mul(x, x))
    with pytest.raises(TypeError, match=f"cannot accurately represent value {2 ** 60 + 1}"):
        f(2 ** 60 + 1)
    with pytest.raises(TypeError, match="only works on doubles"):
        mul(x, T.dscalar())


class DoubleOp(Op):
    """Theano's tutorial op: make_node with x.type(), perform through output_storage."""

    __props__ = ()

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] * 2

    def infer_shape(self, node, shapes):
        return shapes

    def grad(self, inputs, output_grads):
        return [output_grads[0] * 2]


class DoubleOp2(Op):
    """The same with itypes/otypes instead of make_node."""

    __props__ = ()
    itypes, otypes = [T.dmatrix], [T.dmatrix]

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0] * 2


def test_theano_style_ops_run_on_both_backends(backend):
    x = T.dmatrix("x")
    v = np.arange(6.0).reshape(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # OpenCL runs user ops through a host fallback
        np.testing.assert_array_equal(sg.function([x], DoubleOp()(x), backend=backend)(v), 2 * v)
        np.testing.assert_array_equal(sg.function([x], DoubleOp2()(x), backend=backend)(v), 2 * v)
    sg.testing.verify_grad(DoubleOp(), [v])
    sg.testing.check_infer_shape(DoubleOp(), [x], [v])
    with pytest.raises(TypeError, match="expected float64"):
        DoubleOp2()(T.fmatrix())


def test_methods_assigned_to_an_op_instance():
    """op.txt's ``mul = gof.Op(); mul.make_node = ...; mul.perform = ...`` (Theano's signature)."""
    op = Op()

    def make_node(x, y):
        return Apply(op, [x, y], [x.type()])

    def perform(node, inputs, output_storage):
        output_storage[0][0] = inputs[0] * inputs[1]
    op.make_node, op.perform = make_node, perform
    a, b = T.dvectors("ab")
    assert op != Op() and op == op  # such an op equals only itself (it can never be merged wrongly)
    np.testing.assert_array_equal(sg.function([a, b], op(a, b))(np.ones(2), np.full(2, 3.0)), [3.0, 3.0])


def test_view_map_in_theano_form():
    op = Op()
    op.view_map = {0: [0]}
    assert op.view_map == {0: 0}
    op.view_map = {0: [0, 1]}  # accepted when assigned (Theano did), refused when the op is applied
    with pytest.raises(ValueError, match="one input only"):
        op(T.dvector())


# ---------------------------------------------------------------- test values (item 2)
def test_test_values_find_a_shape_error_at_the_line_that_builds_the_node():
    x = T.dmatrix("x")
    x.tag.test_value = np.random.rand(5, 10)
    w = sg.shared(np.random.rand(20, 10), name="W")  # shared variables use their value
    with sg.config.change_flags(compute_test_value="warn"):
        h = T.dot(x, w.T)
        assert h.tag.test_value.shape == (5, 20)
        with pytest.raises(ValueError, match=r"(?s)not aligned.*test values.*Op: Dot.*test_theano_types.py"):
            T.dot(x, w)  # 5x10 . 20x10: fails here, before any compile
    assert "test_value" not in T.dot(x, w).tag  # 'off' (the default) computes nothing


def test_missing_test_values_per_mode():
    x, y = T.dvector("x"), T.dvector("y")
    x.tag.test_value = np.ones(3)
    with sg.config.change_flags(compute_test_value="ignore"):
        assert "test_value" not in (x + y).tag
    with sg.config.change_flags(compute_test_value="warn"), pytest.warns(UserWarning, match="no test value"):
        x + y
    with sg.config.change_flags(compute_test_value="raise"), pytest.raises(ValueError, match="y has no test value"):
        x + y
    with sg.config.change_flags(compute_test_value="raise"):
        np.testing.assert_array_equal((x * 2 + 1).tag.test_value, np.full(3, 3.0))  # constants take part
    with pytest.raises(ValueError, match="compute_test_value must be one of"):
        sg.config.compute_test_value = "sometimes"


def test_a_wrong_test_value_fails_where_it_is_assigned():
    x = T.dmatrix("x")
    with pytest.raises(TypeError, match=r"test value of x: expected 2 dimensions"):
        x.tag.test_value = np.ones(3)
    with pytest.raises(TypeError, match="test value of x"):
        x.tag.test_value = "not numbers"
    x.tag.test_value = [[1, 2]]  # converted like a call argument
    assert x.tag.test_value.dtype == np.float64
    r = T.drow("r")
    with pytest.raises(TypeError, match="dimension 0 must have length 1"):
        r.tag.test_value = np.ones((2, 2))


def test_print_test_value_and_tags_as_attributes():
    x = T.dscalar("x")
    x.tag.test_value = 42
    assert repr(x) == "x"
    with sg.config.change_flags(print_test_value=True):
        assert repr(x) == "x\narray(42.)"
    x.tag.note = "mine"
    assert x.tag["note"] == "mine" and x.clone().tag.note == "mine"
    with pytest.raises(AttributeError, match="no 'missing'"):
        x.tag.missing


def test_equality_on_variables_is_identity():
    """As in Theano: ``==`` compares variables (dict keys, ``in``, givens); T.eq compares values."""
    x, y = T.dvectors("xy")
    assert (x == x) is True and (x == y) is False and x in {x: 1} and y not in [x]
    f = sg.function([x, y], T.eq(x, y))
    np.testing.assert_array_equal(f(np.array([1.0, 2.0]), np.array([1.0, 3.0])), [True, False])
    with pytest.raises(TypeError, match="truth value"):
        bool(x < y)


def test_variables_are_true_and_truth_values_refuse_as_in_theano():
    """Theano's rule: a variable is true, so ``if not W:`` tells a given weight from None (the Deep
    Learning Tutorials' dA and RBM layers do, tests/test_dlt.py); a truth value (a comparison,
    T.eq, a logical op) refuses, since its answer is unknown until the graph runs."""
    x, y = T.dvectors("xy")
    W = sg.shared(np.zeros((2, 2)), name="W")
    assert bool(x) and bool(W) and bool(x + 1) and bool(T.iscalar()) and (W or None) is W
    given = W
    if not given:  # the tutorials' idiom: never taken for a variable
        given = None
    assert given is W
    for truth in (x < y, x >= 1, T.eq(x, y), T.and_(x < 1, y < 1), T.isnan(x)):
        with pytest.raises(TypeError, match="truth value"):
            bool(truth)
    with pytest.raises(TypeError, match="truth value"):
        x < y < 1  # noqa: B015 -- (x < y) and (y < 1): refused, not silently the last comparison
