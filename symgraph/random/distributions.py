"""Graph builders of the distributions, shared by the stream API (``sg.RandomStream``) and the
functional API (``sg.random.normal(key, shape)``): each takes the draw's ``Words`` (key and
counter words) and returns a variable.

Parameters enter as ordinary graph arithmetic around a standard draw (``normal(avg, std)`` is
``avg + std * z``, ``uniform(low, high)`` is ``low + (high - low) * u``), so gradients flow to the
parameters while the draw itself is disconnected, and everything fuses with its readers.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.config import config
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.tensor.elemwise import ELEMWISE_OPS, broadcast_shapes, broadcast_static_shape, cast
from symgraph.tensor.random_ops import Blank, Choice, Permutation, Words
from symgraph.tensor.shape import (
    Shape,
    Shape_i,
    constant_int,
    shape_entries,
    shape_i,
    shape_tuple,
    to_dtype,
    vector_entry,
)
from symgraph.tensor.subtensor import Subtensor
from symgraph.tensor.type import TensorConstant, TensorVariable, as_tensor_variable, constant, tensor_inputs

FLOATS = ("float32", "float64")


def _axis_of(e: Any) -> tuple[TensorVariable, int] | None:
    """(x, d) when the size entry ``e`` is x.shape[d] (shape_i(x, d) or an index of x.shape)."""
    node = e.owner if isinstance(e, TensorVariable) else None
    if node is not None and isinstance(node.op, Shape_i):
        return tensor_inputs(node)[0], node.op.i
    if node is not None and isinstance(node.op, Subtensor) and node.op.idx_list == ("i",) \
            and node.inputs[0].owner is not None and isinstance(node.inputs[0].owner.op, Shape):
        d = constant_int(node.inputs[1])
        return (tensor_inputs(node.inputs[0].owner)[0], d) if d is not None and d >= 0 else None
    return None


def _shape_of(size: Any) -> TensorVariable | None:
    """The tensor x when ``size`` is ``x.shape`` (a Shape node, or x.shape[0], ..., x.shape[ndim-1])."""
    if isinstance(size, TensorVariable) and size.owner is not None and isinstance(size.owner.op, Shape):
        return tensor_inputs(size.owner)[0]
    if isinstance(size, (tuple, list)) and size:
        axes = [a for a in (_axis_of(e) for e in size) if a is not None]
        if len(axes) == len(size):
            xs = {a[0] for a in axes}
            x = xs.pop()
            if not xs and [a[1] for a in axes] == list(range(x.ndim)):
                return x
    return None


def like_for(size: Any, params: list, ndim: int | None, what: str) -> TensorVariable:
    """The variable whose shape a draw takes: ``x`` itself when ``size`` is ``x.shape`` (its values are
    never read; the draw then fuses with the work that computes x), else a Blank of ``size``; with
    ``size`` None, the parameter that gives the broadcast shape alone, else a Blank of that shape.
    ``ndim`` (Theano's) says the length of a symbolic size vector."""
    x = _shape_of(size)
    if x is not None and (ndim is None or ndim == x.ndim):
        return x
    if size is None:
        vs = [as_tensor_variable(p) for p in params]
        static = broadcast_static_shape([v.type.shape for v in vs], f"the parameters of {what}")
        top = [v for v in vs if v.ndim == len(static)]
        if len(top) == 1 and all(v is top[0] or all(s == 1 for s in v.type.shape) for v in vs):
            return top[0]
        entries = list(broadcast_shapes([shape_tuple(v) for v in vs], static))
    elif isinstance(size, TensorVariable) and size.ndim == 1 and size.type.shape[0] is None:
        if ndim is None:
            raise ShapeError(f"{what}: size {size} has a length unknown at build time; give ndim (its length)")
        entries = [vector_entry(to_dtype(size, "int64"), i) for i in range(ndim)]
    else:
        entries = shape_entries(size, f"{what} size")
    if ndim is not None and len(entries) != ndim:
        raise ShapeError(f"{what}: ndim={ndim} but size has {len(entries)} entries")
    return Blank()(*entries)


def draw(row: str, like: TensorVariable, words: Words, *params: TensorVariable) -> TensorVariable:
    """One elementwise draw of the scalar table's ``row``."""
    return ELEMWISE_OPS[row](like, *words, *params)


def param(v: Any, dtype: str) -> TensorVariable:
    """A draw parameter of ``dtype`` (a Python number becomes a constant of that dtype, not a weak one)."""
    v = as_tensor_variable(v)
    if isinstance(v, TensorConstant) and v.weak:
        return constant(np.asarray(v.data, dtype=dtype))
    return to_dtype(v, dtype)


def float_dtype(dtype: str | None, *params: Any) -> str:
    """The dtype of a float draw: the given one, else the float params' upcast, else floatX."""
    if dtype is not None:
        dtype = config.floatX if dtype == "floatX" else np.dtype(dtype).name
        if dtype not in FLOATS:
            raise GraphTypeError(f"random floats are float32 or float64, got dtype {dtype}")
        return dtype
    tensors = [p.dtype for p in params
               if isinstance(p, TensorVariable) and not (isinstance(p, TensorConstant) and p.weak)]
    floats = [d for d in tensors if d in FLOATS]
    return np.result_type(*floats).name if floats else config.floatX


def _is_number(v: Any, value: float) -> bool:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v == value
    return isinstance(v, TensorConstant) and v.ndim == 0 and v.data == value


def uniform(words: Words, size: Any = None, low: Any = 0.0, high: Any = 1.0, dtype: str | None = None,
            ndim: int | None = None) -> TensorVariable:
    """Uniform in [low, high): ``low + (high - low) * u`` with u in [0, 1)."""
    dtype = float_dtype(dtype, low, high)
    like = like_for(size, [low, high], ndim, "uniform")
    u = draw("random_uniform32" if dtype == "float32" else "random_uniform64", like, words)
    if _is_number(low, 0) and _is_number(high, 1):
        return u
    lo, hi = (to_dtype(as_tensor_variable(v), dtype) for v in (low, high))
    return lo + (hi - lo) * u


def normal(words: Words, size: Any = None, avg: Any = 0.0, std: Any = 1.0, dtype: str | None = None,
           ndim: int | None = None) -> TensorVariable:
    """Normal: ``avg + std * z`` with z standard normal (Box-Muller), so gradients reach avg and std."""
    dtype = float_dtype(dtype, avg, std)
    like = like_for(size, [avg, std], ndim, "normal")
    z = draw("random_normal32" if dtype == "float32" else "random_normal64", like, words)
    if _is_number(avg, 0) and _is_number(std, 1):
        return z
    a, s = (to_dtype(as_tensor_variable(v), dtype) for v in (avg, std))
    return a + s * z


def binomial(words: Words, size: Any = None, n: Any = 1, p: Any = 0.5, dtype: str = "int64",
             ndim: int | None = None) -> TensorVariable:
    """Binomial(n, p) counts of ``dtype``; n = 1 is one comparison of a uniform with p (in the
    precision of p, or of a float32 ``dtype``)."""
    dtype = config.floatX if dtype == "floatX" else np.dtype(dtype).name
    p = as_tensor_variable(p)
    if constant_int(n) == 1 or (isinstance(n, TensorConstant) and n.ndim == 0 and n.data == 1):
        p_single = p.dtype == "float32" and not (isinstance(p, TensorConstant) and p.weak)
        pdt = "float32" if dtype == "float32" or p_single else "float64"
        p = param(p, pdt)
        like = like_for(size, [p], ndim, "binomial")
        return cast(draw("random_bernoulli32" if pdt == "float32" else "random_bernoulli64", like, words, p), dtype)
    n, p = param(n, "int64"), param(p, "float64")
    _check_constant(n, lambda v: np.all(v >= 0), "binomial: n must be >= 0")
    _check_constant(p, lambda v: np.all((v >= 0) & (v <= 1)), "binomial: p must lie in [0, 1]")
    like = like_for(size, [n, p], ndim, "binomial")
    return cast(draw("random_binomial", like, words, n, p), dtype)


def _check_constant(v: TensorVariable, ok: Any, message: str) -> None:
    if isinstance(v, TensorConstant) and not ok(v.data):
        raise ValueError(f"{message}, got {v.data}")


def integers(words: Words, low: Any, high: Any = None, size: Any = None, dtype: str = "int64",
             ndim: int | None = None) -> TensorVariable:
    """Integers in [low, high) (high exclusive, as numpy's), without modulo bias; ``integers(n)`` is [0, n)."""
    if high is None:
        low, high = 0, low
    lo, hi = param(low, "int64"), param(high, "int64")
    if isinstance(lo, TensorConstant) and isinstance(hi, TensorConstant) and np.any(hi.data <= lo.data):
        raise ValueError(f"integers: high must be greater than low, got low={lo.data}, high={hi.data}")
    like = like_for(size, [lo, hi], ndim, "integers")
    return cast(draw("random_integers", like, words, lo, hi), np.dtype(dtype).name)


def bits(words: Words, size: Any = (), dtype: str = "uint32") -> TensorVariable:
    """Raw random bits: uint32 or uint64 words."""
    dtype = np.dtype(dtype).name
    if dtype not in ("uint32", "uint64"):
        raise GraphTypeError(f"random bits are uint32 or uint64, got {dtype}")
    return draw("random_bits32" if dtype == "uint32" else "random_bits64", like_for(size, [], None, "bits"), words)


def _pool(a: Any) -> tuple[Any, TensorVariable | None]:
    """(n, the array to index or None) of a choice's ``a``: an int n, or a tensor to pick rows of."""
    if isinstance(a, (int, np.integer)) or (isinstance(a, TensorVariable) and a.ndim == 0):
        return a, None
    arr = as_tensor_variable(a)
    if arr.ndim == 0:
        return arr, None
    return shape_i(arr, 0), arr


def _size_entries(size: Any, what: str) -> list:
    return [] if size is None else list(shape_entries(size, what))


def choice(words: Words, a: Any, size: Any = None, replace: bool = True, p: Any = None,
           dtype: str = "int64") -> TensorVariable:
    """Samples of ``a`` (an int n: of range(n); a tensor: of its rows), of shape ``size``, with or
    without replacement, uniformly or with weights ``p``."""
    n, pool = _pool(a)
    entries = _size_entries(size, "choice")
    if p is None and replace:
        idx = integers(words, 0, n, size=tuple(entries))
    else:
        weights = as_tensor_variable(p) if p is not None else constant(np.zeros(0))
        weights = to_dtype(weights, "float64")
        idx = Choice(replace, p is not None, len(entries))(*words, n, weights, *entries)
    return pool[idx] if pool is not None else cast(idx, np.dtype(dtype).name)


def permutation(words: Words, x: Any, size: Any = None, dtype: str = "int64") -> TensorVariable:
    """A random permutation of range(x) (x an int), or of the rows of tensor x; with ``size``, one
    permutation per entry along a last axis (Theano's ``permutation(size, n)``)."""
    n, pool = _pool(x)
    entries = _size_entries(size, "permutation")
    perm = Permutation(len(entries))(*words, n, *entries)
    if pool is not None:
        if entries:
            raise ShapeError("permutation of a tensor's rows takes no size")
        return pool[perm]
    return cast(perm, np.dtype(dtype).name)
