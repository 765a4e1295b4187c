"""Scans inside a one-kernel loop's body (backends/opencl/loop_nested.py): the inner loop's steps
run in a ``for`` inside each outer step, its carries in two scratch regions used in turn, its
traces and stacked outputs in scratch rows, with the numpy backend's numbers in each form of the
kernel; inner draws differ at every inner and outer step; an inner while loop runs step by step."""
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


def _nested():
    """acc_t = h_T + 0.01 * sum_u h_u, h_u = tanh(0.5 h_{u-1} + x_t[u]), h_0 = acc_{t-1}."""
    xs = T.dtensor3("xs")

    def outer(x, acc):
        hs, _ = sg.scan(lambda xt, h: T.tanh(h * 0.5 + xt), sequences=[x], outputs_info=[acc])
        return hs[-1] + hs.sum(axis=0) * 0.01
    out, _ = sg.scan(outer, sequences=[xs], outputs_info=[T.zeros((3,))])
    return xs, out


@pytest.mark.parametrize("form", FORMS)
@settings(deadline=None, max_examples=5)
@given(outer=st.integers(1, 8), inner=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_a_loop_inside_the_body_runs_in_the_one_kernel(form, outer, inner, seed):
    xv = np.random.default_rng(seed).normal(size=(outer, inner, 3))
    xs, out = _nested()
    f = _compile([xs], out, "opencl", form)
    np.testing.assert_allclose(f(xv), sg.function([xs], out, backend="numpy")(xv), rtol=1e-12, atol=1e-14)
    (src,) = _loop_sources(f).values()
    assert f"for (long u0 = 0; u0 < {inner}; u0++)" in src


@pytest.mark.parametrize("form", FORMS)
def test_inner_draws_differ_at_every_inner_and_outer_step(form):
    results = []
    for backend in ("opencl", "numpy"):
        srng = sg.RandomStream(seed=3)

        def outer(acc, srng=srng):
            noise, _ = sg.scan(lambda: srng.uniform(size=(2,), dtype="float64"), n_steps=4)
            return acc + noise.sum(axis=0), noise
        (accs, noises), _ = sg.scan(outer, outputs_info=[T.zeros((2,)), None], n_steps=5)
        f = _compile([], noises, backend, form)
        results.append(f())
        if backend == "opencl" and form[0] == 1:
            (src,) = _loop_sources(f).values()
            assert "for (long u0 = 0; u0 < 4; u0++)" in src and "sg_uniform64(" in src
        elif backend == "opencl":  # a work-group of several items: pocl gave other numbers run to run
            assert not any("for (long u0" in v for v in _loop_sources(f).values())  # the inner loop: its own kernel
            assert any("random draws inside a nested loop" in v for k, v in f.kernels.items() if k.startswith("loop"))
    np.testing.assert_array_equal(results[0], results[1])
    assert len({float(v) for v in results[0].ravel()}) == results[0].size  # 5 x 4 x 2 different numbers


def test_an_inner_while_loop_runs_step_by_step():
    def outer(acc):
        vals, _ = sg.scan(lambda v: (v * 2.0, sg.until(v * 2.0 > 10.0)), outputs_info=[acc], n_steps=50)
        return vals[-1] - 9.0
    start = T.dscalar("start")
    out, _ = sg.scan(outer, outputs_info=[start], n_steps=3)
    f = _compile([start], out, "opencl")
    np.testing.assert_allclose(f(1.0), sg.function([start], out, backend="numpy")(1.0))
    summaries = [v for k, v in f.kernels.items() if k.startswith("loop")]
    assert any("Scan{for} runs step by step: Scan{while} has no one-kernel form" in v for v in summaries), summaries


def _rnn_training(backend: str, form: tuple):
    """A 2-4-1 tanh RNN fitting a sine over one 12-step sequence: 30 Adam steps in one call
    (``sg.scan_updates``), each step a forward scan and its gradient's reverse scan."""
    rng = np.random.default_rng(0)
    params = [sg.shared(rng.normal(0, 0.3, shape)) for shape in ((4, 4), (2, 4), (4, 1))]
    W, U, V = params
    x, y = T.dmatrix("x"), T.dvector("y")
    h, _ = sg.scan(lambda xt, h: T.tanh(T.dot(xt, U) + T.dot(h, W)), sequences=[x], outputs_info=[T.zeros((4,))])
    loss = T.mean((T.dot(h, V)[:, 0] - y) ** 2)
    losses, final = sg.scan_updates(sg.updates.adam(loss, params, learning_rate=0.01), n_steps=30, outputs=[loss])
    return _compile([x, y], losses[0], backend, form, updates=final), params


@pytest.mark.parametrize("form", FORMS)
def test_a_whole_bptt_training_loop_runs_in_one_kernel(form):
    """The training loop's body holds the forward scan, the reverse scan of its gradient (which
    slices its traces by lengths the loop passes in, and builds its gradient with set_subtensor
    and zeros), and Adam: all of it in one launch, with the numpy backend's numbers."""
    xv, yv = np.random.default_rng(1).normal(size=(12, 2)), np.sin(np.arange(12.0))
    (f, got), (g, want) = _rnn_training("opencl", form), _rnn_training("numpy", form)
    for _ in range(2):
        np.testing.assert_allclose(f(xv, yv), g(xv, yv), rtol=1e-10, atol=1e-13)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=1e-10, atol=1e-13)
    outer = [v for v in _loop_sources(f).values() if "for (long u0" in v]
    assert len(outer) == 1 and outer[0].count("for (long u0") == 2  # the forward and the reverse loop


@pytest.mark.parametrize("form", FORMS)
def test_set_and_inc_subtensor_zeros_and_index_arithmetic_of_loop_constants(form):
    """A body writing into parts of its state, with lengths and indices computed from an integer the
    call passes in (a loop constant: the kernel is specialised on its value)."""
    c0, k = T.dvector("c0"), T.lscalar("k")

    def step(c, k):
        head = T.set_subtensor(c[:k], c[k:2 * k] * 0.5)
        grown = T.inc_subtensor(head[1:k + 1], T.zeros((k,)) + c[k - 1])
        return grown * 0.9
    out, _ = sg.scan(step, outputs_info=[c0], non_sequences=[k], n_steps=6)
    f = _compile([c0, k], out, "opencl", form)
    g = sg.function([c0, k], out, backend="numpy")
    cv = np.random.default_rng(4).normal(size=7)
    for kv in (2, 3, 2):
        np.testing.assert_allclose(f(cv, kv), g(cv, kv), rtol=1e-12, atol=1e-14)
    assert len(_loop_sources(f)) == 2  # one specialisation per value of k


def test_only_integer_loop_constants_specialise_the_kernel():
    """The values a kernel is specialised on are integer inputs that feed indices (through integer
    arithmetic too), never a float that a cast turns into an index (its value would be truncated)."""
    from symgraph.backends.opencl.loop_support import index_inputs
    from symgraph.graph.inner import InnerGraph
    c, f, k, m = T.dvector("c"), T.dscalar("f"), T.lscalar("k"), T.lscalar("m")
    body = InnerGraph([c, f, k, m], [c[T.cast(f, "int64")] + c[k + 1] + T.cast(m, "float64")])
    assert index_inputs(body) == {2}  # k: an index through k + 1; f a float; m read as a value
