"""Data-parallel training over MPI: the scripts in tests/mpi/ run under mpirun -np 2 (see
mpi_run.py); the all-reduce op, its gradient, the bucketing rewrite and the OpenCL transfers run
here in one process (a communicator of one)."""
from __future__ import annotations

import os
import sys
import time
import weakref

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numpy.lowering import ufunc_into
from symgraph.errors import GraphTypeError
from symgraph.tensor.collective import STATS, AllReduce, AllReduceBucket, set_communicator
from conftest import NO_OPENCL
from mpi_run import mpi_available, mpirun

HERE = os.path.dirname(os.path.abspath(__file__))
needs_mpi = pytest.mark.skipif(not mpi_available(), reason="needs mpi4py and mpirun (make test installs them)")


@needs_mpi
def test_two_ranks_with_half_batches_match_one_process_with_the_full_batch():
    r = mpirun([os.path.join(HERE, "mpi", "data_parallel.py")], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rank 0: OK" in r.stdout and "rank 1: OK" in r.stdout


@needs_mpi
def test_a_raising_rank_ends_both_within_the_timeout():
    t0 = time.monotonic()
    r = mpirun([os.path.join(HERE, "mpi", "raising_rank.py")], timeout=60)
    assert r.returncode != 0
    assert "rank 1 fails before its all-reduce" in r.stderr
    assert "the abort did not happen" not in r.stdout
    assert time.monotonic() - t0 < 60


def test_one_process_allreduce_is_the_identity_and_counted(backend):
    x = T.dmatrix("x")
    f = sg.function([x], [T.allreduce(x, "mean"), T.allreduce(x * 2, "mean")], backend=backend)
    calls = STATS["calls"]
    a = np.arange(6.0).reshape(2, 3)
    s, m = f(a)
    np.testing.assert_array_equal(s, a)
    np.testing.assert_array_equal(m, a * 2)
    np.testing.assert_array_equal(sg.function([x], T.allreduce(x, "sum"), backend=backend)(a), a)
    assert STATS["calls"] == calls + 2  # the two all-reduces went in one bucket; then one more
    assert [type(n.op) for n in f.graph.toposort() if "AllReduce" in type(n.op).__name__] == [AllReduceBucket]
    if backend == "opencl":  # a planned step (download, all-reduce, upload, counted), not a host fallback
        from symgraph.backends.opencl import TRANSFERS
        assert not f._impl.fallbacks and "allreduce_bucket_mean" in f.source
        before = dict(TRANSFERS)
        f(a)
        moved = {k: TRANSFERS[k] - before.get(k, 0) for k in ("to_host", "zero_copy_out", "to_device", "zero_copy_in")}
        assert moved["to_host"] + moved["zero_copy_out"] >= 2
        assert moved["to_device"] + moved["zero_copy_in"] == 2  # the argument, and one flat result for the bucket


def test_gradient_of_allreduce_is_the_allreduce_of_the_gradient():
    x = T.dvector("x")
    g = T.grad((T.allreduce(x, "sum") ** 2).sum(), x)
    assert any(isinstance(n.op, AllReduce) for n in sg.function([x], g, mode=None).graph.toposort())
    np.testing.assert_allclose(sg.function([x], g)(np.array([1.0, -2.0])), [2.0, -4.0])


def test_bucketing_joins_independent_allreduces_only():
    a, b = T.dvector("a"), T.dvector("b")
    first = T.allreduce(a) + T.allreduce(b)            # independent: one bucket
    second = T.allreduce(first * 2)                    # reads the bucket: stays its own call
    ints = T.allreduce(T.lvector("i"), "sum")          # another dtype: its own call
    f = sg.function([a, b, ints.owner.inputs[0]], [second, ints])
    ops = [n.op for n in f.graph.toposort() if isinstance(n.op, (AllReduce, AllReduceBucket))]
    assert sorted(map(str, ops)) == ["allreduce_bucket{mean, 2}", "allreduce{mean}", "allreduce{sum}"]
    np.testing.assert_allclose(f(np.ones(2), np.ones(2), np.arange(2))[0], [4.0, 4.0])
    unbucketed = sg.function([a, b], first, mode=sg.rewrite.Mode().excluding("bucket_allreduce"))
    assert sum(isinstance(n.op, AllReduce) for n in unbucketed.graph.toposort()) == 2


def test_bad_allreduce_is_refused():
    with pytest.raises(ValueError, match="op must be one of"):
        T.allreduce(T.dvector(), "max")
    with pytest.raises(GraphTypeError, match="floating-point"):
        T.allreduce(T.lvector(), "mean")


def test_data_parallel_updates_and_save_load(tmp_path):
    w = sg.shared(np.ones(3), "w")
    x = T.dvector("x")
    loss = ((x * w) ** 2).sum()
    f = sg.function([x], loss, updates=sg.updates.adam(loss, [w], 0.1, data_parallel=True))
    assert any(isinstance(n.op, AllReduce) for n in f.graph.toposort())
    sg.save(f, tmp_path / "f.sg")
    g = sg.load(tmp_path / "f.sg")
    before = w.get_value()
    g(np.ones(3))  # the loaded function updates the same (saved) kind of parameter: its own copy
    np.testing.assert_array_equal(w.get_value(), before)
    f(np.ones(3))
    assert not np.array_equal(w.get_value(), before)
    assert any(isinstance(n.op, AllReduce) for n in g.graph.toposort())
    sg.distributed.broadcast_parameters([w])  # a communicator of one: unchanged
    assert w.get_value().shape == (3,)


@needs_mpi
def test_random_streams_fold_the_rank_in_and_repeat_across_runs():
    """Issue 19: each rank draws its own dropout masks (the script checks that they differ), the
    same ones as a single-process stream with that rank folded in (so every run repeats them), and
    a run of one process draws the plain stream's."""
    sys.path.insert(0, os.path.join(HERE, "mpi"))
    try:
        from random_ranks import SEED, masks_digest
    finally:
        sys.path.pop(0)
    script = os.path.join(HERE, "mpi", "random_ranks.py")
    two = mpirun([script], timeout=120)
    assert two.returncode == 0, two.stdout + two.stderr
    for r in (0, 1):
        assert f"rank {r} of 2: {masks_digest(sg.RandomStream(SEED, rank=r))}" in two.stdout, two.stdout
    one = mpirun([script], timeout=120, np_=1)
    assert one.returncode == 0, one.stdout + one.stderr
    assert f"rank 0 of 1: {masks_digest(sg.RandomStream(SEED))}" in one.stdout, one.stdout


def test_allreduce_results_held_are_never_overwritten_and_dropped_buffers_are_reused():
    """Each compiled all-reduce reuses its result buffers (MPI is slow on fresh pages) but only
    those nobody holds: results the caller keeps stay as they were."""
    x, y = T.dmatrix("x"), T.dvector("y")
    f = sg.function([x, y], [T.allreduce(x, "sum"), T.allreduce(y, "sum")])
    held = [f(np.full((2, 3), float(k)), np.full(4, -float(k))) for k in range(6)]
    for k, (a, b) in enumerate(held):
        np.testing.assert_array_equal(a, np.full((2, 3), float(k)))
        np.testing.assert_array_equal(b, np.full(4, -float(k)))
    one = sg.function([y], T.allreduce(y, "sum"))
    dropped = weakref.ref(one(np.ones(3)))
    assert dropped() is not None  # the buffer is kept
    again = one(np.full(3, 2.0))
    assert np.shares_memory(again, dropped()) and again[0] == 2.0  # and handed out again
    kept = one(np.arange(3.0))
    np.testing.assert_array_equal(one(np.ones(3)), np.ones(3))
    np.testing.assert_array_equal(kept, np.arange(3.0))


class _TwoEqualRanks:
    """A communicator of two processes that hold the same values: an all-reduce doubles (lets
    one process run the code MPI runs, send buffer or in place)."""

    def Get_size(self) -> int:
        return 2

    def Get_rank(self) -> int:
        return 0

    def Allreduce(self, sendbuf, recvbuf, op=None) -> None:
        if isinstance(sendbuf, np.ndarray):
            assert sendbuf.flags.c_contiguous and not np.shares_memory(sendbuf, recvbuf)  # what MPI reads
            np.multiply(sendbuf, 2, out=recvbuf)
        else:  # MPI.IN_PLACE
            recvbuf *= 2


@pytest.fixture
def two_ranks():
    pytest.importorskip("mpi4py")
    set_communicator(_TwoEqualRanks())
    yield
    set_communicator(None)


def _mlp_step(params, **kwargs):
    w1, b1, w2 = params
    x, y = T.dmatrix("x"), T.dvector("y")
    loss = ((T.dot(T.tanh(T.dot(x, w1) + b1), w2) - y) ** 2).mean()
    return sg.function([x, y], loss, updates=sg.updates.sgd(loss, params, 0.1, data_parallel=True), **kwargs)


def test_gradients_are_computed_into_their_bucket_and_match_one_call_per_gradient(two_ranks):
    """The bucket stays a graph node; each gradient's producer writes into its span of the flat
    buffer (f.source), so after the first call nothing is packed, and the parameters are bitwise
    those of the same step with one all-reduce per gradient."""
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(5, 4)), rng.normal(size=4), rng.normal(size=4)]
    bucketed, plain = [[sg.shared(v.copy(), n) for v, n in zip(init, ("w1", "b1", "w2"))] for _ in range(2)]
    step = _mlp_step(bucketed)
    reference = _mlp_step(plain, mode=sg.rewrite.Mode().excluding("bucket_allreduce"))
    assert [str(n.op) for n in step.graph.toposort() if isinstance(n.op, AllReduceBucket)] == \
        ["allreduce_bucket{mean, 3}"]
    assert all(f"_bucket_spans.views[{k}]" in step.source for k in range(3)), step.source
    for t in range(4):
        xs, ys = rng.normal(size=(8, 5)), rng.normal(size=8)
        step(xs, ys)
        reference(xs, ys)
        if t == 0:
            packed = STATS["packed"]
    assert STATS["packed"] == packed
    for p, q in zip(bucketed, plain):
        np.testing.assert_array_equal(p.get_value(), q.get_value())


def test_bucket_spans_held_by_the_caller_are_never_reused_and_shapes_may_change(two_ranks):
    a, b = T.dvector("a"), T.dmatrix("b")
    f = sg.function([a, b], [T.allreduce(a * 3.0, "sum"), T.allreduce(T.exp(b), "sum")])
    assert "_bucket_spans.views[1]" in f.source
    held = [f(np.full(3, float(k)), np.full((2, 2), float(k))) for k in range(6)]
    for k, (ra, rb) in enumerate(held):
        np.testing.assert_array_equal(ra, np.full(3, 6.0 * k))
        np.testing.assert_array_equal(rb, np.full((2, 2), 2 * np.exp(float(k))))
    del held
    flat = None
    for shape_a, shape_b, packed in [((5,), (1, 3), 64), ((5,), (1, 3), 0), ((2,), (4, 1), 48)]:
        before = STATS["packed"]
        ra, rb = f(np.ones(shape_a), np.zeros(shape_b))
        np.testing.assert_array_equal(ra, np.full(shape_a, 6.0))
        np.testing.assert_array_equal(rb, np.full(shape_b, 2.0))
        assert ra.base is rb.base  # one flat buffer
        assert STATS["packed"] - before == packed  # a new layout is packed once, then computed in place
        assert (ra.base is flat()) == (packed == 0) if flat else True  # the dropped buffer serves the same layout
        flat = weakref.ref(ra.base)
        del ra, rb
    c = T.dscalar("c")
    scalar = sg.function([a, c], [T.allreduce(a.sum(), "sum"), T.allreduce(c * 2.0, "sum")])  # 0-d values
    flat = None
    for k in range(3):
        r = scalar(np.ones(2), float(k))
        np.testing.assert_array_equal(r, [4.0, 4.0 * k])
        assert flat is None or r[0].base is flat()  # copied into the same buffer, not laid out anew
        flat = weakref.ref(r[0].base)
        del r
    args = sg.function([a, b], [T.allreduce(a, "sum"), T.allreduce(b, "sum")])  # arguments: copied in
    x = np.arange(3.0)
    before = STATS["packed"]
    np.testing.assert_array_equal(args(x, np.ones((1, 1)))[0], 2 * x)
    assert STATS["packed"] - before == 4 * 8 and np.array_equal(x, np.arange(3.0))


def test_one_allreduce_sends_its_argument_and_never_writes_it(two_ranks, backend):
    x = T.dvector("x")
    f = sg.function([x], [T.allreduce(x, "mean"), T.allreduce(x[::2], "sum")], backend=backend)
    f2 = sg.function([x], T.allreduce(x, "sum"), backend=backend)
    v = np.arange(4.0)
    before = STATS["packed"]
    first = f2(v)
    second = f2(v + 1)
    np.testing.assert_array_equal(first, 2 * v)
    np.testing.assert_array_equal(second, 2 * (v + 1))
    np.testing.assert_array_equal(v, np.arange(4.0))
    assert STATS["packed"] == before  # MPI read the argument itself
    mean, strided = f(v)
    np.testing.assert_array_equal(mean, v)
    np.testing.assert_array_equal(strided, 2 * v[::2])


def test_an_allreduce_of_memory_nothing_reads_later_runs_in_place(two_ranks):
    """A dead intermediate, or an argument given with sg.In(x, mutable=True) whose result is not
    returned, is all-reduced in place (MPI's IN_PLACE: no result buffer, no copy); a value read
    again later, a view, a strided or F-ordered value, or an argument the caller did not lend go
    the usual way, and every result is right."""
    x, m = T.dvector("x"), T.dmatrix("m")
    dead = sg.function([x], T.allreduce(x * 3.0, "mean"))
    assert "_allreduce_in_place(" in dead.source, dead.source
    np.testing.assert_array_equal(dead(np.arange(3.0)), 3 * np.arange(3.0))
    lent = sg.function([sg.In(x, mutable=True)], T.allreduce(x, "sum") + 1.0)
    v = np.arange(3.0)
    assert "_allreduce_in_place(x)" in lent.source
    np.testing.assert_array_equal(lent(v), 2 * np.arange(3.0) + 1)
    np.testing.assert_array_equal(v, 2 * np.arange(3.0))  # the caller lent its memory
    returned = sg.function([sg.In(x, mutable=True)], T.allreduce(x, "sum"))  # never return the caller's memory
    read_again = sg.function([x], T.allreduce(x * 3.0, "sum") + x * 3.0)
    strided = sg.function([x], T.allreduce((x * 3.0)[::2], "sum"))
    f_ordered = sg.function([m], T.allreduce(m.T * 3.0, "sum"))
    for f in (returned, read_again, strided):
        assert "_allreduce_in_place(" not in f.source, f.source
    v = np.arange(4.0)
    np.testing.assert_array_equal(returned(v), 2 * np.arange(4.0))
    np.testing.assert_array_equal(v, np.arange(4.0))
    np.testing.assert_array_equal(read_again(v), 9 * v)
    np.testing.assert_array_equal(strided(v), 6 * v[::2])
    w = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(f_ordered(w), 6 * w.T)


@pytest.mark.skipif(NO_OPENCL is not None, reason=str(NO_OPENCL))
def test_opencl_bucket_results_held_by_the_caller_stay(two_ranks):
    """The bucket's outputs are views of one device array (one upload), taken from the pool only
    when nothing refers to its memory."""
    a, b = T.dvector("a"), T.dmatrix("b")
    f = sg.function([a, b], [T.allreduce(a * 3.0, "sum"), T.allreduce(b - 1.0, "sum")], backend="opencl")
    held = [f(np.full(3, float(k)), np.full((2, 2), float(k))) for k in range(4)]
    for k, (ra, rb) in enumerate(held):
        np.testing.assert_array_equal(ra, np.full(3, 6.0 * k))
        np.testing.assert_array_equal(rb, np.full((2, 2), 2.0 * (k - 1)))


def test_a_call_failing_after_the_bucket_leaves_shared_variables_as_they_were(two_ranks):
    a, i = T.dvector("a"), T.lscalar("i")
    w = sg.shared(np.zeros(3), "w")
    ga, gb = T.allreduce(a * 2.0, "sum"), T.allreduce(a * 3.0, "sum")
    f = sg.function([a, i], (ga + gb)[i], updates=[(w, w + ga)])
    assert "_bucket_spans.views[1]" in f.source
    assert f(np.ones(3), 1) == 10.0
    with pytest.raises(IndexError):
        f(np.ones(3), 7)  # fails after the bucket reduced into its spans
    np.testing.assert_array_equal(w.get_value(), np.full(3, 4.0))
    assert f(np.full(3, 2.0), 0) == 20.0
    np.testing.assert_array_equal(w.get_value(), np.full(3, 12.0))


@pytest.mark.skipif(NO_OPENCL is not None, reason=str(NO_OPENCL))
def test_opencl_allreduce_on_a_device_with_its_own_memory(two_ranks, monkeypatch):
    """The discrete-GPU path, forced on pocl (tests/test_opencl_device_memory.py does the same):
    a download into a reused host buffer, the all-reduce, one upload per result; a bucket's
    results are views of one uploaded array."""
    from symgraph.backends.opencl import TRANSFERS
    from symgraph.backends.opencl import runtime as rtmod
    info, dev = rtmod.choose_device()
    rt = rtmod.Runtime(info, dev)
    rt.zero_copy = rt.host_blas = False
    monkeypatch.setitem(rtmod._RUNTIMES, (info.platform_index, info.device_index), rt)
    a, b = T.dvector("a"), T.dmatrix("b")
    one = sg.function([a], T.allreduce(a[::2], "mean"), backend="opencl")  # a strided device view
    pair = sg.function([a, b], [T.allreduce(a * 3.0, "sum"), T.allreduce(b - 1.0, "sum")], backend="opencl")
    held = [(one(np.arange(5.0) + k), pair(np.full(3, float(k)), np.full((2, 2), float(k)))) for k in range(3)]
    for k, (m, (ra, rb)) in enumerate(held):
        np.testing.assert_array_equal(m, np.arange(5.0)[::2] + k)
        np.testing.assert_array_equal(ra, np.full(3, 6.0 * k))
        np.testing.assert_array_equal(rb, np.full((2, 2), 2.0 * (k - 1)))
    before = dict(TRANSFERS)
    pair(np.ones(3), np.ones((2, 2)))
    assert TRANSFERS["to_device"] - before.get("to_device", 0) == 3  # two arguments, one bucket


def test_ufunc_into_writes_only_a_result_of_the_destinations_shape():
    """A bucket producer's helper: written into the destination when the result has its shape,
    a fresh array when the other argument broadcasts the result beyond it (numpy refuses the
    destination) or no argument has its shape; unary ufuncs too."""
    dest = np.zeros(1)
    assert ufunc_into(np.add, dest, np.ones(1), 2.0) is dest and dest[0] == 3.0
    wider = ufunc_into(np.add, dest, np.ones(1), np.arange(4.0))  # numpy refuses: a fresh array
    np.testing.assert_array_equal(wider, [1.0, 2.0, 3.0, 4.0])
    assert dest[0] == 3.0
    assert ufunc_into(np.negative, dest, np.ones(1)) is dest and dest[0] == -1.0
    assert ufunc_into(np.negative, None, np.ones(2)).shape == (2,)
    np.testing.assert_array_equal(ufunc_into(np.multiply, np.zeros(3), 2.0, np.ones(2)), [2.0, 2.0])


def test_a_bucket_producer_whose_result_outgrows_its_span_is_laid_out_anew(two_ranks):
    a, c = T.dvector("a"), T.dvector("c")
    f = sg.function([a, c], [T.allreduce(a + c, "sum"), T.allreduce(a * 2.0, "sum")])
    assert "_bucket_spans.views[0]" in f.source
    for a_len, c_len in [(1, 1), (1, 4), (1, 4), (1, 1)]:
        r0, r1 = f(np.ones(a_len), np.arange(float(c_len)))
        np.testing.assert_array_equal(r0, 2 * (1.0 + np.arange(float(c_len))))
        np.testing.assert_array_equal(r1, np.full(a_len, 4.0))
