"""symgraph.tensor (``import symgraph.tensor as T``): tensor types, constructors and ops.

Elementwise ops come from the scalar table (symgraph/scalar.py); the rest live in the
modules below, each exporting its public names through ``__all__``.
"""
from __future__ import annotations

from symgraph.tensor.type import (CONSTRUCTORS, TensorConstant, TensorType, TensorVariable,
                                  as_tensor_variable, constant, tensor)
from symgraph.tensor.elemwise import (ELEMWISE_OPS, FUNCTIONS, DimShuffle, Elemwise, broadcast_static_shape,
                                      dimshuffle, transpose)
from symgraph.tensor.basic import cast, clip, switch, where

globals().update(CONSTRUCTORS)
globals().update({name: fn for name, fn in FUNCTIONS.items() if name not in ("clip", "switch")})

from symgraph.tensor.reduction import *  # noqa: E402,F401,F403
from symgraph.tensor.shape import *  # noqa: E402,F401,F403
from symgraph.tensor.alloc import *  # noqa: E402,F401,F403
from symgraph.tensor.math import *  # noqa: E402,F401,F403
from symgraph.tensor.subtensor import *  # noqa: E402,F401,F403
from symgraph.tensor.convolution import *  # noqa: E402,F401,F403
from symgraph.tensor.pooling import *  # noqa: E402,F401,F403
from symgraph.tensor import nnet  # noqa: E402
from symgraph.tensor.nnet import *  # noqa: E402,F401,F403
from symgraph.tensor import signal  # noqa: E402,F401  (T.signal.pool.pool_2d)

# Theano/PyTensor spellings
true_divide, floor_divide, divide, power, mul_ = true_div, int_div, true_div, pow, mul  # noqa: F821
absolute, negative, square, bitwise_and, bitwise_or = abs, neg, sqr, and_, or_  # noqa: F821
eq_, neq_ = eq, neq  # noqa: F821
_GRADIENT_NAMES = ("zero_grad", "disconnected_grad", "grad")


def __getattr__(name: str):
    """Names that live in symgraph.gradient (imported late to keep the import order acyclic)."""
    if name in _GRADIENT_NAMES:
        import symgraph.gradient as gradient
        return getattr(gradient, name)
    raise AttributeError(f"module 'symgraph.tensor' has no attribute {name!r}")
