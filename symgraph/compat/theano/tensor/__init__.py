"""theano.tensor: symgraph.tensor (the same objects: ``theano.tensor.dmatrix is symgraph.tensor.dmatrix``),
Theano's extra spellings, and its submodules (opt, nnet, inplace, extra_ops, ...)."""
import importlib

from symgraph.tensor import *  # noqa: F401,F403
from symgraph.tensor import (Rop, Lop, grad, jacobian, hessian, zero_grad, disconnected_grad,  # noqa: F401
                             as_tensor_variable, constant, TensorType, TensorVariable, TensorConstant)
from symgraph.tensor import abs as abs_, true_div, int_div, invert, xor, sign, reciprocal  # noqa: F401
from symgraph.testing import verify_grad  # noqa: F401
# (``nnet`` and ``sort`` come from the star import: the nnet module and the sort function, as in Theano;
# the submodules theano.tensor.nnet and theano.tensor.sort load when imported by their full names)
from symgraph.compat.theano.tensor import (basic, elemwise, extra_ops, inplace, opt,  # noqa: F401
                                            shared_randomstreams, utils)
from symgraph.compat.theano.tensor.basic import Flatten  # noqa: F401

xlogx = importlib.import_module(__name__ + ".xlogx")  # the module (T.xlogx.xlogy0), as in Theano

truediv, intdiv, bitwise_not, bitwise_xor, sgn, inv = true_div, int_div, invert, xor, sign, reciprocal
