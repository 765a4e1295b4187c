"""Identity ops that only change the gradient: ``zero_grad`` (the gradient through it is 0) and
``disconnected_grad`` (no gradient flows: stop-gradient), which ``sg.grad`` recognises; and
``BroadcastCheck``, the run-time check ``sg.grad`` adds where an input may broadcast along an axis
its type does not declare broadcastable."""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from symgraph.errors import ShapeError
from symgraph.graph.basic import Apply, Op
from symgraph.tensor.alloc import zeros_like
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, is_inexact


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


class BroadcastCheck(Op):
    """1, a 0-d array of ``dtype``, once the run-time shapes of an elementwise node's inputs (its
    inputs are those shapes) show
    none of ``checks`` broadcasting: (input, axis) pairs, axes counted in the node output's dims,
    where the input's static length is unknown and another input's may differ. ``sg.grad`` sums a
    gradient back over the axes an input was declared to broadcast along (static length 1), as
    Theano does; an input that broadcast at run time along an axis declared of unknown length
    would get a gradient of the broadcast shape (a shared (1, n) bias would grow to the batch's
    shape with its update). So ``sg.grad`` multiplies such a node's output gradient by this check
    (an elementwise ``* 1`` that fuses with the gradient's other work), and the call raises
    instead, naming the input, the axis and ``where`` the node was built."""

    __props__ = ("checks", "dtype", "where")

    def __init__(self, checks: tuple, dtype: str, where: str):
        self.checks, self.dtype, self.where = tuple(tuple(c) for c in checks), str(dtype), str(where)

    def __str__(self) -> str:
        return "BroadcastCheck{" + ", ".join(f"input {k} axis {d}" for k, d in self.checks) + "}"

    def make_node(self, *shapes: Any) -> Apply:
        """The inputs are the node's inputs' shapes (``T.shape``), so that reading them never keeps
        a value from fusing into the work around it."""
        xs = [as_tensor_variable(x) for x in shapes]
        return Apply(self, xs, [TensorType(self.dtype, ()).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        check_shape_vectors(self, inputs)
        return [np.ones((), self.dtype)]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None] * len(inputs)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [()]


BROADCAST_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("broadcast_checks", default=True)
"""Whether ``sg.grad`` adds BroadcastChecks. A loop body's gradient is built without them: there a
check would read the shapes of forward intermediates, and the reverse loop would recompute them
(W7: two 100 x 32 x 128 products more per call); a loop's carries keep their shapes, checked
every step, so an oversized carry gradient raises there instead."""


@contextlib.contextmanager
def no_broadcast_checks() -> Iterator[None]:
    """Build gradients without BroadcastChecks (a loop body's, see BROADCAST_CHECKS)."""
    token = BROADCAST_CHECKS.set(False)
    try:
        yield
    finally:
        BROADCAST_CHECKS.reset(token)


def check_shape_vectors(op: BroadcastCheck, vectors: Sequence[Any]) -> None:
    """``check_broadcast`` on the check's inputs as a backend holds them (int arrays, tuples)."""
    shapes = [tuple(v.tolist() if v.__class__ is np.ndarray else np.asarray(v).tolist()) for v in vectors]
    if shapes.count(shapes[0]) != len(shapes):  # all equal, the common case: nothing broadcast
        check_broadcast(op, shapes)


def check_broadcast(op: BroadcastCheck, shapes: list[tuple]) -> None:
    """Raise ShapeError when one of ``op.checks`` broadcast in inputs of these ``shapes``."""
    ndim = max(map(len, shapes), default=0)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]  # numpy's alignment: missing axes are 1
    for k, d in op.checks:
        if padded[k][d] != 1:  # the common case, decided without the other inputs
            continue
        lengths = [p[d] for p in padded]
        full = 0 if 0 in lengths else max(lengths)
        if full != 1:
            axis = d - ndim + len(shapes[k])
            name, _, built = op.where.partition("\n")
            raise ShapeError(
                f"input {k} (shape {list(shapes[k])}) of {name} broadcast at run time along its axis {axis} "
                f"(length 1, against {full}), an axis its type does not declare broadcastable, and a gradient "
                f"is taken through it: sg.grad, as Theano, sums a gradient only over axes declared of length 1, so "
                f"it would come out with the broadcast shape. Declare the axis: T.tensor(dtype, shape=(..., 1, ...)), "
                f"sg.shared(value, shape=(..., 1, ...)) or T.specify_shape." + (f"\n{built}" if built else ""))


def broadcast_checks(node: Apply) -> tuple:
    """(input, axis) pairs of an elementwise ``node`` (axes in its output's dims) where the input's
    static length is unknown and another input's is not declared 1: where it may broadcast at run time."""
    inputs = list(node.inputs)
    types: list[tuple] = [tuple(getattr(v.type, "shape", ())) for v in inputs]
    ndim = max((len(t) for t in types), default=0)
    checks = []
    for k, t in enumerate(types):
        for a, n in enumerate(t):
            d = a + ndim - len(t)
            if n is None and any(inputs[j] is not inputs[k] and d - ndim + len(u) >= 0 and u[d - ndim + len(u)] != 1
                                 for j, u in enumerate(types)):  # (x * x: one variable cannot broadcast against itself)
                checks.append((k, d))
    return tuple(checks)


_zero_grad, _disconnected_grad = ZeroGrad(), DisconnectedGrad()


def zero_grad(x: Any) -> TensorVariable:
    """``x`` unchanged, but with a zero gradient (``grad`` through it is 0, not an error)."""
    return _zero_grad(x)


def disconnected_grad(x: Any) -> TensorVariable:
    """``x`` unchanged, but gradients stop here (as if ``x`` were a constant)."""
    return _disconnected_grad(x)


__all__ = ["ZeroGrad", "DisconnectedGrad", "DependsOn", "BroadcastCheck", "zero_grad", "disconnected_grad"]
