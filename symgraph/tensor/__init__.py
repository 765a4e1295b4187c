"""symgraph.tensor (``import symgraph.tensor as T``): tensor types, constructors and ops.

Elementwise ops come from the scalar table (symgraph/scalar.py); the rest live in the
modules below, each exporting its public names through ``__all__``. The modules import each
other bottom-up only (type -> elemwise -> reduction -> shape -> alloc -> the others);
``T.grad`` and the other gradient functions are attached by ``symgraph/__init__.py``, which
loads symgraph.gradient after this package.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from symgraph.tensor import type as _type_module
from symgraph.tensor.type import (CONSTRUCTORS, TensorConstant, TensorType, TensorVariable,
                                  as_tensor_variable, constant, is_inexact, is_integer, tensor)
from symgraph.tensor.elemwise import (ELEMWISE_OPS, FUNCTIONS, DimShuffle, Elemwise, broadcast_static_shape,
                                      cast, clip, dimshuffle, round, switch, transpose)

globals().update(CONSTRUCTORS)
globals().update({name: fn for name, fn in FUNCTIONS.items() if name not in ("clip", "switch", "round")})
if TYPE_CHECKING:
    # The constructors (T.matrix, T.dvector, ...), the elementwise functions (T.exp, T.add, ...) and
    # T.grad & co. (attached by symgraph/__init__.py) are put here from tables at import time: the
    # type checker sees them as Any.
    def __getattr__(name: str) -> Any: ...

from symgraph.tensor.reduction import *  # noqa: E402,F401,F403
from symgraph.tensor.shape import *  # noqa: E402,F401,F403
from symgraph.tensor.alloc import *  # noqa: E402,F401,F403
from symgraph.tensor.math import *  # noqa: E402,F401,F403
from symgraph.tensor.subtensor import *  # noqa: E402,F401,F403
from symgraph.tensor.gradient_ops import *  # noqa: E402,F401,F403
from symgraph.tensor.dims import *  # noqa: E402,F401,F403
from symgraph.tensor.structured import *  # noqa: E402,F401,F403
from symgraph.tensor.sort import *  # noqa: E402,F401,F403
from symgraph.tensor.extra_ops import *  # noqa: E402,F401,F403
from symgraph.tensor.convolution import *  # noqa: E402,F401,F403
from symgraph.tensor.pooling import *  # noqa: E402,F401,F403
from symgraph.tensor import fft, nnet  # noqa: E402
from symgraph.tensor.nnet import *  # noqa: E402,F401,F403
from symgraph.tensor import linalg, nlinalg, slinalg  # noqa: E402,F401
from symgraph.tensor import signal  # noqa: E402,F401  (T.signal.pool.pool_2d)
from symgraph.tensor import random_ops  # noqa: E402,F401  (random draws' ops: symgraph.random builds them)
from symgraph.tensor.collective import allreduce  # noqa: E402,F401

# Theano/PyTensor spellings
_F = FUNCTIONS  # the elementwise functions put into this namespace above
true_divide, floor_divide, divide, power, mul_ = _F["true_div"], _F["int_div"], _F["true_div"], _F["pow"], _F["mul"]
absolute, negative, square, bitwise_and, bitwise_or = _F["abs"], _F["neg"], _F["sqr"], _F["and_"], _F["or_"]
eq_, neq_ = _F["eq"], _F["neq"]

_type_module.ops = sys.modules[__name__]  # what x + y, x.sum(), x[i] ... call (see tensor/type.py)
