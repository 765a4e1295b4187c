"""THE table of elementwise operations.

Each row defines one op once: its name, arity, numpy implementation (a ufunc or a function
taking ``out=``), OpenCL C expression (``{0}``, ``{1}``... are the inputs, ``{T}`` the output
C type), gradient rule, and infix symbol for printing. Elemwise, fusion, both backends,
printing and differentiation all read this table; adding an op is one row plus its tests.

Gradient rules take ``(inputs, output, output_grad)`` as tensor variables and return one
entry per input: a variable, or None where no gradient flows (integer-valued results).
``ZERO`` marks ops that are piecewise constant (comparisons, floor, ...): zero gradient.

The output dtype is numpy's answer for the input dtypes (see ``out_dtype``), so the numpy
backend and the declared types always agree.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
import scipy.special as sps


class _LazyTensor:
    """``T.exp`` etc. inside gradient rules, imported on first use (tensor imports this module)."""

    def __getattr__(self, name: str):
        import symgraph.tensor as tensor
        return getattr(tensor, name)


T = _LazyTensor()
ZERO = "zero"


class ScalarOp:
    """One row of the table. Equal (and hashed) by name, so graphs compare and merge by op name."""

    __slots__ = ("name", "nin", "np_fn", "cl", "grad", "infix", "commutative")

    def __init__(self, name: str, nin: int, np_fn: Callable, cl: str, grad, infix: str | None = None,
                 commutative: bool = False):
        self.name, self.nin, self.np_fn, self.cl = name, nin, np_fn, cl
        self.grad, self.infix, self.commutative = grad, infix, commutative

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScalarOp) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("ScalarOp", self.name))

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple:
        return get, (self.name,)  # a row pickles as its name

    def out_dtype(self, *dtypes: str) -> str:
        """The output dtype for these input dtypes, as numpy computes it (error if undefined)."""
        return _out_dtype(self, tuple(map(dtype_name, dtypes)))


@lru_cache(maxsize=None)
def dtype_name(dtype) -> str:
    """Canonical dtype name ('float64' for np.float64, 'f8', ...); cached: numpy's is slow."""
    return np.dtype(dtype).name


@lru_cache(maxsize=None)
def _out_dtype(op: ScalarOp, dtypes: tuple[str, ...]) -> str:
    probes = [np.ones(1, dtype=d) for d in dtypes]
    with np.errstate(all="ignore"):
        try:
            return np.dtype(op.np_fn(*probes).dtype).name
        except TypeError as e:
            raise TypeError(f"{op.name} is not defined for dtypes {list(dtypes)} ({e})") from None


# --- numpy implementations that are not plain ufuncs (all accept out=) -----------------------

_SAME_SIZE_INT = {4: np.int32, 8: np.int64}


def _where(cond, a, b, out=None):
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
    mask = np.asarray(cond, dtype=bool).astype(itype)
    np.negative(mask, out=mask)  # all bits set where cond holds
    bits = out.view(itype)
    np.bitwise_and(np.asarray(a, out.dtype).view(itype), mask, out=bits)
    b_bits = np.asarray(b, out.dtype).view(itype)
    if b_bits.ndim or b_bits != 0:  # b == +0.0 (or integer 0) adds no bits
        np.bitwise_or(bits, np.bitwise_and(b_bits, np.invert(mask)), out=bits)
    return out


def _second(like, value, out=None):
    """``value`` broadcast to the shape of (like, value): Theano's fill, the gradient of sum."""
    if out is None:
        return np.array(np.broadcast_to(value, np.broadcast_shapes(np.shape(like), np.shape(value))))
    np.copyto(out, value, casting="unsafe")
    return out


def _relu(x, out=None):
    return np.maximum(x, np.zeros((), x.dtype), out=out)


def _softplus(x, out=None):
    return np.logaddexp(np.zeros((), _float_dtype(x)), x, out=out)


def _float_dtype(x) -> np.dtype:
    dt = np.asarray(x).dtype
    return dt if dt.kind in "fc" else np.result_type(dt, np.float16)


def _float_fn(fn: Callable) -> Callable:
    """Wrap a scipy ufunc so integer inputs are promoted like numpy's own float ufuncs."""
    def wrapped(x, out=None):
        dt = _float_dtype(x)
        return fn(x if x.dtype == dt else x.astype(dt), out=out)
    wrapped.__name__ = fn.__name__
    return wrapped


_sigmoid, _erf, _erfc = _float_fn(sps.expit), _float_fn(sps.erf), _float_fn(sps.erfc)
_sigmoid.__name__, _erf.__name__, _erfc.__name__ = "sigmoid", "erf", "erfc"

# --- gradient helpers ------------------------------------------------------------------------

_LN2, _LN10, _2_SQRTPI = math.log(2.0), math.log(10.0), 2.0 / math.sqrt(math.pi)


def _sw(cond, g):
    """g where cond holds, else 0."""
    return T.switch(cond, g, 0)


def _never_zero(v) -> bool:
    """``v`` is a constant none of whose elements is zero (so no special case is needed)."""
    return isinstance(v, T.TensorConstant) and bool(np.all(np.asarray(v.data) != 0))


def _pow_grad(x, z, g):
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


def _arctan2_grad(x, z, g):
    """d atan2(y, x) = (x dy - y dx) / (x**2 + y**2), computed as (x/r)/r with r = hypot(x, y) so
    the squares cannot underflow to 0/0 (tiny inputs) or overflow (huge ones). At the origin,
    where atan2 jumps, it stays undefined (NaN)."""
    r = T.hypot(x[0], x[1])
    return [g * (x[1] / r) / r, -g * (x[0] / r) / r]


def _hypot_grad(x, z, g):
    """x / hypot(x, y) and y / hypot(x, y); at the origin, where hypot has a kink like abs at 0,
    the subgradient 0 (abs uses sign(0) = 0 there too) instead of 0/0."""
    safe = T.switch(T.eq(z, 0), 1, z)
    return [g * x[0] / safe, g * x[1] / safe]


# --- the table -------------------------------------------------------------------------------
# name, nin, numpy, OpenCL C, gradient (x = inputs, z = output, g = output grad), infix symbol
_ROWS = [
    # arithmetic
    ("add", 2, np.add, "({0} + {1})", lambda x, z, g: [g, g], "+"),
    ("sub", 2, np.subtract, "({0} - {1})", lambda x, z, g: [g, -g], "-"),
    ("mul", 2, np.multiply, "({0} * {1})", lambda x, z, g: [g * x[1], g * x[0]], "*"),
    ("true_div", 2, np.true_divide, "({0} / {1})", lambda x, z, g: [g / x[1], -g * z / x[1]], "/"),
    ("int_div", 2, np.floor_divide, "floor_div({0}, {1})", ZERO, "//"),
    ("mod", 2, np.remainder, "py_mod({0}, {1})", lambda x, z, g: [g, -g * T.int_div(x[0], x[1])], "%"),
    ("pow", 2, np.power, "pow({0}, {1})", _pow_grad, "**"),
    ("maximum", 2, np.maximum, "max({0}, {1})",
     lambda x, z, g: [_sw(x[0] >= x[1], g), _sw(x[0] < x[1], g)], None),
    ("minimum", 2, np.minimum, "min({0}, {1})",
     lambda x, z, g: [_sw(x[0] <= x[1], g), _sw(x[0] > x[1], g)], None),
    ("arctan2", 2, np.arctan2, "atan2({0}, {1})", _arctan2_grad, None),
    ("hypot", 2, np.hypot, "hypot({0}, {1})", _hypot_grad, None),
    ("neg", 1, np.negative, "(-{0})", lambda x, z, g: [-g], "-"),
    ("abs", 1, np.absolute, "abs({0})", lambda x, z, g: [g * T.sign(x[0])], None),
    ("sign", 1, np.sign, "(isnan({0}) ? {0} : sign({0}))", ZERO, None),
    # comparisons and logic (results are bool)
    ("lt", 2, np.less, "({0} < {1})", ZERO, "<"),
    ("gt", 2, np.greater, "({0} > {1})", ZERO, ">"),
    ("le", 2, np.less_equal, "({0} <= {1})", ZERO, "<="),
    ("ge", 2, np.greater_equal, "({0} >= {1})", ZERO, ">="),
    ("eq", 2, np.equal, "({0} == {1})", ZERO, "=="),
    ("neq", 2, np.not_equal, "({0} != {1})", ZERO, "!="),
    ("and_", 2, np.bitwise_and, "({0} & {1})", ZERO, "&"),
    ("or_", 2, np.bitwise_or, "({0} | {1})", ZERO, "|"),
    ("xor", 2, np.bitwise_xor, "({0} ^ {1})", ZERO, "^"),
    ("invert", 1, np.invert, "(~{0})", ZERO, "~"),
    ("isnan", 1, np.isnan, "isnan({0})", ZERO, None),
    ("isinf", 1, np.isinf, "isinf({0})", ZERO, None),
    ("isfinite", 1, np.isfinite, "isfinite({0})", ZERO, None),
    # exponentials and logarithms
    ("exp", 1, np.exp, "exp({0})", lambda x, z, g: [g * z], None),
    ("exp2", 1, np.exp2, "exp2({0})", lambda x, z, g: [g * z * _LN2], None),
    ("expm1", 1, np.expm1, "expm1({0})", lambda x, z, g: [g * (z + 1)], None),
    ("log", 1, np.log, "log({0})", lambda x, z, g: [g / x[0]], None),
    ("log2", 1, np.log2, "log2({0})", lambda x, z, g: [g / (x[0] * _LN2)], None),
    ("log10", 1, np.log10, "log10({0})", lambda x, z, g: [g / (x[0] * _LN10)], None),
    ("log1p", 1, np.log1p, "log1p({0})", lambda x, z, g: [g / (x[0] + 1)], None),
    ("sqrt", 1, np.sqrt, "sqrt({0})", lambda x, z, g: [g * 0.5 / z], None),
    ("sqr", 1, np.square, "({0} * {0})", lambda x, z, g: [g * 2 * x[0]], None),
    ("reciprocal", 1, np.reciprocal, "(1 / {0})", lambda x, z, g: [-g * z * z], None),
    # trigonometric and hyperbolic
    ("sin", 1, np.sin, "sin({0})", lambda x, z, g: [g * T.cos(x[0])], None),
    ("cos", 1, np.cos, "cos({0})", lambda x, z, g: [-g * T.sin(x[0])], None),
    ("tan", 1, np.tan, "tan({0})", lambda x, z, g: [g * (1 + z * z)], None),
    ("arcsin", 1, np.arcsin, "asin({0})", lambda x, z, g: [g / T.sqrt(1 - x[0] * x[0])], None),
    ("arccos", 1, np.arccos, "acos({0})", lambda x, z, g: [-g / T.sqrt(1 - x[0] * x[0])], None),
    ("arctan", 1, np.arctan, "atan({0})", lambda x, z, g: [g / (1 + x[0] * x[0])], None),
    ("sinh", 1, np.sinh, "sinh({0})", lambda x, z, g: [g * T.cosh(x[0])], None),
    ("cosh", 1, np.cosh, "cosh({0})", lambda x, z, g: [g * T.sinh(x[0])], None),
    ("tanh", 1, np.tanh, "tanh({0})", lambda x, z, g: [g * (1 - z * z)], None),
    ("arcsinh", 1, np.arcsinh, "asinh({0})", lambda x, z, g: [g / T.sqrt(x[0] * x[0] + 1)], None),
    ("arccosh", 1, np.arccosh, "acosh({0})", lambda x, z, g: [g / T.sqrt(x[0] * x[0] - 1)], None),
    ("arctanh", 1, np.arctanh, "atanh({0})", lambda x, z, g: [g / (1 - x[0] * x[0])], None),
    # rounding (piecewise constant)
    ("floor", 1, np.floor, "floor({0})", ZERO, None),
    ("ceil", 1, np.ceil, "ceil({0})", ZERO, None),
    ("round", 1, np.rint, "rint({0})", ZERO, None),
    ("trunc", 1, np.trunc, "trunc({0})", ZERO, None),
    # neural-network nonlinearities and special functions
    ("sigmoid", 1, _sigmoid, "(1 / (1 + exp(-{0})))", lambda x, z, g: [g * z * (1 - z)], None),
    ("softplus", 1, _softplus, "(max({0}, ({T})0) + log1p(exp(-fabs({0}))))",
     lambda x, z, g: [g * T.sigmoid(x[0])], None),
    ("relu", 1, _relu, "max({0}, ({T})0)", lambda x, z, g: [_sw(z > 0, g)], None),
    ("erf", 1, _erf, "erf({0})", lambda x, z, g: [g * _2_SQRTPI * T.exp(-x[0] * x[0])], None),
    ("erfc", 1, _erfc, "erfc({0})", lambda x, z, g: [-g * _2_SQRTPI * T.exp(-x[0] * x[0])], None),
    # selection
    ("clip", 3, np.clip, "clamp({0}, {1}, {2})",
     lambda x, z, g: [_sw((x[0] >= x[1]) & (x[0] <= x[2]), g), _sw(x[0] < x[1], g), _sw(x[0] > x[2], g)],
     None),
    ("switch", 3, _where, "({0} ? {1} : {2})",
     lambda x, z, g: [None, _sw(x[0], g), T.switch(x[0], 0, g)], None),
    ("identity", 1, np.positive, "{0}", lambda x, z, g: [g], None),
    ("second", 2, _second, "{1}", lambda x, z, g: [None, g], None),
]

CAST_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
               "float16", "float32", "float64")


def _cast_fn(dtype: str) -> Callable:
    target = np.dtype(dtype)

    def cast(x, out=None):
        if out is None:
            return np.asarray(x).astype(target)
        np.copyto(out, x, casting="unsafe")
        return out
    cast.__name__ = f"cast_{dtype}"
    return cast


def _cast_grad(x, z, g):
    return [T.cast(g, x[0].dtype)] if x[0].dtype.startswith("float") else [None]


_COMMUTATIVE = {"add", "mul", "maximum", "minimum", "eq", "neq", "and_", "or_", "xor", "hypot"}

SCALAR_OPS: dict[str, ScalarOp] = {
    name: ScalarOp(name, nin, fn, cl, grad, infix, name in _COMMUTATIVE)
    for name, nin, fn, cl, grad, infix in _ROWS
}
for _dt in CAST_DTYPES:
    SCALAR_OPS[f"cast_{_dt}"] = ScalarOp(f"cast_{_dt}", 1, _cast_fn(_dt), "convert_{T}({0})", _cast_grad)

def get(name: str) -> ScalarOp:
    """The table row called ``name`` (KeyError lists the close names)."""
    try:
        return SCALAR_OPS[name]
    except KeyError:
        raise KeyError(f"no elementwise op {name!r}; known: {sorted(SCALAR_OPS)}") from None
