"""The dask backend against the numpy backend (relative 1e-12: chunked reductions add in another
order), op family by op family, on hypothesis data and hypothesis chunkings; the task count; the
shipped kernels; all-or-nothing updates; inputs and outputs of both kinds; bad input."""
from __future__ import annotations

import pickle
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import InputError
from symgraph.graph.basic import Apply, Op, Type

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from symgraph.backends.dask.kernels import LocalKernel, NodeKernel  # noqa: E402  (needs dask installed)
from symgraph.serialize_format import SerializationError  # noqa: E402

RTOL = 1e-12


def _floats(shape, lo=-3.0, hi=3.0):
    return hnp.arrays("float64", shape, elements=st.floats(lo, hi, allow_nan=False, width=64))


@st.composite
def matrix_and_chunks(draw, min_side=1, max_side=9, lo=-3.0, hi=3.0):
    n, m = draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))
    x = draw(_floats((n, m), lo, hi))
    return x, (draw(st.integers(1, n)), draw(st.integers(1, m)))


class Pair:
    """One graph compiled for numpy and for dask; ``check`` compares them on numpy inputs and on
    dask inputs chunked as drawn."""

    def __init__(self, inputs, outputs, chunks=2, **kw):
        self.np = sg.function(inputs, outputs, **kw)
        self.dk = sg.function(inputs, outputs, backend="dask", chunks=chunks, **kw)

    def check(self, *values, chunks=None):
        want = self.np(*values)
        got = self.dk(*values)
        _close(got, want)
        if chunks is not None:
            lazy_in = [da.from_array(v, chunks=chunks[:np.ndim(v)] or -1) for v in values]
            _close(self.dk(*lazy_in), want)
        return got


def _close(got, want):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            _close(g, w)
        return
    assert isinstance(got, np.ndarray), type(got)
    assert got.shape == np.shape(want) and got.dtype == np.asarray(want).dtype
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-300 if got.dtype.kind == "f" else 0)


X, Y, V = T.dmatrix("x"), T.dmatrix("y"), T.dvector("v")

ELEMENTWISE = Pair([X, V], [T.exp(X) * 2 + T.tanh(V) - X / (1 + X ** 2), T.maximum(X, V) >= 0.5])


@given(matrix_and_chunks())
def test_fused_elementwise_with_broadcasting(xc):
    x, chunks = xc
    ELEMENTWISE.check(x, np.linspace(-1, 1, x.shape[1]), chunks=chunks)


REDUCTIONS = Pair([X, Y], [X.sum(axis=0), X.sum(axis=1, keepdims=True), X.prod(axis=0), X.max(axis=1),
                           X.min(), (X > 0).all(axis=0), (X > 1).any(axis=1), X.mean(),
                           ((X - Y) ** 2).sum(axis=1), (X * Y).sum(), T.argmax(X, axis=0), T.argmin(X, axis=1),
                           X.sum(axis=0) * 3 + 1, T.std(X, axis=1), T.var(X, axis=0, keepdims=True)])
# std/var: a reduction of a fused program whose first input is a 0-d count (it was taken as the array)


@given(matrix_and_chunks(lo=0.5, hi=1.5))
def test_reductions(xc):
    x, chunks = xc
    REDUCTIONS.check(x, x[::-1, ::-1] * 0.5, chunks=chunks)


def test_integer_reductions_keep_dtypes():
    i = T.lmatrix("i")
    pair = Pair([i], [i.sum(axis=0), i.max(), i.prod(axis=1)], chunks=(2, 3))
    pair.check(np.arange(30, dtype="int64").reshape(5, 6) % 7 - 3, chunks=(3, 2))


W = T.dmatrix("w")
PRODUCTS = Pair([X, W, V], [T.dot(X, W), T.matmul(X, W), T.tanh(T.dot(X, W) + V[:W.shape[1]]),
                            T.dot(X, V[:X.shape[1]]), T.tensordot(X, W.T, axes=[[1], [1]]),
                            T.dot(X, W).sum(axis=0)])


@given(matrix_and_chunks(), st.integers(1, 6))
def test_products(xc, k):
    x, chunks = xc
    w = np.cos(np.arange(x.shape[1] * k, dtype="float64")).reshape(x.shape[1], k)
    PRODUCTS.check(x, w, np.linspace(0.0, 1.0, max(x.shape[1], k)), chunks=chunks)


SHAPES = Pair([X, Y], [X.T, X.dimshuffle(1, "x", 0), X.reshape((-1,)), X.reshape((X.shape[1], X.shape[0])),
                       T.concatenate([X, Y], axis=0), T.concatenate([X, Y], axis=1), X[1:, ::2], X[-1],
                       X[:, 0], X[::-1], T.zeros_like(X) + 1.5, T.arange(X.shape[0]) * 2, X.shape[0] * X[0, 0],
                       T.ones((X.shape[0], 3)) * X[:, :1]])


@given(matrix_and_chunks(min_side=2))
def test_shape_ops_and_indexing(xc):
    x, chunks = xc
    SHAPES.check(x, x * 2, chunks=chunks)


IDX = T.lvector("idx")
ADVANCED = Pair([X, IDX], [X[IDX], X[:, IDX % X.shape[1]]])


def test_advanced_indexing():
    x = np.arange(35.0).reshape(7, 5)
    ADVANCED.check(x, np.array([0, 3, 3, 6, 1]))


SOFTMAX = Pair([X], [T.nnet.softmax(X), T.nnet.log_softmax(X, axis=0), T.nnet.softmax(X).sum(axis=0)])


@given(matrix_and_chunks())
def test_softmax_over_a_chunked_axis(xc):
    x, chunks = xc
    SOFTMAX.check(x, chunks=chunks)


def test_training_step_gradients_and_updates():
    rng = np.random.default_rng(0)
    w0, b0 = rng.normal(size=(6, 3)) * 0.3, np.zeros(3)
    params = {}
    for backend in ("numpy", "dask"):
        w, b = sg.shared(w0.copy(), "w"), sg.shared(b0.copy(), "b")
        x, y = T.dmatrix("x"), T.lvector("y")
        p = T.nnet.softmax(T.tanh(T.dot(x, w) + b))
        loss = -T.log(p[T.arange(y.shape[0]), y]).mean()
        gw, gb = T.grad(loss, [w, b])
        opts = {"chunks": {"x": (5, -1), "y": 5}} if backend == "dask" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the label lookup runs on one chunk
            step = sg.function([x, y], loss, updates=[(w, w - 0.5 * gw), (b, b - 0.5 * gb)],
                               backend=backend, **opts)
        xs, ys = rng.normal(size=(23, 6)), rng.integers(0, 3, 23)
        losses = [step(xs, ys) for _ in range(5)]
        params[backend] = (losses, w.get_value(), b.get_value())
        rng = np.random.default_rng(0)
        rng.normal(size=(6, 3))
    for a, b in zip(params["numpy"], params["dask"]):
        np.testing.assert_allclose(b, a, rtol=1e-10)


def test_minibatches_sliced_from_a_shared_dataset_by_an_index():
    """Theano's minibatch idiom (the Deep Learning Tutorials' ``givens={x: data[i * n:(i + 1) * n]}``,
    tests/test_dlt.py): the index is a 0-d argument, a host value, so the slice has known chunks
    (a lazy index left every later shape unknown and the product raised); a 0-d shared learning
    rate and a 0-d dask array as the index work too."""
    rng = np.random.default_rng(1)
    data, labels = rng.normal(size=(12, 4)), rng.integers(0, 3, 12)
    results = {}
    for backend in ("numpy", "dask"):
        xs, ys = sg.shared(data, "xs"), sg.shared(labels, "ys")
        w, lr = sg.shared(np.zeros((4, 3)), "w"), sg.shared(np.float64(0.5), "lr")
        i, x, y = T.lscalar("i"), T.dmatrix("x"), T.lvector("y")
        loss = -T.log(T.nnet.softmax(T.dot(x, w))[T.arange(y.shape[0]), y]).mean()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the label lookup runs on one chunk
            step = sg.function([i], loss, updates=[(w, w - lr * T.grad(loss, w))], backend=backend,
                               givens={x: xs[i * 4:(i + 1) * 4], y: ys[i * 4:(i + 1) * 4]})
            losses = [step(k) for k in (0, 1, 2, 1)]
            if backend == "dask":
                losses.append(step(da.from_array(np.int64(2))))
        results[backend] = (losses,)
    np.testing.assert_allclose(results["dask"][0][:4], results["numpy"][0], rtol=1e-12)
    assert np.isfinite(results["dask"][0][4])


def test_an_op_without_chunked_lowering_warns_and_runs_on_one_chunk():
    x = T.dmatrix("x")
    with pytest.warns(RuntimeWarning, match=r"dask backend: .*Cholesky.*no chunked lowering"):
        f = sg.function([x], T.linalg.cholesky(T.dot(x, x.T) + 3 * T.eye(x.shape[0])) * 2,
                        backend="dask", chunks=2)
    assert any("Cholesky" in name for name in f._impl.fallbacks)
    a = np.arange(12.0).reshape(4, 3) / 10
    want = np.linalg.cholesky(a @ a.T + 3 * np.eye(4)) * 2
    np.testing.assert_allclose(f(a), want, rtol=RTOL)


def test_what_reads_a_fallbacks_result_of_unknown_length_runs_and_lengths_come_from_shapes():
    """A loop runs as one task (a fallback) whose trace's length dask cannot know beforehand:
    chunked work reading it runs as one task too, where dask refused unknown chunks; a pool after
    a convolution has its output length from placement's shape arithmetic on the input's shape and
    its padding vector (a computed input: its own inputs are no one's to give), so the product
    after it stays chunked."""
    x, w = T.dmatrix("x"), T.tensor4("w")
    h, _ = sg.scan(lambda r, a: a * 0.5 + r, sequences=[x], outputs_info=[T.zeros_like(x[0])])
    img = T.tensor4("img")
    pooled = T.signal.pool.pool_2d(T.nnet.conv2d(img, w), ws=(2, 2), ignore_border=True)
    outs = [T.tanh(h[-1] + 1), (h * 2).sum(axis=0), T.dot(pooled.flatten(2), T.ones((8, 3)))]
    rng = np.random.default_rng(2)
    args = [rng.normal(size=(5, 4)), rng.normal(size=(2, 2, 3, 3)), rng.normal(size=(3, 2, 6, 6))]
    want = sg.function([x, w, img], outs, backend="numpy")(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the loop, the convolution and the pool: one task each
        f = sg.function([x, w, img], outs, backend="dask", chunks=2)
        for got, ref in zip(f(*args), want):
            np.testing.assert_allclose(got, ref, rtol=RTOL)
        g = sg.function([w, img], outs[2], backend="dask", chunks=2, compute=False)
        assert not np.isnan(g(*args[1:]).shape).any()  # the pool's output length was known


def test_task_count_is_chunks_times_fused_stages():
    x = T.dmatrix("x")
    out = (T.exp(x) * 2 + T.sin(x) - x ** 2).sum(axis=1) * 3 + T.tanh(x).sum(axis=1)
    f = sg.function([x], out, backend="dask", chunks=(10, 10), compute=False)
    arr = f(np.ones((100, 20)))
    chunks, nodes = 10 * 2, len(f.graph.toposort())
    assert nodes == 2  # two fused nodes: exp/sin/sqr/sum with its epilogue, tanh/sum
    (opt,) = dask.optimize(arr)
    tasks = [k for k in dict(opt.__dask_graph__()) if not str(k[0]).startswith("sg-f-x")]  # not the input blocks
    # per fused node: one task per chunk, plus the reduction's combine tree (half as many here);
    # one task per op per chunk would be over 9 * 20
    assert len(tasks) <= 2 * chunks * nodes, len(tasks)
    np.testing.assert_allclose(arr.compute(), sg.function([x], out)(np.ones((100, 20))), rtol=RTOL)


def test_graph_is_built_once_per_chunk_structure():
    x = T.dvector("x")
    f = sg.function([x], (T.exp(x) * 2).sum(), backend="dask", chunks=4)
    for n in (10, 10, 10, 12, 10):
        f(np.ones(n))
    assert len(f._impl.backend.templates.data) == 2


def test_kernels_ship_as_saved_graphs_not_code():
    x = T.dvector("x")
    f = sg.function([x], T.exp(x) * 2, backend="dask", chunks=4)
    step = next(v for k, v in f._impl.__call__.__globals__.items() if k.startswith("_step"))
    arr = step(da.ones(8, chunks=4))[0]
    kernels = {t.func for t in dict(arr.__dask_graph__()).values() if isinstance(getattr(t, "func", None), NodeKernel)}
    (kernel,) = kernels
    assert kernel.payload[:2] == b"PK"  # an sg.save zip: graph.json and arrays, no code
    blob = pickle.dumps(kernel)
    assert b"symgraph.backends.dask.kernels" in blob and b"exec" not in blob
    again = pickle.loads(blob)
    np.testing.assert_allclose(again(np.ones(3)), np.exp(np.ones(3)) * 2)


@sg.as_op(itypes=[T.dvector], otypes=[T.dvector])
def _halve(v):
    return v / 2


def test_an_op_sg_save_cannot_write_runs_in_this_process_only():
    """as_op's Python function cannot be saved for a worker: the node runs in this process (threads
    or synchronous scheduler), with a warning naming it and its line; a scheduler that must send it
    to another process gets an error that says so, and the updates are not committed."""
    x = T.dvector("x")
    total = sg.shared(1.0, "total")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        f = sg.function([x], _halve(x) + 1, updates=[(total, total + _halve(x).sum())], backend="dask", chunks=2)
    assert any(re.search(r"_halve.*test_dask_backend.py:\d+.*cannot be saved.*only in this process", str(w.message))
               for w in said), [str(w.message) for w in said]
    v = np.arange(5.0)
    np.testing.assert_allclose(f(v), v / 2 + 1, rtol=RTOL)
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_allclose(f(da.from_array(v, chunks=2)), v / 2 + 1, rtol=RTOL)
    assert total.get_value() == 11.0
    step = next(v for k, v in f._impl.__call__.__globals__.items() if k.startswith("_step"))
    graph = dict(step(da.ones(4, chunks=2))[0].__dask_graph__())
    (kernel,) = {f for t in graph.values() for f in (getattr(t, "func", None), t[0] if isinstance(t, tuple) else None)
                 if isinstance(f, LocalKernel)}
    with pytest.raises(SerializationError, match=r"_halve.*cannot be sent to another process.*threads or synchronous"):
        pickle.dumps(kernel)
    with dask.config.set(scheduler="processes"), pytest.raises(SerializationError, match="cannot be sent"):
        f(v)
    assert total.get_value() == 11.0


class _Real(Type):
    """A type of the user's own (Theano's documentation defines ``Double`` so): a Python float."""

    def filter(self, x, strict=False, allow_downcast=None):
        return float(x)

    def __eq__(self, other):
        return type(other) is _Real

    def __hash__(self):
        return hash(_Real)


class _Times(Op):
    """real * real, or a real times a tensor's sum (a value of the user's type meets a tensor)."""

    def make_node(self, x, y):
        return Apply(self, [x, y], [_Real()()])

    def perform(self, node, inputs):
        return [float(inputs[0] * np.sum(inputs[1]))]


def test_values_that_are_not_tensors_live_in_this_process():
    """A type of the user's own and Theano's typed lists: their values are never dask arrays;
    the nodes reading or making them run here on the numpy backend's code, a lazy tensor they
    read computed first (with a warning naming the node), the same numbers as numpy."""
    from symgraph.compat.theano import typed_list

    r, s, v = _Real()("r"), _Real()("s"), T.dvector("v")
    items = typed_list.TypedListType(T.dvector)()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        pair = Pair([r, s, v, items], [_Times()(r, s), _Times()(r, v * 2), typed_list.append(items, v + 1),
                                       typed_list.length(items) + v.sum(), typed_list.getitem(items, 0) * v[0]],
                    chunks=2)
    assert {str(w.message).split(" (built")[0] for w in said} >= {"dask backend: _Times", "dask backend: Append"}
    args = (1.5, 4, np.arange(5.0), [np.arange(3.0), np.ones(4)])
    want, got = pair.np(*args), pair.dk(*args)
    assert got[0] == want[0] == 6.0 and got[1] == want[1] == 30.0
    assert len(got[2]) == 3 and all(np.array_equal(a, b) for a, b in zip(got[2], want[2]))
    _close(got[3:], want[3:])
    assert pair.dk(1.0, 1.0, da.from_array(np.arange(5.0), chunks=2), args[3])[1] == 20.0


def test_outputs_lazy_with_compute_false_and_numpy_by_default():
    x = T.dvector("x")
    f = sg.function([x], [x * 2, x.sum()], backend="dask", chunks=3)
    lazy = sg.function([x], [x * 2, x.sum(), x.shape[0]], backend="dask", chunks=3, compute=False)
    a, s, n = lazy(np.arange(7.0))
    assert isinstance(a, da.Array) and a.chunks == ((3, 3, 1),) and isinstance(n, da.Array)
    b, t, m = lazy(np.arange(7.0) + 1)  # a second call's arrays never share keys with the first's
    assert a.name != b.name
    got = dask.compute(a, s, b, t)
    np.testing.assert_allclose(got[0], np.arange(7.0) * 2)
    np.testing.assert_allclose(got[2], (np.arange(7.0) + 1) * 2)
    assert int(n.compute()) == 7 and float(got[3]) == 28.0
    assert all(isinstance(r, np.ndarray) for r in f(np.arange(7.0)))
    with pytest.raises(InputError, match="compute=False"):
        w = sg.shared(np.zeros(3), "w")
        sg.function([x], x.sum(), updates=[(w, w + 1)], backend="dask", compute=False)


def test_updates_are_all_or_nothing_when_a_chunk_fails():
    from symgraph.backends.dask.lowering import TABLE, _elementwise
    from symgraph.serialize import register_op

    register_op(_CheckPositive)
    TABLE.register(_CheckPositive)(_elementwise)
    x = T.dvector("x")
    w, count = sg.shared(np.zeros(4), "w"), sg.shared(np.int64(0), "count")
    checked = _CheckPositive()(x)
    f = sg.function([x], checked.sum(), updates=[(w, w + checked[:4]), (count, count + 1)],
                    backend="dask", chunks=3)
    assert f(np.ones(9)) == 9.0 and count.get_value() == 1
    bad = np.ones(9)
    bad[7] = -1.0  # the last chunk fails, the others succeed
    with pytest.raises(ValueError, match="negative"):
        f(bad)
    np.testing.assert_array_equal(w.get_value(), np.ones(4))
    assert count.get_value() == 1


class _CheckPositive(Op):
    """Test op: its input, or an error when a value is negative (fails chunk by chunk)."""

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node, inputs):
        if (inputs[0] < 0).any():
            raise ValueError("a negative value")
        return [inputs[0].copy()]


def test_bad_input_is_named():
    x = T.dmatrix("x")
    f = sg.function([x], x.sum(), backend="dask", chunks=2)
    with pytest.raises(InputError, match="argument 0 .x. of f.*2-d.*1-d dask"):
        f(da.ones(4, chunks=2))
    with pytest.raises(InputError, match="unknown chunk sizes"):
        v = da.ones(6, chunks=2)
        f(v[v > 0][:, None])
    with pytest.raises(InputError, match="keyword argument .chunk. .did you mean .chunks.?.*dask. also takes chunks"):
        sg.function([x], x.sum(), backend="dask", chunk=2)
    with pytest.raises(InputError, match="chunks="):
        sg.function([x], x.sum(), backend="dask", chunks=((1, 1), (1, 1)))(np.ones((3, 3)))


def test_loops_and_branches_over_host_values_only():
    """A scan whose carries are 0-d (host values on dask) and a function with no lazy input at all
    (Theano's scan pages: a counter updated by the step, a while loop doubling a constant): run as
    fallback tasks, the numbers numpy gives (the loop's body was planned for lazy values and
    raised, and a call with nothing to feed built invalid code)."""
    a = sg.shared(np.int64(1), "a")
    _, updates = sg.scan(lambda: {a: a + 1}, n_steps=10)
    k = T.lscalar("k")
    r, _ = sg.scan(lambda v: (v * 2, sg.until(v * 2 > 100)), outputs_info=[T.constant(1.0)], n_steps=1000)
    last, _ = sg.scan(lambda c: c + k, outputs_info=[k], n_steps=5)
    branch = sg.ifelse(k > 2, T.cast(k, "float64") * 2.0, r[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the loops and the branch run as one task each
        f = sg.function([k], [updates[a] + 1, r, last[-1], branch], updates=updates, backend="dask")
    got = f(3)
    assert int(got[0]) == 12 and a.get_value() == 11
    np.testing.assert_array_equal(got[1], [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0])
    assert int(got[2]) == 18 and float(got[3]) == 6.0
    assert float(f(1)[3]) == 128.0 and a.get_value() == 21
