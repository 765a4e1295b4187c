"""Geometry shared by the windowed ops (convolution and pooling): parameter normalisation, output
lengths, and the padding a gradient needs, as static ints where the shapes are known at build
time and as symbolic int64 entries otherwise.

Coordinates, per spatial axis: the input ``x`` (length ``n``) is dilated by ``a`` (``a - 1``
zeros between neighbours: extent ``(n - 1) * a + 1``) and padded by ``lo`` before and ``hi``
after (negative padding crops); the window (length ``k``, dilation ``d``: extent
``(k - 1) * d + 1``) is placed every ``s`` positions. Output position ``o``, window tap ``t``
read the padded, dilated coordinate ``o * s + t * d``; input element ``i`` sits at ``lo + i * a``.
"""
from __future__ import annotations

from collections.abc import Sequence
from math import gcd
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Variable
from symgraph.tensor.shape import ShapeEntry, sfold, shape_vector, static_entries, vector_entry
from symgraph.tensor.type import TensorVariable, as_tensor_variable

Padding = tuple  # a tuple of (lo, hi) int pairs, one per spatial axis


def int_tuple(value: Any, n: int, what: str, minimum: int | None = 1) -> tuple[int, ...]:
    """``value`` (an int or a sequence of ``n`` ints) as a tuple of ``n`` Python ints >= ``minimum``."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(items) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
        raise GraphTypeError(f"{what} must be an int or a sequence of {n} ints, got {value!r}")
    items = tuple(int(v) for v in items)
    if minimum is not None and any(v < minimum for v in items):
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}")
    return items


def padding_pairs(value: Any, n: int, what: str) -> Padding:
    """``value`` (an int, a pair, a sequence of ints (symmetric) or of (lo, hi) pairs) as
    ``n`` (lo, hi) int pairs (negative entries crop)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return ((int(value), int(value)),) * n
    items = tuple(value) if isinstance(value, (tuple, list)) else None
    if items is None or len(items) != n:
        raise GraphTypeError(f"{what} must be an int, or {n} ints or (lo, hi) pairs, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, (tuple, list)) and len(v) == 2:
            out.append(int_tuple(v, 2, what, minimum=None))
        else:
            (p,) = int_tuple(v, 1, what, minimum=None)
            out.append((p, p))
    return tuple(out)


def dilated(n: ShapeEntry, a: int) -> ShapeEntry:
    """Extent of ``n`` elements with ``a - 1`` zeros between neighbours (0 for no elements)."""
    if a == 1:
        return n
    if isinstance(n, int):
        return max(0, (n - 1) * a + 1)
    return sfold("maximum", sfold("add", sfold("mul", sfold("sub", n, 1), a), 1), 0)


def out_length(n: ShapeEntry, k: ShapeEntry, s: int, lo: ShapeEntry, hi: ShapeEntry, a: int = 1,
               d: int = 1) -> ShapeEntry:
    """Number of window positions: floor((dilated(n) + lo + hi - dilated(k)) / s) + 1, at least 0."""
    span = sfold("sub", sfold("add", sfold("add", dilated(n, a), lo), hi), dilated(k, d))
    return sfold("maximum", sfold("add", sfold("int_div", span, s), 1), 0)


def static_out_length(n: int | None, k: int | None, s: int, pad: tuple | None, a: int = 1,
                      d: int = 1) -> int | None:
    """``out_length`` when every argument is known at build time, else None."""
    if n is None or k is None or pad is None or None in pad:
        return None
    return out_length(n, k, s, pad[0], pad[1], a, d)


def same_pads(lengths: Sequence[ShapeEntry], k_lens: Sequence[ShapeEntry], strides: Sequence[int],
              lhs_dilation: Sequence[int], rhs_dilation: Sequence[int], lower: bool = False) -> list[tuple]:
    """'SAME' padding as JAX and TensorFlow define it: ceil(extent / stride) outputs, the total
    padding split with the odd element on the high side (the low side for ``lower``)."""
    out = []
    for n, k, s, a, d in zip(lengths, k_lens, strides, lhs_dilation, rhs_dilation):
        span = dilated(n, a)
        target = sfold("int_div", sfold("add", span, s - 1), s)
        need = sfold("add", sfold("mul", sfold("sub", target, 1), s), dilated(k, d))
        total = sfold("maximum", sfold("sub", need, span), 0)
        small = sfold("int_div", total, 2)
        big = sfold("sub", total, small)
        out.append((big, small) if lower else (small, big))
    return out


def progression(n_u: int, n_v: int, a: int, b: int, c: int) -> tuple[int, int, int, int, int]:
    """All solutions of ``u * a - v * b == c`` with ``0 <= u < n_u`` and ``0 <= v < n_v``, as an
    arithmetic progression ``(u0, du, v0, dv, count)`` (count 0 when there is none).

    With ``u`` an input index, ``v`` an output index and ``c = t * d - lo`` this lists the input
    elements that window tap ``t`` reads and the outputs they feed (lhs dilation ``a``, stride
    ``b``); the numpy implementations slice with it instead of materialising padded or
    zero-inserted images."""
    g = gcd(a, b)
    if c % g:
        return 0, 1, 0, 1, 0
    du, dv = b // g, a // g
    u = max(0, -(-c // a))  # the first u with v >= 0
    while (u * a - c) % b:
        u += 1
    v = (u * a - c) // b
    if u >= n_u or v >= n_v:
        return u, du, v, dv, 0
    return u, du, v, dv, min(-(-(n_u - u) // du), -(-(n_v - v) // dv))


def pads_operand(pads: Sequence[tuple]) -> tuple[Padding | None, Variable | None]:
    """Padding entries (ints or symbolic int64 scalars) as a static tuple of pairs when every
    entry is an int, else as an int64 vector ``[lo0, hi0, lo1, hi1, ...]`` for the op's input."""
    flat = [e for pair in pads for e in pair]
    if all(isinstance(e, int) for e in flat):
        return tuple((int(lo), int(hi)) for lo, hi in pads), None
    return None, shape_vector(flat, "padding")


def _pads_vector(pads: Variable | None) -> TensorVariable:
    """The ``pads`` input of an op whose padding is not static: an int vector (2 entries per axis)."""
    if not isinstance(pads, TensorVariable):
        raise GraphTypeError(f"an op without static padding needs a pads vector input, got {pads}")
    return pads


def pads_of(padding: Padding | None, pads: Variable | None, n: int) -> list[tuple]:
    """The (lo, hi) entries of an op's padding: its static pairs, or entries of its ``pads`` input."""
    if padding is not None:
        return [tuple(p) for p in padding]
    pads = _pads_vector(pads)
    return [(vector_entry(pads, 2 * i), vector_entry(pads, 2 * i + 1)) for i in range(n)]


def static_pads(padding: Padding | None, pads: Variable | None, n: int) -> list[tuple | None]:
    """Per axis, the (lo, hi) pair when it is known at build time, else None."""
    if padding is not None:
        return [tuple(p) for p in padding]
    known = static_entries(_pads_vector(pads))
    return [(known[2 * i], known[2 * i + 1]) if None not in known[2 * i:2 * i + 2] else None for i in range(n)]


def check_pads_input(pads: Any, n: int, what: str) -> TensorVariable:
    """The dynamic-padding input: an integer vector of length ``2 * n``, as int64."""
    pads = as_tensor_variable(pads)
    if pads.ndim != 1 or pads.type.numpy_dtype.kind not in "iu":
        raise GraphTypeError(f"{what}: the padding input must be an integer vector, got {pads} ({pads.type})")
    if pads.type.shape[0] not in (None, 2 * n):
        raise ShapeError(f"{what}: the padding input needs {2 * n} entries (lo, hi per axis), got {pads.type}")
    return shape_vector(pads, what)


def runtime_pads(padding: Padding | None, extra: list, n: int, what: str) -> Padding:
    """The padding of one call: the static pairs, or the values of the padding input."""
    if padding is not None:
        return padding
    vec = np.asarray(extra[0]).reshape(-1)
    if vec.shape != (2 * n,):
        raise ShapeError(f"{what}: the padding input holds {vec.shape[0]} values, expected {2 * n}")
    return tuple((int(vec[2 * i]), int(vec[2 * i + 1])) for i in range(n))
