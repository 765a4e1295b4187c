"""Stride-1 weight gradients on the numpy backend run by ``conv_numpy.by_output_shifted`` (the
input shifted by whole rows against the output gradient laid on the padded grid) when the
output has fewer positions than the "kernel" (the output gradient) has taps and the grid is
not much larger than it: checked against scipy correlate loops (conv_reference.ref_conv) and
against the gathering path it replaced (``by_output``), 1-d, 2-d and 3-d, on hypothesis data,
with a spy that the path was taken; and through ``sg.grad`` on both backends."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.tensor import conv_numpy
from conv_reference import ref_conv

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def weight_grad_ref(x, g, pads):
    """d sum(conv(x, w) * g) / dw for a stride-1 cross-correlation, from scipy loops."""
    return ref_conv(x.swapaxes(0, 1), g.swapaxes(0, 1), (1,) * (x.ndim - 2), pads, (1,) * (x.ndim - 2)).swapaxes(0, 1)


@fixture_ok
@given(nd=st.integers(1, 3), n=st.integers(1, 3), c=st.integers(1, 3), o=st.integers(1, 3), k=st.integers(1, 3),
       extra=st.integers(5, 9), lo=st.integers(0, 2), hi=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_shifted_weight_gradient_matches_references(monkeypatch, nd, n, c, o, k, extra, lo, hi, seed):
    rng = np.random.default_rng(seed)
    size = extra if nd < 3 else min(extra, 6)
    x = rng.normal(size=(n, c) + (size,) * nd)
    m = size + lo + hi - k + 1  # output length of the forward convolution per axis
    g = rng.normal(size=(n, o) + (m,) * nd)
    pads = [(lo, hi)] * nd
    taken = []
    real = conv_numpy.by_output_shifted
    monkeypatch.setattr(conv_numpy, "by_output_shifted", lambda *a: taken.append(1) or real(*a))
    got = conv_numpy.conv_numpy(x.swapaxes(0, 1), g.swapaxes(0, 1), (1,) * nd, pads, (1,) * nd, (1,) * nd, 1, 1,
                                "float64").swapaxes(0, 1)
    grid = (m + k - 1,) * nd
    expect_taken = math.prod((k,) * nd) < math.prod((m,) * nd) and math.prod(grid) <= 1.5 * m ** nd
    assert bool(taken) == expect_taken
    np.testing.assert_allclose(got, weight_grad_ref(x, g, pads), rtol=1e-10, atol=1e-10)
    old = conv_numpy.by_output(conv_numpy.padded(x.swapaxes(0, 1), pads, grid), g.swapaxes(0, 1), (1,) * nd,
                               (1,) * nd, 1, (k,) * nd).swapaxes(0, 1)
    np.testing.assert_allclose(got, old, rtol=1e-10, atol=1e-10)


def test_weight_gradient_through_grad(backend):
    """A 3x3 'same' convolution of 12x12 images (the shifted path on numpy), float32 and float64."""
    rng = np.random.default_rng(4)
    for dtype, tol in (("float64", 1e-10), ("float32", 2e-4)):
        x, w, g = (T.tensor(dtype, (None,) * 4, name) for name in "xwg")
        gw = sg.grad((T.conv(x, w, padding=1) * g).sum(), w)
        f = sg.function([x, w, g], gw, backend=backend)
        xv, wv, gv = (rng.normal(size=s).astype(dtype) for s in [(3, 4, 12, 12), (5, 4, 3, 3), (3, 5, 12, 12)])
        got = f(xv, wv, gv)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, weight_grad_ref(xv, gv, [(1, 1)] * 2), rtol=tol, atol=tol)
