"""An independent reference for the fuzzer: runs a graph one element at a time with Python's
``math`` module and plain int/float arithmetic, sharing no code with the ops under test
(``scalar_op.np_fn`` serves both the numpy backend and ``op.perform``, so those two are not
independent of each other for elementwise math).

numpy is used only to lay elements out (broadcasting, axes, the dtype of each node's output,
which the graph declares). Each node's result is rounded to its output dtype, as a correctly
rounded implementation would do: floats to the nearest float32/float64, integers wrapped to their
width. IEEE special values follow C99 Annex F where Python's math raises instead (log(0) = -inf,
sqrt(-1) = nan, exp overflow = inf, pow poles and overflows with their signs); where IEEE leaves
a choice, numpy's documented convention is taken (NaN propagates through maximum/minimum/clip;
x // 0 and x % 0 as numpy defines them; sign(nan) = nan).

Only the ops the fuzzer builds have rules; any other op raises NotImplementedError naming it, so
a fuzzer that grows new ops must grow this reference too.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from symgraph.graph.basic import Constant
from symgraph.graph.traversal import toposort

INF, NAN = math.inf, math.nan


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and x != x


# --- IEEE arithmetic where Python raises ------------------------------------------------------

def _div(a: Any, b: Any) -> float:
    a, b = float(a), float(b)
    if b == 0.0:
        if a == 0.0 or _isnan(a):
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)
    return a / b


def _floor_div(a: Any, b: Any) -> float:
    """numpy's floor_divide on floats: Python's // (divmod rules), a / b when b == 0."""
    a, b = float(a), float(b)
    if b == 0.0:
        return _div(a, b)
    try:
        return a // b
    except (ZeroDivisionError, ValueError):
        return NAN


def _mod(a: Any, b: Any) -> float:
    """numpy's remainder on floats: Python's % (sign of the divisor), nan when b == 0."""
    a, b = float(a), float(b)
    if b == 0.0:
        return NAN
    return a % b


def _odd_integer(y: float) -> bool:
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0.0


def _pow(x: Any, y: Any) -> float:
    x, y = float(x), float(y)
    try:
        return math.pow(x, y)
    except OverflowError:
        return -INF if x < 0 and _odd_integer(y) else INF
    except ValueError:  # a pole (0 ** negative) or a negative base to a non-integer power
        if x == 0.0 and y < 0:
            return math.copysign(INF, x) if _odd_integer(y) else INF
        return NAN


def _guard(fn: Callable[[float], float], below: float | None = None, pole: bool = False
           ) -> Callable[[Any], float]:
    """``fn`` on floats with IEEE answers: nan in, nan out; nan below the domain (``below``),
    -inf at its edge when that is a pole (log(0), log1p(-1)); inf on overflow."""
    def f(x: Any) -> float:
        x = float(x)
        if _isnan(x) or (below is not None and x < below):
            return NAN
        if pole and x == below:
            return -INF
        try:
            return fn(x)
        except OverflowError:
            return INF
        except ValueError:  # sin(inf), cos(inf)
            return NAN
    return f


def _exp(x: Any) -> float:
    x = float(x)
    try:
        return math.exp(x)
    except OverflowError:
        return INF


def _sigmoid(x: Any) -> float:
    x = float(x)
    if _isnan(x):
        return NAN
    if x >= 0:
        return 1.0 / (1.0 + _exp(-x))
    e = _exp(x)
    return e / (1.0 + e)


def _softplus(x: Any) -> float:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), exact in both tails."""
    x = float(x)
    if _isnan(x):
        return NAN
    return max(x, 0.0) + math.log1p(_exp(-abs(x)))


def _floor(x: Any) -> Any:
    if isinstance(x, int):
        return x
    if not math.isfinite(x) or x == 0.0:
        return x
    return float(math.floor(x))


def _sign(x: Any) -> Any:
    if _isnan(x):
        return NAN
    s = (x > 0) - (x < 0)
    return float(s) if isinstance(x, float) else s


def _maximum(a: Any, b: Any) -> Any:
    if _isnan(a) or _isnan(b):
        return NAN
    return a if a > b else b


def _minimum(a: Any, b: Any) -> Any:
    if _isnan(a) or _isnan(b):
        return NAN
    return a if a < b else b


def _clip(x: Any, lo: Any, hi: Any) -> Any:
    return _minimum(_maximum(x, lo), hi)


def _relu(x: Any) -> Any:
    return _maximum(x, 0.0 if isinstance(x, float) else 0)


def _isinf(x: Any) -> bool:
    return isinstance(x, float) and math.isinf(x)


def _isfinite(x: Any) -> bool:
    return not isinstance(x, float) or math.isfinite(x)


SCALAR: dict[str, Callable[..., Any]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "true_div": _div, "int_div": _floor_div, "mod": _mod, "pow": _pow,
    "maximum": _maximum, "minimum": _minimum, "arctan2": lambda a, b: math.atan2(float(a), float(b)),
    "hypot": lambda a, b: math.hypot(float(a), float(b)),
    "neg": lambda a: -a, "abs": abs, "sqr": lambda a: a * a, "sign": _sign,
    "exp": _exp, "expm1": _guard(math.expm1), "log": _guard(math.log, below=0.0, pole=True),
    "log1p": _guard(math.log1p, below=-1.0, pole=True), "sqrt": _guard(math.sqrt, below=0.0),
    "tanh": _guard(math.tanh), "sin": _guard(math.sin), "cos": _guard(math.cos),
    "arctan": _guard(math.atan), "floor": _floor, "sigmoid": _sigmoid, "softplus": _softplus,
    "relu": _relu, "gt": lambda a, b: a > b, "isinf": _isinf, "isfinite": _isfinite,
    "switch": lambda c, a, b: a if c else b, "clip": _clip,
}


def _cast(dtype: str) -> Callable[[Any], Any]:
    kind = np.dtype(dtype).kind

    def cast(x: Any) -> Any:
        if kind == "b":
            return bool(x)  # nan is true, as in C
        if kind in "iu":
            return int(x)   # toward zero; the fuzzer keeps NaN/Inf/huge values out of int casts
        return float(x)
    return cast


# --- arrays ----------------------------------------------------------------------------------

def _typed(values: list, shape: tuple, dtype: str) -> np.ndarray:
    """Python scalars -> an array of ``dtype``: floats rounded to nearest, ints wrapped."""
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        bits = 8 * dt.itemsize
        lo = -(1 << (bits - 1)) if dt.kind == "i" else 0
        values = [(int(v) - lo) % (1 << bits) + lo for v in values]
    with np.errstate(over="ignore"):  # a float64 beyond float32's range rounds to inf, as it should
        return np.array(values, dtype=object).astype(dt).reshape(shape)


def elemwise(name: str, args: list[np.ndarray], out_dtype: str) -> np.ndarray:
    fn = _cast(name[5:]) if name.startswith("cast_") else SCALAR.get(name)
    if fn is None:
        raise NotImplementedError(f"math reference: no rule for the elementwise op {name!r}")
    arrays = np.broadcast_arrays(*args)
    columns = [a.ravel().tolist() for a in arrays]  # exact Python floats/ints/bools
    return _typed([fn(*vals) for vals in zip(*columns)], arrays[0].shape, out_dtype)


def _fold(name: str, vals: list) -> Any:
    if name == "add":
        if not any(isinstance(v, float) for v in vals):
            return sum(vals)
        try:
            return math.fsum(vals)  # the exact sum, rounded once
        except (OverflowError, ValueError):  # inf, nan or overflow among them: IEEE addition says what
            return sum(vals, 0.0)
    if name == "mul":
        return math.prod(vals)
    if not vals:
        raise ValueError(f"zero-size array to reduction operation {name} which has no identity")
    out = vals[0]
    for v in vals[1:]:
        out = (_maximum if name == "maximum" else _minimum)(out, v)
    return out


def reduce(name: str, x: np.ndarray, axis: tuple | None, keepdims: bool, out_dtype: str) -> np.ndarray:
    """sum/prod exactly (math.fsum, then one rounding), max/min with NaN propagating."""
    axes = tuple(range(x.ndim)) if axis is None else tuple(sorted(a % x.ndim for a in axis))
    kept = [d for d in range(x.ndim) if d not in axes]
    kept_shape = tuple(x.shape[d] for d in kept)
    if name in ("maximum", "minimum") and any(x.shape[d] == 0 for d in axes):  # even with no rows: numpy's rule
        raise ValueError(f"zero-size array to reduction operation {name} which has no identity")
    rows = np.transpose(x, kept + list(axes)).reshape(math.prod(kept_shape), math.prod(x.shape[d] for d in axes))
    results = [_fold(name, row) for row in rows.tolist()]
    shape = tuple(1 if d in axes else x.shape[d] for d in range(x.ndim)) if keepdims else kept_shape
    return _typed(results, shape, out_dtype)


def dimshuffle(x: np.ndarray, new_order: tuple) -> np.ndarray:
    """Drop the (length-1) axes not named, permute the rest, insert length-1 axes at 'x'."""
    kept = [d for d in new_order if d != "x"]
    y = np.squeeze(x, axis=tuple(d for d in range(x.ndim) if d not in kept))
    y = np.transpose(y, [sorted(kept).index(d) for d in kept])
    return y.reshape(tuple(1 if d == "x" else x.shape[d] for d in new_order))


def evaluate(inputs: list, outputs: list, values: list) -> list[np.ndarray]:
    """The outputs of the graph for ``values``, node by node with the rules above."""
    env = {id(v): np.asarray(v.type.filter(x, what=v.name)) for v, x in zip(inputs, values)}

    def value(v: Any) -> np.ndarray:
        return np.asarray(v.data) if isinstance(v, Constant) else env[id(v)]

    for node in toposort(outputs, blockers=inputs):
        op, out = node.op, node.outputs[0]
        args = [value(v) for v in node.inputs]
        kind = type(op).__name__
        if kind == "Elemwise":
            env[id(out)] = elemwise(op.scalar_op.name, args, out.dtype)
        elif kind == "CAReduce":
            env[id(out)] = reduce(str(op.scalar_op), args[0], op.axis, op.keepdims, out.dtype)
        elif kind == "ReducedSize":
            axes = range(args[0].ndim) if op.axis is None else op.axis
            env[id(out)] = np.array(math.prod(args[0].shape[a] for a in axes), dtype=out.dtype)
        elif kind == "DimShuffle":
            env[id(out)] = dimshuffle(args[0], op.new_order)
        else:
            raise NotImplementedError(f"math reference: no rule for {op} ({kind})")
    return [value(v) for v in outputs]
