"""numpy's array helpers with gradients: ``cumsum``/``cumprod``, ``repeat``, ``tile``, ``roll``, and
the data-dependent ``nonzero`` family (``where`` with one argument).

tile, roll and repeat by a scalar are built from views, alloc and concatenation (so every backend
runs them and their gradients come from those ops); cumulative ops, repeat by a vector of counts
and nonzero are ops of their own.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError, ShapeError, node_context
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.alloc import alloc
from symgraph.tensor.elemwise import FUNCTIONS, DimShuffle, switch
from symgraph.tensor.reduction import normalize_axis
from symgraph.tensor.shape import concatenate, flatten, reshape, shape_i, stack
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, is_inexact, tensor_outputs

__all__ = ["CumOp", "Repeat", "RepeatGrad", "Nonzero", "cumsum", "cumprod", "repeat", "tile", "roll",
           "nonzero", "flatnonzero", "nonzero_values", "where"]
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


class CumOp(Op):
    """Cumulative sum or product along ``axis`` (numpy.cumsum / numpy.cumprod)."""

    __props__ = ("axis", "mode")

    def __init__(self, axis: int, mode: str = "add"):
        if mode not in ("add", "mul"):
            raise ValueError(f"CumOp mode must be 'add' or 'mul', got {mode!r}")
        self.axis, self.mode = int(axis), mode

    def __str__(self) -> str:
        return f"Cum{'sum' if self.mode == 'add' else 'prod'}{{{self.axis}}}"

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        if not 0 <= self.axis < x.ndim:
            raise GraphTypeError(f"{self}: {x} ({x.type}) has no axis {self.axis}")
        probe = (np.cumsum if self.mode == "add" else np.cumprod)(np.ones(1, x.dtype))
        return Apply(self, [x], [TensorType(probe.dtype.name, x.type.shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        fn = np.cumsum if self.mode == "add" else np.cumprod
        return [fn(inputs[0], axis=self.axis, dtype=tensor_outputs(node)[0].dtype)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (out,), (g,) = inputs, outputs, output_grads
        if not is_inexact(x):
            return [None]
        if self.mode == "add":  # d/dx_i sum_{j >= i} g_j: a reversed cumulative sum
            return [_reverse_cumsum(g, self.axis)]
        # prod: d out_j / d x_i = out_j / x_i for j >= i (x without zeros, as Theano and PyTensor)
        return [_reverse_cumsum(g * out, self.axis) / x]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [input_shapes[0]]


def _flip(x: TensorVariable, axis: int) -> TensorVariable:
    return x[(slice(None),) * axis + (slice(None, None, -1),)]


def _reverse_cumsum(g: TensorVariable, axis: int) -> TensorVariable:
    return _flip(CumOp(axis, "add")(_flip(g, axis)), axis)


def _cum(x: Any, axis: Any, mode: str) -> TensorVariable:
    x = as_tensor_variable(x)
    if axis is None:
        return CumOp(0, mode)(flatten(x))
    (a,) = normalize_axis(axis, x.ndim, "cumsum" if mode == "add" else "cumprod")
    return CumOp(a, mode)(x)


def cumsum(x: Any, axis: Any = None) -> TensorVariable:
    """numpy.cumsum: running sums along ``axis`` (None: over the flattened array)."""
    return _cum(x, axis, "add")


def cumprod(x: Any, axis: Any = None) -> TensorVariable:
    """numpy.cumprod: running products along ``axis`` (None: over the flattened array)."""
    return _cum(x, axis, "mul")


class Repeat(Op):
    """numpy.repeat with one count per element along ``axis`` (a vector of counts; the output length
    is known only at run time)."""

    __props__ = ("axis",)

    def __init__(self, axis: int):
        self.axis = int(axis)

    def make_node(self, x: Any, repeats: Any) -> Apply:
        x, repeats = as_tensor_variable(x), as_tensor_variable(repeats)
        if repeats.dtype not in _INTS or repeats.ndim != 1:
            raise GraphTypeError(f"repeat: counts must be an integer vector, got {repeats} ({repeats.type})")
        if not 0 <= self.axis < x.ndim:
            raise GraphTypeError(f"{self}: {x} ({x.type}) has no axis {self.axis}")
        shape = list(x.type.shape)
        shape[self.axis] = None
        return Apply(self, [x, repeats], [TensorType(x.dtype, shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        x, r = inputs
        if r.shape[0] != x.shape[self.axis] or (r < 0).any():
            raise ShapeError(f"repeat: {r.shape[0]} non-negative counts needed for axis {self.axis} of an "
                             f"array of shape {x.shape}, got {r}\n{node_context(node, inputs)}")
        return [np.repeat(x, r, axis=self.axis)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x, r), (g,) = inputs, output_grads
        return [RepeatGrad(self.axis)(g, r) if is_inexact(x) else None, None]


class RepeatGrad(Op):
    """The adjoint of Repeat: sums each run of ``repeats[i]`` consecutive slices along ``axis``."""

    __props__ = ("axis",)

    def __init__(self, axis: int):
        self.axis = int(axis)

    def make_node(self, g: Any, repeats: Any) -> Apply:
        g, repeats = as_tensor_variable(g), as_tensor_variable(repeats)
        shape = list(g.type.shape)
        shape[self.axis] = repeats.type.shape[0]
        return Apply(self, [g, repeats], [TensorType(g.dtype, shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        g, r = inputs
        shape = list(g.shape)
        shape[self.axis] = len(r)
        if g.shape[self.axis] == 0 or len(r) == 0:
            return [np.zeros(shape, g.dtype)]
        starts = np.minimum(np.cumsum(r) - r, g.shape[self.axis] - 1)
        out = np.add.reduceat(g, starts, axis=self.axis)
        empty = (slice(None),) * self.axis + (r == 0,)
        out[empty] = 0  # reduceat gives an element, not zero, for an empty run
        return [out.astype(g.dtype, copy=False)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (_, r), (gg,) = inputs, output_grads
        return [Repeat(self.axis)(gg, r), None]


def repeat(x: Any, repeats: Any, axis: Any = None) -> TensorVariable:
    """numpy.repeat: each element ``repeats`` times along ``axis`` (None: of the flattened array).
    A scalar count is a broadcast and reshape; a vector of counts uses the Repeat op."""
    x = as_tensor_variable(x)
    if axis is None:
        x, axis = flatten(x), 0
    (axis,) = normalize_axis(axis, x.ndim, "repeat")
    repeats = as_tensor_variable(repeats)
    if repeats.dtype not in _INTS:
        raise GraphTypeError(f"repeat: counts must be integers, got {repeats} ({repeats.type})")
    if repeats.ndim == 1:
        return Repeat(axis)(x, repeats)
    if repeats.ndim != 0:
        raise GraphTypeError(f"repeat: counts must be a scalar or a vector, got {repeats.type}")
    order: list = list(range(x.ndim))
    order.insert(axis + 1, "x")
    lengths = [shape_i(x, d) for d in range(x.ndim)]
    spread = alloc(DimShuffle(x.ndim, order)(x), *lengths[:axis + 1], repeats, *lengths[axis + 1:])
    return reshape(spread, lengths[:axis] + [lengths[axis] * repeats] + lengths[axis + 1:])


def tile(x: Any, reps: Sequence[Any] | int, ndim: int | None = None) -> TensorVariable:
    """numpy.tile: ``x`` repeated ``reps[d]`` times along each axis d (reps padded as numpy does;
    one number or 0-d variable: the last axis)."""
    x = as_tensor_variable(x)
    if isinstance(reps, (int, np.integer)) or (isinstance(reps, Variable) and reps.ndim == 0):
        reps = [reps]
    if isinstance(reps, Variable):
        if reps.ndim != 1 or reps.type.shape[0] is None:
            raise GraphTypeError(f"tile: reps must be a list or a vector of known length, got {reps.type}")
        reps = [reps[i] for i in range(reps.type.shape[0])]
    reps = list(reps)
    nd = max(len(reps), x.ndim, ndim or 0)
    reps = [1] * (nd - len(reps)) + reps
    if x.ndim < nd:
        x = DimShuffle(x.ndim, ["x"] * (nd - x.ndim) + list(range(x.ndim)))(x)
    lengths = [shape_i(x, d) for d in range(nd)]
    spread = DimShuffle(nd, [a for d in range(nd) for a in ("x", d)])(x)
    full = alloc(spread, *[v for d in range(nd) for v in (reps[d], lengths[d])])
    return reshape(full, [reps[d] * lengths[d] for d in range(nd)])


def roll(x: Any, shift: Any, axis: Any = None) -> TensorVariable:
    """numpy.roll: elements shifted by ``shift`` along ``axis`` (None: the flattened array), wrapping."""
    x = as_tensor_variable(x)
    if axis is None:
        return reshape(roll(flatten(x), shift, 0), [shape_i(x, d) for d in range(x.ndim)])
    if isinstance(axis, (list, tuple)):
        shifts = shift if isinstance(shift, (list, tuple)) else [shift] * len(axis)
        for a, s in zip(axis, shifts):
            x = roll(x, s, a)
        return x
    (axis,) = normalize_axis(axis, x.ndim, "roll")
    n = shape_i(x, axis)
    cut = n - FUNCTIONS["mod"](as_tensor_variable(shift), FUNCTIONS["maximum"](n, 1))
    head = (slice(None),) * axis
    return concatenate([x[head + (slice(cut, None),)], x[head + (slice(None, cut),)]], axis=axis)


class Nonzero(Op):
    """numpy.nonzero: one int64 vector of indices per dimension (their length known only at run time)."""

    def make_node(self, a: Any) -> Apply:
        a = as_tensor_variable(a)
        if a.ndim == 0:
            raise GraphTypeError(f"nonzero needs at least one dimension, got {a} ({a.type})")
        return Apply(self, [a], [TensorType("int64", (None,)).make_variable() for _ in range(a.ndim)])

    def perform(self, node: Apply, inputs: list) -> list:
        return [i.astype(np.int64, copy=False) for i in np.nonzero(inputs[0])]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None]


def nonzero(a: Any, return_matrix: bool = False) -> Any:
    """numpy.nonzero: a tuple of index vectors, or (``return_matrix``) one (ndim, count) matrix."""
    out = Nonzero()(a, return_list=True)
    if return_matrix:
        return stack(out)
    return tuple(out)


def flatnonzero(a: Any) -> TensorVariable:
    """numpy.flatnonzero: indices of the non-zero elements of the flattened array."""
    return nonzero(flatten(as_tensor_variable(a)))[0]


def nonzero_values(a: Any) -> TensorVariable:
    """The non-zero elements of ``a``, flattened (Theano's nonzero_values)."""
    a = as_tensor_variable(a)
    return flatten(a)[flatnonzero(a)]


def where(cond: Any, if_true: Any = None, if_false: Any = None) -> Any:
    """numpy.where: ``switch(cond, if_true, if_false)`` with three arguments; with one, the indices
    of the non-zero elements of ``cond`` (``nonzero(cond)``)."""
    if if_true is None and if_false is None:
        return nonzero(cond)
    if if_true is None or if_false is None:
        raise TypeError("where takes one argument (cond) or three (cond, if_true, if_false)")
    return switch(cond, if_true, if_false)
