"""theano.tensor.nnet: symgraph.tensor.nnet (sigmoid, softplus, crossentropies, ...) and the
convolutions Theano exported there (``from theano.tensor.nnet import conv2d``, as LeNet's tutorial
imports it), with Theano's softmax: its Softmax and LogSoftmax ops took matrices and padded a
vector to one row, so ``softmax(v)`` is (1, n) (the RNN tutorial reads ``s[:, 0, :]`` of a scan
of them); symgraph's own ``softmax`` keeps the input's shape, as PyTensor's and JAX's do."""
from typing import Any

from symgraph.tensor import nnet as _nnet
from symgraph.tensor import shape_padleft
from symgraph.tensor.nnet import *  # noqa: F401,F403
from symgraph.tensor.nnet import conv2d, conv2d_transpose, relu, sigmoid, softplus, softsign  # noqa: F401
from symgraph.tensor.type import TensorVariable, as_tensor_variable


def _rows(c: Any) -> TensorVariable:
    c = as_tensor_variable(c)
    if c.ndim not in (1, 2):
        raise ValueError(f"theano.tensor.nnet: softmax takes a vector or a matrix, as Theano's did, got {c} "
                         f"({c.type}); symgraph.tensor.nnet.softmax(x, axis=-1) takes any number of dimensions")
    return shape_padleft(c) if c.ndim == 1 else c


def softmax(c: Any) -> TensorVariable:  # type: ignore[no-redef]  # Theano's, over the star import
    """Theano's ``softmax``: along the rows of a matrix; a vector is one row, (1, n)."""
    return _nnet.softmax(_rows(c))


def logsoftmax(c: Any) -> TensorVariable:
    """Theano's ``logsoftmax``: along the rows of a matrix; a vector is one row, (1, n)."""
    return _nnet.log_softmax(_rows(c))


log_softmax = logsoftmax  # type: ignore[assignment]  # Theano's one-argument form
