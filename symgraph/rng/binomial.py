"""Binomial(n, p) from the counter-based stream, vectorised over elements.

With p' = min(p, 1 - p) (the result is reflected, n - k, when p > 1/2):

- n p' < 10: inversion (sequential search of the CDF from 0, the pmf by its recurrence
  ``f(k) = f(k-1) * ((n + 1) s / k - s)`` with s = p'/(1 - p'), f(0) = (1 - p')**n by repeated
  squaring). Only + - * / and sqrt: exactly the same on every IEEE backend. A search passing the
  bound min(n, n p' + 10 sqrt(n p' q + 1)) restarts with the element's next uniform.
- otherwise Hormann's BTRS (transformed rejection with squeeze, 1993), two uniforms per try.

Try t of element i reads 64-bit lane i of sub-streams t (inversion) or 2t and 2t + 1 (BTRS), so
no element's result depends on another's. The OpenCL helper (backends/opencl/kernels_random.py)
is the same algorithm per element; BTRS uses log and lgamma, whose last bits may differ between
math libraries, so its results can differ between backends in the rare draws that land on a
rejection boundary.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.special as sps

from symgraph.rng.draws import Counter, Key, sub_counter
from symgraph.rng.philox import words64_at

INVERSION_LIMIT = 10.0
_UNIT = 2.0 ** -53


def _uniform_at(key: Key, counter: Counter, sub: int, idx: np.ndarray) -> np.ndarray:
    """The float64 uniform [0, 1) of sub-stream ``sub`` at element indices ``idx`` (ascending)."""
    w = words64_at(key, sub_counter(counter, sub), idx.astype(np.uint64))
    return (w >> np.uint64(11)).astype(np.float64) * _UNIT


def powi(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """x ** n for integer n >= 0 by repeated squaring (the same products on every backend)."""
    r, x, n = np.ones_like(x), x.copy(), n.copy()
    while np.any(n):
        odd = (n & 1).astype(bool)
        r[odd] *= x[odd]
        x *= x
        n >>= 1
    return r


def _inversion(key: Key, counter: Counter, idx: np.ndarray, n_int: np.ndarray, p: np.ndarray) -> np.ndarray:
    n = n_int.astype(np.float64)
    q = 1.0 - p
    s = p / q
    a = (n + 1.0) * s
    r0 = powi(q, n_int)
    bound = np.minimum(n, np.floor(n * p + 10.0 * np.sqrt(n * p * q + 1.0)))
    out = np.zeros(idx.size, np.int64)
    pending = np.arange(idx.size)
    t = 0
    while pending.size:
        u = _uniform_at(key, counter, t, idx[pending])
        r = r0[pending].copy()
        k = np.zeros(pending.size, np.int64)
        live = np.arange(pending.size)
        retry = []
        while live.size:
            go = u[live] > r[live]
            done = live[~go]
            out[pending[done]] = k[done]
            live = live[go]
            u[live] -= r[live]
            k[live] += 1
            over = k[live] > bound[pending[live]]
            retry.append(live[over])
            live = live[~over]
            r[live] *= a[pending[live]] / k[live] - s[pending[live]]
        pending = pending[np.sort(np.concatenate(retry))] if retry else pending[:0]
        t += 1
    return out


def _btrs(key: Key, counter: Counter, idx: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    q = 1.0 - p
    spq = np.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = np.log(p / q)
    m = np.floor((n + 1) * p)
    h = sps.gammaln(m + 1.0) + sps.gammaln(n - m + 1.0)
    out = np.zeros(idx.size, np.int64)
    pending = np.arange(idx.size)
    t = 0
    while pending.size:
        j = pending
        u = _uniform_at(key, counter, 2 * t, idx[j]) - 0.5
        v = _uniform_at(key, counter, 2 * t + 1, idx[j])
        us = 0.5 - np.abs(u)
        kf = np.floor((2.0 * a[j] / us + b[j]) * u + c[j])
        inside = (kf >= 0) & (kf <= n[j])
        ok = inside & (us >= 0.07) & (v <= vr[j])
        slow = inside & ~ok
        kk = np.where(slow, kf, 0.0)
        bound = h[j] - sps.gammaln(kk + 1.0) - sps.gammaln(n[j] - kk + 1.0) + (kk - m[j]) * lpq[j]
        v2 = np.log(v * alpha[j] / (a[j] / (us * us) + b[j]))
        ok |= slow & (v2 <= bound)
        out[j[ok]] = kf[ok].astype(np.int64)
        pending = j[~ok]
        t += 1
    return out


def binomial(key: Key, counter: Counter, start: int, count: int, n: Any, p: Any) -> np.ndarray:
    """Binomial(n, p) draws (int64) for elements ``start .. start + count - 1``."""
    n = np.broadcast_to(np.asarray(n, np.int64), (count,))
    p = np.broadcast_to(np.asarray(p, np.float64), (count,))
    bad = (n < 0) | ~((p >= 0) & (p <= 1))
    if np.any(bad):
        k = int(np.argmax(bad))
        raise ValueError(f"binomial: needs n >= 0 and 0 <= p <= 1, got n={n[k]}, p={p[k]}")
    flip = p > 0.5
    pp = np.where(flip, 1.0 - p, p)
    res = np.zeros(count, np.int64)
    idx = np.arange(start, start + count, dtype=np.int64)
    live = (n > 0) & (pp > 0)
    with np.errstate(all="ignore"):
        inv = live & (n * pp < INVERSION_LIMIT)
        rej = live & ~inv
        if inv.any():
            res[inv] = _inversion(key, counter, idx[inv], n[inv], pp[inv])
        if rej.any():
            res[rej] = _btrs(key, counter, idx[rej], n[rej].astype(np.float64), pp[rej])
    return np.where(flip, n - res, res)
