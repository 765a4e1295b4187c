"""The numpy implementation of the general convolution (``Conv.perform``): BLAS products over
slices, never a padded-and-zero-inserted image.

Each loop below computes the same sum ``y[n, o, p] = sum_{c, t} x[n, c, i(p, t)] * w[o, c, t]``;
``conv_numpy`` picks one from the parameters and shapes:

* ``shifted`` (stride 1, no lhs dilation: forward convolutions and their stride-1 input
  gradients): the input, padded once in channels-last layout, is one (rows, C) matrix; window
  tap ``t`` reads it shifted by a constant number of rows, so each tap is one contiguous
  (rows, C) @ (C, O) product, no gather, accumulated over a full grid whose border rows are dropped.
* ``by_tap`` (strides): per tap, gather the strided (N * out, C) slice of the padded input it
  reads, one product, accumulated.
* ``by_output`` (fewer output positions than taps: weight gradients, whose "kernel" is the whole
  output gradient): each position's receptive field gathered and all positions stacked into one
  tall product, instead of one skinny product with a huge contraction per position.
* ``by_tap_sparse`` / ``by_output_sparse`` (lhs dilation: a strided convolution's input gradient,
  a transposed convolution): ``window.progression`` gives, per tap (or position), the input
  elements and outputs that meet as strided slices; one product each and a strided ``+=`` into
  the output (col2im), never the zero-inserted image.

Measured (benchmarks W8: N=32, C=O=64, 32x32, 3x3 'same', float32, on this project's 2-core
machine under heavy load from other processes, OPENBLAS_NUM_THREADS=1 in every process): the
forward pass by shifted GEMMs 96 ms against 118 ms for numpy by hand with im2col and one GEMM,
and 42 ms for one GEMM of the same FLOPs; forward and backward 303 ms (JAX under jit: 192 ms,
by hand 223 ms). With two BLAS threads on the loaded machine every BLAS call waits for both
threads to be scheduled, and the nine calls per pass cost more than im2col's one (forward 468
against 258 ms); the issue's probe on a quiet machine measured shifted GEMMs 37 ms, im2col 58 ms.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from symgraph.errors import ShapeError
from symgraph.tensor.window import dilated, out_length, progression


def conv_numpy(x: np.ndarray, w: np.ndarray, strides: Sequence[int], padding: Sequence[tuple],
               lhs_dilation: Sequence[int], rhs_dilation: Sequence[int], groups: int, batch_groups: int,
               dtype: str) -> np.ndarray:
    """The convolution of ``x`` (N, C, *spatial) with ``w`` (O, C // groups, *window) as
    ``lax.conv_general_dilated`` defines it (cross-correlation), computed in ``dtype``."""
    x, w = np.asarray(x, dtype=dtype), np.asarray(w, dtype=dtype)
    check_shapes(x.shape, w.shape, groups, batch_groups)
    if batch_groups > 1:
        x, groups = batch_groups_as_features(x, batch_groups), batch_groups
    sp, ks = x.shape[2:], w.shape[2:]
    out_sp = tuple(out_length(n, k, s, lo, hi, a, d) for n, k, s, (lo, hi), a, d
                   in zip(sp, ks, strides, padding, lhs_dilation, rhs_dilation))
    shape = (x.shape[0], w.shape[0]) + out_sp
    if 0 in shape or 0 in ks or w.shape[1] == 0 or 0 in sp:
        return np.zeros(shape, dtype)
    few_outputs = math.prod(out_sp) < math.prod(ks)
    if any(a != 1 for a in lhs_dilation):
        if few_outputs:
            return by_output_sparse(x, w, strides, padding, lhs_dilation, rhs_dilation, groups, out_sp)
        return by_tap_sparse(x, w, strides, padding, lhs_dilation, rhs_dilation, groups, out_sp)
    grid = tuple((m - 1) * s + dilated(k, d) for m, k, s, d in zip(out_sp, ks, strides, rhs_dilation))
    if few_outputs:
        return by_output(padded(x, padding, grid), w, strides, rhs_dilation, groups, out_sp)
    xp = padded(np.moveaxis(x, 1, -1), padding, grid, first_spatial=1)
    if all(s == 1 for s in strides):
        return shifted(xp, w, rhs_dilation, groups, out_sp)
    return by_tap(xp, w, strides, rhs_dilation, groups, out_sp)


def check_shapes(xs: tuple, ws: tuple, groups: int, batch_groups: int) -> None:
    """Raise ShapeError unless the channel and batch counts fit the group counts."""
    if len(xs) != len(ws):
        raise ShapeError(f"conv: input {xs} and kernel {ws} have different ranks")
    n, c, o, i = xs[0], xs[1], ws[0], ws[1]
    if c != i * groups:
        raise ShapeError(f"conv: the input has {c} channels but the kernel {ws} takes {i} per group "
                         f"x {groups} group(s) = {i * groups}")
    if o % groups or o % batch_groups:
        raise ShapeError(f"conv: the kernel's {o} output channels are not divisible by the group count "
                         f"{max(groups, batch_groups)}")
    if n % batch_groups:
        raise ShapeError(f"conv: the batch of {n} is not divisible by batch_group_count {batch_groups}")


def batch_groups_as_features(x: np.ndarray, b: int) -> np.ndarray:
    """(N, C, ...) -> (N / b, b * C, ...): batch group j becomes feature group j."""
    n, c = x.shape[:2]
    return x.reshape((b, n // b, c) + x.shape[2:]).swapaxes(0, 1).reshape((n // b, b * c) + x.shape[2:])


def taps_matrix(w: np.ndarray) -> np.ndarray:
    """(O, I, *window) -> (taps, I, O), contiguous: ``[t]`` is tap t's (I, O) matrix."""
    o, i = w.shape[:2]
    return np.ascontiguousarray(w.reshape(o, i, -1).transpose(2, 1, 0))


def contract(xs: np.ndarray, wt: np.ndarray, groups: int) -> np.ndarray:
    """(M, groups * I) times tap matrix (I, O) per group -> (M, O)."""
    if groups == 1:
        return xs @ wt
    m, (i, o) = xs.shape[0], wt.shape
    og = o // groups
    if i == 1:  # depthwise: a broadcast multiply, no degenerate products
        return (xs[:, :, None] * wt.reshape(groups, og)).reshape(m, o)
    prod = np.matmul(xs.reshape(m, groups, i).transpose(1, 0, 2), wt.reshape(i, groups, og).transpose(1, 0, 2))
    return prod.transpose(1, 0, 2).reshape(m, o)


def _slices(progs: list, first: bool) -> tuple:
    """The strided slices of one side (inputs if ``first``, else outputs) of per-axis progressions."""
    out = []
    for u0, du, v0, dv, cnt in progs:
        start, step = (u0, du) if first else (v0, dv)
        out.append(slice(start, start + step * (cnt - 1) + 1, step))
    return tuple(out)


def gemm_into(out: np.ndarray, a: np.ndarray, b: np.ndarray, accumulate: bool, tmp: np.ndarray | None = None) -> None:
    """``out (+)= a @ b`` with numpy's BLAS; ``tmp`` (shaped like ``out``) holds the product
    when accumulating. (scipy's BLAS wrappers could accumulate in place with beta = 1, but they
    load a second OpenBLAS whose thread pool fights numpy's: measured 5-50x slower alternating.)"""
    if not accumulate:
        np.matmul(a, b, out=out)
        return
    prod = np.matmul(a, b, out=tmp) if tmp is not None else a @ b
    out += prod


def padded(x: np.ndarray, padding: Sequence[tuple], grid: tuple, first_spatial: int = 2) -> np.ndarray:
    """``x`` with its spatial axes (``first_spatial`` on, ``len(grid)`` of them) padded with zeros
    or cropped to ``grid``, starting ``lo`` before the first element, in a fresh C-contiguous array."""
    lead = x.shape[:first_spatial]
    tail = x.shape[first_spatial + len(grid):]
    xp = np.zeros(lead + grid + tail, x.dtype)
    src, dst = [], []
    for size, (lo, _), g in zip(x.shape[first_spatial:], padding, grid):
        first, at = max(0, -lo), max(0, lo)
        m = max(0, min(size - first, g - at))
        src.append(slice(first, first + m))
        dst.append(slice(at, at + m))
    keep = (slice(None),) * first_spatial
    xp[keep + tuple(dst)] = x[keep + tuple(src)]
    return xp


def _window(starts: Sequence[int], scale: Sequence[int], step: Sequence[int], counts: Sequence[int]) -> tuple:
    """Slices reading ``counts`` elements ``step`` apart from ``starts * scale`` (a tap's offset
    times the dilation, or a position times the stride)."""
    return tuple(slice(b * d, b * d + (m - 1) * s + 1, s) for b, d, s, m in zip(starts, scale, step, counts))


def shifted(xp: np.ndarray, w: np.ndarray, rhs_dilation: Sequence[int], groups: int, out_sp: tuple) -> np.ndarray:
    """Stride 1: ``xp`` (N, *grid, C), padded, is one (rows, C) matrix and tap t reads it shifted
    by a constant number of rows: one contiguous product per tap, accumulated in place over the
    full grid, whose rows past each output row's end are dropped."""
    n, grid, c, o = xp.shape[0], xp.shape[1:-1], xp.shape[-1], w.shape[0]
    rows = xp.reshape(-1, c)
    row_stride = [math.prod(grid[j + 1:]) for j in range(len(grid))]
    shifts = [sum(t * d * r for t, d, r in zip(tap, rhs_dilation, row_stride)) for tap in np.ndindex(*w.shape[2:])]
    length = rows.shape[0] - max(shifts)
    wt = taps_matrix(w)
    acc = np.empty((rows.shape[0], o), xp.dtype)
    tmp = np.empty((length, o), xp.dtype) if groups == 1 else None
    for t, sh in enumerate(shifts):
        if groups == 1:
            gemm_into(acc[:length], rows[sh:sh + length], wt[t], accumulate=t > 0, tmp=tmp)
        elif t == 0:
            acc[:length] = contract(rows[sh:sh + length], wt[t], groups)
        else:
            acc[:length] += contract(rows[sh:sh + length], wt[t], groups)
    y = acc.reshape((n,) + grid + (o,))[(slice(None),) + tuple(slice(0, m) for m in out_sp)]
    return np.ascontiguousarray(np.moveaxis(y, -1, 1))


def by_tap(xp: np.ndarray, w: np.ndarray, strides: Sequence[int], rhs_dilation: Sequence[int], groups: int,
           out_sp: tuple) -> np.ndarray:
    """Strides: per tap, gather the (N, *out, C) slice of the padded ``xp`` it reads and
    accumulate its product into the (N * out, O) output in place."""
    n, c, o = xp.shape[0], xp.shape[-1], w.shape[0]
    wt = taps_matrix(w)
    acc = np.empty((n * math.prod(out_sp), o), xp.dtype)
    tmp = np.empty_like(acc) if groups == 1 else None
    cols = np.empty((n,) + out_sp + (c,), xp.dtype)
    for t, tap in enumerate(np.ndindex(*w.shape[2:])):
        cols[...] = xp[(slice(None),) + _window(tap, rhs_dilation, strides, out_sp)]
        if groups == 1:
            gemm_into(acc, cols.reshape(-1, c), wt[t], accumulate=t > 0, tmp=tmp)
        elif t == 0:
            acc[...] = contract(cols.reshape(-1, c), wt[t], groups)
        else:
            acc += contract(cols.reshape(-1, c), wt[t], groups)
    return np.ascontiguousarray(np.moveaxis(acc.reshape((n,) + out_sp + (o,)), -1, 1))


WORKSPACE = 1 << 23
"""Elements of the gathered-columns buffer of ``by_output`` (32 MB in float32): positions are
processed in chunks that fit."""


def by_output(xp: np.ndarray, w: np.ndarray, strides: Sequence[int], rhs_dilation: Sequence[int], groups: int,
              out_sp: tuple) -> np.ndarray:
    """Few output positions (weight gradients): gather each position's whole receptive field from
    the padded ``xp`` (N, C, *grid) and stack the positions into one tall product per chunk, so
    the contraction over N * taps runs as one GEMM instead of one skinny GEMM per position."""
    n, c, o, i = xp.shape[0], xp.shape[1], w.shape[0], w.shape[1]
    ks, og = w.shape[2:], o // groups
    taps = math.prod(ks)
    whole = w.reshape(groups, og, i * taps).transpose(0, 2, 1)  # (G, I * taps, Og)
    positions = list(np.ndindex(*out_sp))
    y = np.empty((len(positions), n, o), xp.dtype)
    chunk = max(1, WORKSPACE // max(1, n * c * taps))
    for start in range(0, len(positions), chunk):
        part = positions[start:start + chunk]
        cols = np.empty((len(part), n, c) + ks, xp.dtype)
        for j, pos in enumerate(part):
            cols[j] = xp[(slice(None), slice(None)) + _window(pos, strides, rhs_dilation, ks)]
        cols = cols.reshape(len(part) * n, groups, i * taps)
        for g in range(groups):
            y[start:start + len(part), :, g * og:(g + 1) * og] = (cols[:, g] @ whole[g]).reshape(len(part), n, og)
    return np.ascontiguousarray(np.moveaxis(y.reshape(out_sp + (n, o)), (-2, -1), (0, 1)))


def by_tap_sparse(x: np.ndarray, w: np.ndarray, strides: Sequence[int], padding: Sequence[tuple],
                  lhs_dilation: Sequence[int], rhs_dilation: Sequence[int], groups: int,
                  out_sp: tuple) -> np.ndarray:
    """lhs dilation (a strided convolution's input gradient, a transposed convolution): per tap,
    the input elements it reads and the outputs they feed are strided slices
    (``window.progression``); one product each, and a strided += into the output (col2im)."""
    n, c, o = x.shape[0], x.shape[1], w.shape[0]
    xc = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    yc = np.zeros((n,) + out_sp + (o,), x.dtype)
    wt = taps_matrix(w)
    for t, tap in enumerate(np.ndindex(*w.shape[2:])):
        progs = [progression(size, m, a, s, ti * d - lo) for size, m, a, s, ti, d, (lo, _)
                 in zip(x.shape[2:], out_sp, lhs_dilation, strides, tap, rhs_dilation, padding)]
        if any(p[4] == 0 for p in progs):
            continue
        xs = xc[(slice(None),) + _slices(progs, True)]
        ys = yc[(slice(None),) + _slices(progs, False)]
        ys += contract(xs.reshape(-1, c), wt[t], groups).reshape(ys.shape)
    return np.ascontiguousarray(np.moveaxis(yc, -1, 1))


def by_output_sparse(x: np.ndarray, w: np.ndarray, strides: Sequence[int], padding: Sequence[tuple],
                     lhs_dilation: Sequence[int], rhs_dilation: Sequence[int], groups: int,
                     out_sp: tuple) -> np.ndarray:
    """lhs dilation and few output positions: per position, the taps that meet an input element
    (``window.progression``) and one product over them."""
    n, o = x.shape[0], w.shape[0]
    og, ks = o // groups, w.shape[2:]
    y = np.zeros((n, o) + out_sp, x.dtype)
    for pos in np.ndindex(*out_sp):
        progs = [progression(size, k, a, d, p * s - lo) for size, k, a, d, p, s, (lo, _)
                 in zip(x.shape[2:], ks, lhs_dilation, rhs_dilation, pos, strides, padding)]
        if any(p[4] == 0 for p in progs):
            continue
        xs = x[(slice(None), slice(None)) + _slices(progs, True)].reshape(n, groups, -1)
        wm = w[(slice(None), slice(None)) + _slices(progs, False)].reshape(groups, og, -1).transpose(0, 2, 1)
        y[(slice(None), slice(None)) + pos] = np.matmul(xs.transpose(1, 0, 2), wm).transpose(1, 0, 2).reshape(n, o)
    return y
