"""theano.tensor: symgraph.tensor (the same objects: ``theano.tensor.dmatrix is symgraph.tensor.dmatrix``),
Theano's extra spellings, and its submodules (opt, nnet, inplace, extra_ops, ...)."""
import importlib

from symgraph.tensor import *  # noqa: F401,F403
from symgraph.tensor import (Rop, Lop, grad, jacobian, hessian, zero_grad, disconnected_grad,  # noqa: F401
                             as_tensor_variable, constant, TensorType, TensorVariable, TensorConstant)
from symgraph.tensor import abs as abs_, true_div, int_div, invert, xor, sign, reciprocal  # noqa: F401
from symgraph.testing import verify_grad  # noqa: F401
# (``sort`` comes from the star import: the sort function, as in Theano; the submodule
# theano.tensor.sort loads when imported by its full name)
from symgraph.compat.theano.tensor import (basic, elemwise, extra_ops, inplace, opt,  # noqa: F401
                                            shared_randomstreams, utils)
from symgraph.compat.theano.tensor.basic import Flatten  # noqa: F401

# modules, as in Theano (T.xlogx.xlogy0; T.nnet.softmax with Theano's shapes), not the star import's
xlogx = importlib.import_module(__name__ + ".xlogx")
nnet = importlib.import_module(__name__ + ".nnet")

truediv, intdiv, bitwise_not, bitwise_xor, sgn, inv = true_div, int_div, invert, xor, sign, reciprocal
