"""theano.tensor.nnet: symgraph.tensor.nnet (sigmoid, softplus, softmax, crossentropies, ...)."""
from symgraph.tensor.nnet import *  # noqa: F401,F403
from symgraph.tensor.nnet import relu, sigmoid, softplus, softsign  # noqa: F401
