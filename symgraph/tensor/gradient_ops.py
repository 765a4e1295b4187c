"""Identity ops that only change the gradient: ``zero_grad`` (the gradient through it is 0) and
``disconnected_grad`` (no gradient flows: stop-gradient). ``sg.grad`` recognises them."""
from __future__ import annotations

from typing import Any

from symgraph.graph.basic import Apply, Op
from symgraph.tensor.alloc import zeros_like
from symgraph.tensor.type import TensorVariable, as_tensor_variable, is_inexact


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
        return [zeros_like(x) if is_inexact(x) else None]


class DisconnectedGrad(_IdentityForward):
    """``x`` in the forward pass; no gradient flows back through it (stop-gradient): a variable
    reachable from the cost only through it counts as disconnected."""

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None]


class DependsOn(_IdentityForward):
    """``x``, read as depending on more inputs: ``Rop`` wraps a result that does not read every
    ``wrt`` (the Jacobian of a linear function is constant), so a function compiled with those
    ``wrt`` as inputs, as in Theano's tutorial, finds them used. Rewrites remove it, so it costs
    nothing at run time; without rewrites it is a view of ``x``."""

    def make_node(self, x: Any, *others: Any) -> Apply:
        x = as_tensor_variable(x)
        return Apply(self, [x, *others], [x.type.make_variable()])

    def grad(self, inputs: list, output_grads: list) -> list:
        return [output_grads[0]] + [None] * (len(inputs) - 1)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [input_shapes[0]]


_zero_grad, _disconnected_grad = ZeroGrad(), DisconnectedGrad()


def zero_grad(x: Any) -> TensorVariable:
    """``x`` unchanged, but with a zero gradient (``grad`` through it is 0, not an error)."""
    return _zero_grad(x)


def disconnected_grad(x: Any) -> TensorVariable:
    """``x`` unchanged, but gradients stop here (as if ``x`` were a constant)."""
    return _disconnected_grad(x)


__all__ = ["ZeroGrad", "DisconnectedGrad", "DependsOn", "zero_grad", "disconnected_grad"]
