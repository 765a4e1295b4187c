"""Small helpers the rules are written with: match an elementwise producer, read a constant,
build constants of an exact dtype, and fit a replacement to the type it replaces."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.tensor.elemwise import ELEMWISE_OPS, Elemwise
from symgraph.tensor.reduction import broadcast_like
from symgraph.tensor.type import TensorConstant, TensorType, TensorVariable, is_inexact

E = ELEMWISE_OPS


def elem(var: Variable, name: str | None = None) -> Apply | None:
    """The Elemwise node computing ``var`` (of scalar op ``name`` if given), else None."""
    node = var.owner
    if node is None or type(node.op) is not Elemwise:
        return None
    if name is not None and node.op.scalar_op.name != name:
        return None
    return node


def const_value(var: Variable) -> Any:
    """The single value every element of constant ``var`` holds (a numpy scalar), else None."""
    if not isinstance(var, Constant) or not isinstance(var.data, np.ndarray) or var.data.size == 0:
        return None
    data = var.data
    first = data.flat[0]
    if data.size > 1 and not (data == first).all():
        return None
    return first


def is_const(var: Variable, value: float) -> bool:
    """``var`` is a constant whose elements all equal ``value``."""
    v = const_value(var)
    return v is not None and not np.isnan(v) and v == value


def scalar_const(value: Any, dtype: str) -> TensorConstant:
    """A 0-d constant of exactly ``dtype`` (not weak, so it never changes an op's dtype)."""
    data = np.asarray(value, dtype=dtype)
    data.setflags(write=False)
    return TensorConstant(TensorType(dtype, ()), data)


def fit(new: TensorVariable | None, old: TensorVariable) -> Variable | None:
    """``new`` shaped to replace ``old``: itself when the types agree, a cast when only the
    dtype differs, None (do not rewrite) when the static shapes differ."""
    if new is None:
        return None
    if new.type == old.type:
        return new
    if new.type.shape != old.type.shape:
        return None
    cast = E[f"cast_{old.dtype}"](new)
    return cast if cast.type == old.type else None


def single_client(fgraph, var: Variable) -> bool:
    """Only one node reads ``var`` and it is not a graph output."""
    cl = fgraph.clients.get(var, ())
    return len(cl) == 1 and cl[0][0] != "output"


def is_float(var: Variable) -> bool:
    """Float or complex (the dtypes these rewrites treat as inexact)."""
    return is_inexact(var)


def zeros_like(var: TensorVariable) -> Variable:
    """Zeros of ``var``'s type: a constant when the static shape is known, else a broadcast."""
    shape = tuple(s for s in var.type.shape if s is not None)
    if len(shape) == var.ndim:
        data = np.zeros(shape, var.dtype)
        data.setflags(write=False)
        return TensorConstant(var.type, data)
    return broadcast_like(scalar_const(0, var.dtype), var)


def other_operand(node: Apply, i: int) -> Variable:
    """The other input of a binary node."""
    return node.inputs[1 - i]
