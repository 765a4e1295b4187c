"""Theano's convolution API (``T.nnet.conv2d``, ``T.nnet.conv2d_transpose``,
``T.nnet.abstract_conv.conv2d_grad_wrt_inputs`` / ``conv2d_grad_wrt_weights``,
``get_conv_output_shape``), built on the one general ``Conv`` op.

As in Theano, ``filter_flip=True`` (the default) is a true convolution (the kernel flipped
along its spatial axes); ``filter_flip=False`` is cross-correlation. ``border_mode`` is
'valid', 'full' (pad by the dilated kernel extent - 1), 'half' (by half of it), an int, a pair
of ints (rows, columns) or a pair of (lo, hi) pairs. ``input_shape`` and ``filter_shape`` are
optional hints: entries that are given must agree with the static shapes (else ShapeError), and
known kernel lengths make 'full' and 'half' paddings static. The gradient functions need the
shape of what they compute, since a strided convolution maps several input lengths to one
output length."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Variable
from symgraph.tensor.convolution import Geometry, conv_with_pads, flip, input_grad, kernel_grad, spatial_lengths
from symgraph.tensor.shape import ShapeEntry, as_int_entry, sfold, shape_i
from symgraph.tensor.type import TensorVariable, as_tensor_variable
from symgraph.tensor.window import dilated, int_tuple, out_length, padding_pairs

__all__ = ["conv2d", "conv2d_transpose", "conv2d_grad_wrt_inputs", "conv2d_grad_wrt_weights",
           "get_conv_output_shape", "border_mode_to_pads"]


def border_mode_to_pads(border_mode: Any, k_len: Sequence[ShapeEntry], dilation: Sequence[int]) -> list[tuple]:
    """Theano's ``border_mode`` as (lo, hi) entries per spatial axis."""
    n = len(k_len)
    if isinstance(border_mode, str):
        if border_mode not in ("valid", "full", "half"):
            raise ValueError(f"border_mode must be 'valid', 'full', 'half', an int or pairs, got {border_mode!r}")
        if border_mode == "valid":
            return [(0, 0)] * n
        out = []
        for k, d in zip(k_len, dilation):
            ext = dilated(k, d)
            p = sfold("sub", ext, 1) if border_mode == "full" else sfold("int_div", ext, 2)
            out.append((p, p))
        return out
    pads = padding_pairs(border_mode, n, "border_mode")
    if any(p < 0 for pair in pads for p in pair):
        raise ValueError(f"border_mode paddings must be >= 0, got {border_mode!r}")
    return list(pads)


def _hinted(v: TensorVariable, hint: Sequence | None, what: str, required_from: int | None = None) -> list[ShapeEntry]:
    """Lengths of ``v`` (4 entries): the static shape, else the hint, else ``shape_i``. A hint that
    contradicts the static shape is a ShapeError."""
    hint = None if hint is None else tuple(hint)
    if hint is not None and len(hint) != v.ndim:
        raise ShapeError(f"{what} must have {v.ndim} entries, got {hint!r}")
    out = []
    for d in range(v.ndim):
        known, h = v.type.shape[d], None if hint is None else hint[d]
        h = None if h is None else as_int_entry(h, what)
        if isinstance(h, int) and known is not None and h != known:
            raise ShapeError(f"{what}={hint!r} disagrees with {v} of static shape {v.type.shape} in axis {d}")
        out.append(known if known is not None else h if h is not None else shape_i(v, d))
    return out


def _check_4d(v: Variable, what: str) -> TensorVariable:
    v = as_tensor_variable(v)
    if v.ndim != 4:
        raise GraphTypeError(f"{what} must be a 4-d tensor, got {v} ({v.type})")
    return v


def _geometry(in_len: Sequence, k_len: Sequence, out_len: Sequence, border_mode: Any, subsample: Any,
              filter_dilation: Any, num_groups: int) -> Geometry:
    dil = int_tuple(filter_dilation, 2, "filter_dilation")
    return Geometry(in_len, k_len, out_len, border_mode_to_pads(border_mode, k_len, dil),
                    int_tuple(subsample, 2, "subsample"), (1, 1), dil, int(num_groups), 1)


def conv2d(input: Any, filters: Any, input_shape: Sequence | None = None, filter_shape: Sequence | None = None,
           border_mode: Any = "valid", subsample: Any = (1, 1), filter_flip: bool = True,
           image_shape: Sequence | None = None, filter_dilation: Any = (1, 1), num_groups: int = 1,
           unshared: bool = False, **kwargs: Any) -> TensorVariable:
    """2-d convolution of ``input`` (batch, channels, rows, columns) with ``filters``
    (filters, channels / num_groups, rows, columns), as Theano's ``T.nnet.conv2d``."""
    if unshared:
        raise NotImplementedError("conv2d: unshared (locally connected) convolutions are not supported")
    if kwargs:
        raise TypeError(f"conv2d: unexpected arguments {sorted(kwargs)}")
    x, w = _check_4d(input, "conv2d input"), _check_4d(filters, "conv2d filters")
    _hinted(x, input_shape if input_shape is not None else image_shape, "input_shape")
    k_len = _hinted(w, filter_shape, "filter_shape")[2:]
    dil = int_tuple(filter_dilation, 2, "filter_dilation")
    pads = border_mode_to_pads(border_mode, k_len, dil)
    kern = flip(w) if filter_flip else w
    return conv_with_pads(pads, strides=int_tuple(subsample, 2, "subsample"), rhs_dilation=dil,
                      feature_group_count=int(num_groups))(x, kern)


def conv2d_grad_wrt_inputs(output_grad: Any, filters: Any, input_shape: Sequence, filter_shape: Sequence | None = None,
                           border_mode: Any = "valid", subsample: Any = (1, 1), filter_flip: bool = True,
                           filter_dilation: Any = (1, 1), num_groups: int = 1,
                           unshared: bool = False) -> TensorVariable:
    """The gradient of ``conv2d`` with respect to its input, for an input of ``input_shape``
    (its last two entries are required: ints or int scalars)."""
    if unshared:
        raise NotImplementedError("conv2d_grad_wrt_inputs: unshared convolutions are not supported")
    g, w = _check_4d(output_grad, "output_grad"), _check_4d(filters, "filters")
    if input_shape is None or len(input_shape) != 4 or input_shape[2] is None or input_shape[3] is None:
        raise ShapeError(f"conv2d_grad_wrt_inputs needs input_shape with its two spatial lengths, got {input_shape!r}")
    in_len = [as_int_entry(e, "input_shape") for e in input_shape[2:]]
    k_len = _hinted(w, filter_shape, "filter_shape")[2:]
    geo = _geometry(in_len, k_len, spatial_lengths(g), border_mode, subsample, filter_dilation, num_groups)
    return input_grad(g, flip(w) if filter_flip else w, geo)


def conv2d_grad_wrt_weights(input: Any, output_grad: Any, filter_shape: Sequence, input_shape: Sequence | None = None,
                            border_mode: Any = "valid", subsample: Any = (1, 1), filter_flip: bool = True,
                            filter_dilation: Any = (1, 1), num_groups: int = 1,
                            unshared: bool = False) -> TensorVariable:
    """The gradient of ``conv2d`` with respect to its filters, for filters of ``filter_shape``
    (its last two entries are required)."""
    if unshared:
        raise NotImplementedError("conv2d_grad_wrt_weights: unshared convolutions are not supported")
    x, g = _check_4d(input, "input"), _check_4d(output_grad, "output_grad")
    if filter_shape is None or len(filter_shape) != 4 or filter_shape[2] is None or filter_shape[3] is None:
        raise ShapeError(f"conv2d_grad_wrt_weights needs filter_shape with its two spatial lengths, got "
                         f"{filter_shape!r}")
    k_len = [as_int_entry(e, "filter_shape") for e in filter_shape[2:]]
    in_len = _hinted(x, input_shape, "input_shape")[2:]
    geo = _geometry(in_len, k_len, spatial_lengths(g), border_mode, subsample, filter_dilation, num_groups)
    gw = kernel_grad(x, g, geo)
    return flip(gw) if filter_flip else gw


def conv2d_transpose(input: Any, filters: Any, output_shape: Sequence, filter_shape: Sequence | None = None,
                     border_mode: Any = "valid", input_dilation: Any = (1, 1), filter_flip: bool = True,
                     filter_dilation: Any = (1, 1), num_groups: int = 1, unshared: bool = False) -> TensorVariable:
    """The transpose of ``conv2d`` (a "deconvolution"): ``conv2d_grad_wrt_inputs`` of ``input``
    with ``subsample=input_dilation``, producing ``output_shape``."""
    return conv2d_grad_wrt_inputs(input, filters, output_shape, filter_shape, border_mode, input_dilation,
                                  filter_flip, filter_dilation, num_groups, unshared)


def get_conv_output_shape(image_shape: Sequence, kernel_shape: Sequence, border_mode: Any, subsample: Sequence,
                          filter_dilation: Sequence | None = None) -> tuple:
    """The output shape of ``conv2d`` (or its N-d form) for these shapes (ints, or None where unknown)."""
    n = len(image_shape) - 2
    dil = int_tuple(1 if filter_dilation is None else filter_dilation, n, "filter_dilation")
    strides = int_tuple(subsample, n, "subsample")
    k_len = list(kernel_shape[2:])
    if any(k is None for k in k_len) and border_mode in ("full", "half"):
        spatial = (None,) * n
    else:
        pads = border_mode_to_pads(border_mode, k_len, dil)
        spatial = tuple(None if size is None or k is None else out_length(size, k, s, lo, hi, 1, d)
                        for size, k, s, (lo, hi), d in zip(image_shape[2:], k_len, strides, pads, dil))
    return (image_shape[0], kernel_shape[0]) + spatial
