"""Reductions: CAReduce (sum/prod/max/min/all/any over axes), argmax/argmin, and the
compositions mean/var/std. Output dtypes follow numpy (small ints sum in int64)."""
from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor import type as _type_module
from symgraph.tensor.elemwise import ELEMWISE_OPS, DimShuffle, _fmt, broadcast_static_shape, cast, switch
from symgraph.tensor.shape import reshape, shape_tuple
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, constant, is_inexact, tensor_outputs

# scalar op name -> (numpy reduction, public function name)
_REDUCERS: dict[str, tuple[Callable[..., Any], str]] = {
    "add": (np.sum, "sum"), "mul": (np.prod, "prod"), "maximum": (np.max, "max"),
    "minimum": (np.min, "min"), "and": (np.all, "all"), "or": (np.any, "any")}


def normalize_axis(axis: Any, ndim: int, what: str) -> tuple[int, ...]:
    """``axis`` (None, int, negative int, or a sequence of them) as a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        if isinstance(a, Variable) or not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise GraphTypeError(f"{what}: axis must be None, an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ShapeError(f"{what}: axis {a} is out of bounds for a {ndim}-d input")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{what}: axis {axis!r} repeats an axis")
    return tuple(sorted(out))


def _reduced_shape(shape: Sequence, axis: tuple, keepdims: bool) -> tuple:
    return tuple(1 if d in axis else s for d, s in enumerate(shape) if keepdims or d not in axis)


def _sum_dtype(dtype: str) -> str:
    """numpy's result dtype for summing ``dtype`` (bool/small ints accumulate in the platform int)."""
    return np.sum(np.zeros(1, dtype=dtype)).dtype.name


class CAReduce(Op):
    """Reduce ``x`` over ``axis`` (a sorted tuple) with an associative scalar op
    ('add', 'mul', 'maximum', 'minimum', 'and', 'or'); ``dtype`` is the output dtype (None = numpy's)."""

    __props__ = ("scalar_op", "axis", "keepdims", "dtype")

    def __init__(self, scalar_op: str, axis: Sequence[int], keepdims: bool = False, dtype: str | None = None):
        if scalar_op not in _REDUCERS:
            raise ValueError(f"CAReduce: unknown scalar op {scalar_op!r}; known: {list(_REDUCERS)}")
        self.scalar_op, self.axis, self.keepdims = scalar_op, tuple(int(a) for a in axis), bool(keepdims)
        self.dtype = None if dtype is None else np.dtype(dtype).name
        self.np_fn, self.fname = _REDUCERS[scalar_op]

    def __str__(self) -> str:
        keep = ", keepdims" if self.keepdims else ""
        return f"{self.fname}{{axis={self.axis}{keep}}}"

    def out_dtype(self, in_dtype: str) -> str:
        if self.dtype is not None:
            return self.dtype
        if self.scalar_op in ("and", "or"):
            return "bool"
        return _sum_dtype(in_dtype) if self.scalar_op in ("add", "mul") else in_dtype

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        if builtins.any(a >= x.ndim for a in self.axis):
            raise ShapeError(f"{self.fname}: axis {self.axis} is out of bounds for {x} of type {x.type}")
        if x.dtype.startswith("complex") and self.scalar_op in ("maximum", "minimum"):
            raise GraphTypeError(f"{self.fname}: complex inputs are not ordered, got {x.type}")
        if self.scalar_op in ("maximum", "minimum") and builtins.any(x.type.shape[a] == 0 for a in self.axis):
            raise ShapeError(f"{self.fname}: zero-size array to reduction operation {self.scalar_op} which "
                             f"has no identity (input shape {_fmt(x.type.shape)}, axis {self.axis})")
        shape = _reduced_shape(x.type.shape, self.axis, self.keepdims)
        return Apply(self, [x], [TensorType(self.out_dtype(x.dtype), shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        (x,), dtype = inputs, tensor_outputs(node)[0].dtype
        kw = {"dtype": dtype} if self.scalar_op in ("add", "mul") else {}
        out = self.np_fn(x, axis=self.axis, keepdims=self.keepdims, **kw)
        return [np.asarray(out, dtype=dtype)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (z,), (g,) = inputs, outputs, output_grads
        if not is_inexact(x) or self.scalar_op in ("and", "or"):
            return [None]
        g, z = self._keep(g), self._keep(z)
        if self.scalar_op == "add":
            gx = broadcast_like(g, x)
        elif self.scalar_op == "mul":
            gx = g * _prod_grad_factor(x, self.axis)
        elif not self.axis:  # reducing over no axis is the identity
            gx = g
        else:  # max/min: all of the gradient goes to the first extreme position (see first_extreme_mask)
            gx = g * first_extreme_mask(x, self.axis, "max" if self.scalar_op == "maximum" else "min")
        return [_cast_like(gx, x)]

    def _keep(self, v: TensorVariable) -> TensorVariable:
        """``v`` (output-shaped) with the reduced axes put back as length-1 axes."""
        if self.keepdims or not self.axis:
            return v
        ndim = v.ndim + len(self.axis)
        kept = iter(range(v.ndim))
        return DimShuffle(v.ndim, ["x" if d in self.axis else next(kept) for d in range(ndim)])(v)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [_reduced_shape(input_shapes[0], self.axis, self.keepdims)]


def _cast_like(g: TensorVariable, x: TensorVariable) -> TensorVariable:
    return cast(g, x.dtype) if g.dtype != x.dtype else g


def _prod_grad_factor(x: Variable, axis: tuple) -> TensorVariable:
    """d prod / d x: prod/x, made exact where x has zeros (one zero: the product of the others; more: 0)."""
    eq, is_zero = ELEMWISE_OPS["eq"], ELEMWISE_OPS["eq"](x, 0)
    nonzero = switch(is_zero, 1, x)
    prod_nz = CAReduce("mul", axis, True)(nonzero)
    n_zeros = CAReduce("add", axis, True)(is_zero)
    return switch(eq(n_zeros, 0), prod_nz / nonzero, switch(is_zero & eq(n_zeros, 1), prod_nz, 0))


def first_extreme_mask(x: TensorVariable, axis: tuple, which: str) -> TensorVariable:
    """True at the first position of each reduced slice's largest (``which='max'``) or smallest
    element, in C order over the reduced ``axis`` (a sorted tuple): the position argmax/argmin
    gives, where a NaN counts as extreme, as in numpy. The gradient of max/min: with ties all of
    it goes to the first one, so it sums to the upstream gradient (a valid subgradient; JAX
    splits it equally instead). Argmax-based ops and pooling use the same first-maximum rule."""
    kept = [d for d in range(x.ndim) if d not in axis]
    order = kept + list(axis)
    moved = x if order == list(range(x.ndim)) else DimShuffle(x.ndim, order)(x)
    dims = shape_tuple(moved)
    flat = moved if len(axis) == 1 else reshape(moved, dims[:len(kept)] + (-1,))
    first = ArgReduce(which, len(kept), keepdims=True)(flat)
    # arange lives above this module (its own gradient sums): reached through the tensor namespace
    hot = ELEMWISE_OPS["eq"](_type_module.ops.arange(shape_tuple(flat)[-1], dtype="int64"), first)
    if len(axis) > 1:
        hot = reshape(hot, dims)
    back = [order.index(d) for d in range(x.ndim)]
    return hot if back == list(range(x.ndim)) else DimShuffle(x.ndim, back)(hot)


class BroadcastLike(Op):
    """``g`` broadcast to the shape of ``like`` (a read-only view); the gradient of sum."""

    view_map = {0: 0}

    def make_node(self, g: Any, like: Any) -> Apply:
        g, like = as_tensor_variable(g), as_tensor_variable(like)
        if g.ndim > like.ndim:
            raise ShapeError(f"BroadcastLike: cannot broadcast {g.type} to the shape of {like.type}")
        both = broadcast_static_shape([g.type.shape, like.type.shape], "BroadcastLike")
        shape = tuple(s if s is not None else b for s, b in zip(like.type.shape, both))
        return Apply(self, [g, like], [TensorType(g.dtype, shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        g, like = inputs
        return [np.broadcast_to(g, np.shape(like))]

    def grad(self, inputs: list, output_grads: list) -> list:
        g = inputs[0]
        return [sum_to(output_grads[0], g) if is_inexact(g) else None, None]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[1])]


def broadcast_like(g: Any, like: Any) -> TensorVariable:
    """``g`` broadcast to ``like``'s shape (no copy); returns ``g`` when its static shape already matches."""
    g, like = as_tensor_variable(g), as_tensor_variable(like)
    if g.ndim == like.ndim and g.type.shape == like.type.shape and None not in g.type.shape:
        return g
    return BroadcastLike()(g, like)


class ReducedSize(Op):
    """The number of elements along ``axis`` of the broadcast of its inputs (of its one input,
    usually), as an int64 scalar: the divisor of mean/var. It reads only shapes."""

    __props__ = ("axis",)

    def __init__(self, axis: Sequence[int]):
        self.axis = tuple(int(a) for a in axis)

    def make_node(self, *args: Any) -> Apply:
        xs = [as_tensor_variable(x) for x in args]
        ndim = builtins.max((x.ndim for x in xs), default=0)
        if not xs or builtins.any(a >= ndim for a in self.axis):
            raise ShapeError(f"ReducedSize: axis {self.axis} is out of bounds for {[str(x.type) for x in xs]}")
        return Apply(self, xs, [TensorType("int64", ()).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        shape = np.broadcast_shapes(*(np.shape(x) for x in inputs))
        return [np.asarray(int(np.prod([shape[a] for a in self.axis])), dtype="int64")]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None] * len(inputs)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [()]


def reduced_size(x: TensorVariable, axis: tuple) -> int | TensorVariable:
    """Count of elements over ``axis``: a Python int when the static shape knows it, else symbolic."""
    dims = [x.type.shape[a] for a in axis]
    if None not in dims:
        return int(np.prod(dims))
    return ReducedSize(axis)(x)


class ArgReduce(Op):
    """Index of the largest ('max') or smallest ('min') element along one axis (None = flattened), int64."""

    __props__ = ("which", "axis", "keepdims")

    def __init__(self, which: str, axis: int | None, keepdims: bool = False):
        if which not in ("max", "min"):
            raise ValueError(f"ArgReduce: which must be 'max' or 'min', got {which!r}")
        self.which, self.axis, self.keepdims = which, None if axis is None else int(axis), bool(keepdims)
        self.np_fn = np.argmax if which == "max" else np.argmin

    def __str__(self) -> str:
        return f"arg{self.which}{{axis={self.axis}{', keepdims' if self.keepdims else ''}}}"

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        axes = tuple(range(x.ndim)) if self.axis is None else (self.axis,)
        if self.axis is not None and not 0 <= self.axis < x.ndim:
            raise ShapeError(f"arg{self.which}: axis {self.axis} is out of bounds for {x} of type {x.type}")
        if builtins.any(x.type.shape[a] == 0 for a in axes):
            raise ShapeError(f"arg{self.which}: attempt to get arg{self.which} of an empty sequence "
                             f"(input shape {_fmt(x.type.shape)}, axis {self.axis})")
        if self.axis is None:
            shape = (1,) * x.ndim if self.keepdims else ()
        else:
            shape = _reduced_shape(x.type.shape, axes, self.keepdims)
        return Apply(self, [x], [TensorType("int64", shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [np.asarray(self.np_fn(inputs[0], axis=self.axis, keepdims=self.keepdims), dtype="int64")]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        (s,) = input_shapes
        if self.axis is None:
            return [(1,) * len(s) if self.keepdims else ()]
        return [_reduced_shape(s, (self.axis,), self.keepdims)]


def _reduce(scalar_op: str, x: Any, axis: Any, keepdims: bool, dtype: str | None = None) -> TensorVariable:
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.ndim, _REDUCERS[scalar_op][1])
    return CAReduce(scalar_op, axes, keepdims, dtype)(x)


def sum(x: Any, axis: Any = None, keepdims: bool = False, dtype: str | None = None) -> TensorVariable:
    """Sum over ``axis`` (None = all), like numpy.sum (ints accumulate in int64)."""
    return _reduce("add", x, axis, keepdims, dtype)


def prod(x: Any, axis: Any = None, keepdims: bool = False, dtype: str | None = None) -> TensorVariable:
    """Product over ``axis``, like numpy.prod; its gradient is exact where x has zeros."""
    return _reduce("mul", x, axis, keepdims, dtype)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> TensorVariable:
    """Largest element over ``axis``, like numpy.max; the gradient goes to the first maximal
    position (as argmax picks it), so ties never multiply it."""
    return _reduce("maximum", x, axis, keepdims)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> TensorVariable:
    """Smallest element over ``axis``, like numpy.min; the gradient goes to the first minimal position."""
    return _reduce("minimum", x, axis, keepdims)


def all(x: Any, axis: Any = None, keepdims: bool = False) -> TensorVariable:
    """True where every element over ``axis`` is nonzero (numpy.all)."""
    return _reduce("and", x, axis, keepdims)


def any(x: Any, axis: Any = None, keepdims: bool = False) -> TensorVariable:
    """True where some element over ``axis`` is nonzero (numpy.any)."""
    return _reduce("or", x, axis, keepdims)


def _arg(which: str, x: Any, axis: Any, keepdims: bool) -> TensorVariable:
    x = as_tensor_variable(x)
    if isinstance(axis, (tuple, list)):
        if len(axis) != 1:
            raise GraphTypeError(f"arg{which}: axis must be None or a single int (as in numpy), got {axis!r}")
        axis = axis[0]
    if axis is not None:
        (axis,) = normalize_axis(axis, x.ndim, f"arg{which}")
    return ArgReduce(which, axis, keepdims)(x)


def argmax(x: Any, axis: Any = None, keepdims: bool = False) -> TensorVariable:
    """Index of the largest element along ``axis`` (None = of the flattened array), int64."""
    return _arg("max", x, axis, keepdims)


def argmin(x: Any, axis: Any = None, keepdims: bool = False) -> TensorVariable:
    """Index of the smallest element along ``axis`` (None = of the flattened array), int64."""
    return _arg("min", x, axis, keepdims)


def _mean_dtype(dtype: str) -> str:
    return dtype if is_inexact(dtype) else "float64"


def mean(x: Any, axis: Any = None, keepdims: bool = False, dtype: str | None = None) -> TensorVariable:
    """Arithmetic mean over ``axis`` (numpy.mean: ints give float64, floats keep their dtype);
    ``dtype`` sums and returns in that dtype, as numpy's and Theano's ``mean(dtype=)`` (the Deep
    Learning Tutorials' HMC sampler averages a bool acceptance vector so)."""
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.ndim, "mean")
    dtype = _mean_dtype(x.dtype) if dtype is None else np.dtype(dtype).name
    total = CAReduce("add", axes, keepdims, dtype)(x)
    out = total / _as_count(reduced_size(x, axes), dtype)
    return out if out.dtype == dtype else cast(out, dtype)  # an integer dtype: numpy truncates


def var(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> TensorVariable:
    """Variance over ``axis`` with ``ddof`` delta degrees of freedom (numpy.var)."""
    x = as_tensor_variable(x)
    axes = normalize_axis(axis, x.ndim, "var")
    dtype = _mean_dtype(x.dtype)
    xf = x if x.dtype == dtype else x.astype(dtype)
    centered = xf - mean(xf, axes, keepdims=True)
    count = reduced_size(x, axes)
    count = count - ddof if isinstance(count, int) else count - constant(np.int64(ddof))
    if isinstance(count, int):
        count = np.maximum(count, 0)
    else:
        count = ELEMWISE_OPS["maximum"](count, constant(np.int64(0)))
    sq = centered * centered if np.dtype(dtype).kind != "c" else abs(centered) ** 2
    return CAReduce("add", axes, keepdims, sq.dtype)(sq) / _as_count(count, sq.dtype)


def std(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> TensorVariable:
    """Standard deviation over ``axis`` (numpy.std), the square root of var."""
    return ELEMWISE_OPS["sqrt"](var(x, axis, keepdims, ddof))


def _as_count(count: Any, dtype: str) -> TensorVariable:
    if isinstance(count, (int, np.integer)):
        return constant(np.asarray(count, dtype=dtype))
    return cast(count, dtype)


def sum_to(g: TensorVariable, x: TensorVariable) -> TensorVariable:
    """Sum a gradient ``g`` (broadcast to an output's shape) back to the shape of input ``x``:
    the leading axes ``x`` lacks, and the axes where ``x`` has static length 1 and ``g`` not."""
    lead = g.ndim - x.ndim
    if lead > 0:
        g = sum(g, axis=tuple(range(lead)))
    axes = tuple(d for d, (xs, gs) in enumerate(zip(x.type.shape, g.type.shape)) if xs == 1 and gs != 1)
    if axes:
        g = sum(g, axis=axes, keepdims=True)
    return cast(g, x.dtype) if g.dtype != x.dtype else g


__all__ = ["CAReduce", "ArgReduce", "BroadcastLike", "ReducedSize", "broadcast_like", "normalize_axis", "sum_to",
           "sum", "prod", "max", "min", "all", "any", "argmax", "argmin", "mean", "var", "std"]
