"""Audit of the scalar table's gradient rules at special points (issue 22 item 12).

For every differentiable elementwise op, at points drawn from 0, -0, +-1, tiny and huge values
(and +-inf for unary ops) as well as ordinary numbers:

* no NaN gradient where the value is not NaN (a rule must not multiply 0 by inf), apart from
  the documented singular points in ``SINGULAR``;
* where one-sided finite differences agree, the gradient matches them; where they disagree
  (a kink such as abs at 0), the gradient lies between them: a valid subgradient.

Both the raw graph ``sg.grad`` builds (mode=None) and its rewritten form (fast_run) are checked.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.scalar import SCALAR_OPS, ZERO
from symgraph.tensor.elemwise import ELEMWISE_OPS
from conftest import BACKENDS

FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
# piecewise constant, discontinuous or not differentiable in any argument (tested elsewhere)
_SKIP = {"switch", "second", "clip", "identity", "sign", "mod", "int_div"}
FINITE_SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1e-300, -1e-300, 5e-324, 1e300, -1e300, 1.7e308]


def _differentiable_ops() -> list[str]:
    ops = []
    for name, sop in SCALAR_OPS.items():
        if sop.grad == ZERO or name.startswith("cast_") or name in _SKIP or sop.nin > 2:
            continue
        if sop.out_dtype(*["float64"] * sop.nin) == "float64":
            ops.append(name)
    return sorted(ops)


OPS = _differentiable_ops()


def _singular(name: str, point: tuple, which: int) -> bool:
    """Points where the derivative does not exist and NaN is the documented answer."""
    if name == "arctan2":  # atan2 jumps at the origin
        return point[0] == 0 and point[1] == 0
    if name == "pow" and which == 1:  # b**e for b < 0 is real only at whole e: no slope in e
        return point[0] < 0
    if name == "xlogy0" and which == 0:  # x log y for y < 0 is NaN beside x = 0, where it is 0
        return point[1] < 0
    return False


_FUNCTIONS: dict = {}


def _compiled(name: str, backend: str, mode):
    """``op`` and its partial derivatives, elementwise over vectors of points (one call for all)."""
    key = (name, backend, mode)
    if key not in _FUNCTIONS:
        xs = [T.dvector(f"x{k}") for k in range(SCALAR_OPS[name].nin)]
        z = ELEMWISE_OPS[name](*xs)
        _FUNCTIONS[key] = sg.function(xs, [z, *sg.grad(z.sum(), xs)], backend=backend, mode=mode)
    return _FUNCTIONS[key]


def _value(name: str, point: tuple) -> float:
    with np.errstate(all="ignore"):
        return float(SCALAR_OPS[name].np_fn(*[np.float64(p) for p in point]))


def _points(nin: int):
    finite = st.one_of(st.sampled_from(FINITE_SPECIAL), st.floats(-10, 10))
    one = st.tuples(st.one_of(finite, st.sampled_from([np.inf, -np.inf]))) if nin == 1 else st.tuples(finite, finite)
    return st.lists(one, min_size=1, max_size=40)


def _check_against_differences(name: str, point: tuple, which: int, grad: float) -> None:
    if not all(p == 0 or 1e-3 <= abs(p) <= 1e3 for p in point):  # tiny and huge: checked for NaN only
        return
    x = point[which]
    h = 1e-6 * max(1.0, abs(x))
    f0 = _value(name, point)

    def at(v):
        p = list(point)
        p[which] = v
        return _value(name, tuple(p))
    right, left = (at(x + h) - f0) / h, (f0 - at(x - h)) / h
    if not (np.isfinite(right) and np.isfinite(left) and np.isfinite(f0)):
        return
    tol = 1e-3 * max(1.0, abs(right), abs(left))
    if abs(right - left) <= tol:
        assert abs(grad - (right + left) / 2) <= 10 * tol, (name, point, which, grad, left, right)
    else:  # a kink: any value between the one-sided slopes is a valid subgradient
        assert min(left, right) - tol <= grad <= max(left, right) + tol, (name, point, which, grad, left, right)


# the raw gradient graph on every backend (one kernel per node on OpenCL), the rewritten one on numpy
_TARGETS = [(b, None) for b in BACKENDS] + [("numpy", "fast_run")]


@pytest.mark.parametrize("backend,mode", _TARGETS)
@pytest.mark.parametrize("name", OPS)
@settings(max_examples=200 if FUZZ else 5)  # up to 40 points each
@given(data=st.data())
def test_gradient_rules_at_special_points(backend, name, mode, data):
    points = data.draw(_points(SCALAR_OPS[name].nin))
    f = _compiled(name, backend, mode)
    with np.errstate(all="ignore"):  # the values here are infinite and tiny on purpose
        value, *grads = f(*[np.array(coord) for coord in zip(*points)])
    for k, point in enumerate(points):
        if np.isnan(value[k]):
            continue
        for which, g in enumerate(grads):
            assert not np.isnan(g[k]) or _singular(name, point, which), \
                f"d {name}{point} / d input {which} is NaN but {name}{point} = {value[k]}"
            if not np.isnan(g[k]) and backend == "numpy":
                _check_against_differences(name, point, which, float(g[k]))


def test_pow_at_zero():
    """Issue 22 item 12: the gradient of x**0 at 0 is 0 (it was 0 * 0**-1 = NaN); so is the
    slope of 0**y in y."""
    x, y = T.dscalar("x"), T.dscalar("y")
    for mode in (None, "fast_run"):
        f = sg.function([x], sg.grad(x ** 0, x), mode=mode)
        assert float(f(0.0)) == 0.0
        g = sg.function([x, y], sg.grad(x ** y, [x, y]), mode=mode)
        np.testing.assert_array_equal([float(v) for v in g(0.0, 0.0)], [0.0, 0.0])
        np.testing.assert_array_equal([float(v) for v in g(0.0, 2.0)], [0.0, 0.0])
        with np.errstate(divide="ignore"):  # d(x**-1)/dx = -x**-2 is -inf at 0, computed as 0**-2
            np.testing.assert_array_equal([float(v) for v in g(0.0, -1.0)], [-np.inf, 0.0])
