"""Random draws on the dask backend: the numbers do not depend on chunking. A chunk of a draw
computes its own elements of the whole draw (chunks are whole rows, told their first row), so a
function on dask gives the numbers the numpy backend gives, for any chunks (a chunk computing
elements 0.. of its own drew the same numbers in every chunk)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import symgraph as sg
import symgraph.tensor as T

da = pytest.importorskip("dask.array")


def _draws(srng, x, v):
    """Draws of every layout (32- and 64-bit lanes, normal pairs, rejection sub-streams), shaped
    like a chunked argument, given as a constant size, and broadcast against one."""
    n, m = x.shape
    return [srng.uniform(size=x.shape) * x, srng.uniform(size=(n, m), dtype="float32"),
            srng.normal(size=x.shape), srng.normal(size=(n, m), dtype="float32") + v,
            T.nnet.dropout(x, 0.3, srng), srng.integers(0, 1000, size=x.shape),
            srng.binomial(n=5, p=T.nnet.sigmoid(x)), srng.uniform(size=(m,)) + x, srng.uniform(size=(n, 1)) * x]


def _functions(chunks):
    x, v = T.dmatrix("x"), T.dvector("v")
    srng = sg.RandomStream(11)
    outs = _draws(srng, x, v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return srng, sg.function([x, v], outs), sg.function([x, v], outs, backend="dask", chunks=chunks)


@given(n=st.integers(0, 9), m=st.integers(1, 6), rows=st.integers(1, 9), cols=st.integers(1, 6),
       lazy=st.booleans())
def test_draws_do_not_depend_on_chunking(n, m, rows, cols, lazy):
    srng, on_numpy, on_dask = _functions((rows, cols))
    x = np.linspace(-1, 1, n * m).reshape(n, m)
    v = np.arange(m, dtype=float)
    srng.seed(3)
    want = on_numpy(x, v)
    srng.seed(3)
    got = on_dask(da.from_array(x, chunks=(rows, cols)) if lazy else x, v)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, k
        np.testing.assert_array_equal(g, w, err_msg=f"draw {k}")


def test_a_vector_and_a_3d_draw_in_chunks_of_one_row():
    x3, u = T.dtensor3("x3"), T.dvector("u")
    srng = sg.RandomStream(5)
    outs = [srng.uniform(size=x3.shape) + x3, srng.normal(size=u.shape) * u]
    on_numpy = sg.function([x3, u], outs)
    on_dask = sg.function([x3, u], outs, backend="dask", chunks=1)
    a, b = np.ones((5, 2, 3)), np.ones(7)
    srng.seed(1)
    want = on_numpy(a, b)
    srng.seed(1)
    for g, w in zip(on_dask(a, b), want):
        np.testing.assert_array_equal(g, w)
    rows = on_dask(a, b)[0][:, 0, 0]
    assert len(set(rows.tolist())) == 5  # each row its own numbers
    assert [o.shape for o in on_dask(np.ones((0, 2, 3)), np.ones(0))] == [(0, 2, 3), (0,)]  # no rows
