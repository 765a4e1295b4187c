"""Independent references for the convolution and pooling tests: convolution by
``scipy.signal.correlate`` loops over a padded input and an explicitly dilated kernel, pooling
by plain Python loops over windows (Theano's pool_2d semantics, and the first-maximum gradient),
the JAX fixture (tests/fixtures/conv_jax.npz, made by make_conv_fixture.py), and a greedy
pairwise selection of test grids."""
from __future__ import annotations

import itertools
import json
import math
import os

import numpy as np
import scipy.signal

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "conv_jax.npz")


def ref_conv(x: np.ndarray, w: np.ndarray, strides, pads, dilation, groups: int = 1, flip: bool = False) -> np.ndarray:
    """Cross-correlation (or convolution with ``flip``) of x (N, C, *s) with w (O, C / groups, *k),
    in float64, padding (lo, hi) >= 0 per axis, kernel dilation, feature groups."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    nd = x.ndim - 2
    if flip:
        w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    wd = np.zeros(w.shape[:2] + tuple((k - 1) * d + 1 for k, d in zip(w.shape[2:], dilation)))
    wd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)] = w
    xp = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads])
    o, i = w.shape[:2]
    og = o // groups
    rows = []
    for n in range(x.shape[0]):
        rows.append([sum(scipy.signal.correlate(xp[n, (oc // og) * i + c], wd[oc, c], mode="valid") for c in range(i))
                     for oc in range(o)])
    full = np.array(rows, dtype=np.float64)
    return full[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]


def same_pads(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """JAX/TensorFlow 'SAME': ceil(n / s) outputs, odd padding on the high side."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def ref_pool_2d(x: np.ndarray, ws, ignore_border: bool, st, pad, mode: str) -> np.ndarray:
    """Theano's pool_2d by loops: windows start every ``st`` on the input padded by ``pad``;
    partial windows at the end when not ``ignore_border``."""
    x = np.asarray(x, np.float64)
    r = [n + 2 * p for n, p in zip(x.shape[-2:], pad)]
    out = []
    for n, w, s in zip(r, ws, st):
        if ignore_border:
            out.append(max(0, (n - w) // s + 1))
        else:
            out.append((n - 1) // s + 1 if s >= w else max(0, (n - 1 - w + s) // s) + 1)
    fill = -np.inf if mode == "max" else 0.0
    xp = np.full(x.shape[:-2] + tuple(r), fill)
    xp[..., pad[0]:pad[0] + x.shape[-2], pad[1]:pad[1] + x.shape[-1]] = x
    y = np.zeros(x.shape[:-2] + tuple(out))
    for i, j in itertools.product(range(out[0]), range(out[1])):
        r0, c0 = i * st[0], j * st[1]
        r1, c1 = min(r0 + ws[0], r[0]), min(c0 + ws[1], r[1])
        win = xp[..., r0:r1, c0:c1]
        if mode == "max":
            y[..., i, j] = win.max(axis=(-2, -1))
            continue
        total = win.sum(axis=(-2, -1))
        if mode == "sum":
            y[..., i, j] = total
        elif mode == "average_inc_pad":
            y[..., i, j] = total / ((r1 - r0) * (c1 - c0))
        else:
            inside = ((min(r1, pad[0] + x.shape[-2]) - max(r0, pad[0]))
                      * (min(c1, pad[1] + x.shape[-1]) - max(c0, pad[1])))
            y[..., i, j] = total / inside
    return y


def ref_max_pool_first_max_grad(x: np.ndarray, g: np.ndarray, window, strides, pads) -> np.ndarray:
    """The max-pool gradient by loops: each window's g added at its first maximum (row-major)."""
    nd = len(window)
    lead = x.shape[:x.ndim - nd]
    gx = np.zeros(x.shape)
    for li in np.ndindex(*lead):
        for o in np.ndindex(*g.shape[x.ndim - nd:]):
            best, where = None, None
            for t in np.ndindex(*window):
                pos = tuple(oi * s + ti - lo for oi, s, ti, (lo, _) in zip(o, strides, t, pads))
                if any(p < 0 or p >= n for p, n in zip(pos, x.shape[x.ndim - nd:])):
                    continue
                v = x[li + pos]
                if best is None or v > best:
                    best, where = v, pos
            if where is not None:
                gx[li + where] += g[li + o]
    return gx


def ref_pool_nd(x: np.ndarray, mode: str, window, strides, pads, count_include_pad: bool = True) -> np.ndarray:
    """max / sum / mean over windows of the trailing axes by loops (padding never wins a max)."""
    nd = len(window)
    sp = x.shape[x.ndim - nd:]
    out = tuple((n + lo + hi - k) // s + 1 for n, k, s, (lo, hi) in zip(sp, window, strides, pads))
    y = np.zeros(x.shape[:x.ndim - nd] + out)
    for o in np.ndindex(*out):
        vals, count = [], 0
        for t in np.ndindex(*window):
            pos = tuple(oi * s + ti - lo for oi, s, ti, (lo, _) in zip(o, strides, t, pads))
            if all(0 <= p < n for p, n in zip(pos, sp)):
                vals.append(x[(Ellipsis,) + pos].astype(np.float64))
                count += 1
        stack = np.stack(vals)
        if mode == "max":
            y[(Ellipsis,) + o] = stack.max(axis=0)
        elif mode == "sum":
            y[(Ellipsis,) + o] = stack.sum(axis=0)
        else:
            y[(Ellipsis,) + o] = stack.sum(axis=0) / (math.prod(window) if count_include_pad else count)
    return y


def fixture_cases(kind: str) -> list[tuple[dict, dict]]:
    """The JAX fixture's cases of one kind ('conv' or 'pool'): (meta, arrays)."""
    with np.load(FIXTURE, allow_pickle=False) as z:
        metas = json.loads(str(z["meta"]))
        out = []
        for k, meta in enumerate(metas):
            if meta["kind"] == kind:
                prefix = f"c{k}_"
                out.append((meta, {name[len(prefix):]: z[name] for name in z.files if name.startswith(prefix)}))
    return out


def pairwise(axes: dict) -> list[dict]:
    """A small set of grid points in which every pair of values of two axes occurs at least once
    (greedy, deterministic): the CI subset of a grid whose full product runs under
    SYMGRAPH_LONG_TESTS=1."""
    names = list(axes)
    points = [dict(zip(names, combo)) for combo in itertools.product(*axes.values())]

    def pairs(p):
        return {(a, p[a], b, p[b]) for a, b in itertools.combinations(names, 2)}
    todo = set().union(*(pairs(p) for p in points))
    chosen = []
    while todo:
        best = max(points, key=lambda p: len(pairs(p) & todo))
        chosen.append(best)
        todo -= pairs(best)
    return chosen
