"""Ops that make new arrays from shapes: alloc/zeros/ones/full/*_like and arange."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.config import config
from symgraph.errors import GraphTypeError, ShapeError, node_context
from symgraph.graph.basic import Apply, Constant, Op
from symgraph.tensor.elemwise import FUNCTIONS, _fmt, cast
from symgraph.tensor.reduction import sum as tsum
from symgraph.tensor.reduction import sum_to
from symgraph.tensor.shape import as_int_entry, common_dtype, entry_var, shape_entries, shape_i, shape_tuple, to_dtype
from symgraph.tensor.type import (
    TensorType,
    TensorVariable,
    as_tensor_variable,
    is_inexact,
    tensor_inputs,
    tensor_outputs,
)

__all__ = ["alloc", "zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "arange", "Alloc", "ARange"]


# ---------------------------------------------------------------- alloc, zeros, ones, full
class Alloc(Op):
    """A new array of the given shape filled with ``value`` (broadcast along its length-1 dims)."""

    def make_node(self, value: Any, *shape: Any) -> Apply:
        value = as_tensor_variable(value)
        entries = [as_int_entry(s, "alloc shape") for s in shape]
        if value.ndim > len(entries):
            raise ShapeError(f"alloc: value {value} ({value.type}) has more dims than the shape ({len(entries)})")
        lead = len(entries) - value.ndim
        out = []
        for d, e in enumerate(entries):
            vd = value.type.shape[d - lead] if d >= lead else 1
            if isinstance(e, int) and e < 0:
                raise ShapeError(f"alloc: negative length {e} in dimension {d}")
            if isinstance(e, int) and vd not in (None, 1, e):
                raise ShapeError(f"alloc: value of shape {_fmt(value.type.shape)} cannot fill dimension {d} "
                                 f"of length {e}")
            out.append(e if isinstance(e, int) else vd if vd != 1 else None)
        return Apply(self, [value] + [entry_var(e) for e in entries],
                     [TensorType(value.dtype, out).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        value, shp = inputs[0], tuple(int(s) for s in inputs[1:])
        lead = len(shp) - value.ndim
        for d, vd in enumerate(np.shape(value)):
            if vd != shp[lead + d] and tensor_inputs(node)[0].type.shape[d] != 1:
                raise ShapeError(f"alloc: value of shape {np.shape(value)} does not fit shape {shp} in "
                                 f"dimension {lead + d} (only static length-1 dims broadcast)\n"
                                 + node_context(node, inputs))
        out = np.empty(shp, dtype=tensor_outputs(node)[0].dtype)
        out[...] = value
        return [out]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        value = inputs[0]
        return [sum_to(output_grads[0], value) if is_inexact(value) else None] + [None] * (len(inputs) - 1)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        static = tensor_outputs(node)[0].type.shape
        return [tuple(s if s is not None else i for s, i in zip(static, node.inputs[1:]))]


def alloc(value: Any, *shape: Any) -> TensorVariable:
    """``value`` broadcast into a new array of ``shape`` (Theano's alloc(value, *shape))."""
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = tuple(shape[0])
    return Alloc()(value, *shape)


def full(shape: Any, fill_value: Any, dtype: str | None = None) -> TensorVariable:
    """A new array of ``shape`` filled with ``fill_value`` (numpy.full)."""
    value = as_tensor_variable(fill_value)
    if dtype is not None:
        value = to_dtype(value, config.floatX if dtype == "floatX" else np.dtype(dtype).name)
    return Alloc()(value, *shape_entries(shape, "full"))


def zeros(shape: Any, dtype: str | None = None) -> TensorVariable:
    """A new array of zeros (dtype floatX unless given)."""
    return full(shape, 0, dtype or config.floatX)


def ones(shape: Any, dtype: str | None = None) -> TensorVariable:
    """A new array of ones (dtype floatX unless given)."""
    return full(shape, 1, dtype or config.floatX)


def full_like(x: Any, fill_value: Any, dtype: str | None = None) -> TensorVariable:
    """An array shaped like ``x`` filled with ``fill_value`` (dtype of ``x`` unless given)."""
    x = as_tensor_variable(x)
    return Alloc()(to_dtype(as_tensor_variable(fill_value), dtype or x.dtype), *shape_tuple(x))


def zeros_like(x: Any, dtype: str | None = None) -> TensorVariable:
    """Zeros shaped like ``x`` (dtype of ``x`` unless given)."""
    return full_like(x, 0, dtype)


def ones_like(x: Any, dtype: str | None = None) -> TensorVariable:
    """Ones shaped like ``x`` (dtype of ``x`` unless given)."""
    return full_like(x, 1, dtype)


# ---------------------------------------------------------------- arange
class ARange(Op):
    """``numpy.arange(start, stop, step)`` of a fixed dtype from three scalars."""

    __props__ = ("dtype",)

    def __init__(self, dtype: str):
        self.dtype = np.dtype(dtype).name

    def make_node(self, start: Any, stop: Any, step: Any) -> Apply:
        args = [as_tensor_variable(a) for a in (start, stop, step)]
        for a in args:
            if a.ndim != 0 or a.dtype == "bool" or a.type.numpy_dtype.kind not in "iuf":
                raise GraphTypeError(f"arange takes real 0-d start/stop/step, got {a} ({a.type})")
        length = None
        consts = [a for a in args if isinstance(a, Constant)]
        if len(consts) == len(args):
            if consts[2].data == 0:
                raise ValueError("arange: step must not be 0")
            length = len(np.arange(*(a.data for a in consts), dtype=self.dtype))
        return Apply(self, args, [TensorType(self.dtype, (length,)).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [np.arange(*inputs, dtype=self.dtype)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (_, stop, _), (g,) = inputs, output_grads
        grads = [tsum(g), zeros_like(stop), tsum(g * arange(shape_i(g, 0)))]
        return [to_dtype(gr, x.dtype) if is_inexact(x) else None for gr, x in zip(grads, inputs)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        start, stop, step = (cast(i, "float64") for i in node.inputs)  # numpy computes the length in double
        static = tensor_outputs(node)[0].type.shape[0]
        n = FUNCTIONS["ceil"](FUNCTIONS["true_div"](FUNCTIONS["sub"](stop, start), step))
        return [(static if static is not None else cast(FUNCTIONS["maximum"](n, 0), "int64"),)]


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: str | None = None) -> TensorVariable:
    """``numpy.arange``: start/stop/step may be numbers or symbolic scalars."""
    if stop is None:
        start, stop = 0, start
    args = [as_tensor_variable(a) for a in (start, stop, step)]
    dtype = config.floatX if dtype == "floatX" else dtype or common_dtype(args)
    return ARange(dtype)(*args)
