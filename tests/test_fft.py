"""T.fft.rfft / irfft (Theano's layout: batch first, real and imaginary parts last) against
numpy.fft on hypothesis shapes, on both backends (OpenCL runs them as explicit host fallbacks),
for every norm; gradients by finite differences."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError
from symgraph.testing import check_infer_shape, verify_grad

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                      max_examples=10)
SCALE = {None: lambda n: 1.0, "ortho": lambda n: 1 / np.sqrt(n), "no_norm": lambda n: 1.0}
INVERSE = {None: lambda n: 1.0, "ortho": lambda n: np.sqrt(n), "no_norm": lambda n: float(n)}


def _compile(backend, inputs, out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # host fallbacks on OpenCL
        return sg.function(inputs, out, backend=backend)


@fixture_ok
@given(st.lists(st.integers(1, 5), min_size=2, max_size=3), st.sampled_from([None, "ortho", "no_norm"]),
       st.sampled_from(["float32", "float64"]))
def test_rfft_and_irfft_match_numpy(backend, shape, norm, dtype):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
    axes = tuple(range(1, x.ndim))
    n = int(np.prod(shape[1:]))
    v = T.tensor(dtype, (None,) * x.ndim, name="v")
    got = _compile(backend, [v], T.fft.rfft(v, norm=norm))(x)
    spectrum = np.fft.rfftn(x, axes=axes) * SCALE[norm](n)
    tol = 1e-4 if dtype == "float32" else 1e-10
    assert got.dtype == x.dtype and got.shape == spectrum.shape + (2,)
    np.testing.assert_allclose(got[..., 0], spectrum.real, rtol=tol, atol=tol)
    np.testing.assert_allclose(got[..., 1], spectrum.imag, rtol=tol, atol=tol)
    s = T.tensor(dtype, (None,) * (x.ndim + 1), name="s")
    back = _compile(backend, [s], T.fft.irfft(s, norm=norm, is_odd=shape[-1] % 2 == 1))(got)
    np.testing.assert_allclose(back, x * SCALE[norm](n) * INVERSE[norm](n), rtol=tol, atol=tol)


@pytest.mark.parametrize("odd", [False, True])
def test_fft_gradients(odd):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7 if odd else 6))
    spectrum = np.fft.rfftn(x, axes=(1, 2))
    a = np.stack([spectrum.real, spectrum.imag], -1)
    for norm in (None, "ortho", "no_norm"):
        verify_grad(lambda v: T.fft.rfft(v, norm=norm), [x])
        verify_grad(lambda v: T.fft.irfft(v, norm=norm, is_odd=odd), [a])
    v = T.dtensor3("v")
    check_infer_shape(lambda u: T.fft.rfft(u), [v], [x])


def test_fft_bad_input():
    with pytest.raises(GraphTypeError, match="at least 2 dimensions"):
        T.fft.rfft(T.dvector())
    with pytest.raises(GraphTypeError, match="float input"):
        T.fft.rfft(T.imatrix())
    with pytest.raises(ValueError, match="norm must be"):
        T.fft.rfft(T.dmatrix(), norm="forward")
    with pytest.raises(ValueError, match="is_odd"):
        T.fft.irfft(T.dtensor3(), is_odd=1)
