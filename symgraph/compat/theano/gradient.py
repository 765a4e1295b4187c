"""theano.gradient: symgraph.gradient, and verify_grad from symgraph.testing."""
from symgraph.gradient import *  # noqa: F401,F403
from symgraph.gradient import DisconnectedInputError  # noqa: F401
from symgraph.testing import verify_grad  # noqa: F401
