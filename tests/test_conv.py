"""The convolution op (``Conv`` via T.conv, T.conv_general_dilated, T.nnet.conv2d and the
Theano gradient functions) on both backends, against independent references:

* the issue's grid (stride {1, 2, 3}, padding valid/same/full/asymmetric, dilation {1, 2}, groups
  {1, 2, C}, kernels 1x1/2x2/3x3, uneven sizes, N = C = 1, float32/float64, filter_flip both
  ways) against scipy.signal.correlate loops: a pairwise-covering subset in CI, the whole
  product with SYMGRAPH_LONG_TESTS=1; gradients on the same grid by finite differences
  (verify_grad, numpy backend) and the OpenCL gradients against the numpy backend's;
* JAX (tests/fixtures/conv_jax.npz): outputs, gradients and second derivatives, with static and
  with unknown shapes, including lhs dilation, batch groups, negative padding, 1-d and 3-d, and
  the gradient bugs other libraries shipped (strided input gradient with a remainder, dilation in
  the gradient padding, weight gradient with groups);
* hypothesis-drawn convolutions against scipy; errors; infer_shape; save/load."""
from __future__ import annotations

import itertools
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph import toposort
from symgraph.tensor import conv_numpy
from symgraph.tensor.convolution import Conv
from symgraph.testing import verify_grad
from conftest import BACKENDS
from conv_reference import fixture_cases, pairwise, ref_conv, same_pads
from test_reduction import check_infer_shape

LONG = os.environ.get("SYMGRAPH_LONG_TESTS") == "1" or os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TOL = {"float32": dict(rtol=2e-4, atol=2e-4), "float64": dict(rtol=1e-10, atol=1e-10)}

GRID = {"stride": [1, 2, 3], "padding": ["valid", "same", "full", "asym"], "dilation": [1, 2],
        "groups": [1, 2, "C"], "kernel": [1, 2, 3], "dtype": ["float32", "float64"], "flip": [False, True],
        "small": [False, True]}
FULL = [dict(zip(GRID, combo)) for combo in itertools.product(*GRID.values())]
CASES = FULL if LONG else pairwise(GRID)


def _case_id(c: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in c.items())


def grid_point(case: dict, spatial=(7, 6)) -> tuple:
    """Values, the graph builder and the reference of one grid point."""
    k, d, s = case["kernel"], case["dilation"], case["stride"]
    small, groups = case["small"], case["groups"]
    c = (1 if groups != 2 else 2) if small else {1: 3, 2: 4, "C": 3}[groups]
    g = c if groups == "C" else groups
    n = 1 if small else 2
    rng = np.random.default_rng(abs(hash(_case_id(case))) % 2**32)
    x = rng.standard_normal((n, c) + spatial).astype(case["dtype"])
    w = rng.standard_normal((2 * g, c // g, k, k)).astype(case["dtype"])
    dk = (k - 1) * d + 1
    mode = case["padding"]
    if mode == "valid":
        pads = [(0, 0), (0, 0)]
    elif mode == "full":
        pads = [(dk - 1, dk - 1)] * 2
    elif mode == "asym":
        pads = [(0, 2), (1, 0)]
    elif case["flip"]:  # Theano's 'half'
        pads = [(dk // 2, dk // 2)] * 2
    else:
        pads = [same_pads(size, k, s, d) for size in spatial]

    def build(X, W):
        if case["flip"]:
            border = {"same": "half", "asym": ((0, 2), (1, 0))}.get(mode, mode)
            return T.nnet.conv2d(X, W, border_mode=border, subsample=(s, s), filter_flip=True,
                                 filter_dilation=(d, d), num_groups=g)
        return T.conv(X, W, stride=s, padding=((0, 2), (1, 0)) if mode == "asym" else mode, dilation=d, groups=g)
    return x, w, build, ref_conv(x, w, (s, s), pads, (d, d), g, flip=case["flip"])


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_grid_matches_scipy(backend, case):
    x, w, build, ref = grid_point(case)
    X, W = T.tensor(x.dtype.name, (None,) * 4), T.tensor(w.dtype.name, (None,) * 4)
    y = build(X, W)
    got = sg.function([X, W], y, backend=backend)(x, w)
    assert got.dtype == x.dtype and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, **TOL[x.dtype.name])
    node = y.owner  # the Conv node (perform, the numpy reference implementation, and its shapes)
    extra = sg.function([X, W], list(node.inputs[2:]), on_unused_input="ignore")(x, w) if len(node.inputs) > 2 else []
    values = [x, w[:, :, ::-1, ::-1].copy() if case["flip"] else w] + list(extra)
    np.testing.assert_allclose(node.op.perform(node, values)[0], ref, **TOL[x.dtype.name])
    if node.op.padding is not None:  # a padding input depends on W's value graph, not only on lengths
        check_infer_shape(y, values)
    static = build(T.tensor(x.dtype.name, x.shape), T.tensor(w.dtype.name, w.shape))
    assert static.type.shape == ref.shape


GRAD_CASES = [c for c in CASES if c["dtype"] == "float64"] if LONG else [dict(c, dtype="float64") for c in CASES[::2]]


@pytest.mark.parametrize("case", GRAD_CASES, ids=_case_id)
def test_gradient_grid(backend, case):
    x, w, build, _ = grid_point(case, spatial=(6, 5))
    if backend == "numpy":
        verify_grad(build, [x, w], n_tests=1)
        return
    X, W = T.dtensor4(), T.dtensor4()
    y = build(X, W)
    proj = np.random.default_rng(0).standard_normal(sg.function([X, W], y)(x, w).shape)
    grads = sg.grad((y * proj).sum(), [X, W])
    want = sg.function([X, W], grads)(x, w)
    got = sg.function([X, W], grads, backend=backend)(x, w)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def _fixture_graph(meta: dict, static: bool, shapes: tuple):
    X = T.tensor("float64", shapes[0] if static else (None,) * len(shapes[0]))
    W = T.tensor("float64", shapes[1] if static else (None,) * len(shapes[1]))
    y = T.conv_general_dilated(X, W, meta["strides"], [tuple(p) for p in meta["padding"]], meta["lhs_dilation"],
                               meta["rhs_dilation"], meta["groups"], meta["batch_groups"])
    return X, W, y


CONV_FIXTURE = fixture_cases("conv")


@pytest.mark.parametrize("static", [True, False], ids=["static shapes", "unknown shapes"])
@pytest.mark.parametrize("case", CONV_FIXTURE, ids=[m["name"] for m, _ in CONV_FIXTURE])
def test_matches_jax_to_second_order(backend, case, static):
    meta, a = case
    X, W, y = _fixture_graph(meta, static, (a["x"].shape, a["w"].shape))
    gx, gw = sg.grad((y * a["proj"]).sum(), [X, W])
    tx, tw = sg.grad((T.tanh(y) * a["proj"]).sum(), [X, W])
    hx, hw = sg.grad((tx ** 2).sum() + (tw * W).sum(), [X, W])
    got = sg.function([X, W], [y, gx, gw, hx, hw], backend=backend)(a["x"], a["w"])
    for name, v in zip(["y", "gx", "gw", "hx", "hw"], got):
        np.testing.assert_allclose(v, a[name], rtol=1e-9, atol=1e-9, err_msg=f"{meta['name']}: {name}")
    if static:
        assert y.type.shape == a["y"].shape and all(isinstance(n.op.padding, tuple)
                                                     for n in _conv_nodes([gx, gw, hx, hw]))


def _conv_nodes(outs: list) -> list:
    return [n for n in toposort(outs) if isinstance(n.op, Conv)]


@pytest.mark.parametrize("name", ["bug: stride remainder", "bug: stride remainder, dilated",
                                  "bug: dilation in gradient padding", "bug: weight gradient with groups",
                                  "bug: weight gradient with groups, strided, dilated"])
def test_gradient_bug_cases_by_finite_differences(name):
    meta, a = next(c for c in CONV_FIXTURE if c[0]["name"] == name)
    verify_grad(lambda X, W: T.conv_general_dilated(X, W, meta["strides"], [tuple(p) for p in meta["padding"]],
                                                    None, meta["rhs_dilation"], meta["groups"]),
                [a["x"], a["w"]], n_tests=1)


def test_strided_input_gradient_rows_that_no_window_reads_are_zero():
    """in=8, k=3, stride 3, no padding: the last input row is read by no window (remainder 2)."""
    X, W = T.dtensor4(), T.dtensor4()
    y = T.conv(X, W, stride=3)
    gx = sg.grad(y.sum(), X)
    got = sg.function([X, W], gx)(np.ones((1, 1, 8, 8)), np.ones((1, 1, 3, 3)))
    assert got.shape == (1, 1, 8, 8)
    assert np.all(got[0, 0, 6:, :] == 0) and np.all(got[0, 0, :, 6:] == 0) and np.all(got[0, 0, :6, :6] == 1)


@st.composite
def conv_problems(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    sp = tuple(draw(st.integers(3, 7 if nd < 3 else 4)) for _ in range(nd))
    ks = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    if any(n + lo + hi < (k - 1) * d + 1 for n, k, d, (lo, hi) in zip(sp, ks, dil, pads)):
        pads = tuple(((k - 1) * d, hi) for k, d, (_, hi) in zip(ks, dil, pads))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    seed = draw(st.integers(0, 2**16))
    return nd, groups, sp, ks, strides, dil, pads, dtype, seed


@fixture_ok
@given(problem=conv_problems())
def test_random_convolutions_match_scipy(backend, problem):
    nd, groups, sp, ks, strides, dil, pads, dtype, seed = problem
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2 * groups) + sp).astype(dtype)
    w = rng.standard_normal((2 * groups, 2) + ks).astype(dtype)
    X, W = T.tensor(dtype, (None,) * x.ndim), T.tensor(dtype, (None,) * w.ndim)
    got = sg.function([X, W], T.conv(X, W, stride=strides, padding=pads, dilation=dil, groups=groups),
                      backend=backend)(x, w)
    np.testing.assert_allclose(got, ref_conv(x, w, strides, pads, dil, groups), **TOL[dtype])


def test_theano_gradient_functions_and_transpose(backend):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2))
    kw = dict(border_mode=((1, 0), (2, 1)), subsample=(2, 3), filter_dilation=(2, 1), num_groups=2)
    X, W, G = T.dtensor4(), T.dtensor4(), T.dtensor4()
    y = T.nnet.conv2d(X, W, **kw)
    g = rng.standard_normal(sg.function([X, W], y)(x, w).shape)
    want = sg.function([X, W, G], sg.grad((y * G).sum(), [X, W]), backend=backend)(x, w, g)
    gi = T.nnet.abstract_conv.conv2d_grad_wrt_inputs(G, W, x.shape, **kw)
    gw = T.nnet.abstract_conv.conv2d_grad_wrt_weights(X, G, w.shape, **kw)
    tr = T.nnet.conv2d_transpose(G, W, x.shape, border_mode=kw["border_mode"], input_dilation=(2, 3),
                                 filter_dilation=(2, 1), num_groups=2)
    got = sg.function([X, W, G], [gi, gw, tr], backend=backend, on_unused_input="ignore")(x, w, g)
    for a, b in zip(got, want + [want[0]]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    sym = T.nnet.abstract_conv.conv2d_grad_wrt_inputs(G, W, (None, None, T.lscalar("h"), 6), **kw)
    assert sym.type.shape[2] is None


def test_get_conv_output_shape_and_hints():
    shape = T.nnet.abstract_conv.get_conv_output_shape((2, 3, 7, 6), (4, 3, 3, 2), "half", (2, 1), (2, 1))
    assert shape == (2, 4, 4, 7)  # rows: (7 + 2 * 2 - 5) // 2 + 1; columns: 6 + 2 * 1 - 2 + 1
    X, W = T.dtensor4(), T.tensor("float64", (4, 3, 3, 3))
    assert T.nnet.conv2d(X, W, border_mode="full", input_shape=(None, 3, 5, 5)).owner.op.padding == ((2, 2), (2, 2))
    with pytest.raises(ShapeError, match="filter_shape"):
        T.nnet.conv2d(X, W, filter_shape=(4, 3, 5, 5))


def test_same_padding_and_unknown_kernel_shape(backend):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 2, 9, 8)), rng.standard_normal((3, 2, 4, 3))
    X, W = T.dtensor4(), T.dtensor4()  # kernel lengths unknown: 'same' padding computed in the graph
    y = T.conv(X, W, stride=(2, 3), padding="same")
    assert y.owner.op.padding is None
    got = sg.function([X, W], y, backend=backend)(x, w)
    pads = [same_pads(9, 4, 2, 1), same_pads(8, 3, 3, 1)]
    np.testing.assert_allclose(got, ref_conv(x, w, (2, 3), pads, (1, 1)), rtol=1e-12, atol=1e-12)
    verify_grad(lambda a, b: T.conv(a, b, stride=(2, 3), padding="same"), [x[:, :, :6, :5], w[:, :, :3, :2]],
                n_tests=1, backend=backend)


def test_bad_input_errors_name_the_problem_and_the_line(backend):
    X, W = T.dtensor4(), T.dtensor4()
    with pytest.raises(ShapeError, match="channels"):
        T.conv(T.tensor("float64", (None, 3, None, None)), T.tensor("float64", (4, 2, 3, 3)))
    with pytest.raises(GraphTypeError, match="float"):
        T.conv(T.itensor4(), W)
    with pytest.raises(GraphTypeError, match="4-d"):
        T.conv(T.dtensor3(), W)
    with pytest.raises(ValueError, match="padding"):
        T.conv(X, W, padding="bogus")
    with pytest.raises(ValueError, match="cannot both"):
        Conv((1, 1), ((0, 0), (0, 0)), feature_group_count=2, batch_group_count=2)
    f = sg.function([X, W], T.conv(X, W, groups=2), backend=backend)
    with pytest.raises(ShapeError, match=r"channels(.|\n)*test_conv.py"):
        f(np.zeros((1, 3, 5, 5)), np.zeros((2, 1, 3, 3)))


def test_save_load_round_trip(backend, tmp_path):
    rng = np.random.default_rng(0)
    X = T.dtensor4("x")
    W = sg.shared(rng.standard_normal((4, 2, 3, 3)), "W")
    y = T.max_pool(T.relu(T.conv(X, W, stride=2, padding="same")), (2, 2), padding=((0, 1), (0, 1)))
    loss = T.avg_pool(y, (2, 2), count_include_pad=False, padding=1).sum()
    f = sg.function([X], [loss, sg.grad(loss, W)], backend=backend)
    sg.save(f, tmp_path / "cnn.sgz")
    g = sg.load(tmp_path / "cnn.sgz")
    x = rng.standard_normal((2, 2, 9, 8))
    for a, b in zip(f(x), g(x)):
        np.testing.assert_array_equal(a, b)


def test_workspace_chunks_give_the_same_results(backend, monkeypatch):
    """A workspace bound far below one call's columns forces the chunked paths (numpy: positions of
    the weight-gradient products; OpenCL: the batch in im2col and col2im)."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((5, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3))
    X, W = T.dtensor4(), T.dtensor4()
    y = T.conv(X, W, stride=(2, 1), padding=1, groups=2)
    outs = [y] + sg.grad((y ** 2).sum(), [X, W])
    want = sg.function([X, W], outs, backend=backend)(x, w)
    monkeypatch.setattr(conv_numpy, "WORKSPACE", 64)
    if backend == "opencl":
        from symgraph.backends.opencl import kernels_conv  # only where pyopencl is installed
        monkeypatch.setattr(kernels_conv, "WORKSPACE_BYTES", 64)
    got = sg.function([X, W], outs, backend=backend)(x, w)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_opencl_runs_convolutions_and_pools_on_the_device():
    if "opencl" not in BACKENDS:
        pytest.skip("no OpenCL device")
    X, W = T.ftensor4(), T.ftensor4()
    y = T.max_pool(T.conv(X, W, stride=2, padding="same"), (2, 2))
    outs = [y] + sg.grad((y ** 2).sum(), [X, W])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a host fallback warns
        f = sg.function([X, W], outs, backend="opencl")
    names = " ".join(f.kernels)
    assert "im2col" in names and "col2im" in names and "pool_max" in names and "maxpoolgrad" in names
    assert "host" not in names


@pytest.mark.parametrize("stride", [1, 2])
def test_kernel_larger_than_input_gives_empty_output_and_zero_gradients(backend, stride):
    X, W = T.dtensor4(), T.dtensor4()
    y = T.conv(X, W, stride=stride)
    y_v, gx, gw = sg.function([X, W], [y] + sg.grad(y.sum(), [X, W]), backend=backend)(np.ones((1, 1, 2, 2)),
                                                                                         np.ones((1, 1, 3, 3)))
    assert y_v.shape == (1, 1, 0, 0) and gx.shape == (1, 1, 2, 2) and gw.shape == (1, 1, 3, 3)
    assert not gx.any() and not gw.any()
