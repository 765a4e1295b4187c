"""Windowed reductions over the trailing axes of a tensor: ``Pool`` (max or sum; strides,
asymmetric padding, and lhs dilation for sums), and the two ops of the max-pool gradient,
``MaxPoolGrad`` (scatter each window's gradient to its first maximum) and ``MaxPoolGradGrad``
(gather at those positions: the gradient of MaxPoolGrad with respect to its output gradient).
Averages are sums divided by window counts.

A sum-pool is a depthwise convolution with a kernel of ones, so its gradient is a sum-pool with
the convolution's transformed parameters (strides and lhs dilation exchanged, padding from JAX's
``_conv_general_vjp_lhs_padding``): sums are closed under differentiation like ``Conv``. The
max-pool gradient ops form a closed pair too. Paddings that depend on lengths unknown at build
time come as a padding input (see ``convolution``). Tie rule and speed: ``pool_numpy``.

Public functions: ``max_pool``, ``avg_pool`` (``T.max_pool``, ``T.avg_pool``) and ``pool`` (the
op with static or symbolic padding); Theano's ``pool_2d`` lives in ``T.signal.pool``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError, ShapeError, node_context
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.alloc import ones
from symgraph.tensor.pool_numpy import max_pool_grad, max_pool_select
from symgraph.tensor.pool_numpy import pool as np_pool
from symgraph.tensor.shape import ShapeEntry, sfold, shape_i
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, constant, tensor_outputs
from symgraph.tensor.window import (
    check_pads_input,
    dilated,
    int_tuple,
    out_length,
    padding_pairs,
    pads_of,
    pads_operand,
    runtime_pads,
    same_pads,
    static_out_length,
    static_pads,
)

__all__ = ["Pool", "MaxPoolGrad", "MaxPoolGradGrad", "max_pool", "avg_pool"]


class _Windowed(Op):
    """What the pool ops share: window, strides (default: the window), padding (an int or (lo, hi)
    pairs; None: a padding input follows the data inputs), and checks of the pooled input."""

    __props__: tuple[str, ...] = ("window", "strides", "padding")
    n_data = 1  # data inputs before the optional padding input

    def __init__(self, window: Sequence[int], strides: Sequence[int] | None = None, padding: Any = 0):
        n = len(window)
        self.window = int_tuple(window, n, f"{type(self).__name__} window")
        self.strides = int_tuple(self.window if strides is None else strides, n, f"{type(self).__name__} strides")
        self.padding = None if padding is None else padding_pairs(padding, n, f"{type(self).__name__} padding")

    def _props_str(self) -> str:
        pad = "padding=<input>" if self.padding is None else (
            f"padding={self.padding}" if any(p != (0, 0) for p in self.padding) else "")
        parts = [f"window={self.window}", f"strides={self.strides}" if self.strides != self.window else "", pad]
        return ", ".join(p for p in parts if p)

    def _inputs(self, x: Any, data: list, pads: Any) -> list:
        x = as_tensor_variable(x)
        if x.ndim < len(self.window):
            raise GraphTypeError(f"{self}: pools the last {len(self.window)} axes, got {x} ({x.type})")
        if (self.padding is None) != (pads is not None):
            raise GraphTypeError(f"{self}: a padding input is needed exactly when the op has no static padding")
        return [x] + [as_tensor_variable(d) for d in data] + (
            [check_pads_input(pads, len(self.window), str(self))] if pads is not None else [])

    def _pads_var(self, node_inputs: list) -> Variable | None:
        return node_inputs[self.n_data] if self.padding is None else None

    def _pooled_static(self, inputs: list, lhs_dilation: Sequence[int]) -> tuple:
        x, nd = inputs[0], len(self.window)
        pads = static_pads(self.padding, self._pads_var(inputs), nd)
        lead = x.type.shape[:x.ndim - nd]
        return lead + tuple(static_out_length(n, k, s, p, a) for n, k, s, p, a
                            in zip(x.type.shape[x.ndim - nd:], self.window, self.strides, pads, lhs_dilation))

    def _pooled_symbolic(self, node: Apply, xshape: Sequence, lhs_dilation: Sequence[int]) -> tuple:
        nd = len(self.window)
        pads = pads_of(self.padding, self._pads_var(node.inputs), nd)
        lead = tuple(xshape[:len(xshape) - nd])
        return lead + tuple(out_length(n, k, s, lo, hi, a) for n, k, s, (lo, hi), a
                            in zip(xshape[len(xshape) - nd:], self.window, self.strides, pads, lhs_dilation))

    def _runtime_pads(self, inputs: list) -> tuple:
        return runtime_pads(self.padding, inputs[self.n_data:], len(self.window), str(self))

    def perform(self, node: Apply, inputs: list) -> list:
        try:
            return self.compute(node, inputs)
        except ShapeError as e:  # symgraph errors carry their node's context themselves
            raise ShapeError(f"{e}\n{node_context(node, inputs)}") from None

    def compute(self, node: Apply, inputs: list) -> list:
        """The outputs from numpy inputs (``perform`` adds the node to errors)."""
        raise NotImplementedError


class Pool(_Windowed):
    """Max or sum over windows of the trailing ``len(window)`` axes. Padded positions take no
    part (-inf for max, 0 for sum); ``lhs_dilation`` (sums only) spreads the input out first."""

    __props__ = ("mode", "window", "strides", "padding", "lhs_dilation")

    def __init__(self, mode: str, window: Sequence[int], strides: Sequence[int] | None = None, padding: Any = 0,
                 lhs_dilation: Sequence[int] | None = None):
        super().__init__(window, strides, padding)
        if mode not in ("max", "sum"):
            raise ValueError(f"Pool: mode must be 'max' or 'sum', got {mode!r}")
        self.mode = mode
        self.lhs_dilation = int_tuple(1 if lhs_dilation is None else lhs_dilation, len(self.window),
                                      "Pool lhs_dilation")
        if mode == "max" and set(self.lhs_dilation) != {1}:
            raise ValueError("Pool: lhs_dilation is for sums (the gradient of a strided sum-pool)")

    def __str__(self) -> str:
        dil = f", lhs_dilation={self.lhs_dilation}" if set(self.lhs_dilation) != {1} else ""
        return f"{self.mode}_pool{len(self.window)}d{{{self._props_str()}{dil}}}"

    def make_node(self, x: Any, pads: Any = None) -> Apply:
        inputs = self._inputs(x, [], pads)
        x = inputs[0]
        unordered = x.dtype.startswith("complex") or x.dtype == "bool"
        if unordered or (self.mode == "sum" and not x.dtype.startswith("float")):
            raise GraphTypeError(f"{self}: expected a {'float' if self.mode == 'sum' else 'real'} tensor, got {x} "
                                 f"({x.type})")
        shape = self._pooled_static(inputs, self.lhs_dilation)
        return Apply(self, inputs, [TensorType(x.dtype, shape).make_variable()])

    def compute(self, node: Apply, inputs: list) -> list:
        return [np_pool(inputs[0], self.mode, self.window, self.strides, self._runtime_pads(inputs),
                        self.lhs_dilation, tensor_outputs(node)[0].dtype)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [self._pooled_symbolic(node, input_shapes[0], self.lhs_dilation)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        x, (g,) = inputs[0], output_grads
        rest = [None] * (len(inputs) - 1)
        if not x.dtype.startswith("float"):
            return [None] + rest
        pads = pads_of(self.padding, self._pads_var(inputs), len(self.window))
        if self.mode == "max":
            return [MaxPoolGrad(self.window, self.strides, self.padding)(x, g, *inputs[1:])] + rest
        lengths, out_len = trailing_lengths(x, len(self.window)), trailing_lengths(outputs[0], len(self.window), g)
        grad_pads = [(sfold("sub", sfold("sub", k, lo), 1),
                      sfold("sub", sfold("add", dilated(n, a), lo), dilated(m, s)))
                     for n, m, k, s, a, (lo, _) in zip(lengths, out_len, self.window, self.strides, self.lhs_dilation,
                                                       pads)]
        return [pool(g, "sum", self.window, self.lhs_dilation, grad_pads, lhs_dilation=self.strides)] + rest


class MaxPoolGrad(_Windowed):
    """The max-pool gradient: inputs ``x`` (the pooled input) and ``g`` (the output gradient);
    each window's ``g`` goes to its first maximum in ``x`` (see ``pool_numpy``)."""

    n_data = 2

    def __str__(self) -> str:
        return f"max_pool{len(self.window)}d_grad{{{self._props_str()}}}"

    def make_node(self, x: Any, g: Any, pads: Any = None) -> Apply:
        inputs = self._inputs(x, [g], pads)
        dtype = np.result_type(inputs[0].dtype, inputs[1].dtype).name
        return Apply(self, inputs, [TensorType(dtype, inputs[0].type.shape).make_variable()])

    def compute(self, node: Apply, inputs: list) -> list:
        gx = max_pool_grad(inputs[0], inputs[1], self.window, self.strides, self._runtime_pads(inputs))
        return [gx.astype(tensor_outputs(node)[0].dtype, copy=False)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(input_shapes[0])]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        x, gg = inputs[0], output_grads[0]
        select = MaxPoolGradGrad(self.window, self.strides, self.padding)(x, gg, *inputs[2:])
        return [None, select] + [None] * (len(inputs) - 2)


class MaxPoolGradGrad(_Windowed):
    """Per window, ``gg`` (shaped like the pooled input) read at the window's first maximum in
    ``x``: the gradient of MaxPoolGrad with respect to its output gradient."""

    n_data = 2

    def __str__(self) -> str:
        return f"max_pool{len(self.window)}d_select{{{self._props_str()}}}"

    def make_node(self, x: Any, gg: Any, pads: Any = None) -> Apply:
        inputs = self._inputs(x, [gg], pads)
        shape = self._pooled_static(inputs, (1,) * len(self.window))
        return Apply(self, inputs, [TensorType(inputs[1].dtype, shape).make_variable()])

    def compute(self, node: Apply, inputs: list) -> list:
        return [max_pool_select(inputs[0], inputs[1], self.window, self.strides, self._runtime_pads(inputs))]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [self._pooled_symbolic(node, input_shapes[0], (1,) * len(self.window))]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        x, g3 = inputs[0], output_grads[0]
        scatter = MaxPoolGrad(self.window, self.strides, self.padding)(x, g3, *inputs[2:])
        return [None, scatter] + [None] * (len(inputs) - 2)


def trailing_lengths(v: TensorVariable, nd: int, alt: TensorVariable | None = None) -> list[ShapeEntry]:
    """Lengths of the last ``nd`` axes of ``v``: static where ``v`` (or the same-shaped ``alt``)
    knows them, else ``shape_i``."""
    src = alt if alt is not None else v
    out = []
    for d in range(v.ndim - nd, v.ndim):
        known = v.type.shape[d] if v.type.shape[d] is not None else src.type.shape[d]
        out.append(known if known is not None else shape_i(src, d))
    return out


def pool(x: Any, mode: str, window: Sequence[int], strides: Sequence[int] | None, pads: Sequence[tuple],
         lhs_dilation: Sequence[int] | None = None) -> TensorVariable:
    """A Pool node; ``pads`` are (lo, hi) entries per axis, ints or symbolic int scalars."""
    padding, vec = pads_operand(pads)
    op = Pool(mode, window, strides, padding, lhs_dilation)
    return op(x) if vec is None else op(x, vec)


def _normalized(x: Any, window: Any, stride: Any, padding: Any, what: str) -> tuple:
    """(x, window, strides, (lo, hi) entries) from the user's arguments of max_pool/avg_pool."""
    x = as_tensor_variable(x)
    nd = len(window) if isinstance(window, (tuple, list)) else x.ndim - 2
    if nd < 1 or nd > x.ndim:
        raise GraphTypeError(f"{what}: give the window as a tuple (one length per pooled trailing axis) for "
                             f"{x} ({x.type})")
    window = int_tuple(window, nd, f"{what} window")
    strides = int_tuple(window if stride is None else stride, nd, f"{what} stride")
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in ("VALID", "SAME"):
            raise ValueError(f"{what}: padding must be an int, (lo, hi) pairs, 'valid' or 'same', got {padding!r}")
        pads = ([(0, 0)] * nd if mode == "VALID"
                else same_pads(trailing_lengths(x, nd), window, strides, (1,) * nd, (1,) * nd))
    else:
        pads = list(padding_pairs(padding, nd, f"{what} padding"))
    return x, window, strides, pads


def max_pool(x: Any, window: Any, stride: Any = None, padding: Any = 0) -> TensorVariable:
    """Maximum over windows of the trailing axes (``len(window)`` of them; an int window pools
    all axes after (N, C)). ``stride`` defaults to the window; ``padding`` is an int, (lo, hi)
    pairs, 'valid' or 'same' (padded positions never win). The gradient goes to each window's
    first maximum."""
    x, window, strides, pads = _normalized(x, window, stride, padding, "max_pool")
    return pool(x, "max", window, strides, pads)


def avg_pool(x: Any, window: Any, stride: Any = None, padding: Any = 0,
             count_include_pad: bool = True) -> TensorVariable:
    """Mean over windows of the trailing axes (arguments as ``max_pool``). With
    ``count_include_pad`` every window divides by its full size (PyTorch's and flax's default);
    without it, by the number of input elements it covers."""
    x, window, strides, pads = _normalized(x, window, stride, padding, "avg_pool")
    total = pool(x, "sum", window, strides, pads)
    if count_include_pad:
        return total / math.prod(window)
    return total / window_counts(trailing_lengths(x, len(window)), window, strides, pads, total.dtype)


def window_counts(lengths: Sequence[ShapeEntry], window: Sequence[int], strides: Sequence[int],
                  pads: Sequence[tuple], dtype: str) -> TensorVariable:
    """How many of ``lengths`` input positions each window covers (padding not counted): a
    constant when everything is known at build time, else a sum-pool of ones in the graph."""
    flat = list(lengths) + [e for p in pads for e in p]
    if all(isinstance(e, int) for e in flat):
        ones_np = np.ones(tuple(lengths), dtype)
        counts = np_pool(ones_np, "sum", window, strides, pads, (1,) * len(window), dtype)
        return constant(counts)
    return pool(ones(list(lengths), dtype=dtype), "sum", window, strides, pads)
