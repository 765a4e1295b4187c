"""Shared by the T.linalg test files: hypothesis strategies for well-conditioned batched
matrices, references computed matrix by matrix with scipy (independent of the gufunc paths the
ops take), and compiling on a backend (OpenCL: the explicit, warned host fallback)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import toposort
from symgraph.tensor.linalg.base import LinalgOp

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])
TOL = {"float32": dict(rtol=2e-4, atol=2e-4), "float64": dict(rtol=1e-9, atol=1e-10)}


@st.composite
def stacks(draw, n=None, m=None, dtypes=("float32", "float64"), max_batch_dims=2, min_side=1, max_side=4):
    """A float array of shape batch + (n, m): batch of 0-2 axes (sides 1-3), entries in [-1, 1]."""
    dtype = draw(st.sampled_from(dtypes))
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=max_batch_dims, min_side=1, max_side=3))
    n = draw(st.integers(min_side, max_side)) if n is None else n
    m = n if m == "n" else draw(st.integers(min_side, max_side)) if m is None else m
    return draw(hnp.arrays(dtype, batch + (n, m), elements=st.floats(-1, 1, width=32)))


def general(x: np.ndarray) -> np.ndarray:
    """Strictly diagonally dominant, hence well-conditioned and nonsingular: x + (n + 1) I."""
    n = x.shape[-1]
    return (x + (n + 1) * np.eye(n)).astype(x.dtype)


def spd(x: np.ndarray) -> np.ndarray:
    """Symmetric positive definite with eigenvalues in [n, n + n^2]: x x^T + n I."""
    n = x.shape[-1]
    return (x @ np.swapaxes(x, -1, -2) + n * np.eye(n)).astype(x.dtype)


def per_matrix(fn, *arrays, cores=None):
    """``fn`` applied to each matrix of the broadcast batch (cores: trailing axes per argument),
    results stacked: a reference that never relies on a library's own batching."""
    cores = cores or [2] * len(arrays)
    batch = np.broadcast_shapes(*(a.shape[:a.ndim - c] for a, c in zip(arrays, cores)))
    arrays = [np.broadcast_to(a, batch + a.shape[a.ndim - c:]) for a, c in zip(arrays, cores)]
    results = [fn(*(np.asarray(a[i], np.float64) for a in arrays)) for i in np.ndindex(*batch)]
    if not isinstance(results[0], tuple):
        return np.array(results).reshape(batch + np.shape(results[0]))
    return tuple(np.array([r[k] for r in results]).reshape(batch + np.shape(results[0][k]))
                 for k in range(len(results[0])))


def compile_on(backend: str, inputs, outputs, **kw):
    """sg.function on ``backend``; on OpenCL every linalg op must run as a visible, warned host
    fallback (no device kernels exist for them)."""
    targets = (outputs if isinstance(outputs, list) else [outputs]) + [v for _, v in kw.get("updates", ())]
    host_ops = [n for n in toposort(targets) if isinstance(n.op, LinalgOp)]
    if backend != "opencl" or not host_ops:
        return sg.function(inputs, outputs, backend=backend, **kw)
    with pytest.warns(RuntimeWarning, match="runs on the host"):
        f = sg.function(inputs, outputs, backend=backend, **kw)
    assert any("HostFallback" in str(n.op) for n in f.graph.apply_nodes)
    return f


def declare(value: np.ndarray, static: bool):
    """A symbolic input for ``value``: fully static shape, or only its length-1 axes static."""
    shape = value.shape if static else tuple(1 if s == 1 else None for s in value.shape)
    return T.tensor(value.dtype.name, shape)

