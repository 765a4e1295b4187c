"""The distributions, in numpy, as functions of (key, counter, element index): each computes the
elements ``start .. start + count - 1`` of a draw's flat (C-order) stream, so a draw computed in
pieces equals the whole. The OpenCL kernels compute the same arithmetic per element
(backends/opencl/kernels_random.py); uniforms and raw bits are bit-identical there.

Layouts (``block_shift`` = log2 of the elements one Philox block serves):

- 32-bit lanes (shift 3): bits32, uniform32 ``(u32 >> 8) * 2**-24`` in [0, 1), bernoulli32 ``u < p``;
- 64-bit lanes (shift 2): bits64, uniform64 ``(u64 >> 11) * 2**-53`` in [0, 1), bernoulli64,
  integers (Lemire's multiply-shift with rejection, no modulo bias), binomial;
- normal32 (shift 3): element pair q = i >> 1 reads 64-bit lane q: u1 = its low half mapped to
  (0, 1] as ``((lo >> 8) + 1) * 2**-24``, u2 = its high half ``(hi >> 8) * 2**-24``; Box-Muller
  in double, ``sqrt(-2 log u1) * cos(2 pi u2)`` for even i and ``* sin`` for odd i, rounded to float32;
- normal64 (shift 2): pair q reads 64-bit lanes 2q and 2q + 1 (u1 in (0, 1] from the first).

Rejection samplers (integers, binomial) take extra words from sub-streams 1, 2, ... of the same
element (counter word 2's high half), so their results do not depend on other elements either.
"""
from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from symgraph.rng.philox import MASK64, SUB_SHIFT, bit_generator, blocks, words64_at

Key = tuple[int, int]
Counter = tuple[int, int, int]
TWO_PI = 2.0 * math.pi
_F32_UNIT, _F64_UNIT = 2.0 ** -24, 2.0 ** -53
_LITTLE = sys.byteorder == "little"


def sub_counter(counter: Counter, sub: int) -> Counter:
    """The counter of sub-stream ``sub`` of a draw (site in the low half of word 2, sub above)."""
    c1, c2, c3 = counter
    return c1, (int(c2) & 0xFFFFFFFF) | (int(sub) << SUB_SHIFT), c3


def words(key: Key, counter: Counter, start: int, count: int, shift: int) -> np.ndarray:
    """Lanes ``start .. start + count - 1``: uint32 lanes (shift 3) or uint64 lanes (shift 2)."""
    if count <= 0:
        return np.empty(0, np.uint32 if shift == 3 else np.uint64)
    b0, b1 = start >> shift, (start + count - 1) >> shift
    raw = blocks(key, counter, b0, b1 - b0 + 1).reshape(-1)
    if shift == 3:
        raw = raw.view(np.uint32) if _LITTLE else np.stack(
            [(raw & np.uint64(0xFFFFFFFF)).astype(np.uint32), (raw >> np.uint64(32)).astype(np.uint32)], 1).reshape(-1)
    off = start - (b0 << shift)
    return raw[off:off + count]


def bits32(key: Key, counter: Counter, start: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Raw 32-bit lanes."""
    w = words(key, counter, start, count, 3)
    if out is None:
        return w.copy()
    np.copyto(out, w)
    return out


def bits64(key: Key, counter: Counter, start: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Raw 64-bit lanes."""
    w = words(key, counter, start, count, 2)
    if out is None:
        return w.copy()
    np.copyto(out, w)
    return out


def uniform32(key: Key, counter: Counter, start: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Float32 uniforms in [0, 1): ``(u32 >> 8) * 2**-24`` (numpy's own float32 mapping, so an
    aligned run goes through numpy's Generator in one C pass)."""
    if start % 8 == 0 and _LITTLE:
        gen = np.random.Generator(bit_generator(key, counter, start >> 3))
        return gen.random(count, dtype=np.float32, out=out)
    w = words(key, counter, start, count, 3) >> np.uint32(8)
    res = np.multiply(w.astype(np.float32), np.float32(_F32_UNIT), out=out)
    return res


def uniform64(key: Key, counter: Counter, start: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Float64 uniforms in [0, 1): ``(u64 >> 11) * 2**-53`` (numpy's own float64 mapping)."""
    if start % 4 == 0:
        gen = np.random.Generator(bit_generator(key, counter, start >> 2))
        return gen.random(count, dtype=np.float64, out=out)
    w = words(key, counter, start, count, 2) >> np.uint64(11)
    return np.multiply(w.astype(np.float64), _F64_UNIT, out=out)


def _box_muller(u1: np.ndarray, u2: np.ndarray, start: int, q0: int, count: int) -> np.ndarray:
    """Elements ``start..`` of the interleaved pairs (r cos t, r sin t) of pairs q0, q0 + 1, ..."""
    r = np.sqrt(-2.0 * np.log(u1))
    t = TWO_PI * u2
    z = np.empty(2 * r.size)
    np.multiply(r, np.cos(t), out=z[0::2])
    np.multiply(r, np.sin(t), out=z[1::2])
    off = start - 2 * q0
    return z[off:off + count]


def normal32(key: Key, counter: Counter, start: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Standard normal float32: Box-Muller in double from one 64-bit lane per pair, then rounded."""
    if count <= 0:
        return np.empty(0, np.float32) if out is None else out
    q0, q1 = start >> 1, (start + count - 1) >> 1
    w = words(key, counter, q0, q1 - q0 + 1, 2)
    u1 = ((w & np.uint64(0xFFFFFFFF)) >> np.uint64(8)).astype(np.float64)
    u1 += 1.0
    u1 *= _F32_UNIT
    u2 = (w >> np.uint64(40)).astype(np.float64) * _F32_UNIT
    z = _box_muller(u1, u2, start, q0, count)
    if out is None:
        return z.astype(np.float32)
    np.copyto(out, z, casting="unsafe")
    return out


def normal64(key: Key, counter: Counter, start: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Standard normal float64: Box-Muller from two 64-bit lanes per pair."""
    if count <= 0:
        return np.empty(0) if out is None else out
    q0, q1 = start >> 1, (start + count - 1) >> 1
    w = words(key, counter, 2 * q0, 2 * (q1 - q0 + 1), 2)
    u1 = ((w[0::2] >> np.uint64(11)).astype(np.float64) + 1.0) * _F64_UNIT
    u2 = (w[1::2] >> np.uint64(11)).astype(np.float64) * _F64_UNIT
    z = _box_muller(u1, u2, start, q0, count)
    if out is None:
        return z
    np.copyto(out, z)
    return out


def bernoulli32(key: Key, counter: Counter, start: int, count: int, p: Any) -> np.ndarray:
    """1.0 where the float32 uniform is below ``p`` (compared in float32), else 0.0 (float32)."""
    u = uniform32(key, counter, start, count)
    return np.less(u, np.asarray(p, np.float32)).astype(np.float32)


def bernoulli64(key: Key, counter: Counter, start: int, count: int, p: Any) -> np.ndarray:
    """1.0 where the float64 uniform is below ``p``, else 0.0 (float64)."""
    u = uniform64(key, counter, start, count)
    return np.less(u, np.asarray(p, np.float64)).astype(np.float64)


def mulhilo(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """High and low 64-bit halves of the products of two uint64 arrays."""
    lo32, s32 = np.uint64(0xFFFFFFFF), np.uint64(32)
    a_lo, a_hi, b_lo, b_hi = a & lo32, a >> s32, b & lo32, b >> s32
    ll, lh, hl, hh = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (ll >> s32) + (lh & lo32) + (hl & lo32)
    return hh + (lh >> s32) + (hl >> s32) + (mid >> s32), a * b


def integers(key: Key, counter: Counter, start: int, count: int, low: Any, high: Any) -> np.ndarray:
    """Integers in [low, high) without modulo bias (int64): Lemire's multiply-shift of a 64-bit lane
    by the range; a product whose low half falls below ``2**64 mod range`` is rejected and the element
    takes the next lane of its sub-streams 1, 2, ... (probability below range / 2**64 per try)."""
    low = np.broadcast_to(np.asarray(low, np.int64), (count,))
    high = np.broadcast_to(np.asarray(high, np.int64), (count,))
    if count and np.any(high <= low):
        bad = int(np.argmax(high <= low))
        raise ValueError(f"integers: high must be greater than low (got low={low[bad]}, high={high[bad]})")
    with np.errstate(over="ignore"):
        r = high.astype(np.uint64) - low.astype(np.uint64)
        hi, lo = mulhilo(words(key, counter, start, count, 2), r)
        rej = np.flatnonzero(lo < r)
        if rej.size:
            thresh = (np.uint64(0) - r[rej]) % r[rej]
            rej = rej[lo[rej] < thresh]
        sub = 0
        while rej.size:
            sub += 1
            w = words64_at(key, sub_counter(counter, sub), rej.astype(np.uint64) + np.uint64(start))
            h, l_ = mulhilo(w, r[rej])
            hi[rej] = h
            keep = l_ < (np.uint64(0) - r[rej]) % r[rej]
            rej = rej[keep]
        return (low.astype(np.uint64) + hi).view(np.int64)


# --- the scalar table's random rows --------------------------------------------------------------

_ROWS_OF = threading.local()  # set while a chunk of rows of a larger result is computed


@contextmanager
def rows_of(first: int, count: int, ndim: int) -> Iterator[None]:
    """Within: the ``ndim``-axis results being computed are rows ``first .. first + count - 1`` of
    larger ones (the dask backend's chunks, split along the first axis only): a draw of ``ndim``
    axes whose first axis has ``count`` rows computes those rows of its whole stream."""
    before = getattr(_ROWS_OF, "at", None)
    _ROWS_OF.at = (first, count, ndim)
    try:
        yield
    finally:
        _ROWS_OF.at = before


def _first_element(shape: tuple) -> int:
    """The flat index, in its whole stream, of the first element of a draw of ``shape`` (0 unless
    it is a chunk of rows, ``rows_of``; a first axis of one row is a broadcast axis there)."""
    at = getattr(_ROWS_OF, "at", None)
    if at is None or len(shape) != at[2] or shape[0] != at[1] or at[1] < 2:
        return 0
    return at[0] * math.prod(shape[1:])


def _counter_words(k0: Any, k1: Any, c1: Any, c2: Any, c3: Any) -> tuple[Key, Counter]:
    vals = []
    for name, v in zip(("key word 0", "key word 1", "call counter", "site", "step"), (k0, k1, c1, c2, c3)):
        a = np.asarray(v)
        if a.size != 1:
            raise ValueError(f"a random draw's {name} must be a single value, got shape {a.shape}")
        vals.append(int(a.reshape(())) & MASK64)
    if vals[3] >> SUB_SHIFT:
        raise ValueError(f"a random draw's site must be below 2**32, got {vals[3]}")
    return (vals[0], vals[1]), (vals[2], vals[3], vals[4])


def row_function(name: str, draw: Callable, nparams: int, out_dtype: str) -> Callable:
    """The numpy function of a random row: ``fn(like, k0, k1, c1, c2, c3, *params, out=None)``.
    The result has the broadcast shape of ``like`` (whose values are never read) and the
    parameters; element i of it is element i of the draw's flat stream (of the rows it stands for,
    within ``rows_of``)."""
    dtype = np.dtype(out_dtype)

    def fn(like: Any, k0: Any, k1: Any, c1: Any, c2: Any, c3: Any, *params: Any, out: np.ndarray | None = None) -> Any:
        if len(params) != nparams:
            raise TypeError(f"{name} takes {nparams} parameter(s), got {len(params)}")
        key, counter = _counter_words(k0, k1, c1, c2, c3)
        shape = np.broadcast_shapes(np.shape(like), *(np.shape(p) for p in params))
        count, start = math.prod(shape), _first_element(shape)
        flat = [np.broadcast_to(p, shape).reshape(-1) for p in params]
        if out is not None and out.shape == shape and out.dtype == dtype and out.flags.c_contiguous and not nparams:
            draw(key, counter, start, count, out=out.reshape(-1))
            return out
        res = np.asarray(draw(key, counter, start, count, *flat), dtype=dtype).reshape(shape)
        if out is None:
            return res
        np.copyto(out, res, casting="unsafe")
        return out
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"The numpy version of the random row {name} (see symgraph/rng/draws.py)."
    return fn
