"""While loops (``sg.until``) in the one-kernel loop (issue 15, build items 5 and 6): the kernel
runs launches of 16, 32, 64, ... steps, each ending at the first step whose condition holds, and
the host reads two numbers after each launch (the steps run, whether one stopped). The results
are the numpy backend's in each form of the kernel, and the traces grow with the launches: a
loop of 10**6 allowed steps that stops at 10 never allocates more than 16 rows."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import NO_OPENCL
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.opencl import loop_kernel, loops

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=NO_OPENCL or "")
if NO_OPENCL is None:
    from tests.test_scan_loop_kernel_random import FORMS, _compile, _loop_sources


def _running_sum():
    """c_t = c_{t-1} + x_t (a vector carry), y_t = max(c_t) (stacked), stopping after the first
    step whose total exceeds ``lim``, at most ``n`` steps."""
    x, c0, lim, n = T.dmatrix("x"), T.dvector("c0"), T.dscalar("lim"), T.lscalar("n")

    def step(xt, c):
        new = c + xt
        return [new, new.max()], sg.until(new.sum() > lim)
    (cs, ys), _ = sg.scan(step, sequences=[x], outputs_info=[c0, None], n_steps=n)
    return [x, c0, lim, n], [cs, ys, cs[-1]]


@pytest.mark.parametrize("form", FORMS)
@settings(deadline=None, max_examples=8)
@given(width=st.integers(1, 9), stop=st.integers(0, 60), extra=st.integers(-3, 40), seed=st.integers(0, 2**31))
def test_while_loops_in_one_kernel_end_where_the_numpy_backend_ends(form, width, stop, extra, seed):
    """The loop stops after step ``stop`` (its running total first exceeds the limit there), or
    earlier where ``n`` (``stop + 1 + extra`` steps, at least 1) cuts it: launch boundaries at 16
    and 48 steps fall before, on and after the stop."""
    rng = np.random.default_rng(seed)
    xv = rng.uniform(0.5, 1.5, (110, width))
    c0 = np.zeros(width)
    totals = np.cumsum(xv.sum(axis=1))  # grow every step: x > 0
    limit = (totals[stop] + totals[stop - 1]) / 2 if stop else totals[0] / 2
    n = max(1, stop + 1 + extra)
    got = _compile(*_running_sum(), "opencl", form)
    want = sg.function(*_running_sum(), backend="numpy")
    for a, b in zip(got(xv, c0, limit, n), want(xv, c0, limit, n)):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    assert len(got(xv, c0, limit, n)[0]) == min(stop + 1, n)
    (src,) = _loop_sources(got).values()
    assert "if (cnd[0]) end = t + 1;" in src


def test_a_long_allowed_loop_that_stops_early_allocates_rows_for_the_steps_it_ran(monkeypatch):
    sizes = []
    rows, grown = loop_kernel._Spec._rows, loops.grown
    monkeypatch.setattr(loop_kernel._Spec, "_rows", lambda self, n: sizes.append(n) or rows(self, n))
    monkeypatch.setattr(loops, "grown", lambda buf, n, keep: sizes.append(n) or grown(buf, n, keep))
    v0 = T.dscalar("v0")
    vals, _ = sg.scan(lambda v: (v * 2, sg.until(v * 2 > 1000)), outputs_info=[v0], n_steps=10**6)
    f = _compile([v0], vals, "opencl")
    np.testing.assert_array_equal(f(1.0), 2.0 ** np.arange(1, 11))
    assert sizes == [16]  # one launch of 16 steps; it stopped at the tenth
    sizes.clear()
    assert len(f(2.0 ** -100)) == 110
    assert sizes == [16, 48, 112]  # launches of 16, 32 and 64 steps
    assert _loop_sources(f)
