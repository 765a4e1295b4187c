"""OpenCL matrix products: the register-blocked tiled kernel (what GPUs run) on shapes that do
and do not fill its tiles, transposed and batched operands, and the elementwise epilogue fused
into the product's store (bias + activation, SGD update, several outputs), on both the kernel
path and the host-BLAS path of CPU devices, against numpy."""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

pytest.importorskip("pyopencl")
from conftest import NO_OPENCL  # noqa: E402

if NO_OPENCL:
    pytest.skip(NO_OPENCL, allow_module_level=True)

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402
from symgraph.backends.opencl import get_runtime  # noqa: E402
from symgraph.backends.opencl.runtime import TRANSFERS  # noqa: E402

PATHS = ["kernel", "host_blas"]


@contextlib.contextmanager
def matmul_path(path: str):
    """Run products in the tiled kernel, or in host BLAS where the device allows it."""
    rt = get_runtime()
    if path == "host_blas" and not rt.zero_copy:
        pytest.skip("host BLAS is used only on zero-copy (CPU) devices")
    saved, rt.host_blas = rt.host_blas, path == "host_blas"
    try:
        yield
    finally:
        rt.host_blas = saved


def _fused_kernels(f) -> list[str]:
    return [name for name in f.kernels if name.startswith("matmul_")]


dims = st.integers(0, 140)


@settings(max_examples=25, deadline=None)
@given(m=dims, k=dims, n=dims, ta=st.booleans(), tb=st.booleans(),
       dtype=st.sampled_from(["float32", "int32", "bool"]), seed=st.integers(0, 2**16))
def test_tiled_kernel_matches_numpy(m, k, n, ta, tb, dtype, seed):
    rng = np.random.default_rng(seed)
    va = rng.integers(-3, 4, size=(k, m) if ta else (m, k)).astype(dtype)
    vb = rng.integers(-3, 4, size=(n, k) if tb else (k, n)).astype(dtype)
    a, b = T.tensor(dtype, (None, None), "a"), T.tensor(dtype, (None, None), "b")
    f = sg.function([a, b], T.dot(a.T if ta else a, b.T if tb else b), backend="opencl")
    with matmul_path("kernel"):
        got = f(va, vb)
    want = np.dot(va.T if ta else va, vb.T if tb else vb)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_batched_products_match_numpy(path):
    rng = np.random.default_rng(1)
    c, d, e = T.ftensor3("c"), T.ftensor3("d"), T.fmatrix("e")
    vc, vd, ve = (rng.normal(size=s).astype("float32") for s in [(3, 70, 9), (1, 9, 66), (9, 5)])
    f = sg.function([c, d, e], [T.matmul(c, d), T.matmul(c, e), T.matmul(c.dimshuffle(0, 2, 1)[:, :5], c)],
                    backend="opencl")
    with matmul_path(path):
        got = f(vc, vd, ve)
    for g, w in zip(got, [vc @ vd, vc @ ve, vc.transpose(0, 2, 1)[:, :5] @ vc]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=10, deadline=None)
@given(m=st.integers(1, 90), k=st.integers(1, 90), n=st.integers(1, 90), seed=st.integers(0, 2**16))
def test_bias_and_activation_run_in_the_products_store(path, m, k, n, seed):
    rng = np.random.default_rng(seed)
    vx, vw, vb = (rng.normal(size=s).astype("float32") for s in [(m, k), (k, n), (n,)])
    x, w, b = T.fmatrix("x"), T.fmatrix("w"), T.fvector("b")
    f = sg.function([x, w, b], T.relu(T.dot(x, w) + b), backend="opencl")
    assert len(_fused_kernels(f)) == 1 and "relu" in _fused_kernels(f)[0]
    assert not [name for name in f.kernels if name.startswith("fused_")]  # no separate elementwise kernel
    with matmul_path(path):
        np.testing.assert_allclose(f(vx, vw, vb), np.maximum(vx @ vw + vb, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("rate", ["constant", "argument", "shared"])
def test_sgd_update_fused_into_the_gradient_product(path, rate):
    """The learning rate as a constant, a scalar argument (kept on the host, passed to the kernel
    by value) or a shared scalar: the update runs in the product's store either way."""
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=(70, 20)).astype("float32")
    w = sg.shared(w0.copy(), "w")
    a, g, lr = T.fmatrix("a"), T.fmatrix("g"), T.fscalar("lr")
    step = {"constant": 0.01, "argument": lr, "shared": sg.shared(np.float32(0.01), "lr")}[rate]
    inputs = [a, g, lr] if rate == "argument" else [a, g]
    f = sg.function(inputs, [], updates=[(w, w - step * T.dot(a.T, g))], backend="opencl")
    assert len(_fused_kernels(f)) == 1 and "_fused_" in _fused_kernels(f)[0]
    assert len(f.kernels) == 1  # no separate elementwise kernel
    va, vg = rng.normal(size=(33, 70)).astype("float32"), rng.normal(size=(33, 20)).astype("float32")
    args = [va, vg, np.float32(0.01)] if rate == "argument" else [va, vg]
    with matmul_path(path):
        f(*args)
        f(*args)
    np.testing.assert_allclose(w.get_value(), w0 - 0.02 * (va.T @ vg), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_epilogues_with_several_outputs_constants_and_a_batch_axis(path):
    rng = np.random.default_rng(4)
    x, w, c = T.fmatrix("x"), T.fmatrix("w"), T.ftensor3("c")
    z = T.dot(x, w)
    y = T.matmul(c, w) * np.float32(2)  # one Elemwise with an inlined constant, over a batch axis
    f = sg.function([x, w, c], [T.tanh(z) + 1, T.exp(z) * z, y], backend="opencl")
    assert len(_fused_kernels(f)) == 2
    vx, vw, vc = (rng.normal(size=s).astype("float32") for s in [(17, 9), (9, 65), (2, 30, 9)])
    with matmul_path(path):
        got = f(vx, vw, vc)
    zv = vx @ vw
    for g, want in zip(got, [np.tanh(zv) + 1, np.exp(zv) * zv, (vc @ vw) * 2]):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("path", PATHS)
def test_epilogue_of_an_empty_inner_dimension(path):
    x, w, b = T.fmatrix("x"), T.fmatrix("w"), T.fvector("b")
    f = sg.function([x, w, b], T.dot(x, w) + b, backend="opencl")
    vb = np.arange(4, dtype="float32")
    with matmul_path(path):
        got = f(np.zeros((3, 0), "float32"), np.zeros((0, 4), "float32"), vb)
    np.testing.assert_array_equal(got, np.broadcast_to(vb, (3, 4)))


@pytest.mark.parametrize("path", PATHS)
def test_product_broadcast_larger_at_run_time_is_still_right(path):
    """A length-1 product axis broadcast against an epilogue input of unknown length: numpy's
    result, computed on the host for that call with a warning (the fused store cannot cover it)."""
    x, w, u = T.fmatrix("x"), T.fmatrix("w"), T.fmatrix("u")
    f = sg.function([x, w, u], T.dot(x, w) + u, backend="opencl")
    rng = np.random.default_rng(5)
    vx, vw, vu = (rng.normal(size=s).astype("float32") for s in [(1, 3), (3, 4), (5, 4)])
    with matmul_path(path), pytest.warns(RuntimeWarning, match="ran on the host"):
        got = f(vx, vw, vu)
    np.testing.assert_allclose(got, vx @ vw + vu, rtol=1e-5)
    c = T.matrix("c", dtype="bool")  # a lone Elemwise epilogue with an inlined constant
    g = sg.function([x, w, c], T.switch(c, T.dot(x, w), 0), backend="opencl")
    vc = vu > 0
    with matmul_path(path), pytest.warns(RuntimeWarning, match="ran on the host"):
        np.testing.assert_allclose(g(vx, vw, vc), np.where(vc, vx @ vw, 0), rtol=1e-5)
    with matmul_path(path), warnings.catch_warnings():
        warnings.simplefilter("error")  # the ordinary shapes stay on the device path
        np.testing.assert_allclose(f(vx, vw, vu[:1]), vx @ vw + vu[:1], rtol=1e-5)


def test_nan_guard_keeps_the_product_and_its_reader_apart():
    x, w, b = T.fmatrix("x"), T.fmatrix("w"), T.fvector("b")
    f = sg.function([x, w, b], T.relu(T.dot(x, w) + b), backend="opencl", nan_guard=True)
    assert _fused_kernels(f) and all("relu" not in name for name in _fused_kernels(f))


def test_product_read_elsewhere_is_not_fused():
    x, w = T.fmatrix("x"), T.fmatrix("w")
    z = T.dot(x, w)
    f = sg.function([x, w], [z, T.relu(z)], backend="opencl")
    assert all("relu" not in name for name in _fused_kernels(f))
    vx, vw = np.ones((3, 2), "float32"), -np.ones((2, 4), "float32")
    got = f(vx, vw)
    np.testing.assert_array_equal(got[0], vx @ vw)
    np.testing.assert_array_equal(got[1], np.zeros((3, 4)))


def _uploads(f, *args):
    """The call's result and how many host arrays it moved to the device (copied or wrapped)."""
    before = dict(TRANSFERS)
    got = f(*args)
    return got, sum(TRANSFERS[k] - before.get(k, 0) for k in ("to_device", "zero_copy_in"))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_host_scalar_joins_the_products_store_by_value(path, dtype):
    """``relu(x @ W + b) * s`` with ``s`` a 0-d argument: one kernel, ``s`` passed to it by value
    (no upload, no transfer line), on the kernel and host-BLAS paths, for an empty inner
    dimension too; values as on the numpy backend."""
    x, w, b, s = (T.tensor(dtype, (None,) * nd, name) for nd, name in [(2, "x"), (2, "w"), (1, "b"), (0, "s")])
    out = T.relu(T.dot(x, w) + b) * s
    f = sg.function([x, w, b, s], out, backend="opencl")
    ref = sg.function([x, w, b, s], out, backend="numpy")
    assert len(_fused_kernels(f)) == 1 and len(f.kernels) == 1
    assert "# transfer" not in f.source
    rng = np.random.default_rng(6)
    for m, k, n in [(37, 20, 70), (3, 0, 4)]:
        vals = [rng.normal(size=sh).astype(dtype) for sh in [(m, k), (k, n), (n,)]] + [np.asarray(-1.5, dtype)]
        with matmul_path(path):
            got, uploads = _uploads(f, *vals)
        if k:  # (an empty inner dimension uploads the product's zeros)
            assert uploads == 3  # x, W and b; never s
        np.testing.assert_allclose(got, ref(*vals), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_host_scalar_in_a_store_broadcast_larger_at_run_time(path):
    """The by-value scalar reaches the host evaluation of a product broadcast at run time too."""
    x, w, u, s = T.fmatrix("x"), T.fmatrix("w"), T.fmatrix("u"), T.fscalar("s")
    f = sg.function([x, w, u, s], (T.dot(x, w) + u) * s, backend="opencl")
    rng = np.random.default_rng(7)
    vx, vw, vu = (rng.normal(size=sh).astype("float32") for sh in [(1, 3), (3, 4), (5, 4)])
    with matmul_path(path), pytest.warns(RuntimeWarning, match="ran on the host"):
        got = f(vx, vw, vu, np.float32(3))
    np.testing.assert_allclose(got, (vx @ vw + vu) * 3, rtol=1e-5)
