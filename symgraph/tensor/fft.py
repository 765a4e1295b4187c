"""Real FFTs over every axis but the first (a batch of transforms), with gradients (``T.fft``).

``rfft(x)`` of real ``x`` of shape (m, ..., n) is (m, ..., n//2 + 1, 2): the non-trivial half of
each transform, real and imaginary parts in the last axis (Theano's layout). ``irfft`` inverts it
(``is_odd`` picks an odd last length). ``norm``: None (numpy's: the inverse divides by the size),
'ortho' (both scaled by 1/sqrt(size)) or 'no_norm' (neither).

The gradients are each other's transforms: rfft's adjoint is the unnormalized irfft of the output
gradient with the bins that stand for two frequencies (all but the first and, for even n, the
last) halved, and irfft's adjoint is rfft with those bins doubled.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.elemwise import ELEMWISE_OPS, cast
from symgraph.tensor.reduction import prod
from symgraph.tensor.shape import shape
from symgraph.tensor.subtensor import set_subtensor
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, tensor_inputs

__all__ = ["RFFT", "IRFFT", "rfft", "irfft"]
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")


def _check_sizes(s: Variable, what: str) -> TensorVariable:
    s = as_tensor_variable(s)
    if s.ndim != 1 or s.dtype not in _INTS:
        raise GraphTypeError(f"{what}: the transform sizes must be an integer vector, got {s} ({s.type})")
    return s


def _two_frequency_bins(g: TensorVariable, s: TensorVariable, factor: float) -> TensorVariable:
    """``g`` (…, bins, 2) with bins 1 .. n//2 + n%2 - 1 (each standing for +f and -f) times ``factor``."""
    n = s[-1]
    idx = (slice(None),) * (g.ndim - 2) + (slice(1, n // 2 + n % 2), slice(None))
    return set_subtensor(g[idx], g[idx] * factor)


class RFFT(Op):
    """Unnormalized real FFT of ``a`` (m, ...) over its last ``len(s)`` axes, sizes ``s``."""

    def make_node(self, a: Any, s: Any) -> Apply:
        a = as_tensor_variable(a)
        if a.ndim < 2 or not a.dtype.startswith("float"):
            raise GraphTypeError(f"rfft: needs a float input of at least 2 dimensions (batch first), got {a.type}")
        s = _check_sizes(s, "rfft")
        return Apply(self, [a, s], [TensorType(a.dtype, (a.type.shape[0],) + (None,) * a.ndim).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        a, s = inputs
        spectrum = np.fft.rfftn(a, s=tuple(int(v) for v in s), axes=tuple(range(1, a.ndim)))
        return [np.stack([spectrum.real, spectrum.imag], axis=-1).astype(a.dtype)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (_, s), (g,) = inputs, output_grads
        return [IRFFT()(_two_frequency_bins(g, s, 0.5), s), None]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        a_shape, s = input_shapes[0], tensor_inputs(node)[1]
        nd = len(a_shape)
        return [(a_shape[0],) + tuple(s[d] for d in range(nd - 2)) + (s[nd - 2] // 2 + 1, 2)]


class IRFFT(Op):
    """Unnormalized inverse of RFFT: (m, ..., bins, 2) to real (m, ...) of sizes ``s``."""

    def make_node(self, a: Any, s: Any) -> Apply:
        a = as_tensor_variable(a)
        if a.ndim < 3 or not a.dtype.startswith("float"):
            raise GraphTypeError(f"irfft: needs a float input of at least 3 dimensions (batch first, real/imag "
                                 f"last), got {a.type}")
        s = _check_sizes(s, "irfft")
        return Apply(self, [a, s], [TensorType(a.dtype, (a.type.shape[0],) + (None,) * (a.ndim - 2)).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        a, s = inputs
        sizes = tuple(int(v) for v in s)
        out = np.fft.irfftn(a[..., 0] + 1j * a[..., 1], s=sizes, axes=tuple(range(1, a.ndim - 1)))
        return [(out * np.prod(sizes)).astype(a.dtype)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (_, s), (g,) = inputs, output_grads
        return [_two_frequency_bins(RFFT()(g, s), s, 2.0), None]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        a_shape, s = input_shapes[0], tensor_inputs(node)[1]
        return [(a_shape[0],) + tuple(s[d] for d in range(len(a_shape) - 2))]


def _norm(norm: Any) -> Any:
    if norm not in (None, "ortho", "no_norm"):
        raise ValueError(f"norm must be None, 'ortho' or 'no_norm', got {norm!r}")
    return norm


def rfft(inp: Any, norm: str | None = None) -> TensorVariable:
    """Real FFT of each of the m inputs of ``inp`` (m, ..., n): (m, ..., n//2 + 1, 2)."""
    inp = as_tensor_variable(inp)
    s = shape(inp)[1:]
    out = RFFT()(inp, s)
    if _norm(norm) == "ortho":
        out = out / ELEMWISE_OPS["sqrt"](cast(prod(s), inp.dtype))
    return out


def irfft(inp: Any, norm: str | None = None, is_odd: bool = False) -> TensorVariable:
    """Inverse of rfft: (m, ..., k, 2) to real (m, ..., n) with n = 2 (k - 1) (+ 1 if ``is_odd``)."""
    if not isinstance(is_odd, (bool, np.bool_)):
        raise ValueError(f"is_odd must be True or False, got {is_odd!r}")
    inp = as_tensor_variable(inp)
    s = shape(inp)[1:-1]
    s = set_subtensor(s[-1], (s[-1] - 1) * 2 + int(is_odd))
    out = IRFFT()(inp, s)
    norm = _norm(norm)
    if norm is None:
        out = out / cast(prod(s), inp.dtype)
    elif norm == "ortho":
        out = out / ELEMWISE_OPS["sqrt"](cast(prod(s), inp.dtype))
    return out
