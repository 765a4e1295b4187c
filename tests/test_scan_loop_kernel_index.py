"""Indices the loop computes, in the one-kernel loop: ``data[i]`` where ``i`` is a carry, an element
of a sequence (Theano's ``sequences=T.arange(n)`` idiom) or a value the step computes, read by
the kernel when it reaches an element (a view moved along the axis at run time). numpy's rules:
negative indices count from the end, and one out of range raises numpy's IndexError, from the
step-by-step loop that the call falls back to, leaving every shared variable as it was. Each form
of the kernel gives the numpy backend's numbers."""
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


def _walk(rows: int, stride: int, start: int):
    """A carry index walking the rows of a matrix (``i -> (i + stride) % rows``, read before the
    step moves it, negative on odd steps), a sequence index picking columns, a computed index
    (``(i * 3 + t) % rows``, written back into the carry with set_subtensor at a run-time row)."""
    data, c0 = T.dmatrix("data"), T.dmatrix("c0")
    i0 = T.constant(np.int64(start))

    def step(t, i, c, d):
        k = T.cast((i * 3 + t) % rows, "int64")
        picked = d[i] * 0.5 + d[k][::-1] * 0.25 + d[:, t % d.shape[1]].sum() * 0.01
        row = c[-1 - (t % rows)] * 0.9 + picked
        nxt = T.set_subtensor(c[k], row)
        return [T.switch(T.eq(t % 2, 0), (i + stride) % rows, (i + stride) % rows - rows), nxt]
    (_, cs), _ = sg.scan(step, sequences=[T.arange(3 * rows)], outputs_info=[i0, c0], non_sequences=[data])
    return [data, c0], cs


@pytest.mark.parametrize("form", FORMS)
@settings(deadline=None, max_examples=4)
@given(rows=st.integers(2, 6), cols=st.integers(1, 5), stride=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_indices_the_loop_computes_run_in_one_kernel(form, rows, cols, stride, seed):
    inputs, out = _walk(rows, stride, seed % rows)
    rng = np.random.default_rng(seed)
    args = [rng.normal(size=(rows, cols)), rng.normal(size=(rows, cols))]
    f = _compile(inputs, out, "opencl", form)
    got, want = f(*args), sg.function(inputs, out, backend="numpy")(*args)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    (source,) = _loop_sources(f).values()
    assert "sg_index(" in source and "__global int *bad" in source


@pytest.mark.parametrize("form", FORMS)
def test_an_index_out_of_range_raises_numpys_error_and_loses_nothing(form):
    """i grows by one a step: past the data's length numpy raises; the kernel's flag sends the call
    to the step-by-step loop, which raises that error with the node's context, and the shared
    total keeps its value. A call in range still runs in one kernel afterwards."""
    data = T.dvector("data")
    total = sg.shared(np.float64(5.0), "total")
    (_, acc), _ = sg.scan(lambda i, a, d: [i + 1, a + d[i]], outputs_info=[T.constant(np.int64(0)), total],
                          non_sequences=[data], n_steps=4)
    f = _compile([data], acc[-1], "opencl", form, updates=[(total, acc[-1])])
    assert f(np.arange(1.0, 6.0)) == 15.0 and total.get_value() == 15.0
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 0 with size 3"):
        f(np.arange(3.0))
    assert total.get_value() == 15.0
    assert f(np.ones(4)) == 19.0
    assert len(_loop_sources(f)) == 3  # each length built a kernel; the one out of range fell back


def test_a_non_integer_or_vector_index_value_still_runs_step_by_step():
    """Advanced indexing by a vector the loop computes is not a view: that body runs step by step."""
    data, c0 = T.dvector("data"), T.dvector("c0")
    out, _ = sg.scan(lambda c, d: c + d[T.cast(c > 0, "int64")], outputs_info=[c0], non_sequences=[data],
                     n_steps=3)
    f = _compile([data, c0], out, "opencl")
    args = (np.array([1.0, 2.0]), np.array([-1.0, 0.5, 2.0]))
    np.testing.assert_allclose(f(*args), sg.function([data, c0], out, backend="numpy")(*args))
    assert not _loop_sources(f)
