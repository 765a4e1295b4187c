"""The general N-d convolution: one op, ``Conv``, with window strides, asymmetric (and negative)
padding, input (lhs) and kernel (rhs) dilation, feature groups and batch groups, as JAX's
``lax.conv_general_dilated`` defines it (cross-correlation; layouts (N, C, *spatial) for the
input, (O, C / groups, *window) for the kernel, (N / batch_groups, O, *out) for the result).

Its gradients are the same op with transformed parameters (the input gradient: the kernel
flipped and its in/out channels swapped, strides and lhs dilation exchanged; the kernel gradient:
input and output gradient transposed as batch <-> channels, strides and rhs dilation exchanged,
feature groups <-> batch groups), so the op is closed under differentiation and second order
needs nothing more. The paddings of the gradients follow JAX's ``_conv_general_vjp_lhs_padding``
and ``_conv_general_vjp_rhs_padding``: they depend on the input, kernel and output lengths, so a
strided convolution whose ``(in + lo + hi - extent) % stride != 0`` gets the right input
gradient (the unread border rows get zeros). Where those lengths are known at build time (static
shapes, as JAX always has) the gradient's padding is a static parameter and the gradient ops take
no shape input at all. Where they are not, the padding is computed in the graph from the
forward's input, kernel and output lengths (``Shape_i`` arithmetic) and passed as the op's
optional third input, an int64 vector ``[lo0, hi0, lo1, hi1, ...]``. That is the one piece of
information no gradient can do without: a strided convolution maps several input lengths to the
same output length, so the input gradient must learn the input length from somewhere.

Public functions: ``conv_general_dilated`` (JAX's signature, NC layouts) and ``conv`` (``T.conv``:
PyTorch/JAX-style cross-correlation, 1-d, 2-d or 3-d, padding int / pairs / 'same' / 'valid').
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError, ShapeError, node_context
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.conv_numpy import conv_numpy
from symgraph.tensor.elemwise import DimShuffle, cast
from symgraph.tensor.shape import ShapeEntry, reshape, sfold, shape_i
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, tensor_outputs
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

__all__ = ["Conv", "conv_general_dilated", "conv"]


class Conv(Op):
    """``lax.conv_general_dilated`` on (N, C, *spatial) inputs and (O, C / groups, *window) kernels.

    ``padding`` is an int or (lo, hi) pairs per spatial axis, or None when the op takes its
    padding as a third input (an int64 vector of 2 * ndim entries) because it is only known at
    run time."""

    __props__ = ("strides", "padding", "lhs_dilation", "rhs_dilation", "feature_group_count", "batch_group_count")

    def __init__(self, strides: Sequence[int], padding: Any = 0, lhs_dilation: Sequence[int] | None = None,
                 rhs_dilation: Sequence[int] | None = None, feature_group_count: int = 1, batch_group_count: int = 1):
        n = len(strides)
        self.strides = int_tuple(strides, n, "Conv strides")
        self.padding = None if padding is None else padding_pairs(padding, n, "Conv padding")
        self.lhs_dilation = int_tuple(1 if lhs_dilation is None else lhs_dilation, n, "Conv lhs_dilation")
        self.rhs_dilation = int_tuple(1 if rhs_dilation is None else rhs_dilation, n, "Conv rhs_dilation")
        (self.feature_group_count,) = int_tuple(feature_group_count, 1, "Conv feature_group_count")
        (self.batch_group_count,) = int_tuple(batch_group_count, 1, "Conv batch_group_count")
        if self.feature_group_count > 1 and self.batch_group_count > 1:
            raise ValueError("Conv: feature_group_count and batch_group_count cannot both exceed 1")

    @property
    def nspatial(self) -> int:
        return len(self.strides)

    def __str__(self) -> str:
        parts = [f"strides={self.strides}" if set(self.strides) != {1} else "",
                 f"padding={self.padding}" if self.padding is not None else "padding=<input>",
                 f"lhs_dilation={self.lhs_dilation}" if set(self.lhs_dilation) != {1} else "",
                 f"rhs_dilation={self.rhs_dilation}" if set(self.rhs_dilation) != {1} else "",
                 f"groups={self.feature_group_count}" if self.feature_group_count > 1 else "",
                 f"batch_groups={self.batch_group_count}" if self.batch_group_count > 1 else ""]
        return f"Conv{self.nspatial}d{{{', '.join(p for p in parts if p)}}}"

    def make_node(self, lhs: Any, rhs: Any, pads: Any = None) -> Apply:
        lhs, rhs = as_tensor_variable(lhs), as_tensor_variable(rhs)
        n = self.nspatial
        for what, v in (("input", lhs), ("kernel", rhs)):
            if v.ndim != n + 2:
                raise GraphTypeError(f"{self}: the {what} must be {n + 2}-d ({'(N, C' if what == 'input' else '(O, I'}"
                                     f", {n} spatial), got {v} ({v.type})")
            if not v.dtype.startswith("float"):
                raise GraphTypeError(f"{self}: the {what} must be a float tensor, got {v} ({v.type})")
        inputs = [lhs, rhs]
        if (self.padding is None) != (pads is not None):
            raise GraphTypeError(f"{self}: a padding input is needed exactly when the op has no static padding")
        if pads is not None:
            inputs.append(check_pads_input(pads, n, str(self)))
        self._check_static(lhs.type.shape, rhs.type.shape)
        dtype = np.result_type(lhs.dtype, rhs.dtype).name
        return Apply(self, inputs, [TensorType(dtype, self._out_static(inputs)).make_variable()])

    def _check_static(self, xs: tuple, ws: tuple) -> None:
        g, b = self.feature_group_count, self.batch_group_count
        if xs[1] is not None and ws[1] is not None and xs[1] != ws[1] * g:
            raise ShapeError(f"{self}: the input has {xs[1]} channels but the kernel takes {ws[1]} per group x {g} "
                             f"group(s) = {ws[1] * g}")
        if ws[0] is not None and (ws[0] % g or ws[0] % b):
            raise ShapeError(f"{self}: the kernel's {ws[0]} output channels are not divisible by the group count "
                             f"{max(g, b)}")
        if xs[0] is not None and xs[0] % b:
            raise ShapeError(f"{self}: the batch of {xs[0]} is not divisible by batch_group_count {b}")

    def _out_static(self, inputs: list) -> tuple:
        xs, ws = inputs[0].type.shape, inputs[1].type.shape
        pads = static_pads(self.padding, inputs[2] if len(inputs) > 2 else None, self.nspatial)
        spatial = tuple(static_out_length(n, k, s, p, a, d) for n, k, s, p, a, d
                        in zip(xs[2:], ws[2:], self.strides, pads, self.lhs_dilation, self.rhs_dilation))
        batch = None if xs[0] is None else xs[0] // self.batch_group_count
        return (batch, ws[0]) + spatial

    def perform(self, node: Apply, inputs: list) -> list:
        x, w, *extra = inputs
        try:
            padding = runtime_pads(self.padding, extra, self.nspatial, str(self))
            return [conv_numpy(x, w, self.strides, padding, self.lhs_dilation, self.rhs_dilation,
                               self.feature_group_count, self.batch_group_count, tensor_outputs(node)[0].dtype)]
        except ShapeError as e:  # symgraph errors carry their node's context themselves
            raise ShapeError(f"{e}\n{node_context(node, inputs)}") from None

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        xs, ws = input_shapes[0], input_shapes[1]
        pads = pads_of(self.padding, node.inputs[2] if self.padding is None else None, self.nspatial)
        spatial = tuple(out_length(n, k, s, lo, hi, a, d) for n, k, s, (lo, hi), a, d
                        in zip(xs[2:], ws[2:], self.strides, pads, self.lhs_dilation, self.rhs_dilation))
        batch = xs[0] if self.batch_group_count == 1 else sfold("int_div", xs[0], self.batch_group_count)
        return [(batch, ws[0]) + spatial]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        x, w = inputs[0], inputs[1]
        (g,) = output_grads
        geo = Geometry.of(self, x, w, outputs[0], g, inputs[2] if self.padding is None else None)
        gx = _cast_like(input_grad(g, w, geo), x)
        gw = _cast_like(kernel_grad(x, g, geo), w)
        return [gx, gw] + [None] * (len(inputs) - 2)


class Geometry:
    """What the gradient rules need of one convolution: per spatial axis the input, kernel and
    output lengths and the (lo, hi) padding (ints where known, else symbolic int64 scalars), and
    the op's strides, dilations and group counts."""

    def __init__(self, in_len: Sequence[ShapeEntry], k_len: Sequence[ShapeEntry], out_len: Sequence[ShapeEntry],
                 pads: Sequence[tuple], strides: Sequence[int], lhs_dilation: Sequence[int],
                 rhs_dilation: Sequence[int], groups: int = 1, batch_groups: int = 1):
        self.in_len, self.k_len, self.out_len, self.pads = list(in_len), list(k_len), list(out_len), list(pads)
        self.strides, self.lhs_dilation, self.rhs_dilation = tuple(strides), tuple(lhs_dilation), tuple(rhs_dilation)
        self.groups, self.batch_groups = groups, batch_groups

    @classmethod
    def of(cls, op: Conv, x: TensorVariable, w: TensorVariable, y: TensorVariable, g: TensorVariable,
           pads: Variable | None) -> Geometry:
        return cls(spatial_lengths(x), spatial_lengths(w), spatial_lengths(y, g),
                   pads_of(op.padding, pads, op.nspatial), op.strides, op.lhs_dilation, op.rhs_dilation,
                   op.feature_group_count, op.batch_group_count)

    def axes(self) -> Any:
        """Per spatial axis: (in, kernel, out lengths, (lo, hi), stride, lhs and rhs dilation)."""
        return zip(self.in_len, self.k_len, self.out_len, self.pads, self.strides, self.lhs_dilation,
                   self.rhs_dilation)


def spatial_lengths(v: TensorVariable, alt: TensorVariable | None = None) -> list[ShapeEntry]:
    """Lengths of the spatial axes (2 onwards) of ``v``: static where ``v`` (or ``alt``, a
    same-shaped variable) knows them, else ``shape_i`` of ``alt`` (or ``v``)."""
    src = alt if alt is not None else v
    out = []
    for d in range(2, v.ndim):
        known = v.type.shape[d] if v.type.shape[d] is not None else src.type.shape[d]
        out.append(known if known is not None else shape_i(src, d))
    return out


def _sub(*args: ShapeEntry) -> ShapeEntry:
    out = args[0]
    for a in args[1:]:
        out = sfold("sub", out, a)
    return out


def conv_with_pads(pads: list, **params: Any):
    """A Conv with these paddings (static when all are ints, else as a padding input): a callable."""
    padding, vec = pads_operand(pads)
    op = Conv(padding=padding, **params)
    return (lambda a, b: op(a, b)) if vec is None else (lambda a, b: op(a, b, vec))


def input_grad(g: TensorVariable, w: TensorVariable, geo: Geometry) -> TensorVariable:
    """d(cost)/d(input) of a convolution, given the output gradient ``g`` and the kernel ``w``:
    the transposed convolution, as a Conv (JAX's ``_conv_general_dilated_transpose_lhs``)."""
    # high side: in + lo - out (dilated); with stride 1 that is extent - 1 - hi, known without the lengths
    pads = [(_sub(dilated(k, d), lo, 1),
             _sub(dilated(k, d), 1, hi) if s == 1 else _sub(sfold("add", dilated(n, a), lo), dilated(m, s)))
            for n, k, m, (lo, hi), s, a, d in geo.axes()]
    groups = max(geo.groups, geo.batch_groups)
    conv = conv_with_pads(pads, strides=geo.lhs_dilation, lhs_dilation=geo.strides, rhs_dilation=geo.rhs_dilation,
                      feature_group_count=groups)
    gx = conv(g, flip(swap_io(w, groups)))
    return ungroup_batch(gx, geo.batch_groups) if geo.batch_groups > 1 else gx


def kernel_grad(x: TensorVariable, g: TensorVariable, geo: Geometry) -> TensorVariable:
    """d(cost)/d(kernel) of a convolution, given its input ``x`` and output gradient ``g``: a Conv
    of the batch-and-channel-transposed input with the transposed output gradient as its kernel
    (JAX's ``_conv_general_dilated_transpose_rhs``)."""
    # high side: out + extent - in - lo - 1 (dilated); with stride 1 that is the forward's hi
    pads = [(lo, hi if s == 1 else _sub(sfold("add", dilated(m, s), dilated(k, d)), dilated(n, a), lo, 1))
            for n, k, m, (lo, hi), s, a, d in geo.axes()]
    conv = conv_with_pads(pads, strides=geo.rhs_dilation, lhs_dilation=geo.lhs_dilation, rhs_dilation=geo.strides,
                      feature_group_count=geo.batch_groups, batch_group_count=geo.groups)
    return swap01(conv(swap01(x), swap01(g)))


def swap01(v: TensorVariable) -> TensorVariable:
    """``v`` with its first two axes exchanged (a view)."""
    return DimShuffle(v.ndim, (1, 0) + tuple(range(2, v.ndim)))(v)


def flip(v: TensorVariable) -> TensorVariable:
    """``v`` reversed along its spatial axes (2 onwards): a view."""
    return v[(slice(None), slice(None)) + (slice(None, None, -1),) * (v.ndim - 2)]


def _entries(v: TensorVariable) -> list[ShapeEntry]:
    return [s if s is not None else shape_i(v, d) for d, s in enumerate(v.type.shape)]


def swap_io(w: TensorVariable, groups: int) -> TensorVariable:
    """Kernel (O, I, *k) -> (groups * I, O / groups, *k): output and input channels exchanged
    within each group (the kernel of the input gradient)."""
    if groups == 1:
        return swap01(w)
    o, i, *ks = _entries(w)
    per = sfold("int_div", o, groups)
    split = reshape(w, [groups, per, i] + ks)
    moved = DimShuffle(split.ndim, (0, 2, 1) + tuple(range(3, split.ndim)))(split)
    return reshape(moved, [sfold("mul", i, groups), per] + ks)


def ungroup_batch(gx: TensorVariable, b: int) -> TensorVariable:
    """(N / b, b * C, *s) -> (N, C, *s): the input gradient of a batch-grouped convolution."""
    nb, bc, *sp = _entries(gx)
    c = sfold("int_div", bc, b)
    split = reshape(gx, [nb, b, c] + sp)
    moved = DimShuffle(split.ndim, (1, 0) + tuple(range(2, split.ndim)))(split)
    return reshape(moved, [sfold("mul", nb, b), c] + sp)


def _cast_like(g: TensorVariable, x: TensorVariable) -> TensorVariable:
    return cast(g, x.dtype) if g.dtype != x.dtype else g


# ------------------------------------------------------------------------------------------ API

def resolve_padding(padding: Any, x: TensorVariable, w: TensorVariable, strides: Sequence[int],
                    lhs_dilation: Sequence[int], rhs_dilation: Sequence[int], what: str) -> list[tuple]:
    """Padding given as 'VALID', 'SAME' (extra on the high side, as JAX and TensorFlow),
    'SAME_LOWER', 'FULL' (every window that meets an element: the dilated kernel extent - 1 on
    both sides), an int, or ints / (lo, hi) pairs per axis, as (lo, hi) entries per spatial axis
    (symbolic where a named mode meets lengths unknown at build time)."""
    n = len(strides)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return [(0, 0)] * n
        if mode == "FULL":
            return [(sfold("sub", dilated(k, d), 1),) * 2 for k, d in zip(spatial_lengths(w), rhs_dilation)]
        if mode not in ("SAME", "SAME_LOWER"):
            raise ValueError(f"{what}: padding must be 'valid', 'same', 'same_lower', 'full', an int or (lo, hi) "
                             f"pairs, got {padding!r}")
        return same_pads(spatial_lengths(x), spatial_lengths(w), strides, lhs_dilation, rhs_dilation,
                         lower=mode == "SAME_LOWER")
    return list(padding_pairs(padding, n, f"{what} padding"))


def conv_general_dilated(lhs: Any, rhs: Any, window_strides: Sequence[int] | None = None, padding: Any = "VALID",
                         lhs_dilation: Sequence[int] | None = None, rhs_dilation: Sequence[int] | None = None,
                         feature_group_count: int = 1, batch_group_count: int = 1) -> TensorVariable:
    """JAX's ``lax.conv_general_dilated`` with the default dimension numbers: ``lhs`` (N, C, *s),
    ``rhs`` (O, C / feature_group_count, *k), result (N / batch_group_count, O, *out)."""
    lhs, rhs = as_tensor_variable(lhs), as_tensor_variable(rhs)
    n = rhs.ndim - 2
    if n < 1:
        raise GraphTypeError(f"conv_general_dilated: the kernel needs at least 3 dimensions, got {rhs} ({rhs.type})")
    strides = int_tuple(1 if window_strides is None else window_strides, n, "window_strides")
    lhs_dil = int_tuple(1 if lhs_dilation is None else lhs_dilation, n, "lhs_dilation")
    rhs_dil = int_tuple(1 if rhs_dilation is None else rhs_dilation, n, "rhs_dilation")
    pads = resolve_padding(padding, lhs, rhs, strides, lhs_dil, rhs_dil, "conv_general_dilated")
    return conv_with_pads(pads, strides=strides, lhs_dilation=lhs_dil, rhs_dilation=rhs_dil,
                      feature_group_count=feature_group_count, batch_group_count=batch_group_count)(lhs, rhs)


def conv(x: Any, w: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1) -> TensorVariable:
    """Cross-correlation of ``x`` (N, C, *spatial) with ``w`` (O, C / groups, *window), 1-d, 2-d
    or 3-d (from ``w.ndim``), as ``torch.nn.functional.conv{1,2,3}d``: ``padding`` is an int,
    ints or (lo, hi) pairs per axis, 'valid', 'same' or 'full' (zero padding; 'same' keeps the
    length for stride 1 and gives ceil(length / stride) otherwise, extra padding on the high
    side; 'full' pads by the dilated kernel extent - 1)."""
    w = as_tensor_variable(w)
    n = w.ndim - 2
    if n not in (1, 2, 3):
        raise GraphTypeError(f"T.conv: the kernel must be 3-d, 4-d or 5-d (O, C / groups, *window), got {w} "
                             f"({w.type})")
    return conv_general_dilated(x, w, int_tuple(stride, n, "T.conv stride"), padding, None,
                                int_tuple(dilation, n, "T.conv dilation"), feature_group_count=groups)
