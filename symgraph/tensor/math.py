"""Products of tensors: dot (numpy.dot), matmul (numpy.matmul, batched with broadcasting),
tensordot and outer. Output dtypes are numpy's; certain shape mismatches fail at build time."""
from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.elemwise import DimShuffle, _fmt, broadcast_static_shape, cast, dimshuffle
from symgraph.tensor.reduction import sum_to
from symgraph.tensor.shape import reshape, shape_i, sprod
from symgraph.tensor.type import (
    TensorType,
    TensorVariable,
    as_tensor_variable,
    is_inexact,
    tensor_inputs,
    tensor_outputs,
)


@cache
def _product_dtype(fn_name: str, da: str, db: str) -> str:
    """numpy's result dtype of ``np.<fn_name>`` on these dtypes (GraphTypeError if undefined)."""
    fn = getattr(np, fn_name)
    try:
        return fn(np.ones((1, 1), da), np.ones((1, 1), db)).dtype.name
    except TypeError as e:
        raise GraphTypeError(f"{fn_name} is not defined for dtypes {da} and {db} ({e})") from None


def _check_inner(what: str, a: TensorVariable, b: TensorVariable, ka: int | None, kb: int | None) -> None:
    if ka is not None and kb is not None and ka != kb:
        raise ShapeError(f"{what}: shapes {_fmt(a.type.shape)} and {_fmt(b.type.shape)} are not aligned: "
                         f"inner dimensions {ka} and {kb} differ")


def _grad_as(g: TensorVariable, x: TensorVariable) -> Variable | None:
    """``g`` cast to ``x``'s dtype, or None when ``x`` is not differentiable (integers)."""
    if not is_inexact(x):
        return None
    return cast(g, x.dtype) if g.dtype != x.dtype else g


def _swap_last(x: TensorVariable) -> TensorVariable:
    order = list(range(x.ndim))
    order[-2:] = order[-1], order[-2]
    return DimShuffle(x.ndim, order)(x)


class Dot(Op):
    """numpy.dot for 1-d and 2-d operands: inner product, matrix-vector or matrix-matrix product."""

    def make_node(self, a: Any, b: Any) -> Apply:
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        if a.ndim not in (1, 2) or b.ndim not in (1, 2):
            raise GraphTypeError(f"Dot takes 1-d or 2-d operands, got {a.type} and {b.type} "
                                 f"(T.dot handles other ranks)")
        ka, kb = a.type.shape[-1], b.type.shape[0]
        _check_inner("dot", a, b, ka, kb)
        shape = a.type.shape[:-1] + b.type.shape[1:]
        return Apply(self, [a, b], [TensorType(_product_dtype("dot", a.dtype, b.dtype), shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [np.asarray(np.dot(*inputs), dtype=tensor_outputs(node)[0].dtype)]

    def grad(self, inputs: list, output_grads: list) -> list:
        (a, b), (g,) = inputs, output_grads
        if a.ndim == 2 and b.ndim == 2:
            ga, gb = dot(g, b.T), dot(a.T, g)
        elif a.ndim == 2:  # matrix @ vector
            ga, gb = dimshuffle(g, (0, "x")) * dimshuffle(b, ("x", 0)), dot(a.T, g)
        elif b.ndim == 2:  # vector @ matrix
            ga, gb = dot(b, g), dimshuffle(a, (0, "x")) * dimshuffle(g, ("x", 0))
        else:
            ga, gb = g * b, g * a
        return [_grad_as(ga, a), _grad_as(gb, b)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        sa, sb = input_shapes
        return [tuple(sa[:-1]) + tuple(sb[1:])]


class MatMul(Op):
    """numpy.matmul: matrix products over the last two axes, batch axes broadcast; 1-d operands
    are promoted to a row (left) or column (right) and that axis is removed from the result."""

    def make_node(self, a: Any, b: Any) -> Apply:
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        if a.ndim == 0 or b.ndim == 0:
            raise GraphTypeError(f"matmul: operands must have at least 1 dimension, got {a.type} and {b.type} "
                                 f"(use * for scalars)")
        sa = a.type.shape if a.ndim > 1 else (1,) + a.type.shape
        sb = b.type.shape if b.ndim > 1 else b.type.shape + (1,)
        _check_inner("matmul", a, b, sa[-1], sb[-2])
        batch = broadcast_static_shape([sa[:-2], sb[:-2]], f"the batch dimensions of matmul operands "
                                       f"{_fmt(a.type.shape)} and {_fmt(b.type.shape)}")
        shape = batch + (sa[-2],) * (a.ndim > 1) + (sb[-1],) * (b.ndim > 1)
        dtype = _product_dtype("matmul", a.dtype, b.dtype)
        return Apply(self, [a, b], [TensorType(dtype, shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [np.asarray(np.matmul(*inputs), dtype=tensor_outputs(node)[0].dtype)]

    def grad(self, inputs: list, output_grads: list) -> list:
        (a, b), (g,) = inputs, output_grads
        a2 = a if a.ndim > 1 else dimshuffle(a, ("x", 0))
        b2 = b if b.ndim > 1 else dimshuffle(b, (0, "x"))
        g2 = g
        if a.ndim == 1:
            g2 = _insert_axis(g2, g2.ndim - (b.ndim > 1))
        if b.ndim == 1:
            g2 = _insert_axis(g2, g2.ndim)
        ga = sum_to(matmul(g2, _swap_last(b2)), a2) if is_inexact(a) else None
        gb = sum_to(matmul(_swap_last(a2), g2), b2) if is_inexact(b) else None
        if ga is not None and a.ndim == 1:
            ga = DimShuffle(2, (1,))(ga)
        if gb is not None and b.ndim == 1:
            gb = DimShuffle(2, (0,))(gb)
        return [ga, gb]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        (a, b), out = tensor_inputs(node), tensor_outputs(node)[0].type.shape
        nb = max(a.ndim, b.ndim, 2) - 2
        sa, sb = _padded(a, input_shapes[0], nb, True), _padded(b, input_shapes[1], nb, False)
        # static shapes decide broadcasting: a batch axis comes from the side not known to be 1
        batch = tuple(out[d] if out[d] is not None else (sb[d][0] if sa[d][1] == 1 else sa[d][0])
                      for d in range(nb))
        return [batch + (sa[-2][0],) * (a.ndim > 1) + (sb[-1][0],) * (b.ndim > 1)]


def _padded(x: TensorVariable, shape: Sequence, nb: int, left: bool) -> list:
    """(symbolic, static) length pairs of a matmul operand promoted to 2-d and padded to nb batch axes."""
    pairs = list(zip(shape, x.type.shape))
    if x.ndim == 1:
        pairs = [(1, 1)] + pairs if left else pairs + [(1, 1)]
    return [(1, 1)] * (nb + 2 - len(pairs)) + pairs


def _insert_axis(x: TensorVariable, pos: int) -> TensorVariable:
    order: list = list(range(x.ndim))
    order.insert(pos, "x")
    return DimShuffle(x.ndim, order)(x)


def _normalize_tensordot_axes(axes: Any, a: TensorVariable,
                              b: TensorVariable) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if not 0 <= n <= min(a.ndim, b.ndim):
            raise ShapeError(f"tensordot: cannot contract {n} axes of {a.type} and {b.type}")
        return tuple(range(a.ndim - n, a.ndim)), tuple(range(n))
    try:
        ax_a, ax_b = axes
    except (TypeError, ValueError):
        raise GraphTypeError(f"tensordot: axes must be an int or a pair of axis lists, got {axes!r}") from None
    ax_a = (ax_a,) if isinstance(ax_a, (int, np.integer)) else tuple(ax_a)
    ax_b = (ax_b,) if isinstance(ax_b, (int, np.integer)) else tuple(ax_b)
    if len(ax_a) != len(ax_b):
        raise ShapeError(f"tensordot: axes {ax_a} and {ax_b} must have the same length")
    out = []
    for axs, x in ((ax_a, a), (ax_b, b)):
        for ax in axs:
            if not -x.ndim <= ax < x.ndim:
                raise ShapeError(f"tensordot: axis {ax} is out of bounds for {x.type}")
        norm = tuple(int(ax) % x.ndim for ax in axs)
        if len(set(norm)) != len(norm):
            raise ShapeError(f"tensordot: repeated axis in {axs}")
        out.append(norm)
    return out[0], out[1]


class TensorDot(Op):
    """numpy.tensordot: sum the products over ``axes_a`` of a paired with ``axes_b`` of b."""

    __props__ = ("axes_a", "axes_b")

    def __init__(self, axes_a: Sequence[int], axes_b: Sequence[int]):
        self.axes_a, self.axes_b = tuple(int(x) for x in axes_a), tuple(int(x) for x in axes_b)

    def make_node(self, a: Any, b: Any) -> Apply:
        a, b = as_tensor_variable(a), as_tensor_variable(b)
        for axs, x in ((self.axes_a, a), (self.axes_b, b)):
            if any(not 0 <= ax < x.ndim for ax in axs):
                raise ShapeError(f"tensordot: axes {axs} out of bounds for {x.type}")
        for ia, ib in zip(self.axes_a, self.axes_b):
            _check_inner("tensordot", a, b, a.type.shape[ia], b.type.shape[ib])
        shape = self._out_shape(a.type.shape, b.type.shape)
        return Apply(self, [a, b], [TensorType(_product_dtype("dot", a.dtype, b.dtype), shape).make_variable()])

    def _out_shape(self, sa: Sequence, sb: Sequence) -> tuple:
        return (tuple(s for d, s in enumerate(sa) if d not in self.axes_a)
                + tuple(s for d, s in enumerate(sb) if d not in self.axes_b))

    def perform(self, node: Apply, inputs: list) -> list:
        a, b = inputs
        out = np.tensordot(a, b, axes=(self.axes_a, self.axes_b))
        return [np.asarray(out, dtype=tensor_outputs(node)[0].dtype)]

    def grad(self, inputs: list, output_grads: list) -> list:
        (a, b), (g,) = inputs, output_grads
        free_a = [d for d in range(a.ndim) if d not in self.axes_a]
        free_b = [d for d in range(b.ndim) if d not in self.axes_b]
        g_a, g_b = list(range(len(free_a))), list(range(len(free_a), g.ndim))
        # g . b over b's free axes -> a's free axes, then b's contracted axes in b's order
        ga = TensorDot(g_b, free_b)(g, b)
        b_contracted = [d for d in range(b.ndim) if d in self.axes_b]
        src_a = free_a + [self.axes_a[self.axes_b.index(d)] for d in b_contracted]
        ga = DimShuffle(a.ndim, [src_a.index(d) for d in range(a.ndim)])(ga)
        # a . g over a's free axes -> a's contracted axes in a's order, then b's free axes
        gb = TensorDot(free_a, g_a)(a, g)
        a_contracted = [d for d in range(a.ndim) if d in self.axes_a]
        src_b = [self.axes_b[self.axes_a.index(d)] for d in a_contracted] + free_b
        gb = DimShuffle(b.ndim, [src_b.index(d) for d in range(b.ndim)])(gb)
        return [_grad_as(ga, a), _grad_as(gb, b)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [self._out_shape(*input_shapes)]


def dot(a: Any, b: Any) -> TensorVariable:
    """numpy.dot: scalars multiply, 1-d/2-d use the matrix product, N-d contract a's last axis
    with b's second-to-last."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.ndim <= 2 and b.ndim <= 2:
        return Dot()(a, b)
    return TensorDot((a.ndim - 1,), (max(b.ndim - 2, 0),))(a, b)


def matmul(a: Any, b: Any) -> TensorVariable:
    """numpy.matmul (the ``@`` operator), batched over leading axes with broadcasting."""
    return MatMul()(a, b)


def tensordot(a: Any, b: Any, axes: Any = 2) -> TensorVariable:
    """numpy.tensordot: ``axes`` is an int (last n of a with first n of b) or a pair of axis lists."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    ax_a, ax_b = _normalize_tensordot_axes(axes, a, b)
    return TensorDot(ax_a, ax_b)(a, b)


def outer(a: Any, b: Any) -> TensorVariable:
    """numpy.outer: the product of every element of (flattened) a with every element of b."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    a = a if a.ndim == 1 else (dimshuffle(a, ("x",)) if a.ndim == 0 else a.flatten())
    b = b if b.ndim == 1 else (dimshuffle(b, ("x",)) if b.ndim == 0 else b.flatten())
    return dimshuffle(a, (0, "x")) * dimshuffle(b, ("x", 0))


def batched_dot(a: Any, b: Any) -> TensorVariable:
    """Theano's batched_dot: ``dot(a[i], b[i])`` for every i along the first (batch) axis.
    1-d operands scale the other operand per batch; 2-d and 3-d ones use a batched matmul
    ((B, n) with (B, n) gives (B,)); more dimensions go through batched_tensordot."""
    a, b = as_tensor_variable(a), as_tensor_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        raise GraphTypeError(f"batched_dot: operands need a batch axis, got {a.type} and {b.type}")
    if a.ndim == 1:
        return dimshuffle(a, [0] + ["x"] * (b.ndim - 1)) * b
    if b.ndim == 1:
        return a * dimshuffle(b, [0] + ["x"] * (a.ndim - 1))
    if a.ndim > 3 or b.ndim > 3:
        return batched_tensordot(a, b, [[a.ndim - 1], [max(1, b.ndim - 2)]])
    a3 = a if a.ndim == 3 else dimshuffle(a, (0, "x", 1))
    b3 = b if b.ndim == 3 else dimshuffle(b, (0, 1, "x"))
    out = matmul(a3, b3)
    keep = [0] + [1] * (a.ndim == 3) + [2] * (b.ndim == 3)
    return out if keep == [0, 1, 2] else DimShuffle(3, keep)(out)


def batched_tensordot(x: Any, y: Any, axes: Any = 2) -> TensorVariable:
    """tensordot of ``x[i]`` with ``y[i]`` for every i along the first (batch) axis. ``axes`` is an int
    (the last n axes of x with axes 1..n of y) or a pair of axis lists (axis 0 is the batch)."""
    x, y = as_tensor_variable(x), as_tensor_variable(y)
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        ax_x, ax_y = list(range(x.ndim - n, x.ndim)), list(range(1, n + 1))
    else:
        ax_x, ax_y = ([int(a)] if isinstance(a, (int, np.integer)) else [int(k) for k in a] for a in axes)
        ax_x, ax_y = [a % x.ndim for a in ax_x], [a % y.ndim for a in ax_y]
    if len(ax_x) != len(ax_y) or 0 in ax_x or 0 in ax_y:
        raise ShapeError(f"batched_tensordot: axes {axes} must pair the same number of non-batch axes")
    for ia, ib in zip(ax_x, ax_y):
        _check_inner("batched_tensordot", x, y, x.type.shape[ia], y.type.shape[ib])
    free_x = [d for d in range(1, x.ndim) if d not in ax_x]
    free_y = [d for d in range(1, y.ndim) if d not in ax_y]
    lx = [shape_i(x, d) for d in range(x.ndim)]
    ly = [shape_i(y, d) for d in range(y.ndim)]
    prod = sprod
    x3 = reshape(DimShuffle(x.ndim, [0] + free_x + ax_x)(x), [lx[0], prod([lx[d] for d in free_x]),
                                                               prod([lx[d] for d in ax_x])])
    y3 = reshape(DimShuffle(y.ndim, [0] + ax_y + free_y)(y), [ly[0], prod([ly[d] for d in ax_y]),
                                                               prod([ly[d] for d in free_y])])
    out = matmul(x3, y3)
    return reshape(out, [lx[0]] + [lx[d] for d in free_x] + [ly[d] for d in free_y])


__all__ = ["Dot", "MatMul", "TensorDot", "dot", "matmul", "tensordot", "outer", "batched_dot",
           "batched_tensordot"]
