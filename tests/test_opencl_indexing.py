"""OpenCL indexing kernels against numpy: gather with index arrays mixed with slices, integers and
newaxis; set/inc_subtensor with repeated and negative indices (inc bitwise equal to np.add.at);
IndexError for out-of-range indices (deferred device check, naming the node); one_hot; tensordot;
bool matmul; and an MLP with integer labels and an embedding lookup that runs with no host fallback."""
from __future__ import annotations

import warnings

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


def _cl(inputs, outputs, **kw):
    """Compile for OpenCL; any host fallback warning fails the test."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="opencl backend", category=RuntimeWarning)
        return sg.function(inputs, outputs, backend="opencl", on_unused_input="ignore", **kw)


@st.composite
def index_case(draw):
    """An array and a numpy index mixing integer arrays (repeated, negative), slices, ints and newaxis."""
    dtype = draw(st.sampled_from(["float32", "float64", "int32"]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    value = np.arange(np.prod(shape)).reshape(shape).astype(dtype) - 3
    ishape = draw(st.sampled_from([(3,), (2, 2), (1,), (4,)]))
    index, n_arrays = [], 0
    for n in shape:
        kind = draw(st.sampled_from(["array", "array", "slice", "int", "newaxis"]))
        if kind == "newaxis":
            index.append(None)
        if kind == "array" or (kind == "newaxis" and n_arrays == 0):
            index.append(draw(hnp.arrays("int64", ishape, elements=st.integers(-n, n - 1))))
            n_arrays += 1
        elif kind == "slice":
            index.append(slice(draw(st.integers(-n, n)), None, draw(st.sampled_from([1, 2, -1]))))
        elif kind == "int":
            index.append(draw(st.integers(-n, n - 1)))
        elif kind == "newaxis":
            index.append(slice(None))  # a newaxis consumes no axis: this one still needs its index
    if n_arrays == 0:
        index[0] = np.zeros(ishape, "int64")
    return value, tuple(index)


def _symbolic(index):
    """The index with each integer array replaced by an lvector/lmatrix input."""
    syms, vals, out = [], [], []
    for item in index:
        if isinstance(item, np.ndarray):
            v = T.tensor("int64", (None,) * item.ndim)
            syms.append(v)
            vals.append(item)
            out.append(v)
        else:
            out.append(item)
    return tuple(out), syms, vals


@given(index_case())
def test_gather_matches_numpy(case):
    value, index = case
    sym, syms, vals = _symbolic(index)
    x = T.tensor(value.dtype, (None,) * value.ndim)
    f = _cl([x] + syms, x[sym])
    np.testing.assert_array_equal(f(value, *vals), value[index])


@given(index_case(), st.booleans())
def test_set_and_inc_subtensor_match_numpy(case, inc):
    value, index = case
    sym, syms, vals = _symbolic(index)
    x = T.tensor(value.dtype, (None,) * value.ndim)
    sub_shape = value[index].shape
    y_val = (np.arange(int(np.prod(sub_shape))).reshape(sub_shape) * 0.5 + 1).astype(value.dtype)
    y = T.tensor(value.dtype, (None,) * len(sub_shape))
    f = _cl([x, y] + syms, (T.inc_subtensor if inc else T.set_subtensor)(x[sym], y))
    want = value.copy()
    if inc:
        np.add.at(want, index, y_val)
    else:
        want[index] = y_val
    np.testing.assert_array_equal(f(value, y_val, *vals), want)  # inc: bitwise, np.add.at's order


def test_repeated_indices_accumulate_and_broadcast_values():
    x, i = T.fmatrix("x"), T.lvector("i")
    f = _cl([x, i], T.inc_subtensor(x[i], np.float32(0.1)))
    v = np.zeros((3, 4), "float32")
    idx = np.array([2, 0, 2, 2, -1])
    want = v.copy()
    np.add.at(want, idx, np.float32(0.1))
    np.testing.assert_array_equal(f(v, idx), want)
    g = _cl([x, i], T.inc_subtensor(x[:, i], T.ones((3, 1), "float32")))
    want = v.copy()
    np.add.at(want, (slice(None), idx), 1)
    np.testing.assert_array_equal(g(v, idx), want)


def test_boolean_mask_gather_and_set():
    x = T.dmatrix("x")
    v = np.arange(12.0).reshape(3, 4) - 5
    np.testing.assert_array_equal(_cl([x], x[x > 0])(v), v[v > 0])
    np.testing.assert_array_equal(_cl([x], T.set_subtensor(x[x < 0], 0.0))(v), np.maximum(v, 0))


@pytest.mark.parametrize("build", ["gather", "inc", "one_hot"])
def test_out_of_range_indices_raise_index_error_and_write_nothing(build):
    x, i = T.fmatrix("x"), T.lvector("i")
    expr = {"gather": lambda: x[i] * 2, "inc": lambda: T.inc_subtensor(x[i], np.float32(1)),
            "one_hot": lambda: T.cast(T.nnet.one_hot(i, x), "float32")}[build]()
    f = _cl([x, i], expr)
    v = np.zeros((3, 3), "float32")
    msg = "class index 3 is out of range for 3 classes" if build == "one_hot" else \
        "index 3 is out of bounds for axis 0 with size 3"
    with pytest.raises(IndexError, match=msg) as err:
        f(v, np.array([0, 3, 1]))
    assert "test_opencl_indexing.py" in str(err.value)  # the user line that built the node
    with pytest.raises(IndexError):
        f(v, np.array([-4]))
    ok = np.array([0, 2])  # the check buffer is reset: a good call after a bad one works
    want = {"gather": v[ok] * 2, "inc": v + np.isin(np.arange(3), ok)[:, None],
            "one_hot": (ok[:, None] == np.arange(3)).astype("float32")}[build]
    np.testing.assert_array_equal(f(v, ok), want)


@given(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4), st.integers(0, 100))
def test_one_hot_matches_numpy(shape, seed):
    k = shape[-1] or 1
    idx = np.random.default_rng(seed).integers(0, k, size=shape[:-1]).astype("int32")
    i, like = T.tensor("int32", (None,) * idx.ndim), T.fmatrix()
    f = _cl([i, like], T.nnet.one_hot(i.T if idx.ndim == 2 else i, like))
    src = idx.T if idx.ndim == 2 else idx
    np.testing.assert_array_equal(f(idx, np.zeros((2, k), "float32")), src[..., None] == np.arange(k))


TENSORDOT_CASES = [(0, (2, 3, 4), (3, 2, 2)), (1, (2, 3, 4), (4, 2, 3)), (2, (2, 3, 4), (3, 4, 5)),
                   (([0, 2], [1, 0]), (2, 3, 4), (4, 2, 3)), (([1], [2]), (2, 3, 4), (4, 2, 3))]


@given(st.sampled_from(TENSORDOT_CASES), st.sampled_from(["float32", "float64"]), st.booleans())
def test_tensordot_matches_numpy(case, dtype, transposed):
    axes, sa, sb = case
    rng = np.random.default_rng(0)
    av, bv = rng.normal(size=sa).astype(dtype), rng.normal(size=sb).astype(dtype)
    a, b = T.tensor(dtype, (None,) * 3), T.tensor(dtype, (None,) * 3)
    if transposed:  # a strided operand: merged as a view where possible, else copied once
        av = np.ascontiguousarray(av.transpose(2, 1, 0))
        a_expr = a.dimshuffle(2, 1, 0)
    else:
        a_expr = a
    f = _cl([a, b], T.tensordot(a_expr, b, axes=axes))
    want = np.tensordot(av.transpose(2, 1, 0) if transposed else av, bv, axes=axes)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f(av, bv), want, **tol)


def test_bool_matmul():
    a, b = T.bmatrix(), T.bmatrix()
    rng = np.random.default_rng(3)
    av, bv = rng.integers(-1, 2, (17, 300)).astype("int8"), rng.integers(-1, 2, (300, 5)).astype("int8")
    np.testing.assert_array_equal(_cl([a, b], T.dot(a > 0, b > 0))(av, bv), np.dot(av > 0, bv > 0))


def _train(backend: str, steps: int = 30) -> tuple[list[float], object]:
    rng = np.random.default_rng(7)
    emb = sg.shared((rng.normal(size=(20, 4)) * 0.5).astype("float32"), "emb")
    w1 = sg.shared((rng.normal(size=(12, 16)) * 0.3).astype("float32"), "w1")
    w2 = sg.shared((rng.normal(size=(16, 5)) * 0.3).astype("float32"), "w2")
    tok, lab = T.lmatrix("tok"), T.lvector("lab")
    h = T.relu(T.dot(emb[tok].reshape((tok.shape[0], 12)), w1))
    loss = T.nnet.categorical_crossentropy(T.softmax(T.dot(h, w2)), lab).mean()
    params = [emb, w1, w2]
    updates = [(p, p - np.float32(0.5) * g) for p, g in zip(params, sg.grad(loss, params))]
    step = (_cl if backend == "opencl" else sg.function)([tok, lab], loss, updates=updates, **(
        {} if backend == "opencl" else {"backend": "numpy"}))
    toks = rng.integers(0, 20, (32, 3))  # repeated tokens: the embedding gradient accumulates
    labs = toks.sum(1) % 5
    return [float(step(toks, labs)) for _ in range(steps)], step


def test_mlp_with_int_labels_and_embedding_runs_on_the_device():
    with sg.config.change_flags(floatX="float32"):
        ref, _ = _train("numpy")
        got, step = _train("opencl")
    assert not [n for n in step.graph.apply_nodes if "HostFallback" in str(n.op)]
    assert any(k.startswith("scatter") for k in step.kernels) and any(k.startswith("one_hot") for k in step.kernels)
    assert ref[-1] < ref[0] * 0.8
    np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-4)
