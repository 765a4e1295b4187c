"""``sg.ifelse`` in the one-kernel loop (issue 15, build item 6; the branches issue): each side's
nodes are planned as steps of their own and the kernel runs ``if (condition) { ... } else { ... }``
every step, so a training loop that clips its update by a norm, or a body that branches on its
state, still runs in one launch, with the numpy backend's numbers, in each form of the kernel.
Sides that give different shapes run step by step."""
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


def _clipped_walk(width: int, limit: float):
    """c_t = clip(c_{t-1}, norm <= limit) * 0.9 + x_t, and a stacked flag: whether the clip ran."""
    x = T.dmatrix("x")

    def step(xt, c):
        norm = T.sqrt(T.sum(c * c))
        over = norm > limit
        clipped = sg.ifelse(over, c * (limit / norm), c)
        return [clipped * 0.9 + xt, T.cast(over, "float64")]
    (cs, flags), _ = sg.scan(step, sequences=[x], outputs_info=[T.zeros((width,)), None])
    return x, [cs, flags]


@pytest.mark.parametrize("form", FORMS)
@settings(deadline=None, max_examples=6)
@given(width=st.integers(1, 9), steps=st.integers(1, 30), limit=st.floats(0.5, 6.0), seed=st.integers(0, 2**31))
def test_a_norm_clip_runs_in_one_kernel(form, width, steps, limit, seed):
    xv = np.random.default_rng(seed).normal(size=(steps, width))
    x, outs = _clipped_walk(width, limit)
    f = _compile([x], outs, "opencl", form)
    got, want = f(xv), sg.function([x], outs, backend="numpy")(xv)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    (src,) = _loop_sources(f).values()
    assert "/* IfElse" in src


@pytest.mark.parametrize("form", FORMS)
def test_nested_branches_reductions_and_draws_on_either_side(form):
    """An ifelse inside a side of another; a side with a product and a sum; a dropout draw on one
    side only (the other side draws nothing)."""
    results = []
    for backend in ("opencl", "numpy"):
        srng = sg.RandomStream(seed=5)
        x, w = T.dmatrix("x"), T.dmatrix("w")

        def step(xt, c, w=w, srng=srng):
            big = T.sum(c) > 2.0
            inner = sg.ifelse(T.max(c) > 1.0, T.tanh(T.dot(w, c)), c - T.mean(c))
            return sg.ifelse(big, inner * 0.5, T.nnet.dropout(c, 0.3, srng) + xt)
        out, _ = sg.scan(step, sequences=[x], outputs_info=[T.ones((4,)) * 0.5], non_sequences=[w])
        f = _compile([x, w], out, backend, form)
        rng = np.random.default_rng(2)
        results.append(f(rng.uniform(0, 1, (25, 4)), rng.normal(size=(4, 4))))
        if backend == "opencl":
            (src,) = _loop_sources(f).values()
            assert src.count("/* IfElse") == 2 and "sg_bernoulli64(" in src
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12, atol=1e-14)
    assert len({round(float(v), 6) for v in results[0][:, 0]}) > 5  # it moves


def test_sides_of_different_shapes_run_step_by_step():
    """The taken side decides the output's shape (here always the second, of 2 elements): one
    kernel cannot, so each call runs step by step, with the numpy backend's numbers."""
    c0 = T.dvector("c0")
    (cs, ys), _ = sg.scan(lambda c: [c + 1.0, sg.ifelse(T.sum(c) > 100.0, c[:1], c[1:]) * 2.0],
                          outputs_info=[c0, None], n_steps=3)
    f = _compile([c0], ys, "opencl")
    np.testing.assert_allclose(f(np.arange(3.0)), [[2.0, 4.0], [4.0, 6.0], [6.0, 8.0]])
    assert not _loop_sources(f)
    (summary,) = [v for k, v in f.kernels.items() if k.startswith("loop")]
    assert "the sides give shapes (1,) and (2,)" in summary
