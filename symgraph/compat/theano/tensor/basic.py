"""theano.tensor.basic: the tensor functions, and the ``Flatten`` op class Theano had."""
from __future__ import annotations

from typing import Any

from symgraph.tensor import *  # noqa: F401,F403
from symgraph.tensor import flatten


class Flatten:
    """Theano's ``Flatten(outdim)`` op, callable on a variable (symgraph flattens with a reshape)."""

    def __init__(self, outdim: int = 1):
        self.outdim = int(outdim)

    def __call__(self, x: Any) -> Any:
        return flatten(x, self.outdim)

    def __repr__(self) -> str:
        return f"Flatten{{{self.outdim}}}"
