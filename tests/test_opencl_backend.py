"""OpenCL backend: readable generated kernels (one statement per op), long fused chains, strided
and broadcast inputs, shared variables resident on the device, failed calls leaving state
intact, host fallbacks made visible, and an MLP that trains the same on numpy and OpenCL."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

pytest.importorskip("pyopencl")
from conftest import NO_OPENCL  # noqa: E402

if NO_OPENCL:
    pytest.skip(NO_OPENCL, allow_module_level=True)

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402
from symgraph.backends.opencl import TRANSFERS  # noqa: E402
from symgraph.errors import ShapeError  # noqa: E402


def _max_paren_depth(src: str) -> int:
    depth = best = 0
    for c in src:
        depth += c in "(["
        depth -= c in ")]"
        best = max(best, depth)
    return best


def test_kernels_have_one_statement_per_op():
    x, y = T.fvector("x"), T.fvector("y")
    f = sg.function([x, y], T.sigmoid(x * y + 0.5) * T.tanh(x) - T.relu(y), backend="opencl")
    (name, src), = [(k, v) for k, v in f.kernels.items() if "strided" not in k]
    temps = re.findall(r"const float(?:16)? t\d+ = ", src)  # the one copy of the program (vector or scalar)
    assert len(temps) >= 6  # mul, add, sigmoid, tanh, mul, relu, sub: one named temporary each
    assert _max_paren_depth(src) <= 4
    assert "__kernel" in src and "get_global_id" in src
    a, b = np.linspace(-3, 3, 1000, dtype="float32"), np.linspace(2, -2, 1000, dtype="float32")
    want = 1 / (1 + np.exp(-(a * b + 0.5))) * np.tanh(a) - np.maximum(b, 0)
    np.testing.assert_allclose(f(a, b), want, rtol=1e-5, atol=1e-6)


def test_a_400_op_elementwise_chain_builds_and_matches_numpy():
    x = T.fvector("x")
    y = x
    for _ in range(200):  # 400 ops
        y = y * np.float32(0.99) + np.float32(0.01)
    f = sg.function([x], y, backend="opencl")
    src = "\n".join(f.kernels.values())
    assert _max_paren_depth(src) < 10
    v = np.linspace(-1, 1, 37, dtype="float32")
    want = v.astype(np.float64)
    for _ in range(200):
        want = want * 0.99 + 0.01
    np.testing.assert_allclose(f(v), want, rtol=1e-4)


@given(st.data())
def test_strided_transposed_and_broadcast_inputs(data):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=5))
    a = data.draw(hnp.arrays("float32", shape, elements=st.floats(-3, 3, width=32)))
    b = data.draw(hnp.arrays("float32", shape[-1:], elements=st.floats(-3, 3, width=32)))
    x, y = T.tensor("float32", (None,) * len(shape)), T.fvector()
    f = sg.function([x, y], [T.exp(x.T) * y[:, None] if len(shape) == 2 else T.exp(x) * y, x.T.sum(axis=0)],
                    backend="opencl")
    got = f(a, b)
    want = [np.exp(a.T) * b[:, None] if len(shape) == 2 else np.exp(a) * b, a.T.sum(axis=0)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@given(st.data())
def test_strided_inputs_of_any_rank(data):
    """Up to 6 axes, x a permuted view, y broadcast along random axes: the kernel's 3-D launch
    where the axes collapse to three, its flat launch where they do not."""
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=6, min_side=1, max_side=4), "shape")
    perm = data.draw(st.permutations(range(len(shape))), "perm")
    base = data.draw(hnp.arrays("float32", tuple(shape[p] for p in perm), elements=st.floats(-3, 3, width=32)))
    a = base.transpose(np.argsort(perm))
    yshape = tuple(n if data.draw(st.booleans(), f"keep axis {d}") else 1 for d, n in enumerate(shape))
    b = data.draw(hnp.arrays("float32", yshape, elements=st.floats(-3, 3, width=32)))
    x, y = T.tensor("float32", (None,) * len(shape)), T.tensor("float32", (None,) * len(shape))
    f = sg.function([x, y], T.exp(x) * y + x, backend="opencl")
    np.testing.assert_allclose(f(a, b), np.exp(a) * b + a, rtol=1e-5, atol=1e-5)


def test_collapse_axes_merges_what_every_operand_walks_as_one():
    from symgraph.backends.opencl.kernels_elemwise import collapse_axes
    # a C-contiguous (2, 3, 4) and a row broadcast along axis 0: axes 1 and 2 merge, axis 0 stays
    assert collapse_axes((2, 3, 4), [[12, 4, 1], [0, 4, 1]], 3) == ([1, 2, 12], [[0, 12, 1], [0, 0, 1]])
    assert collapse_axes((1, 5, 1), [[5, 1, 1]], 2) == ([1, 5], [[0, 1]])
    # a transposed (3, 4) view cannot merge, and four alternating axes do not fit in three
    assert collapse_axes((3, 4), [[1, 3]], 3) == ([1, 3, 4], [[0, 1, 3]])
    assert collapse_axes((2, 2, 2, 2), [[1, 2, 4, 8]], 3) is None


def _moved(before: dict, way: str) -> int:
    """Arrays moved in ('in') or out ('out') since ``before``: copies plus zero-copy hand-overs."""
    keys = ("to_device", "zero_copy_in") if way == "in" else ("to_host", "zero_copy_out")
    return sum(TRANSFERS[k] - before.get(k, 0) for k in keys)


def _step_function():
    w = sg.shared(np.zeros(3, dtype="float32"), "w")
    x = T.fvector("x")
    f = sg.function([x], (w * x).sum(), updates=[(w, w + x)], backend="opencl")
    return w, f


def test_shared_state_stays_on_the_device_between_calls():
    w, f = _step_function()
    x = np.array([1, 2, 3], dtype="float32")
    f(x)  # first call uploads w
    before = dict(TRANSFERS)
    for _ in range(5):
        f(x)
    # per call: the input goes in, the output comes back (without a copy on a zero-copy CPU device); w never crosses
    assert _moved(before, "in") == 5 and _moved(before, "out") == 5
    if f._impl.runtime.zero_copy:
        assert TRANSFERS["to_device"] == before.get("to_device", 0)
        assert TRANSFERS["to_host"] == before.get("to_host", 0)
    assert w.container.value is None and w.container.device is not None
    np.testing.assert_allclose(w.get_value(), 6 * x)
    w.set_value(np.ones(3, dtype="float32"))  # a host value again: uploaded on the next call
    assert float(f(x)) == pytest.approx(6.0)
    np.testing.assert_allclose(w.get_value(), 1 + x)


def test_a_failed_call_leaves_shared_variables_intact():
    w = sg.shared(np.arange(3, dtype="float32"), "w")
    x = T.fvector("x")
    f = sg.function([x], (w * 2).sum(), updates=[(w, w + x)], backend="opencl")
    f(np.ones(3, dtype="float32"))
    with pytest.raises(ShapeError):
        f(np.ones(4, dtype="float32"))
    np.testing.assert_allclose(w.get_value(), [1, 2, 3])
    f(np.ones(3, dtype="float32"))
    np.testing.assert_allclose(w.get_value(), [2, 3, 4])


def test_host_fallback_is_explicit():
    from symgraph.backends.opencl import lowering
    from symgraph.tensor.nnet import Softmax
    lower = lowering.TABLE.remove(Softmax)
    x = T.fmatrix("x")
    try:
        with pytest.warns(RuntimeWarning, match="runs on the host"):
            f = sg.function([x], T.softmax(x) * 2, backend="opencl")
    finally:
        lowering.TABLE.register(Softmax)(lower)
    assert any("HOST FALLBACK" in src for src in f.kernels.values())
    assert any("HostFallback" in str(n.op) for n in f.graph.apply_nodes)
    v = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    e = np.exp(v - v.max(1, keepdims=True))
    np.testing.assert_allclose(f(v), 2 * e / e.sum(1, keepdims=True), rtol=1e-5)


def test_matmul_with_transposed_operands_needs_no_copy():
    a, b = T.fmatrix("a"), T.fmatrix("b")
    f = sg.function([a, b], T.dot(a.T, b.T), backend="opencl")
    assert not any(k.startswith("copy") for k in f.kernels)
    rng = np.random.default_rng(1)
    va, vb = rng.normal(size=(37, 19)).astype("float32"), rng.normal(size=(23, 37)).astype("float32")
    np.testing.assert_allclose(f(va, vb), va.T @ vb.T, rtol=1e-4, atol=1e-4)


def _train_mlp(backend: str, steps: int = 100) -> list[float]:
    rng = np.random.default_rng(42)
    xs = rng.normal(size=(64, 8)).astype("float32")
    ys = np.eye(3, dtype="float32")[rng.integers(0, 3, 64)]
    w1 = sg.shared((rng.normal(size=(8, 16)) * 0.3).astype("float32"), "w1")
    b1 = sg.shared(np.zeros(16, "float32"), "b1")
    w2 = sg.shared((rng.normal(size=(16, 3)) * 0.3).astype("float32"), "w2")
    b2 = sg.shared(np.zeros(3, "float32"), "b2")
    x, y = T.fmatrix("x"), T.fmatrix("y")
    h = T.relu(T.dot(x, w1) + b1)
    p = T.softmax(T.dot(h, w2) + b2)
    loss = T.categorical_crossentropy(p, y).mean()
    params = [w1, b1, w2, b2]
    grads = sg.grad(loss, params)
    step = sg.function([x, y], loss, updates=[(q, q - np.float32(0.5) * g) for q, g in zip(params, grads)],
                       backend=backend)
    return [float(step(xs, ys)) for _ in range(steps)]


def test_mlp_training_matches_numpy_backend():
    with sg.config.change_flags(floatX="float32"):
        ref = _train_mlp("numpy")
        before = dict(TRANSFERS)
        got = _train_mlp("opencl")
    assert ref[-1] < ref[0] * 0.7
    np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-4)
    # x, y in and the loss out per step, plus 4 parameter uploads: no parameter round trips
    assert _moved(before, "in") <= 2 * 100 + 4 + 8
    assert _moved(before, "out") == 100


def test_results_never_share_memory_with_inputs_or_shared_state():
    w = sg.shared(np.arange(3, dtype="float32"), "w")
    x = T.fvector("x")
    f = sg.function([x], [x, w, x.T * 1, w * 2], updates=[(w, x)], backend="opencl")
    v = np.ones(3, "float32")
    out_x, out_w, _, doubled = f(v)
    assert not np.shares_memory(out_x, v)
    out_x[:] = 7  # the caller owns its results: writing them changes nothing inside
    out_w[:] = 9
    v[:] = 5  # nor does writing the argument after the call (w was updated to a copy of it)
    np.testing.assert_array_equal(w.get_value(), [1, 1, 1])
    np.testing.assert_array_equal(doubled, [0, 2, 4])
    np.testing.assert_array_equal(f(np.full(3, 2, "float32"))[3], [2, 2, 2])


@pytest.mark.parametrize("host_blas", [False, True])
def test_matmul_kernel_and_host_blas_paths_match_numpy(host_blas):
    a, b, c = T.fmatrix("a"), T.fmatrix("b"), T.ftensor3("c")
    f = sg.function([a, b, c], [T.dot(a.T, b), T.matmul(c, b), T.dot(a[:, 0], b)], backend="opencl")
    rt = f._impl.runtime
    if host_blas and not rt.zero_copy:
        pytest.skip("host BLAS is used only on zero-copy (CPU) devices")
    rng = np.random.default_rng(2)
    va, vb, vc = (rng.normal(size=s).astype("float32") for s in [(19, 33), (19, 5), (3, 7, 19)])
    saved, rt.host_blas = rt.host_blas, host_blas  # the tiled kernel is what GPUs run
    try:
        got = f(va, vb, vc)
    finally:
        rt.host_blas = saved
    for g, w in zip(got, [va.T @ vb, vc @ vb, va[:, 0] @ vb]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
