"""theano.scalar: scalars are 0-d tensors in symgraph, so the scalar types are 0-d TensorTypes and
the scalar ops are the elementwise ops (``theano.scalar.add is symgraph.tensor.add``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.tensor import TensorType, as_tensor_variable
from symgraph.tensor.elemwise import ELEMWISE_OPS

float64, float32, float16 = TensorType("float64", ()), TensorType("float32", ()), TensorType("float16", ())
int64, int32, int16, int8 = (TensorType(d, ()) for d in ("int64", "int32", "int16", "int8"))
uint8, bool = TensorType("uint8", ()), TensorType("bool", ())  # noqa: A001
complex64, complex128 = TensorType("complex64", ()), TensorType("complex128", ())
globals().update(ELEMWISE_OPS)


def as_scalar(x: Any) -> Any:
    """A 0-d tensor variable (a number becomes a constant)."""
    v = as_tensor_variable(x)
    if v.ndim != 0:
        raise TypeError(f"as_scalar: {v} ({v.type}) is not a scalar")
    return v


def upcast(*dtypes: str) -> str:
    """The dtype numpy computes in for these dtypes."""
    return np.result_type(*dtypes).name
