"""theano.typed_list: variables holding Python lists of tensors of one type.

    tl = TypedListType(T.fvector)()          # a list of float32 vectors
    f = sg.function([tl, v], append(tl, v))  # f([[1, 2, 3], [4, 5]], [2]) -> list of three arrays

The ops never modify a list in place: each returns a new list. They run on the host (their
``perform``), and have no gradient.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError
from symgraph.graph.basic import Apply, Op, Type, Variable
from symgraph.tensor import TensorType, as_tensor_variable


class TypedListType(Type):
    """The type of a list whose elements all have type ``ttype`` (``depth`` > 0: lists of lists)."""

    def __init__(self, ttype: Type, depth: int = 0):
        self.ttype = ttype if depth == 0 else TypedListType(ttype, depth - 1)

    def filter(self, value: Any, strict: bool = False, allow_downcast: Any = None) -> list:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{self}: expected a list, got {type(value).__name__}")
        return [self.ttype.filter(v, strict, bool(allow_downcast)) for v in value]

    def values_eq(self, a: Any, b: Any) -> bool:
        return len(a) == len(b) and all(self.ttype.values_eq(x, y) for x, y in zip(a, b))

    def values_eq_approx(self, a: Any, b: Any) -> bool:
        return len(a) == len(b) and all(self.ttype.values_eq_approx(x, y) for x, y in zip(a, b))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.ttype == self.ttype

    def __hash__(self) -> int:
        return hash((TypedListType, self.ttype))

    def __str__(self) -> str:
        return f"list[{self.ttype}]"

    __repr__ = __str__


class TypedListVariable(Variable):
    """A symbolic list: ``tl[i]`` is its i-th element, ``len`` is ``length(tl)``."""

    type: TypedListType

    def __getitem__(self, index: Any) -> Variable:
        return GetItem()(self, index)

    def __len__(self) -> int:
        raise TypeError("len() of a symbolic list is unknown until it is computed; use length(tl)")


TypedListType.variable_class = TypedListVariable


def _as_list(x: Any) -> TypedListVariable:
    if not isinstance(x, TypedListVariable):  # (every variable of a TypedListType is one)
        raise GraphTypeError(f"expected a typed list variable, got {x!r}")
    return x


def _element(tl: TypedListVariable, x: Any, what: str) -> Variable:
    x = x if isinstance(x, Variable) else tl.type.ttype.make_constant(x)
    held = tl.type.ttype
    if x.type != held and not (isinstance(x.type, TensorType) and isinstance(held, TensorType)
                               and held.is_super(x.type)):
        raise GraphTypeError(f"{what}: {x} has type {x.type}, the list holds {held}")
    return x


class Append(Op):
    """A new list: ``tl`` followed by ``x``."""

    def make_node(self, tl: Any, x: Any) -> Apply:
        tl = _as_list(tl)
        return Apply(self, [tl, _element(tl, x, "append")], [tl.type()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [list(inputs[0]) + [inputs[1]]]


class Extend(Op):
    """A new list: ``tl`` followed by the elements of ``other``."""

    def make_node(self, tl: Any, other: Any) -> Apply:
        tl, other = _as_list(tl), _as_list(other)
        if other.type != tl.type:
            raise GraphTypeError(f"extend: {other.type} does not match {tl.type}")
        return Apply(self, [tl, other], [tl.type()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [list(inputs[0]) + list(inputs[1])]


class Length(Op):
    """The number of elements (an int64 scalar)."""

    def make_node(self, tl: Any) -> Apply:
        return Apply(self, [_as_list(tl)], [TensorType("int64", ())()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [np.asarray(len(inputs[0]), dtype=np.int64)]


class GetItem(Op):
    """Element ``i`` of the list (negative i counts from the end)."""

    def make_node(self, tl: Any, index: Any) -> Apply:
        tl, index = _as_list(tl), as_tensor_variable(index)
        if index.ndim != 0 or index.dtype not in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"):
            raise GraphTypeError(f"list index must be an integer scalar, got {index} ({index.type})")
        return Apply(self, [tl, index], [tl.type.ttype()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [inputs[0][int(inputs[1])]]


append, extend, length, getitem = Append(), Extend(), Length(), GetItem()
