"""The ops that cut gradients: ``zero_grad`` (the gradient through it is 0) and
``disconnected_grad`` (no gradient flows back: a stop-gradient). Identity in the forward pass.

They live here, not in ``symgraph.gradient``, so rewrite rules can name them without importing
the differentiation machinery (which itself runs stabilizing rewrites before differentiating).
"""
from __future__ import annotations

from typing import Any

from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.alloc import zeros_like
from symgraph.tensor.type import as_tensor_variable


class _IdentityForward(Op):
    """Identity in the forward pass (a view of its input); subclasses change only the gradient."""

    view_map = {0: 0}

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [inputs[0]]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [input_shapes[0]]


class ZeroGrad(_IdentityForward):
    """``x`` in the forward pass; its gradient is zero (the path stays connected)."""

    def grad(self, inputs: list, output_grads: list) -> list:
        (x,) = inputs
        return [zeros_like(x) if x.dtype.startswith(("float", "complex")) else None]


class DisconnectedGrad(_IdentityForward):
    """``x`` in the forward pass; no gradient flows back through it (stop-gradient): a variable
    reachable from the cost only through it counts as disconnected."""

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None]


_zero_grad, _disconnected_grad = ZeroGrad(), DisconnectedGrad()


def zero_grad(x: Any) -> Variable:
    """``x`` unchanged, but with a zero gradient (``grad`` through it is 0, not an error)."""
    return _zero_grad(x)


def disconnected_grad(x: Any) -> Variable:
    """``x`` unchanged, but gradients stop here (as if ``x`` were a constant)."""
    return _disconnected_grad(x)


__all__ = ["ZeroGrad", "DisconnectedGrad", "zero_grad", "disconnected_grad"]
