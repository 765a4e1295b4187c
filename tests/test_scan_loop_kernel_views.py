"""Taps and indexing in the one-kernel loop (issue 15, build item 6): basic indexing whose indices
the plan knows is a view (a pointer offset and strides) and a concatenation copies each part into
its region, so Theano's taps (``dict(initial=x0, taps=[-2, -1])``, a window carry shifted by a
Join) and bodies slicing their state run in one kernel, with the numpy backend's numbers, in each
form of the kernel. A known index out of range runs step by step."""
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


def _both(inputs, outputs, args, form=(1, True)):
    got = _compile(inputs, outputs, "opencl", form)(*args)
    want = sg.function(inputs, outputs, backend="numpy")(*args)
    return got, want


@pytest.mark.parametrize("form", FORMS)
@settings(deadline=None, max_examples=5)
@given(taps=st.sampled_from([[-2, -1], [-3, -1], [-3, -2, -1], [-2]]), width=st.integers(1, 5),
       steps=st.integers(1, 20), seed=st.integers(0, 2**31))
def test_output_taps_run_in_one_kernel(form, taps, width, steps, seed):
    """x_t = sum of the fed-back values times tap weights: a linear recurrence of order -min(taps)."""
    depth = -min(taps)
    x0 = T.dmatrix("x0")
    weights = [0.5 + 0.25 * k for k in range(len(taps))]
    out, _ = sg.scan(lambda *prev: sum(w * p for w, p in zip(weights, prev)),
                     outputs_info=[{"initial": x0, "taps": taps}], n_steps=steps)
    init = np.random.default_rng(seed).normal(size=(depth, width))
    f = _compile([x0], out, "opencl", form)
    got, want = f(init), sg.function([x0], out, backend="numpy")(init)
    hist = list(init)
    for _ in range(steps):
        hist.append(sum(w * hist[len(hist) + t] for w, t in zip(weights, taps)))
    np.testing.assert_allclose(want, np.array(hist[depth:]).reshape(steps, width), rtol=1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert _loop_sources(f)


@pytest.mark.parametrize("form", FORMS)
def test_slices_reversals_integer_and_new_axes_of_a_carry(form):
    """A matrix carry read through c[::-1], c[1:, ::2], c[0], c[:, -1], c[None] and concatenated back."""
    c0 = T.dmatrix("c0")

    def step(c):
        flipped = c[::-1] * 0.5 + c[0][None, :] - c[:, -1][:, None] * 0.25
        head = T.concatenate([c[1:, ::2], c[:1, ::2]], axis=0)
        return T.concatenate([flipped[:, :1] + head[:, :1], flipped[:, 1:]], axis=1) + c[None][0] * 0.1
    out, _ = sg.scan(step, outputs_info=[c0], n_steps=9)
    init = np.random.default_rng(3).normal(size=(4, 5))
    got, want = _both([c0], out, [init], form)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    f = _compile([c0], out, "opencl", form)
    f(init)
    assert _loop_sources(f)


def test_a_known_index_out_of_range_runs_step_by_step():
    """(Indices the loop computes: tests/test_scan_loop_kernel_index.py.)"""
    x = T.dvector("x")
    out, _ = sg.scan(lambda c: c * 0.5 + c[4], outputs_info=[x], n_steps=2)
    g = _compile([x], out, "opencl")
    np.testing.assert_allclose(g(np.arange(5.0))[-1], np.arange(5.0) * 0.25 + 2 + 6)  # + 4 / 2, + (2 + 4)
    assert _loop_sources(g)  # c[4] of a 5-vector: a view
    with pytest.raises(IndexError, match="index 4 is out of bounds"):
        g(np.arange(3.0))  # declined for these shapes: the step-by-step loop raises numpy's error
    (summary,) = [v for k, v in g.kernels.items() if k.startswith("loop") and k not in _loop_sources(g)]
    assert "declined for input shapes [(3,)]: index 4 is out of bounds" in summary
