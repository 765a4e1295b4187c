"""Neural-network functions (``T.nnet``): softmax and log_softmax as numerically stable Ops,
crossentropies, and activations (sigmoid, relu, softplus, tanh, leaky_relu, elu)."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Apply, Op
from symgraph.tensor import abstract_conv  # noqa: F401  (T.nnet.abstract_conv)
from symgraph.tensor.abstract_conv import conv2d, conv2d_transpose  # noqa: F401  (T.nnet.conv2d, ...)
from symgraph.tensor.elemwise import ELEMWISE_OPS, FUNCTIONS, cast, switch
from symgraph.tensor.reduction import normalize_axis
from symgraph.tensor.reduction import sum as tsum
from symgraph.tensor.shape import shape
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, tensor_outputs

sigmoid, relu, softplus, tanh = FUNCTIONS["sigmoid"], FUNCTIONS["relu"], FUNCTIONS["softplus"], FUNCTIONS["tanh"]
softsign = FUNCTIONS["softsign"]
_exp, _log = ELEMWISE_OPS["exp"], ELEMWISE_OPS["log"]


def np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """numpy softmax along ``axis``: exp(x - max) normalised, so exp cannot overflow."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """numpy log-softmax along ``axis``: (x - max) - log(sum(exp(x - max)))."""
    s = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    if x.shape[axis] == 0:
        return s  # empty: no log of the empty sum (0), which numpy would warn about
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def np_one_hot(idx: np.ndarray, n: int) -> np.ndarray:
    """Boolean one-hot of integer ``idx`` over ``n`` classes; IndexError for out-of-range indices."""
    idx = np.asarray(idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise IndexError(f"OneHot: class index {bad} is out of range for {n} classes")
    return idx[..., None] == np.arange(n)


class _AxisSoftmax(Op):
    """Shared make_node/infer_shape of the softmax family: one axis, float output of exp's dtype."""

    __props__ = ("axis",)
    name = "softmax"

    def __init__(self, axis: int):
        self.axis = int(axis)

    def __str__(self) -> str:
        return f"{self.name}{{axis={self.axis}}}"

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        if not 0 <= self.axis < x.ndim:
            raise ShapeError(f"{self.name}: axis {self.axis} is out of bounds for {x} of type {x.type}")
        if x.dtype.startswith("complex") or x.dtype == "bool":
            raise GraphTypeError(f"{self.name}: expected a real-valued tensor, got {x.type}")
        dtype = ELEMWISE_OPS["exp"].scalar_op.out_dtype(x.dtype)
        return Apply(self, [x], [TensorType(dtype, x.type.shape).make_variable()])

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[0])]


class Softmax(_AxisSoftmax):
    """exp(x) / sum(exp(x)) along ``axis``, computed as exp(x - max) to avoid overflow."""

    name = "softmax"

    def perform(self, node: Apply, inputs: list) -> list:
        return [np_softmax(inputs[0].astype(tensor_outputs(node)[0].dtype, copy=False), self.axis)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (sm,), (g,) = inputs, outputs, output_grads
        if not x.dtype.startswith("float"):
            return [None]
        gx = (g - tsum(g * sm, axis=self.axis, keepdims=True)) * sm
        return [_cast_like(gx, x)]


class LogSoftmax(_AxisSoftmax):
    """log(softmax(x)) along ``axis``, as (x - max) - log(sum(exp(x - max))): no log(0)."""

    name = "log_softmax"

    def perform(self, node: Apply, inputs: list) -> list:
        return [np_log_softmax(inputs[0].astype(tensor_outputs(node)[0].dtype, copy=False), self.axis)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (ls,), (g,) = inputs, outputs, output_grads
        if not x.dtype.startswith("float"):
            return [None]
        gx = g - tsum(g, axis=self.axis, keepdims=True) * _exp(ls)
        return [_cast_like(gx, x)]


def _cast_like(g: TensorVariable, x: TensorVariable) -> TensorVariable:
    return cast(g, x.dtype) if g.dtype != x.dtype else g


def softmax(x: Any, axis: int = -1) -> TensorVariable:
    """Softmax along ``axis`` (default the last), numerically stable."""
    x = as_tensor_variable(x)
    (ax,) = normalize_axis(axis, x.ndim, "softmax")
    return Softmax(ax)(x)


def log_softmax(x: Any, axis: int = -1) -> TensorVariable:
    """Log of the softmax along ``axis``, numerically stable (finite where softmax underflows)."""
    x = as_tensor_variable(x)
    (ax,) = normalize_axis(axis, x.ndim, "log_softmax")
    return LogSoftmax(ax)(x)


class OneHot(Op):
    """Boolean one-hot encoding of integer ``idx`` with as many classes as ``like`` has on its last axis:
    ``out[..., k] = (idx[...] == k)``. Out-of-range indices raise IndexError."""

    def make_node(self, idx: Any, like: Any) -> Apply:
        idx, like = as_tensor_variable(idx), as_tensor_variable(like)
        if idx.dtype[0] not in "iu":
            raise GraphTypeError(f"OneHot: class indices must be integers, got {idx.type}")
        if like.ndim == 0:
            raise GraphTypeError(f"OneHot: the class axis comes from a tensor with at least 1 dimension, "
                                 f"got {like.type}")
        shape = idx.type.shape + like.type.shape[-1:]
        return Apply(self, [idx, like], [TensorType("bool", shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        idx, like = inputs
        return [np_one_hot(idx, np.shape(like)[-1])]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None, None]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[0]) + tuple(input_shapes[1])[-1:]]


def one_hot(idx: Any, like: Any) -> TensorVariable:
    """Boolean one-hot rows for integer class indices ``idx``; the class count is ``like.shape[-1]``."""
    return OneHot()(idx, like)


def categorical_crossentropy(coding_dist: Any, true_dist: Any) -> TensorVariable:
    """-sum(true * log(coding)) over the last axis; ``true_dist`` is a distribution (same shape as
    ``coding_dist``) or integer class indices (one fewer dimension)."""
    coding, true = as_tensor_variable(coding_dist), as_tensor_variable(true_dist)
    if true.dtype[0] in "iu" and true.ndim == coding.ndim - 1:
        picked = tsum(switch(one_hot(true, coding), coding, 0), axis=-1)  # exact: adds zeros only
        return -_log(picked)
    if true.ndim != coding.ndim:
        raise ShapeError(f"categorical_crossentropy: true_dist must be class indices with {coding.ndim - 1} "
                         f"dimensions or a distribution with {coding.ndim}; got {true.type} for coding_dist "
                         f"{coding.type}")
    return -tsum(true * _log(coding), axis=-1)


def binary_crossentropy(output: Any, target: Any) -> TensorVariable:
    """-(target * log(output) + (1 - target) * log(1 - output)), elementwise."""
    output, target = as_tensor_variable(output), as_tensor_variable(target)
    return -(target * _log(output) + (1 - target) * ELEMWISE_OPS["log1p"](-output))


def sigmoid_binary_crossentropy(logits: Any, target: Any) -> TensorVariable:
    """binary_crossentropy(sigmoid(logits), target), computed stably as softplus(logits) - target * logits."""
    logits = as_tensor_variable(logits)
    return softplus(logits) - target * logits


def leaky_relu(x: Any, alpha: float = 0.01) -> TensorVariable:
    """x where x > 0, else alpha * x."""
    x = as_tensor_variable(x)
    return switch(x > 0, x, alpha * x)


def elu(x: Any, alpha: float = 1.0) -> TensorVariable:
    """x where x > 0, else alpha * (exp(x) - 1); exp sees min(x, 0) so nothing overflows."""
    x = as_tensor_variable(x)
    neg = ELEMWISE_OPS["expm1"](ELEMWISE_OPS["minimum"](x, 0))
    return switch(x > 0, x, alpha * neg)


def dropout(x: Any, p: Any = 0.5, srng: Any = None, rescale: bool = True) -> TensorVariable:
    """Inverted dropout (as Lasagne's): each element of ``x`` is zeroed with probability ``p`` and the
    others are scaled by 1 / (1 - p) (left as they are with ``rescale=False``). The mask is
    ``srng.binomial(x.shape, n=1, p=1 - p, dtype=x.dtype)`` from the random stream ``srng``: one draw,
    so the gradient multiplies by the forward pass's mask, and it fuses into the kernel that reads
    it (the mask is never stored). Each call of a compiled function draws a new mask."""
    if srng is None or not hasattr(srng, "binomial"):
        raise TypeError("dropout needs a random stream: T.nnet.dropout(x, p, sg.RandomStream(seed))")
    x = as_tensor_variable(x)
    if not x.dtype.startswith("float"):
        raise GraphTypeError(f"dropout: expected a float tensor, got {x} ({x.type})")
    if isinstance(p, (int, float)):
        if not 0 <= p < 1:
            raise ValueError(f"dropout: p must be in [0, 1), got {p}")
        if p == 0:
            return x
        keep: Any = 1.0 - p
        scale: Any = 1.0 / keep
    else:
        keep = 1 - cast(as_tensor_variable(p), x.dtype)
        scale = 1 / keep
    mask = srng.binomial(size=shape(x), n=1, p=keep, dtype=x.dtype)
    return x * mask * scale if rescale else x * mask


__all__ = ["Softmax", "LogSoftmax", "OneHot", "softmax", "log_softmax", "one_hot", "categorical_crossentropy",
           "binary_crossentropy", "sigmoid_binary_crossentropy", "sigmoid", "relu", "softplus", "softsign", "tanh",
           "leaky_relu", "elu", "dropout"]
