"""Optimizers as update rules (Lasagne style): each returns ordered ``(shared, new_value)`` pairs
for ``sg.function(updates=...)``; optimizer state (moments, step count) lives in shared variables.

    updates = sg.updates.adam(loss, [W, b])
    train = sg.function([x, y], loss, updates=updates)

Every rule takes ``data_parallel=True`` for data-parallel training over MPI (``sg.distributed``):
the gradients are then averaged over the processes before the update.

Every new value keeps its parameter's dtype: Python-number hyperparameters are weak constants,
and anything else (a symbolic learning rate, say) is cast back.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.compile.shared import SharedVariable, shared
from symgraph.errors import GraphTypeError, InputError
from symgraph.gradient import grad
from symgraph.graph.basic import Variable
from symgraph.tensor.collective import allreduce
from symgraph.tensor.elemwise import FUNCTIONS, cast
from symgraph.tensor.type import TensorVariable, as_tensor_variable

Updates = OrderedDict[SharedVariable, Variable]
sqrt = FUNCTIONS["sqrt"]


def get_or_compute_grads(loss_or_grads: Any, params: Sequence[SharedVariable],
                         data_parallel: bool = False) -> list[TensorVariable]:
    """The gradients of ``params``: the given list itself, or ``sg.grad(loss, params)``. With
    ``data_parallel=True`` each is averaged over the MPI processes (``T.allreduce(g, 'mean')``;
    the ``bucket_allreduce`` rewrite sends them all in one call): each process computes the
    gradient of its share of the batch, and all apply the same update."""
    grads = _grads(loss_or_grads, _check_params(params))
    return [allreduce(g, "mean") for g in grads] if data_parallel else grads


def _grads(loss_or_grads: Any, params: list[SharedVariable]) -> list[TensorVariable]:
    if isinstance(loss_or_grads, (list, tuple)):
        grads = [as_tensor_variable(g) for g in loss_or_grads]
        if len(grads) != len(params):
            raise InputError(f"got {len(grads)} gradients for {len(params)} parameters; pass one gradient "
                             "per parameter, or the loss itself")
        for p, g in zip(params, grads):
            if g.ndim != p.ndim:
                raise GraphTypeError(f"the gradient for {p} has {g.ndim} dimensions ({g.type}), "
                                     f"but the parameter has {p.ndim} ({p.type})")
        return grads
    return list(grad(loss_or_grads, params))


def _check_params(params: Any) -> list[SharedVariable]:
    if isinstance(params, Variable):
        params = [params]
    params = list(params)
    for p in params:
        if not isinstance(p, SharedVariable):
            raise InputError(f"update rules change parameters in place, so each must be an sg.shared "
                             f"variable; got {p!r} ({type(p).__name__})")
        if p.type.numpy_dtype.kind != "f":
            raise GraphTypeError(f"parameter {p} has dtype {p.dtype}; update rules need floating-point parameters")
    return params


def _zeros_like(p: SharedVariable, what: str) -> SharedVariable:
    """Optimizer state for ``p``: zeros of its shape and dtype, named after it (unnamed if it is)."""
    value = p.get_value(borrow=True)
    return shared(np.zeros(value.shape, dtype=value.dtype), name=f"{p.name}_{what}" if p.name else None)


def _keep_dtype(p: SharedVariable, value: Any) -> TensorVariable:
    return cast(value, p.dtype)


def sgd(loss_or_grads: Any, params: Sequence[SharedVariable], learning_rate: Any,
        data_parallel: bool = False) -> Updates:
    """Plain gradient descent: ``p <- p - learning_rate * g``."""
    grads = get_or_compute_grads(loss_or_grads, params, data_parallel)
    return OrderedDict((p, _keep_dtype(p, p - learning_rate * g)) for p, g in zip(params, grads))


def momentum(loss_or_grads: Any, params: Sequence[SharedVariable], learning_rate: Any,
             momentum: float = 0.9, data_parallel: bool = False) -> Updates:
    """Heavy-ball momentum: ``v <- momentum*v - lr*g; p <- p + v``."""
    grads = get_or_compute_grads(loss_or_grads, params, data_parallel)
    updates: Updates = OrderedDict()
    for p, g in zip(params, grads):
        v = _zeros_like(p, "velocity")
        v_new = _keep_dtype(p, momentum * v - learning_rate * g)
        updates[v] = v_new
        updates[p] = p + v_new
    return updates


def nesterov_momentum(loss_or_grads: Any, params: Sequence[SharedVariable], learning_rate: Any,
                      momentum: float = 0.9, data_parallel: bool = False) -> Updates:
    """Nesterov momentum (Lasagne's form): ``v <- momentum*v - lr*g; p <- p + momentum*v - lr*g``."""
    grads = get_or_compute_grads(loss_or_grads, params, data_parallel)
    updates: Updates = OrderedDict()
    for p, g in zip(params, grads):
        v = _zeros_like(p, "velocity")
        step = _keep_dtype(p, learning_rate * g)
        v_new = momentum * v - step
        updates[v] = v_new
        updates[p] = p + momentum * v_new - step
    return updates


def adagrad(loss_or_grads: Any, params: Sequence[SharedVariable], learning_rate: Any = 1.0,
            epsilon: float = 1e-6, data_parallel: bool = False) -> Updates:
    """Adagrad: ``acc <- acc + g**2; p <- p - lr*g / sqrt(acc + epsilon)``."""
    grads = get_or_compute_grads(loss_or_grads, params, data_parallel)
    updates: Updates = OrderedDict()
    for p, g in zip(params, grads):
        acc = _zeros_like(p, "accu")
        acc_new = _keep_dtype(p, acc + g * g)
        updates[acc] = acc_new
        updates[p] = _keep_dtype(p, p - learning_rate * g / sqrt(acc_new + epsilon))
    return updates


def rmsprop(loss_or_grads: Any, params: Sequence[SharedVariable], learning_rate: Any = 1.0,
            rho: float = 0.9, epsilon: float = 1e-6, data_parallel: bool = False) -> Updates:
    """RMSProp: ``acc <- rho*acc + (1-rho)*g**2; p <- p - lr*g / sqrt(acc + epsilon)``."""
    grads = get_or_compute_grads(loss_or_grads, params, data_parallel)
    updates: Updates = OrderedDict()
    for p, g in zip(params, grads):
        acc = _zeros_like(p, "accu")
        acc_new = _keep_dtype(p, rho * acc + (1.0 - rho) * (g * g))
        updates[acc] = acc_new
        updates[p] = _keep_dtype(p, p - learning_rate * g / sqrt(acc_new + epsilon))
    return updates


def adam(loss_or_grads: Any, params: Sequence[SharedVariable], learning_rate: Any = 0.001,
         beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8, data_parallel: bool = False) -> Updates:
    """Adam (Kingma & Ba, Algorithm 1): bias-corrected first and second moments,
    ``p <- p - lr * m_hat / (sqrt(v_hat) + epsilon)``; the step count ``t`` is shared too."""
    grads = get_or_compute_grads(loss_or_grads, params, data_parallel)
    dtype = np.result_type(*[p.dtype for p in params]).name if params else "float64"
    t = shared(np.zeros((), dtype=dtype), name="adam_t")
    t_new = t + 1.0
    updates: Updates = OrderedDict()
    updates[t] = t_new
    for p, g in zip(params, grads):
        m, v = _zeros_like(p, "m"), _zeros_like(p, "v")
        m_new = _keep_dtype(p, beta1 * m + (1.0 - beta1) * g)
        v_new = _keep_dtype(p, beta2 * v + (1.0 - beta2) * (g * g))
        m_hat = m_new / _keep_dtype(p, 1.0 - beta1 ** t_new)
        v_hat = v_new / _keep_dtype(p, 1.0 - beta2 ** t_new)
        updates[m], updates[v] = m_new, v_new
        updates[p] = _keep_dtype(p, p - learning_rate * m_hat / (sqrt(v_hat) + epsilon))
    return updates


__all__ = ["sgd", "momentum", "nesterov_momentum", "adagrad", "rmsprop", "adam", "get_or_compute_grads"]
