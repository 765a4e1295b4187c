"""``check_rop_lop``: check ``sg.Rop`` and ``sg.Lop`` of a graph (Theano's RopLop_checker).

Rop (Jacobian times v) is compared with central finite differences along v; Lop (u times the
Jacobian) with Rop through the adjoint identity ``<u, J v> = <J^T u, v>``. One random v and u per
round, so every element of both is checked without building the Jacobian.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgraph.testing.verify import DEFAULT_EPS, DEFAULT_TOL, _least_precise


class RopLopError(AssertionError):
    """Rop disagrees with finite differences, or Lop with Rop."""


def check_rop_lop(fn: Callable[..., Any], point: Sequence[Any], n_tests: int = 2, rng: Any = None,
                  eps: float | None = None, abs_tol: float | None = None, rel_tol: float | None = None,
                  backend: str | None = None) -> None:
    """Check the R- and L-operators of ``fn`` (symbolic inputs -> one tensor) at ``point``."""
    import symgraph as sg
    import symgraph.tensor as T
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    point = [np.array(p, dtype=p.dtype if isinstance(p, np.ndarray) else sg.config.floatX) for p in point]
    xs = [T.tensor(p.dtype, shape=tuple(1 if s == 1 else None for s in p.shape), name=f"x{k}")
          for k, p in enumerate(point)]
    vs = [x.type.make_variable(f"v{k}") for k, x in enumerate(xs)]
    y = T.as_tensor_variable(fn(*xs))
    u = y.type.make_variable("u")
    rop = sg.Rop(y, xs, vs)
    lops = sg.Lop(y, xs, u, disconnected_inputs="ignore")
    f_y = sg.function(xs, y, backend=backend, on_unused_input="ignore")
    f_ops = sg.function(xs + vs + [u], [rop] + list(lops), backend=backend, on_unused_input="ignore")
    dtype = _least_precise([p.dtype.name for p in point] + [y.dtype])
    eps = DEFAULT_EPS[dtype] if eps is None else eps
    abs_tol = DEFAULT_TOL[dtype][0] if abs_tol is None else abs_tol
    rel_tol = DEFAULT_TOL[dtype][1] if rel_tol is None else rel_tol
    out_shape = np.shape(f_y(*point))
    for _ in range(n_tests):
        v = [rng.standard_normal(p.shape).astype(p.dtype) for p in point]
        uu = rng.standard_normal(out_shape).astype(y.dtype)
        got = f_ops(*point, *v, uu)
        jv, ju = np.asarray(got[0], np.float64), [np.asarray(g, np.float64) for g in got[1:]]
        plus = np.asarray(f_y(*[p + eps * d for p, d in zip(point, v)]), np.float64)
        minus = np.asarray(f_y(*[p - eps * d for p, d in zip(point, v)]), np.float64)
        numeric = (plus - minus) / (2 * eps)
        _close("Rop", jv, numeric, abs_tol, rel_tol, "finite differences along v")
        adjoint = sum(float(np.sum(g * d)) for g, d in zip(ju, v))
        _close("Lop", np.array(adjoint), np.array(float(np.sum(uu * jv))), abs_tol, rel_tol,
               "<u, Rop v> (the adjoint identity)")


def _close(what: str, got: np.ndarray, want: np.ndarray, abs_tol: float, rel_tol: float, against: str) -> None:
    if got.shape != want.shape:
        raise RopLopError(f"check_rop_lop: {what} has shape {got.shape}, expected {want.shape}")
    err = np.abs(got - want)
    bad = (err > abs_tol) & (err > rel_tol * np.maximum(np.abs(got) + np.abs(want), 1e-8))
    if bad.any() or np.isnan(got).any():
        with np.printoptions(precision=6, threshold=40):
            raise RopLopError(f"check_rop_lop: {what} disagrees with {against}:\n  {what}: {got}\n  expected: {want}")
