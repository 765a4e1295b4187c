"""theano.tensor.nnet: symgraph.tensor.nnet (sigmoid, softplus, softmax, crossentropies, ...) and the
convolutions Theano exported there (``from theano.tensor.nnet import conv2d``, as LeNet's tutorial
imports it)."""
from symgraph.tensor.nnet import *  # noqa: F401,F403
from symgraph.tensor.nnet import conv2d, conv2d_transpose, relu, sigmoid, softplus, softsign  # noqa: F401
