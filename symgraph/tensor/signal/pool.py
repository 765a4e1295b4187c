"""Theano's pooling API, ``T.signal.pool.pool_2d`` (and ``pool_3d``), on the ``Pool`` op.

``ignore_border=True`` keeps only whole windows; ``False`` adds the partial windows at the end (and,
as in Theano, takes no padding; Theano's output length: ``(r - 1) // st + 1`` when the stride is at
least the window, else ``max(0, (r - 1 - ws + st) // st) + 1``, with ``r`` the padded length).
Modes: 'max' (gradient to each window's first maximum), 'sum', 'average_inc_pad' (divide by the
window's size within the padded input) and 'average_exc_pad' (by the number of input elements it
covers).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from symgraph.errors import GraphTypeError
from symgraph.tensor.pooling import pool, trailing_lengths, window_counts
from symgraph.tensor.shape import ShapeEntry, sfold
from symgraph.tensor.type import TensorVariable, as_tensor_variable
from symgraph.tensor.window import int_tuple

__all__ = ["pool_2d", "pool_3d", "MODES"]

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")


def _theano_out(r: ShapeEntry, ws: int, st: int, ignore_border: bool) -> ShapeEntry:
    """Theano's pooled length for padded length ``r``."""
    if ignore_border:
        return sfold("maximum", sfold("add", sfold("int_div", sfold("sub", r, ws), st), 1), 0)
    if st >= ws:
        return sfold("add", sfold("int_div", sfold("sub", r, 1), st), 1)
    return sfold("add", sfold("maximum", sfold("int_div", sfold("sub", r, 1 + ws - st), st), 0), 1)


def _pool_nd(x: Any, nd: int, ws: Any, ignore_border: bool, stride: Any, pad: Any, mode: str,
             what: str) -> TensorVariable:
    x = as_tensor_variable(x)
    if x.ndim < nd:
        raise GraphTypeError(f"{what}: pools the last {nd} axes, got {x} ({x.type})")
    mode = "max" if mode == "max_deterministic" else mode
    if mode not in MODES:
        raise ValueError(f"{what}: mode must be one of {', '.join(MODES)}, got {mode!r}")
    ws = int_tuple(ws, nd, f"{what} ws")
    st = int_tuple(ws if stride is None else stride, nd, f"{what} stride")
    pad = int_tuple(pad, nd, f"{what} pad", minimum=0)
    if any(p >= w for p, w in zip(pad, ws)):
        raise ValueError(f"{what}: pad {pad} must be smaller than the window {ws} in every axis")
    if any(pad) and not ignore_border:  # Theano's rule: the partial windows at the end could lie wholly in padding
        raise ValueError(f"{what}: padding works only with ignore_border=True, as in Theano (pad {pad}); "
                         "T.max_pool and T.avg_pool take any (lo, hi) padding")
    lengths = trailing_lengths(x, nd)
    padded = [sfold("add", n, 2 * p) for n, p in zip(lengths, pad)]
    # the high padding that makes the Pool op produce exactly Theano's number of windows
    extra = [sfold("sub", sfold("add", sfold("mul", sfold("sub", _theano_out(r, w, s, ignore_border), 1), s), w), r)
             for r, w, s in zip(padded, ws, st)]
    pads = [(p, sfold("add", p, e)) for p, e in zip(pad, extra)]
    kind = "max" if mode == "max" else "sum"
    out = pool(x, kind, ws, st, pads)
    if mode == "average_exc_pad":
        return out / window_counts(lengths, ws, st, pads, out.dtype)
    if mode == "average_inc_pad":
        if ignore_border:
            return out / math.prod(ws)
        return out / window_counts(padded, ws, st, [(0, e) for e in extra], out.dtype)
    return out


def pool_2d(input: Any, ws: Sequence[int] | None = None, ignore_border: bool = True,
            stride: Sequence[int] | None = None, pad: Sequence[int] = (0, 0), mode: str = "max",
            ds: Sequence[int] | None = None, st: Sequence[int] | None = None,
            padding: Sequence[int] | None = None) -> TensorVariable:
    """Pool the last two axes of ``input`` with windows ``ws`` every ``stride`` (default ``ws``)
    after padding ``pad`` on both sides, as Theano's ``pool_2d`` (``ds``, ``st``, ``padding``
    are its old names for ``ws``, ``stride``, ``pad``)."""
    ws = ws if ws is not None else ds
    if ws is None:
        raise TypeError("pool_2d: give the window size ws")
    return _pool_nd(input, 2, ws, ignore_border, stride if stride is not None else st,
                    pad if padding is None else padding, mode, "pool_2d")


def pool_3d(input: Any, ws: Sequence[int], ignore_border: bool = True, stride: Sequence[int] | None = None,
            pad: Sequence[int] = (0, 0, 0), mode: str = "max") -> TensorVariable:
    """``pool_2d`` over the last three axes."""
    return _pool_nd(input, 3, ws, ignore_border, stride, pad, mode, "pool_3d")
