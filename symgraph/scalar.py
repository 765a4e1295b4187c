"""THE table of elementwise operations.

Each row defines one op once, with everything any part of symgraph needs to know about it:

- ``name``, ``nin`` (arity), ``np_fn`` (a ufunc, or a function taking ``out=``);
- ``cl``: the OpenCL C expression (``{0}``, ``{1}``... the inputs, ``{T}`` the output C type), and
  ``cl_kinds``: other expressions for some dtype kinds of the working type (f float, i signed,
  u unsigned, b bool) where the default is wrong in C (``fabs`` for floats, ``|`` for bool adds);
- ``grad``: the gradient rule ``rule(T, x, z, g)`` -- ``T`` the namespace of elementwise tensor
  functions (``T.cos``, ``T.switch``, ``T.cast``...), ``x`` the inputs, ``z`` the output, ``g``
  the output gradient -- returning one entry per input (None where no gradient flows), or
  ``ZERO`` for piecewise-constant ops (comparisons, floor...);
- ``infix`` for printing; ``commutative`` for merging;
- codegen facts: ``vector`` (the float C expression is valid on OpenCL vector types),
  ``inplace`` (``np_fn`` may write into a buffer that is also one of its arguments), ``work``
  (the type the C expression computes in: the output's, the arguments' common type for
  comparisons, the first argument's for float tests, or the output's with the condition left
  alone for ``switch``);
- ``domain``: per argument, where the op is smooth and finite, by name of a domain in
  ``symgraph.testing.strategies.DOMAINS`` or a ``(lo, hi)`` range: tests draw inputs from it;
- random rows (``block_shift`` set): the value at each element of the (broadcast) output is a
  function of the element's flat C-order index in that output, of the key and counter words
  ``(k0, k1, c1, c2, c3)`` (arguments 1-5, single values) and of the row's parameters (arguments
  6 on); argument 0 gives only the shape. ``block_shift`` is log2 of the elements one Philox block
  serves, ``out`` the fixed output dtype, ``cl`` the stem of the OpenCL helpers
  (backends/opencl/kernels_random.py); see symgraph/rng/draws.py.

Elemwise, fusion, both backends, printing, differentiation and the tests all read this table:
adding an elementwise op is one row here plus its independent reference in
``tests/test_elemwise.py``.

The output dtype is numpy's answer for the input dtypes (see ``out_dtype``), so the numpy
backend and the declared types always agree.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import scipy.special as sps

from symgraph.graph.basic import Constant
from symgraph.rng import binomial as _binomial
from symgraph.rng import draws as _draws

ZERO = "zero"
"""The gradient rule of piecewise-constant ops: the gradient is zero wherever it is defined."""


class ScalarOp:
    """One row of the table. Equal (and hashed) by name, so graphs compare and merge by op name."""

    __slots__ = ("name", "nin", "np_fn", "cl", "grad", "infix", "commutative", "cl_kinds", "vector",
                 "inplace", "work", "domain", "block_shift", "out")

    def __init__(self, name: str, nin: int, np_fn: Callable, cl: str, grad: Any, infix: str | None = None, *,
                 commutative: bool = False, cl_kinds: dict[str, str] | None = None, vector: bool = False,
                 inplace: bool = True, work: str = "out", domain: tuple | None = None,
                 block_shift: int | None = None, out: str | None = None):
        self.name, self.nin, self.np_fn, self.cl = name, nin, np_fn, cl
        self.grad, self.infix, self.commutative = grad, infix, commutative
        self.cl_kinds = cl_kinds or {}
        self.vector, self.inplace, self.work = vector, inplace, work
        self.domain = domain if domain is not None else ("any",) * nin
        self.block_shift, self.out = block_shift, out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScalarOp) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("ScalarOp", self.name))

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple:
        return get, (self.name,)  # a row pickles as its name

    def out_dtype(self, *dtypes: Any) -> str:
        """The output dtype for these input dtypes, as numpy computes it (error if undefined)."""
        return _out_dtype(self, tuple(map(dtype_name, dtypes)))

    def cl_template(self, kind: str) -> str:
        """The OpenCL C expression for a working type of dtype kind ``kind`` ('f', 'i', 'u', 'b')."""
        for kinds, text in self.cl_kinds.items():
            if kind in kinds:
                return text
        return self.cl

    @property
    def differentiable(self) -> bool:
        """True when the row has a gradient rule that lets gradients through."""
        return callable(self.grad)

    @property
    def is_random(self) -> bool:
        """True for the random rows (their value depends on the element's index)."""
        return self.block_shift is not None


@cache
def dtype_name(dtype: Any) -> str:
    """Canonical dtype name ('float64' for np.float64, 'f8', ...); cached: numpy's is slow."""
    return np.dtype(dtype).name


@cache
def _out_dtype(op: ScalarOp, dtypes: tuple[str, ...]) -> str:
    if op.out is not None:
        return op.out
    probes = [np.ones(1, dtype=d) for d in dtypes]
    with np.errstate(all="ignore"):
        try:
            return np.dtype(op.np_fn(*probes).dtype).name
        except TypeError as e:
            raise TypeError(f"{op.name} is not defined for dtypes {list(dtypes)} ({e})") from None


# --- numpy implementations that are not plain ufuncs (all accept out=) -----------------------

_SAME_SIZE_INT = {4: np.int32, 8: np.int64}


def _where(cond: Any, a: Any, b: Any, out: np.ndarray | None = None) -> Any:
    """numpy.where. Into ``out`` (fused code) it is a branch-free bitwise select,
    ``(a & m) | (b & ~m)`` with ``m = -cond``: exact for every value (NaN and Inf too) and about
    ten times faster than a masked copy when the mask is irregular, as in a ReLU gradient."""
    if out is None:
        return np.where(cond, a, b)
    itype = _SAME_SIZE_INT.get(out.dtype.itemsize) if out.dtype.kind in "fiu" else None
    if itype is None:
        np.copyto(out, b, casting="unsafe")
        np.copyto(out, a, casting="unsafe", where=np.asarray(cond, dtype=bool))
        return out
    bits = out.view(itype)
    b_bits = np.asarray(b, out.dtype).view(itype)
    if not b_bits.ndim and b_bits == 0:  # b == +0.0 (or integer 0): a's bits times 0 or 1, no mask array
        np.multiply(np.asarray(a, out.dtype).view(itype), np.asarray(cond, dtype=bool), out=bits)
        return out
    mask = np.asarray(cond, dtype=bool).astype(itype)
    np.negative(mask, out=mask)  # all bits set where cond holds
    np.bitwise_and(np.asarray(a, out.dtype).view(itype), mask, out=bits)
    np.bitwise_or(bits, np.bitwise_and(b_bits, np.invert(mask)), out=bits)
    return out


def _second(like: Any, value: Any, out: np.ndarray | None = None) -> Any:
    """``value`` broadcast to the shape of (like, value): Theano's fill, the gradient of sum."""
    if out is None:
        return np.array(np.broadcast_to(value, np.broadcast_shapes(np.shape(like), np.shape(value))))
    np.copyto(out, value, casting="unsafe")
    return out


def _relu(x: Any, out: np.ndarray | None = None) -> Any:
    return np.maximum(x, np.zeros((), x.dtype), out=out)


def _softplus(x: Any, out: np.ndarray | None = None) -> Any:
    return np.logaddexp(np.zeros((), _float_dtype(x)), x, out=out)


def _softsign(x: Any, out: np.ndarray | None = None) -> Any:
    return np.divide(x, 1 + np.abs(x).astype(_float_dtype(x), copy=False), out=out)


def _xlogy0(x: Any, y: Any, out: np.ndarray | None = None) -> Any:
    """``x * log(y)``, 0 where ``x`` is 0 (its limit for y > 0; Theano's ``xlogy0``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.multiply(x, np.log(y))
    r = np.where(np.equal(x, 0), np.zeros((), r.dtype), r)
    if out is None:
        return r
    np.copyto(out, r, casting="unsafe")
    return out


def _xlogx(x: Any, out: np.ndarray | None = None) -> Any:
    """``x * log(x)``, 0 at 0 (its limit; Theano's ``xlogx``)."""
    return _xlogy0(x, x, out=out)


def _float_dtype(x: Any) -> np.dtype:
    dt = np.asarray(x).dtype
    return dt if dt.kind in "fc" else np.result_type(dt, np.float16)


def _float_fn(fn: Callable, name: str) -> Callable:
    """Wrap a scipy ufunc so integer inputs are promoted like numpy's own float ufuncs."""
    def wrapped(x: Any, out: np.ndarray | None = None) -> Any:
        dt = _float_dtype(x)
        return fn(x if x.dtype == dt else x.astype(dt), out=out)
    wrapped.__name__ = wrapped.__qualname__ = name
    return wrapped


def _round_half_away(x: Any, out: np.ndarray | None = None) -> Any:
    """Round to the nearest integer, halves away from zero (C's round; Theano's default round)."""
    t = np.trunc(x)
    r = np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t)
    if out is None:
        return r
    np.copyto(out, r, casting="unsafe")
    return out


_erf, _erfc = _float_fn(sps.erf, "erf"), _float_fn(sps.erfc, "erfc")
SIGMOID_PASSES_MIN = 4096  # elements: below, one call of scipy's expit costs less than four numpy calls


def _sigmoid(x: Any, out: np.ndarray | None = None) -> Any:
    """``1 / (1 + exp(-x))``. On float arrays of SIGMOID_PASSES_MIN elements or more, four
    numpy passes with ``out=`` (the OpenCL kernels' formula): scipy's ``expit`` runs a scalar
    loop, about 3x slower on a million float32s. Where ``exp(-x)`` overflows the result is 0
    (``expit``'s is below the dtype's smallest normal number), and that overflow is not warned
    of; elsewhere the two agree within 2 ulp. Smaller arrays: one ``expit`` call."""
    dt = _float_dtype(x)
    x = x if x.dtype == dt else x.astype(dt)
    if x.size < SIGMOID_PASSES_MIN or dt.kind != "f" or (out is not None and out.dtype != dt):
        return sps.expit(x, out=out)
    t = np.negative(x, out=out)  # ``out`` may be ``x`` itself: every pass is elementwise
    with np.errstate(over="ignore"):
        np.exp(t, out=t)
    np.add(t, 1, out=t)
    return np.divide(1, t, out=t)


# --- gradient helpers ------------------------------------------------------------------------

_LN2, _LN10, _2_SQRTPI = math.log(2.0), math.log(10.0), 2.0 / math.sqrt(math.pi)


def _sw(T: Any, cond: Any, g: Any) -> Any:
    """g where cond holds, else 0."""
    return T.switch(cond, g, 0)


def _never_zero(v: Any) -> bool:
    """``v`` is a constant none of whose elements is zero (so no special case is needed)."""
    return isinstance(v, Constant) and bool(np.all(np.asarray(v.data) != 0))


def _nonzero_at_origin(T: Any, x: Any, y: Any) -> Any:
    """``y``, but 1 where x and y are both 0: ``x / y`` is then 0 there (xlogy0's slope in y at
    the origin, where the function is 0 on the line x = 0), and stays x / y elsewhere, its own
    derivatives included."""
    return T.switch(T.and_(T.eq(x, 0), T.eq(y, 0)), 1, y)


def _pow_grad(T: Any, x: list, z: Any, g: Any) -> list:
    """d(b**e)/db = e * b**(e-1), but 0 where e == 0 and b**(e-1) overflows (b**0 is 1
    everywhere; at b = 0 the formula would be 0 * inf). d/de = b**e * log(b), but 0 at b = 0:
    0**e is 0 for every e > 0 (and inf for every e < 0), so its slope in e is 0, not 0 * -inf
    (JAX's choice too). Constant exponents and bases that are never 0 get the plain formulas."""
    b, e = x
    if _never_zero(e):
        db = g * e * b ** (e - 1)
    else:  # e == 0 where b**(e-1) overflows (b = 0, tiny b): 0 * 1, not 0 * inf. Elsewhere the
        # formula itself, so higher derivatives stay exact (d/de of e * b**(e-1) is b**-1 at e = 0)
        e_zero = T.eq(e, 0)
        power = T.switch(T.eq(b, 0) & e_zero, 1, b) ** (e - 1)  # no 0**-1 (and its warning) computed
        db = g * e * T.switch(e_zero & T.isinf(power), 1, power)
    if _never_zero(b):
        de = g * z * T.log(b)
    else:  # at b == 0: 0 * log(1), never inf * 0 (0**e is inf for every e < 0: slope 0 too)
        at_zero = T.eq(b, 0)
        de = g * T.switch(at_zero, 0, z) * T.log(T.switch(at_zero, 1, b))
    return [db, de]


def _arctan2_grad(T: Any, x: list, z: Any, g: Any) -> list:
    """d atan2(y, x) = (x dy - y dx) / (x**2 + y**2), computed as (x/r)/r with r = hypot(x, y) so
    the squares cannot underflow to 0/0 (tiny inputs) or overflow (huge ones). At the origin,
    where atan2 jumps, it stays undefined (NaN)."""
    r = T.hypot(x[0], x[1])
    return [g * (x[1] / r) / r, -g * (x[0] / r) / r]


def _hypot_grad(T: Any, x: list, z: Any, g: Any) -> list:
    """x / hypot(x, y) and y / hypot(x, y); at the origin, where hypot has a kink like abs at 0,
    the subgradient 0 (abs uses sign(0) = 0 there too) instead of 0/0."""
    safe = T.switch(T.eq(z, 0), 1, z)
    return [g * x[0] / safe, g * x[1] / safe]


_POS, _NONZERO, _KINKS = ("positive",), ("nonzero",), ("away_from_kinks",)
_ROUNDING = {"iub": "{0}"}  # floor/ceil/round/trunc of integers: the value itself

# --- the table -------------------------------------------------------------------------------
# name, nin, numpy, OpenCL C, gradient rule (T, x inputs, z output, g output grad), infix; facts
_ROWS = [
    # arithmetic
    ScalarOp("add", 2, np.add, "({0} + {1})", lambda T, x, z, g: [g, g], "+", commutative=True,
             cl_kinds={"b": "({0} | {1})"}, vector=True),
    ScalarOp("sub", 2, np.subtract, "({0} - {1})", lambda T, x, z, g: [g, -g], "-", vector=True),
    ScalarOp("mul", 2, np.multiply, "({0} * {1})", lambda T, x, z, g: [g * x[1], g * x[0]], "*", commutative=True,
             cl_kinds={"b": "({0} & {1})"}, vector=True),
    ScalarOp("true_div", 2, np.true_divide, "({0} / {1})", lambda T, x, z, g: [g / x[1], -g * z / x[1]], "/",
             vector=True, domain=("any", "nonzero")),
    ScalarOp("int_div", 2, np.floor_divide, "floor_div({0}, {1})", ZERO, "//",
             cl_kinds={"fiu": "floor_div_{S}({0}, {1})"}, domain=("away_from_kinks", "small_divisors")),
    ScalarOp("mod", 2, np.remainder, "py_mod({0}, {1})", lambda T, x, z, g: [g, -g * T.int_div(x[0], x[1])], "%",
             cl_kinds={"fiu": "py_mod_{S}({0}, {1})"}, domain=("away_from_kinks", "small_divisors")),
    ScalarOp("pow", 2, np.power, "pow({0}, {1})", _pow_grad, "**",
             cl_kinds={"iu": "int_pow_{S}({0}, {1})"}, vector=True, domain=("positive", (-3, 3))),
    ScalarOp("maximum", 2, np.maximum, "max({0}, {1})",
             lambda T, x, z, g: [_sw(T, x[0] >= x[1], g), _sw(T, x[0] < x[1], g)], commutative=True, vector=True,
             cl_kinds={"f": "(({0} >= {1} || isnan({0})) ? {0} : {1})"}, domain=("away_from_kinks", "integers")),
    ScalarOp("minimum", 2, np.minimum, "min({0}, {1})",
             lambda T, x, z, g: [_sw(T, x[0] <= x[1], g), _sw(T, x[0] > x[1], g)], commutative=True, vector=True,
             cl_kinds={"f": "(({0} <= {1} || isnan({0})) ? {0} : {1})"}, domain=("away_from_kinks", "integers")),
    ScalarOp("arctan2", 2, np.arctan2, "atan2({0}, {1})", _arctan2_grad, vector=True, domain=("nonzero", "nonzero")),
    ScalarOp("hypot", 2, np.hypot, "hypot({0}, {1})", _hypot_grad, commutative=True, vector=True,
             domain=("nonzero", "nonzero")),
    ScalarOp("neg", 1, np.negative, "(-{0})", lambda T, x, z, g: [-g], "-", vector=True),
    ScalarOp("abs", 1, np.absolute, "abs({0})", lambda T, x, z, g: [g * T.sign(x[0])], vector=True,
             cl_kinds={"f": "fabs({0})", "i": "(({T})abs({0}))", "ub": "{0}"}, domain=_KINKS),
    ScalarOp("sign", 1, np.sign, "(isnan({0}) ? {0} : sign({0}))", ZERO,
             cl_kinds={"i": "(({T})(({0} > 0) - ({0} < 0)))", "ub": "(({T})({0} > 0))"}, domain=_KINKS),
    # comparisons and logic (results are bool)
    ScalarOp("lt", 2, np.less, "({0} < {1})", ZERO, "<", work="args"),
    ScalarOp("gt", 2, np.greater, "({0} > {1})", ZERO, ">", work="args"),
    ScalarOp("le", 2, np.less_equal, "({0} <= {1})", ZERO, "<=", work="args"),
    ScalarOp("ge", 2, np.greater_equal, "({0} >= {1})", ZERO, ">=", work="args"),
    ScalarOp("eq", 2, np.equal, "({0} == {1})", ZERO, "==", commutative=True, work="args"),
    ScalarOp("neq", 2, np.not_equal, "({0} != {1})", ZERO, "!=", commutative=True, work="args"),
    ScalarOp("and_", 2, np.bitwise_and, "({0} & {1})", ZERO, "&", commutative=True),
    ScalarOp("or_", 2, np.bitwise_or, "({0} | {1})", ZERO, "|", commutative=True),
    ScalarOp("xor", 2, np.bitwise_xor, "({0} ^ {1})", ZERO, "^", commutative=True),
    ScalarOp("invert", 1, np.invert, "(~{0})", ZERO, "~", cl_kinds={"b": "(!{0})"}),
    ScalarOp("isnan", 1, np.isnan, "isnan({0})", ZERO, cl_kinds={"iub": "0"}, work="first"),
    ScalarOp("isinf", 1, np.isinf, "isinf({0})", ZERO, cl_kinds={"iub": "0"}, work="first"),
    ScalarOp("isfinite", 1, np.isfinite, "isfinite({0})", ZERO, cl_kinds={"iub": "1"}, work="first"),
    # exponentials and logarithms
    ScalarOp("exp", 1, np.exp, "exp({0})", lambda T, x, z, g: [g * z], vector=True),
    ScalarOp("exp2", 1, np.exp2, "exp2({0})", lambda T, x, z, g: [g * z * _LN2], vector=True),
    ScalarOp("expm1", 1, np.expm1, "expm1({0})", lambda T, x, z, g: [g * (z + 1)], vector=True),
    ScalarOp("log", 1, np.log, "log({0})", lambda T, x, z, g: [g / x[0]], vector=True, domain=_POS),
    ScalarOp("log2", 1, np.log2, "log2({0})", lambda T, x, z, g: [g / (x[0] * _LN2)], vector=True, domain=_POS),
    ScalarOp("log10", 1, np.log10, "log10({0})", lambda T, x, z, g: [g / (x[0] * _LN10)], vector=True, domain=_POS),
    ScalarOp("log1p", 1, np.log1p, "log1p({0})", lambda T, x, z, g: [g / (x[0] + 1)], vector=True, domain=_POS),
    ScalarOp("sqrt", 1, np.sqrt, "sqrt({0})", lambda T, x, z, g: [g * 0.5 / z], vector=True, domain=_POS),
    ScalarOp("sqr", 1, np.square, "({0} * {0})", lambda T, x, z, g: [g * 2 * x[0]], cl_kinds={"b": "{0}"},
             vector=True),
    ScalarOp("reciprocal", 1, np.reciprocal, "(1 / {0})", lambda T, x, z, g: [-g * z * z],
             cl_kinds={"iu": "floor_div_{S}(1, {0})"}, vector=True, domain=_NONZERO),
    # trigonometric and hyperbolic
    ScalarOp("sin", 1, np.sin, "sin({0})", lambda T, x, z, g: [g * T.cos(x[0])], vector=True),
    ScalarOp("cos", 1, np.cos, "cos({0})", lambda T, x, z, g: [-g * T.sin(x[0])], vector=True),
    ScalarOp("tan", 1, np.tan, "tan({0})", lambda T, x, z, g: [g * (1 + z * z)], vector=True, domain=((-1.2, 1.2),)),
    ScalarOp("arcsin", 1, np.arcsin, "asin({0})", lambda T, x, z, g: [g / T.sqrt(1 - x[0] * x[0])], vector=True,
             domain=("unit",)),
    ScalarOp("arccos", 1, np.arccos, "acos({0})", lambda T, x, z, g: [-g / T.sqrt(1 - x[0] * x[0])], vector=True,
             domain=("unit",)),
    ScalarOp("arctan", 1, np.arctan, "atan({0})", lambda T, x, z, g: [g / (1 + x[0] * x[0])], vector=True),
    ScalarOp("sinh", 1, np.sinh, "sinh({0})", lambda T, x, z, g: [g * T.cosh(x[0])], vector=True),
    ScalarOp("cosh", 1, np.cosh, "cosh({0})", lambda T, x, z, g: [g * T.sinh(x[0])], vector=True),
    ScalarOp("tanh", 1, np.tanh, "tanh({0})", lambda T, x, z, g: [g * (1 - z * z)], vector=True),
    ScalarOp("arcsinh", 1, np.arcsinh, "asinh({0})", lambda T, x, z, g: [g / T.sqrt(x[0] * x[0] + 1)]),
    ScalarOp("arccosh", 1, np.arccosh, "acosh({0})", lambda T, x, z, g: [g / T.sqrt(x[0] * x[0] - 1)],
             domain=((1.1, 10),)),
    ScalarOp("arctanh", 1, np.arctanh, "atanh({0})", lambda T, x, z, g: [g / (1 - x[0] * x[0])], domain=("unit",)),
    # rounding (piecewise constant)
    ScalarOp("floor", 1, np.floor, "floor({0})", ZERO, cl_kinds=_ROUNDING, vector=True, domain=_KINKS),
    ScalarOp("ceil", 1, np.ceil, "ceil({0})", ZERO, cl_kinds=_ROUNDING, vector=True, domain=_KINKS),
    ScalarOp("round", 1, np.rint, "rint({0})", ZERO, cl_kinds=_ROUNDING, vector=True, domain=_KINKS),
    ScalarOp("trunc", 1, np.trunc, "trunc({0})", ZERO, cl_kinds=_ROUNDING, vector=True, domain=_KINKS),
    # neural-network nonlinearities and special functions
    ScalarOp("sigmoid", 1, _sigmoid, "(1 / (1 + exp(-{0})))", lambda T, x, z, g: [g * z * (1 - z)], vector=True),
    ScalarOp("softplus", 1, _softplus, "(max({0}, ({T})0) + log1p(exp(-fabs({0}))))",
             lambda T, x, z, g: [g * T.sigmoid(x[0])], vector=True),
    ScalarOp("relu", 1, _relu, "max({0}, ({T})0)", lambda T, x, z, g: [_sw(T, z > 0, g)],
             cl_kinds={"f": "({0} < 0 ? ({T})0 : {0})"}, vector=True, domain=_KINKS),
    ScalarOp("softsign", 1, _softsign, "({0} / (1 + fabs({0})))", lambda T, x, z, g: [g * T.sqr(1 - T.abs(z))],
             vector=True, domain=_NONZERO),  # its second derivative jumps at 0
    ScalarOp("xlogx", 1, _xlogx, "({0} == 0 ? ({T})0 : {0} * log({0}))",
             lambda T, x, z, g: [g * (1 + T.log(x[0]))], domain=_POS),
    ScalarOp("xlogy0", 2, _xlogy0, "({0} == 0 ? ({T})0 : {0} * log({1}))",
             lambda T, x, z, g: [g * T.log(x[1]), g * x[0] / _nonzero_at_origin(T, x[0], x[1])],
             domain=("any", "positive")),
    ScalarOp("erf", 1, _erf, "erf({0})", lambda T, x, z, g: [g * _2_SQRTPI * T.exp(-x[0] * x[0])], vector=True),
    ScalarOp("erfc", 1, _erfc, "erfc({0})", lambda T, x, z, g: [-g * _2_SQRTPI * T.exp(-x[0] * x[0])], vector=True),
    # selection
    ScalarOp("clip", 3, np.clip, "clamp({0}, {1}, {2})",
             lambda T, x, z, g: [_sw(T, (x[0] >= x[1]) & (x[0] <= x[2]), g), _sw(T, x[0] < x[1], g),
                                 _sw(T, x[0] > x[2], g)],
             cl_kinds={"f": "(isnan({0}) ? {0} : fmin(fmax({0}, {1}), {2}))", "iub": "min(max({0}, {1}), {2})"},
             inplace=False, domain=("away_from_kinks", "nonpositive_integers", "positive_integers")),
    ScalarOp("switch", 3, _where, "({0} ? {1} : {2})",
             lambda T, x, z, g: [None, _sw(T, x[0], g), T.switch(x[0], 0, g)], inplace=False, work="select",
             domain=("bool", "any", "any")),
    ScalarOp("identity", 1, np.positive, "{0}", lambda T, x, z, g: [g], vector=True),
    ScalarOp("second", 2, _second, "{1}", lambda T, x, z, g: [None, g], vector=True),
    ScalarOp("round_half_away_from_zero", 1, _round_half_away, "round({0})", ZERO, cl_kinds=_ROUNDING, vector=True,
             domain=_KINKS),
]


def _random_row(name: str, draw: Callable, out: str, shift: int, params: tuple = (), vector: bool = False) -> ScalarOp:
    """A random row: arguments (like, k0, k1, c1, c2, c3, *params), see the module docstring."""
    nin = 6 + len(params)
    return ScalarOp(name, nin, _draws.row_function(name, draw, len(params), out), "sg_" + name[len("random_"):], ZERO,
                    inplace=False, vector=vector, block_shift=shift, out=out,
                    domain=("any",) + ("integers",) * 5 + params)


_ROWS += [  # random draws (symgraph/rng): the value at an element is a function of its flat index
    _random_row("random_bits32", _draws.bits32, "uint32", 3),
    _random_row("random_bits64", _draws.bits64, "uint64", 2),
    _random_row("random_uniform32", _draws.uniform32, "float32", 3, vector=True),
    _random_row("random_uniform64", _draws.uniform64, "float64", 2, vector=True),
    _random_row("random_normal32", _draws.normal32, "float32", 3, vector=True),
    _random_row("random_normal64", _draws.normal64, "float64", 2, vector=True),
    _random_row("random_bernoulli32", _draws.bernoulli32, "float32", 3, ("unit",), vector=True),
    _random_row("random_bernoulli64", _draws.bernoulli64, "float64", 2, ("unit",), vector=True),
    _random_row("random_integers", _draws.integers, "int64", 2, ("integers", "integers")),
    _random_row("random_binomial", _binomial.binomial, "int64", 2, ("integers", "unit")),
]

CAST_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
               "float16", "float32", "float64")


def _cast_fn(dtype: str) -> Callable:
    target = np.dtype(dtype)

    def cast(x: Any, out: np.ndarray | None = None) -> Any:
        if out is None:
            return np.asarray(x).astype(target)
        np.copyto(out, x, casting="unsafe")
        return out
    cast.__name__ = cast.__qualname__ = f"cast_{dtype}"
    return cast


def _cast_grad(T: Any, x: list, z: Any, g: Any) -> list:
    return [T.cast(g, x[0].dtype)] if np.dtype(x[0].dtype).kind in "fc" else [None]


SCALAR_OPS: dict[str, ScalarOp] = {row.name: row for row in _ROWS}
RANDOM_ROWS: frozenset[str] = frozenset(row.name for row in _ROWS if row.is_random)
"""The random rows: not elementwise functions of their arguments' values (``T.`` does not export
them; symgraph.random builds them), so tests that sweep the table's value semantics skip them."""
for _dt in CAST_DTYPES:  # the conversion to the working type (the output dtype) is the whole cast
    SCALAR_OPS[f"cast_{_dt}"] = ScalarOp(f"cast_{_dt}", 1, _cast_fn(_dt), "{0}", _cast_grad)


def get(name: str) -> ScalarOp:
    """The table row called ``name`` (KeyError lists the close names)."""
    try:
        return SCALAR_OPS[name]
    except KeyError:
        raise KeyError(f"no elementwise op {name!r}; known: {sorted(SCALAR_OPS)}") from None
