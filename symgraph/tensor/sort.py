"""Sorting along an axis: ``sort`` and ``argsort`` (numpy's), and the gather/scatter pair
``take_along_axis`` / ``scatter_add_along_axis`` that gives sort its gradient (the output
gradient goes back to where each element came from)."""
from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np

from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.alloc import zeros_like
from symgraph.tensor.elemwise import cast
from symgraph.tensor.reduction import normalize_axis
from symgraph.tensor.shape import flatten
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, is_inexact

__all__ = ["Sort", "ArgSort", "TakeAlongAxis", "ScatterAddAlongAxis", "sort", "argsort", "take_along_axis",
           "scatter_add_along_axis"]
SortKind = Literal["quicksort", "mergesort", "heapsort", "stable"]
KINDS: tuple[SortKind, ...] = get_args(SortKind)


def _kind(kind: str, what: str) -> SortKind:
    """``kind`` checked against numpy's sort algorithms."""
    for k in KINDS:
        if kind == k:
            return k
    raise ValueError(f"{what}: kind must be one of {KINDS}, got {kind!r}")


def _axis(x: TensorVariable, axis: Any, what: str) -> int:
    if x.ndim == 0:
        raise GraphTypeError(f"{what} needs at least one dimension, got {x} ({x.type})")
    (a,) = normalize_axis(axis, x.ndim, what)
    return a


class Sort(Op):
    """numpy.sort along ``axis``; the gradient scatters the output gradient back through argsort."""

    __props__ = ("axis", "kind")

    def __init__(self, axis: int, kind: str = "quicksort"):
        self.axis, self.kind = int(axis), _kind(kind, "sort")

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        if not 0 <= self.axis < x.ndim:
            raise GraphTypeError(f"{self}: {x} ({x.type}) has no axis {self.axis}")
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [np.sort(inputs[0], axis=self.axis, kind=self.kind)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (g,) = inputs, output_grads
        if not is_inexact(x):
            return [None]
        idx = ArgSort(self.axis, self.kind)(x)
        return [ScatterAddAlongAxis(self.axis)(zeros_like(x), idx, g)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [input_shapes[0]]


class ArgSort(Op):
    """numpy.argsort along ``axis`` (int64 indices; no gradient)."""

    __props__ = ("axis", "kind")

    def __init__(self, axis: int, kind: str = "quicksort"):
        self.axis, self.kind = int(axis), _kind(kind, "argsort")

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        if not 0 <= self.axis < x.ndim:
            raise GraphTypeError(f"{self}: {x} ({x.type}) has no axis {self.axis}")
        return Apply(self, [x], [TensorType("int64", x.type.shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [np.argsort(inputs[0], axis=self.axis, kind=self.kind).astype(np.int64, copy=False)]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [input_shapes[0]]


def _check_index(x: TensorVariable, idx: TensorVariable, axis: int, what: str) -> None:
    if idx.dtype not in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"):
        raise GraphTypeError(f"{what}: indices must be integers, got {idx} ({idx.type})")
    if idx.ndim != x.ndim or not 0 <= axis < x.ndim:
        raise ShapeError(f"{what}: indices {idx.type} must have the {x.ndim} dimensions of {x.type}")
    for d, (a, b) in enumerate(zip(x.type.shape, idx.type.shape)):
        if d != axis and a is not None and b is not None and a != b:
            raise ShapeError(f"{what}: indices {idx.type} and {x.type} differ in dimension {d}")


def _full_index(idx: np.ndarray, axis: int) -> tuple:
    """The numpy index tuple that reads ``arr[..., idx[...], ...]`` element by element."""
    grids = list(np.ix_(*[np.arange(n) for n in idx.shape]))
    grids[axis] = idx
    return tuple(grids)


class TakeAlongAxis(Op):
    """numpy.take_along_axis(x, idx, axis): ``out[..., j, ...] = x[..., idx[..., j, ...], ...]``."""

    __props__ = ("axis",)

    def __init__(self, axis: int):
        self.axis = int(axis)

    def make_node(self, x: Any, idx: Any) -> Apply:
        x, idx = as_tensor_variable(x), as_tensor_variable(idx)
        _check_index(x, idx, self.axis, "take_along_axis")
        shape = tuple(i if d == self.axis or s is None else s
                      for d, (s, i) in enumerate(zip(x.type.shape, idx.type.shape)))
        return Apply(self, [x, idx], [TensorType(x.dtype, shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        x, idx = inputs
        return [np.take_along_axis(x, idx, axis=self.axis)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x, idx), (g,) = inputs, output_grads
        if not is_inexact(x):
            return [None, None]
        return [ScatterAddAlongAxis(self.axis)(zeros_like(x), idx, g), None]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [input_shapes[1]]


class ScatterAddAlongAxis(Op):
    """``base`` plus ``values`` added at ``base[..., idx[..., j, ...], ...]`` (repeated indices add up):
    the adjoint of take_along_axis."""

    __props__ = ("axis",)

    def __init__(self, axis: int):
        self.axis = int(axis)

    def make_node(self, base: Any, idx: Any, values: Any) -> Apply:
        base, idx, values = (as_tensor_variable(v) for v in (base, idx, values))
        _check_index(base, idx, self.axis, "scatter_add_along_axis")
        if values.ndim != idx.ndim:
            raise ShapeError(f"scatter_add_along_axis: values {values.type} must match the indices {idx.type}")
        if values.dtype != base.dtype:
            values = cast(values, base.dtype)
        return Apply(self, [base, idx, values], [base.type.make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        base, idx, values = inputs
        out = np.array(base, copy=True)
        np.add.at(out, _full_index(idx, self.axis), np.broadcast_to(values, idx.shape))
        return [out]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (base, idx, values), (g,) = inputs, output_grads
        gv = TakeAlongAxis(self.axis)(g, idx) if is_inexact(values) else None
        return [g if is_inexact(base) else None, None, gv]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [input_shapes[0]]


def _flat_if_none(x: Variable, axis: Any) -> tuple[Variable, Any]:
    if axis is None:
        return flatten(x), 0
    return x, axis


def sort(a: Any, axis: Any = -1, kind: str = "quicksort", order: Any = None) -> TensorVariable:
    """numpy.sort: ``a`` sorted along ``axis`` (None: the flattened array)."""
    if order is not None:
        raise ValueError("sort: order= (structured arrays) is not supported")
    a, axis = _flat_if_none(as_tensor_variable(a), axis)
    return Sort(_axis(a, axis, "sort"), kind)(a)


def argsort(a: Any, axis: Any = -1, kind: str = "quicksort", order: Any = None) -> TensorVariable:
    """numpy.argsort: int64 indices that sort ``a`` along ``axis`` (None: the flattened array)."""
    if order is not None:
        raise ValueError("argsort: order= (structured arrays) is not supported")
    a, axis = _flat_if_none(as_tensor_variable(a), axis)
    return ArgSort(_axis(a, axis, "argsort"), kind)(a)


def take_along_axis(arr: Any, indices: Any, axis: int) -> TensorVariable:
    """numpy.take_along_axis (indices with the same number of dimensions as ``arr``)."""
    arr, indices = as_tensor_variable(arr), as_tensor_variable(indices)
    return TakeAlongAxis(_axis(arr, axis, "take_along_axis"))(arr, indices)


def scatter_add_along_axis(base: Any, indices: Any, values: Any, axis: int) -> TensorVariable:
    """A copy of ``base`` with ``values`` added at the positions take_along_axis would read."""
    base = as_tensor_variable(base)
    return ScatterAddAlongAxis(_axis(base, axis, "scatter_add_along_axis"))(base, indices, values)
