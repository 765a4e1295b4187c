"""Adding, joining and pinning axes, in Theano's spellings: ``shape_padleft``/``padright``/``padaxis``
(new length-1 axes), ``join(axis, *tensors)``, ``stacklists`` (nested lists of tensors) and
``specify_shape`` (a run-time checked promise about a shape)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply, Constant, Op, Variable
from symgraph.tensor.elemwise import DimShuffle, _fmt
from symgraph.tensor.shape import as_int_entry, concatenate, entry_var, stack
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, tensor_outputs

__all__ = ["shape_padleft", "shape_padright", "shape_padaxis", "join", "stacklists", "SpecifyShape",
           "specify_shape"]


def shape_padleft(t: Any, n_ones: int = 1) -> TensorVariable:
    """``t`` with ``n_ones`` new length-1 axes in front (a view)."""
    t = as_tensor_variable(t)
    return DimShuffle(t.ndim, ["x"] * n_ones + list(range(t.ndim)))(t)


def shape_padright(t: Any, n_ones: int = 1) -> TensorVariable:
    """``t`` with ``n_ones`` new length-1 axes at the end (a view)."""
    t = as_tensor_variable(t)
    return DimShuffle(t.ndim, list(range(t.ndim)) + ["x"] * n_ones)(t)


def shape_padaxis(t: Any, axis: int) -> TensorVariable:
    """``t`` with a new length-1 axis at position ``axis`` of the result (negative counts from the end)."""
    t = as_tensor_variable(t)
    if not -t.ndim - 1 <= axis <= t.ndim:
        raise IndexError(f"shape_padaxis: axis {axis} is out of range for a result of {t.ndim + 1} dimensions")
    if axis < 0:
        axis += t.ndim + 1
    order: list = list(range(t.ndim))
    order.insert(axis, "x")
    return DimShuffle(t.ndim, order)(t)


def join(axis: Any, *tensors: Any) -> TensorVariable:
    """Theano's ``join(axis, *tensors)``: ``concatenate(tensors, axis)`` (axis an int or a constant)."""
    if isinstance(axis, Constant):
        axis = int(np.asarray(axis.data))
    if isinstance(axis, Variable):
        raise TypeError(f"join: the axis must be known when the graph is built, got the variable {axis}")
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    return concatenate(list(tensors), axis=int(axis))


def stacklists(arg: Any) -> TensorVariable:
    """A tensor from a nested list of tensors (or numbers): ``stacklists([[a, b], [c, d]])`` is 2x2
    when a..d are scalars, and (2, 2, *shape) when they are arrays of equal shape."""
    if isinstance(arg, (list, tuple)):
        return stack([stacklists(a) for a in arg])
    return as_tensor_variable(arg)


class SpecifyShape(Op):
    """``x`` with a promised length on each of ``axes``: the static shape of the result takes the
    constant lengths, and each call checks them all (a ShapeError naming the node and the user line
    when the promise is broken). The lengths are inputs, so they may be symbolic."""

    __props__ = ("axes",)
    view_map = {0: 0}

    def __init__(self, axes: Sequence[int]):
        self.axes = tuple(int(a) for a in axes)

    def make_node(self, x: Any, *lengths: Any) -> Apply:
        x = as_tensor_variable(x)
        if len(lengths) != len(self.axes) or any(not 0 <= a < x.ndim for a in self.axes):
            raise ShapeError(f"{self}: needs one length per axis for {x} ({x.type}), got {len(lengths)}")
        entries = [as_int_entry(n, "specify_shape") for n in lengths]
        static = list(x.type.shape)
        for d, e in zip(self.axes, entries):
            if isinstance(e, int):
                if static[d] is not None and static[d] != e:
                    raise ShapeError(f"specify_shape: dimension {d} of {x} has static length {static[d]}, not {e}")
                static[d] = e
        return Apply(self, [x] + [entry_var(e) for e in entries], [TensorType(x.dtype, static).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        x = inputs[0]
        for d, n in zip(self.axes, inputs[1:]):
            if x.shape[d] != int(n):
                raise ShapeError(f"specify_shape: dimension {d} has length {x.shape[d]}, specified {int(n)} "
                                 f"(shape {x.shape})\n{node_context(node, inputs)}")
        return [x]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [output_grads[0]] + [None] * (len(inputs) - 1)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        out = list(input_shapes[0])
        for d, v in zip(self.axes, node.inputs[1:]):
            static = tensor_outputs(node)[0].type.shape[d]
            out[d] = static if static is not None else v
        return [tuple(out)]


def specify_shape(x: Any, shape: Sequence[Any]) -> TensorVariable:
    """``x``, promised to have ``shape`` (ints, symbolic scalars, or None for "any length")."""
    x = as_tensor_variable(x)
    if isinstance(shape, Variable):
        shape = [shape[i] for i in range(x.ndim)]
    shape = list(shape)
    if len(shape) != x.ndim:
        raise ShapeError(f"specify_shape: {x} ({x.type}) has {x.ndim} dimensions, shape {_fmt(tuple(shape))} "
                         f"has {len(shape)}")
    axes = [d for d, n in enumerate(shape) if n is not None]
    return SpecifyShape(axes)(x, *[shape[d] for d in axes])
