"""Drawn loop bodies in the one-kernel loop: a body made of a drawn sequence of the forms the
kernel runs (elementwise work, reductions, a product, a reversal, a rotation by slicing and
concatenation, an ``sg.ifelse``, a random draw, indices and a window the step computes, softmax, a
gather and a scatter by index vectors, a promised shape), optionally a while loop, gives the numpy
backend's numbers in each form of the kernel."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import NO_OPENCL
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=NO_OPENCL or "")
if NO_OPENCL is None:
    from tests.test_scan_loop_kernel_random import FORMS, _compile, _loop_sources

_PARTS = [
    lambda c, x, w, r: c * 0.5 + x,
    lambda c, x, w, r: T.tanh(c) + 0.25,
    lambda c, x, w, r: c[::-1] - x * 0.5,
    lambda c, x, w, r: T.concatenate([c[1:], c[:1]]) * 0.9,
    lambda c, x, w, r: sg.ifelse(T.max(c) > 0.3, c - T.mean(c), c * 1.5 + 0.1),  # max: no rounding decides
    lambda c, x, w, r: c + T.max(x) * 0.1,
    lambda c, x, w, r: c + r.uniform(size=c.shape, low=-0.1, high=0.1, dtype="float64"),
    lambda c, x, w, r: T.tanh(T.dot(w, c)),
    lambda c, x, w, r: c + c[_index(c)] * 0.1 - c[_index(x) - c.shape[0]] * 0.2,  # indices the step computes
    lambda c, x, w, r: c * 0.8 + T.sum(c[_index(c):_index(c) + 1]) * 0.2,  # a window that moves
    lambda c, x, w, r: T.nnet.softmax(c[None, :] * 2.0)[0] + T.nnet.log_softmax(c) * 0.1,
    lambda c, x, w, r: T.inc_subtensor(c[(T.arange(c.shape[0]) * 2 - 1) % c.shape[0]], c[::-1] * 0.1),  # a scatter
    lambda c, x, w, r: c * 0.5 + c[(T.arange(c.shape[0]) + _index(x)) % c.shape[0]] * 0.3,  # a gather
]


def _index(v):
    """An index into ``v`` computed from its values (in range: 0 .. len - 1)."""
    return T.cast(T.floor(T.abs(v[0]) * 3.0), "int64") % v.shape[0]


def _body(parts: list[int], width: int, until: bool):
    x, w, c0 = T.dmatrix("x"), T.dmatrix("w"), T.dvector("c0")
    r = sg.RandomStream(seed=9)

    def step(xt, c, w):
        for k in parts:
            c = _PARTS[k](c, xt, w, r)
        c = T.specify_shape(c, (width,)) + T.dot(w, c) * 1e-3
        return (c, sg.until(T.sum(T.abs(c)) > 3.0 * width)) if until else c
    out, _ = sg.scan(step, sequences=[x], outputs_info=[c0], non_sequences=[w])
    return [x, w, c0], out


@pytest.mark.parametrize("form", FORMS)
@settings(deadline=None, max_examples=10)
@given(parts=st.lists(st.integers(0, len(_PARTS) - 1), min_size=1, max_size=5), width=st.integers(1, 6),
       steps=st.integers(1, 40), until=st.booleans(), seed=st.integers(0, 2**31))
def test_drawn_bodies_in_one_kernel_agree_with_the_numpy_backend(form, parts, width, steps, until, seed):
    rng = np.random.default_rng(seed)
    args = [rng.normal(size=(steps, width)), rng.normal(size=(width, width)) / width, rng.normal(size=width)]
    f = _compile(*_body(parts, width, until), "opencl", form)
    got, want = f(*args), sg.function(*_body(parts, width, until), backend="numpy")(*args)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert _loop_sources(f)
