"""theano.tensor.opt: registering local optimizations, and reading scalar constants."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.graph.basic import Constant, Variable
from symgraph.rewrite import register_canonicalize, register_specialize, register_stabilize  # noqa: F401
from symgraph.rewrite.patterns import const_value
from symgraph.tensor.alloc import Alloc
from symgraph.tensor.elemwise import DimShuffle, Elemwise
from symgraph.tensor.reduction import BroadcastLike
from symgraph.tensor.type import TensorVariable, tensor_inputs


class NotScalarConstantError(ValueError):
    """The variable is not a constant whose elements all hold one value."""


def get_scalar_constant_value(v: Any) -> np.ndarray:
    """The single value of ``v`` when it is (a broadcast, alloc, dimshuffle or cast of) a constant
    whose elements are all equal; NotScalarConstantError otherwise."""
    if not isinstance(v, Variable):
        return np.asarray(v)
    if isinstance(v, Constant):
        value = const_value(v)
        if value is None:
            raise NotScalarConstantError(f"{v} is a constant with different elements")
        return np.asarray(value)
    node = v.owner
    if isinstance(v, TensorVariable) and node is not None and (isinstance(node.op, (Alloc, DimShuffle, BroadcastLike))
                             or isinstance(node.op, Elemwise) and node.op.scalar_op.name.startswith("cast_")):
        return np.asarray(get_scalar_constant_value(tensor_inputs(node)[0]), dtype=v.dtype)
    raise NotScalarConstantError(f"{v} is not a constant")
