"""verify_grad: passes on correct gradients (both backends, both float widths), and fails loudly,
with analytic and numeric values, the worst element and the point, on a wrong one."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import symgraph.tensor as T
import symgraph.testing.strategies as sgs
from symgraph.graph.basic import Apply, Op
from symgraph.testing import GradientCheckError, numeric_grad, verify_grad


class WrongSquare(Op):
    """x**2 whose gradient forgets the factor 2 (the bug verify_grad must catch)."""

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node, inputs):
        return [inputs[0] ** 2]

    def grad(self, inputs, output_grads):
        return [output_grads[0] * inputs[0]]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=sgs.arrays("float64", shape=(2, 3)), y=sgs.arrays("float64", shape=(3,), domain="positive"))
def test_correct_gradients_pass(x, y, backend):
    verify_grad(lambda a, b: T.tanh(a) * T.log(b) + a * a, [x, y], backend=backend)


def test_float32_defaults_are_looser_but_still_pass():
    x = np.array([0.5, 2.0, -1.5], dtype=np.float32)
    verify_grad(lambda a: T.exp(a) * T.sin(a), [x], rng=3)


def test_scalar_output_and_python_number_point():
    verify_grad(lambda a, b: a * T.sin(b), [1.5, 0.3])


def test_wrong_gradient_raises_with_details():
    point = [np.array([1.0, -2.0, 3.0])]
    with pytest.raises(GradientCheckError) as info:
        verify_grad(lambda a: WrongSquare()(a), point, rng=0)
    err, msg = info.value, str(info.value)
    assert isinstance(err, AssertionError)
    assert "analytic" in msg and "numeric" in msg and "point" in msg and "input0" in msg
    k, idx = err.worst
    assert k == 0
    # gradient of sum(x^2 * p) is 2 x p; WrongSquare gives x p: off by x p, largest at |x| = 3
    assert idx == (2,)
    np.testing.assert_allclose(err.numeric[0], 2 * err.analytic[0], rtol=1e-6)


def test_tolerances_can_be_loosened():
    x = np.array([1e-3, 2e-3])  # the wrong gradient is off by only ~1e-3 here
    with pytest.raises(GradientCheckError):
        verify_grad(lambda a: WrongSquare()(a), [x], rng=0)
    verify_grad(lambda a: WrongSquare()(a), [x], rng=0, abs_tol=1e-2)


def test_bad_arguments():
    with pytest.raises(TypeError, match="float"):
        verify_grad(lambda a: a * 2, [np.array([1, 2])])
    with pytest.raises(TypeError, match="one tensor"):
        verify_grad(lambda a: [a, a], [np.array([1.0])])
    with pytest.raises(TypeError, match="dtype must be float"):
        verify_grad(lambda a: T.gt(a, 0), [np.array([1.0])])


def test_numeric_grad_matches_a_known_derivative():
    (g,) = numeric_grad(lambda x: float(np.sum(np.sin(x))), [np.array([0.1, 1.0, 2.0])], 1e-6)
    np.testing.assert_allclose(g, np.cos([0.1, 1.0, 2.0]), atol=1e-9)


def test_broadcasting_inputs_are_declared_broadcastable():
    verify_grad(lambda a, b: a * b, [np.ones((3, 1)) * 0.5, np.arange(4.0)])
