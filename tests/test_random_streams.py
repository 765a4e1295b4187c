"""Random streams in graphs (issue 16): the same numbers on every backend and with fusion off,
sites and calls that differ, default updates (and no_default_updates), a failed call that does
not advance, seed() reaching compiled functions, save/load, dropout and its gradient."""
from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError
from symgraph.rewrite import Mode
from symgraph.rng import draws as D
from tests.conftest import BACKENDS

NO_FUSION = Mode("fast_run").excluding("fusion")


def _all_draws(s, x):
    """One draw of every kind, some fused with arithmetic, some sized by a symbolic shape, some
    broadcast inside the kernel they fuse into."""
    return [s.uniform((3, 37), dtype="float32"), s.uniform((5,), low=-2.0, high=3.0, dtype="float64"),
            s.normal((4, 9), avg=1.0, std=2.0, dtype="float32"), s.normal((33,), dtype="float64"),
            s.binomial((10, 3), n=1, p=0.3, dtype="float32"), s.binomial((66,), n=20, p=0.4),
            s.binomial((40,), n=3000, p=0.7), s.integers(-2**63, 2**62, size=(50,)), s.integers(7, size=(9,)),
            s.bits((13,), "uint32"), s.bits((6,), "uint64"), s.choice(5, size=(3,), replace=False),
            s.choice(4, size=(8,), p=[0.1, 0.0, 0.6, 0.3]), s.permutation(6), T.nnet.dropout(x, 0.5, s),
            s.uniform(x.shape, dtype="float32") * x,
            # draws smaller than the kernel they fuse into: their own flat index, broadcast
            s.uniform((5, 1), dtype="float32") * x, x + s.normal((33,), dtype="float32"),
            s.binomial((5, 1), p=0.5, dtype="float32") * x.T.T,
            # the 16-wide vector path of each float row (float64 Bernoulli and uniforms too)
            s.binomial((40,), p=0.25, dtype="float64") * 3, s.uniform((40,), dtype="float64"), s.binomial((7,), p=0.5)]


X = np.random.default_rng(0).standard_normal((5, 33)).astype(np.float32)


def _run(backend, mode="fast_run", calls=2, seed=42):
    x = T.fmatrix("x")
    f = sg.function([x], _all_draws(sg.RandomStream(seed), x), backend=backend, mode=mode)
    return [f(X) for _ in range(calls)]


def _same(a, b):
    if a.dtype.kind == "f" and a.dtype == np.float64:  # double normals: within 2 ulp (math libraries differ)
        return a.shape == b.shape and np.abs(a.view(np.int64) - b.view(np.int64)).max(initial=0) <= 2
    return a.dtype == b.dtype and np.array_equal(a, b)


@pytest.fixture(scope="module")
def reference():
    return _run("numpy")


def test_identical_on_every_backend_and_without_fusion(backend, reference):
    for mode in ("fast_run", NO_FUSION):
        got = _run(backend, mode)
        for call_ref, call_got in zip(reference, got):
            for k, (a, b) in enumerate(zip(call_ref, call_got)):
                assert _same(a, b), (backend, mode, k)


def test_calls_and_sites_differ(reference):
    first, second = reference
    for a, b in zip(first[:11], second[:11]):
        assert not np.array_equal(a, b)
    s = sg.RandomStream(1)
    u, v = s.uniform((100,)), s.uniform((100,))
    a, b = sg.function([], [u, v])()
    assert not np.array_equal(a, b)


def test_seeds_differ_and_repeat():
    a = _run("numpy", calls=1, seed=1)[0][0]
    assert np.array_equal(a, _run("numpy", calls=1, seed=1)[0][0])
    assert not np.array_equal(a, _run("numpy", calls=1, seed=2)[0][0])


def test_flat_stream_does_not_depend_on_shape_or_chunking(backend):
    """Element i of a draw is element i of the flat stream: (n,) and (2, n/2) agree, and both equal
    the generator's pieces."""
    k = sg.random.key(7)
    flat = sg.function([], sg.random.uniform(k, (128,), dtype="float32"), backend=backend)()
    square = sg.function([], sg.random.uniform(k, (2, 64), dtype="float32"), backend=backend)()
    np.testing.assert_array_equal(flat.reshape(2, 64), square)
    np.testing.assert_array_equal(flat, D.uniform32((7, 0), (0, 0, 0), 0, 128))


def test_a_draw_used_twice_is_one_draw(backend):
    s = sg.RandomStream(3)
    u = s.uniform((50,))
    a, b, c = sg.function([], [u, u * 2, u + 0], backend=backend)()
    np.testing.assert_array_equal(b, a * 2)
    np.testing.assert_array_equal(c, a)


def test_default_updates_and_no_default_updates(backend):
    s = sg.RandomStream(5)
    u = s.uniform((4,))
    f = sg.function([], u, backend=backend)
    frozen = sg.function([], u, backend=backend, no_default_updates=True)
    listed = sg.function([], u, backend=backend, no_default_updates=[s.counters[0]])
    a = frozen()
    np.testing.assert_array_equal(frozen(), a)
    np.testing.assert_array_equal(listed(), a)
    np.testing.assert_array_equal(f(), a)  # f advances the counter after its call
    assert not np.array_equal(f(), a)
    assert int(s.counters[0].get_value()) == 2
    explicit = sg.function([], u, updates=[(s.counters[0], s.counters[0] + np.uint64(10))], backend=backend)
    explicit()
    assert int(s.counters[0].get_value()) == 12  # an explicit update wins over the default one


def test_a_failed_call_does_not_advance_the_stream(backend):
    s = sg.RandomStream(11)
    x = T.dvector("x")
    y = s.normal(x.shape) + T.log(x)[T.argmax(x) + 3]  # the index is out of range for short x
    f = sg.function([x], y, backend=backend)
    with pytest.raises(IndexError):
        f(np.ones(2))
    assert int(s.counters[0].get_value()) == 0
    good = f(np.ones(8))
    s.seed(11)
    np.testing.assert_array_equal(f(np.ones(8)), good)


def test_seed_reaches_compiled_functions(backend):
    s = sg.RandomStream(1)
    x = T.fvector("x")
    f = sg.function([x], T.nnet.dropout(x, 0.5, s) + s.normal(x.shape, dtype="float32"), backend=backend)
    xv = np.ones(1000, np.float32)
    first, second = f(xv), f(xv)
    s.seed(1)
    np.testing.assert_array_equal(f(xv), first)
    np.testing.assert_array_equal(f(xv), second)
    s.seed(2)
    assert not np.array_equal(f(xv), first)


def test_state_lives_in_shared_variables_kept_on_the_host(backend):
    s = sg.RandomStream(9)
    f = sg.function([], s.uniform((16,), dtype="float32"), backend=backend)
    assert "rng_key = _c_rng_key.value" in f.source  # read on the host, passed to kernels by value
    f()
    assert all(c.device is None for c in [s.key.container, s.counters[0].container])
    state = s.get_state()
    a = f()
    s.set_state(state)
    np.testing.assert_array_equal(f(), a)


def test_save_and_load_keep_keys_and_counters(backend, tmp_path):
    s = sg.RandomStream(21)
    x = T.dvector("x")
    f = sg.function([x], x * s.normal(x.shape), backend=backend)
    f(np.ones(5))
    sg.save([f, s], tmp_path / "f.sg")
    g, s2 = sg.load(tmp_path / "f.sg")
    np.testing.assert_array_equal(g(np.ones(5)), f(np.ones(5)))  # both continue from call 1
    np.testing.assert_array_equal(g(np.ones(5)), f(np.ones(5)))
    assert s2.key.host_resident and s2.counters[0].default_update is not None
    assert int(s2.counters[0].get_value()) == 3
    s2.seed(21)
    s.seed(21)
    np.testing.assert_array_equal(g(np.ones(5)), f(np.ones(5)))
    sg.save(s.uniform((3,)), tmp_path / "u.sg")  # a graph: its counter keeps its default update
    u = sg.load(tmp_path / "u.sg")
    h = sg.function([], u, backend=backend)
    assert not np.array_equal(h(), h())


def test_dropout_gradient_uses_the_forward_mask(backend):
    s = sg.RandomStream(4)
    x = T.dmatrix("x")
    y = T.nnet.dropout(x, 0.3, s)
    gx = sg.grad((y * y).sum(), x)  # d/dx (m x / q)**2 = 2 (m / q)**2 x
    xv = np.random.default_rng(1).uniform(1, 2, (40, 30))
    out, g = sg.function([x], [y, gx], backend=backend)(xv)
    kept = out != 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_allclose(out[kept], xv[kept] / 0.7)
    np.testing.assert_allclose(g, np.where(kept, 2 * xv / 0.49, 0.0))


def test_gradients_reach_avg_and_std(backend):
    s = sg.RandomStream(8)
    mu, sigma = T.dscalar("mu"), T.dscalar("sigma")
    z = s.normal((1000,), avg=mu, std=sigma)
    g_mu, g_sigma = sg.grad(z.sum(), [mu, sigma])
    out, a, b = sg.function([mu, sigma], [z, g_mu, g_sigma], backend=backend)(1.5, 2.0)
    assert a == 1000
    np.testing.assert_allclose(b, ((out - 1.5) / 2.0).sum())


def test_symbolic_and_derived_sizes(backend):
    s = sg.RandomStream(6)
    n = T.lscalar("n")
    x = T.dmatrix("x")
    u = s.uniform((n, 3))
    z = s.normal(avg=x, std=0.0)  # size None: the parameters' shape
    v = s.binomial(size=T.stack([n, n]), ndim=2)
    f = sg.function([n, x], [u, z, v], backend=backend)
    a, b, c = f(4, np.ones((2, 5)))
    assert a.shape == (4, 3) and c.shape == (4, 4)
    np.testing.assert_array_equal(b, np.ones((2, 5)))
    for size in (x.shape, (x.shape[0], x.shape[1]), (T.shape_i(x, 0), T.shape_i(x, 1))):
        assert s.uniform(size).owner.inputs[0] is x  # x.shape: the draw reads x's shape, not a copy of it


def test_functional_keys():
    k = sg.random.key(0)
    k1, k2 = sg.random.split(k)
    a, b, c, d = sg.function([], [sg.random.normal(k1, (5,)), sg.random.normal(k2, (5,)), sg.random.normal(k1, (5,)),
                                  sg.random.uniform(sg.random.fold_in(k, 3), (2,))])()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)
    assert d.shape == (2,)
    bern, ints, perm, ch = sg.function([], [sg.random.bernoulli(k, 0.5, (8,)), sg.random.randint(k, (6,), 3, 9),
                                            sg.random.permutation(k, 5), sg.random.choice(k, 3, (4,))])()
    assert bern.dtype == bool and ints.min() >= 3 and ints.max() < 9
    assert sorted(perm) == list(range(5)) and ch.max() < 3


def test_theano_ports():
    r = sg.shared_randomstreams.RandomStreams(seed=234)
    m = sg.MRG_RandomStreams(seed=234)
    x = T.dvector("x")
    outs = [r.uniform((2, 2)), r.normal((3,), 1.0, 2.0), r.binomial((4,), 1, 0.5), r.random_integers((50,), 1, 6),
            r.choice((3,), 5, replace=False), r.permutation((2,), 4), m.uniform((5,), nstreams=17),
            m.normal(x.shape, std=3.0), m.binomial((3,), p=0.2)]
    vals = sg.function([x], outs)(np.zeros(4))
    assert vals[3].min() >= 1 and vals[3].max() <= 6  # Theano's random_integers includes high
    assert vals[5].shape == (2, 4) and all(sorted(row) == [0, 1, 2, 3] for row in vals[5])
    assert m.default_seed == 234 and sg.MRG_RandomStreams().default_seed == 12345


def test_theano_port_gives_each_draw_its_own_rng(backend, tmp_path):
    """Theano's rv.rng: seeding, get_state/set_state and copying one draw's state (the tutorial)."""
    srng = sg.shared_randomstreams.RandomStreams(seed=234)
    rv_u, rv_n = srng.uniform((2, 2)), srng.normal((2, 2))
    f, g = sg.function([], rv_u, backend=backend), sg.function([], rv_n, backend=backend)
    twice = sg.function([], rv_u + rv_u - 2 * rv_u, backend=backend)  # one draw read twice: the same numbers
    first, n0 = f(), g()
    rng_val = rv_u.rng.get_value(borrow=True)
    rng_val.seed(89234)
    rv_u.rng.set_value(rng_val, borrow=True)
    seeded = f()
    assert not np.array_equal(seeded, first)
    rng_val.seed(89234)
    rv_u.rng.set_value(rng_val)
    np.testing.assert_array_equal(f(), seeded)  # the same seed repeats the draw
    state = rv_u.rng.get_value().get_state()
    np.testing.assert_array_equal(twice(), np.zeros((2, 2)))
    v1 = f()
    rng = rv_u.rng.get_value(borrow=True)
    rng.set_state(state)
    rv_u.rng.set_value(rng, borrow=True)
    v2, v3 = f(), f()
    assert not np.array_equal(v2, v1) and np.array_equal(v3, v1)
    srng.seed(902340)  # every draw restarts, each from its own seed; rv_n was never touched by rv_u's rng
    a, b = f(), g()
    srng.seed(902340)
    np.testing.assert_array_equal(f(), a)
    np.testing.assert_array_equal(g(), b)
    assert not np.array_equal(a, b[:, :2]) and not np.array_equal(n0, b)
    other = sg.shared_randomstreams.RandomStreams(seed=987)
    h = sg.function([], other.uniform((2, 2)), backend=backend)
    for (mine, _), (theirs, update) in zip(srng.state_updates[:1], other.state_updates):  # the tutorial's copy
        theirs.set_value(mine.get_value())
        assert update.owner is not None and theirs.counter in update.owner.inputs  # the counter's update
    np.testing.assert_array_equal(h(), f())
    sg.save([f, srng], tmp_path / "s.sg")
    f2, srng2 = sg.load(tmp_path / "s.sg")
    np.testing.assert_array_equal(f2(), f())
    srng2.seed(5)
    srng.seed(5)
    np.testing.assert_array_equal(f2(), f())
    with pytest.raises(ValueError, match="set_state takes what get_state returned"):
        rng.set_state("state")
    with pytest.raises(TypeError, match="takes the DrawState that get_value returned"):
        rv_u.rng.set_value(np.zeros(2))


def test_choice_and_permutation_of_tensors(backend):
    s = sg.RandomStream(13)
    a = T.dvector("a")
    rows = s.permutation(a)
    pick = s.choice(a, size=(2,), replace=False)
    r, p = sg.function([a], [rows, pick], backend=backend)(np.arange(10.0) * 2)
    assert sorted(r) == list(np.arange(10.0) * 2) and len(set(p)) == 2


def test_bad_input_is_named():
    s = sg.RandomStream(0)
    with pytest.raises(ValueError, match="high must be greater"):
        s.integers(5, 5)
    with pytest.raises(ValueError, match="p must lie"):
        s.binomial((3,), n=5, p=1.5)
    with pytest.raises(GraphTypeError, match="float32 or float64"):
        s.uniform((3,), dtype="int32")
    with pytest.raises(ValueError, match="dropout: p"):
        T.nnet.dropout(T.dvector(), 1.0, s)
    with pytest.raises(TypeError, match="random stream"):
        T.nnet.dropout(T.dvector(), 0.5)
    f = sg.function([], s.choice(3, size=(5,), replace=False))
    with pytest.raises(ValueError, match="without replacement"):
        f()


@pytest.mark.skipif("opencl" not in BACKENDS, reason="no OpenCL device")
def test_dropout_fuses_into_one_kernel_on_opencl():
    s = sg.RandomStream(2)
    x, b = T.fmatrix("x"), T.fvector("b")
    f = sg.function([x, b], T.relu(T.nnet.dropout(x + b, 0.2, s) * 2), backend="opencl")
    launches = [ln for ln in f.source.splitlines() if "# Composite" in ln or "# random_" in ln]
    assert len(launches) == 1 and "random_bernoulli32" in launches[0]
    xv, bv = np.ones((64, 48), np.float32), np.zeros(48, np.float32)
    out = f(xv, bv)
    assert set(np.unique(out)) <= {0.0, 2.5}


@pytest.mark.parametrize("n", [64, 200, 1000])
def test_groups_and_partial_groups_match_numpy(backend, n):
    """Sizes around the OpenCL vector path's 64-element groups (whole groups, a partial last group),
    float32 and float64 uniforms, normals and Bernoulli draws with a scalar or an elementwise p,
    fused with arithmetic: the same numbers as the numpy backend."""
    def build(s, x, p):
        return [s.uniform((n,), dtype="float32"), s.uniform((n,), dtype="float64") * 2,
                s.binomial((n,), p=0.3, dtype="float32") * x, s.binomial((n,), p=0.6, dtype="float64") + 1,
                s.binomial((n,), p=p, dtype="float32") + x,
                # several draws in one kernel: two grouped ones and a normal (16 elements at a time)
                s.uniform(x.shape, dtype="float32") * x + s.normal(x.shape, dtype="float32")
                + s.binomial(x.shape, p=0.5, dtype="float32"),
                s.normal((n,), dtype="float64") * 2]  # last: float64 normals, within 2 ulp
    x, p = T.fvector("x"), T.fvector("p")
    rng = np.random.default_rng(n)
    xv, pv = rng.standard_normal(n).astype(np.float32), rng.uniform(size=n).astype(np.float32)
    want = sg.function([x, p], build(sg.RandomStream(5), x, p), backend="numpy")(xv, pv)
    got = sg.function([x, p], build(sg.RandomStream(5), x, p), backend=backend)(xv, pv)
    for k, (a, b) in enumerate(zip(want[:-1], got[:-1])):
        assert a.dtype == b.dtype and np.array_equal(a, b), k
    assert _same(want[-1], got[-1])


def _mask(stream, n=64):
    return sg.function([], T.nnet.dropout(T.ones((n,), "float64"), 0.5, stream))


def test_a_rank_folds_into_the_key(tmp_path):
    """Data-parallel streams (issue 19): rank r's key is fold_in(key(seed), r); ranks differ, the
    same seed and rank repeat, seed() keeps the rank, and sg.save/sg.load keep it."""
    for r in (0, 1, 5):
        want = sg.function([], sg.random.fold_in(sg.random.key(11), np.uint64(r)))()
        np.testing.assert_array_equal(sg.RandomStream(11, rank=r).key.get_value(), want)
    plain, r0, r1 = (_mask(sg.RandomStream(11, rank=r)) for r in (None, 0, 1))
    m = [f() for f in (plain, r0, r1)]
    assert not np.array_equal(m[0], m[1]) and not np.array_equal(m[1], m[2]) and not np.array_equal(m[0], m[2])
    np.testing.assert_array_equal(_mask(sg.RandomStream(11, rank=1))(), m[2])  # reproducible
    assert sg.distributed.size() == 1  # one process: the helper's stream is the plain one
    np.testing.assert_array_equal(_mask(sg.distributed.random_stream(11))(), m[0])
    s = sg.RandomStream(11, rank=1)
    f = _mask(s)
    first = f()
    s.seed(11)
    np.testing.assert_array_equal(f(), first)
    sg.save(s, tmp_path / "s.sg")
    assert sg.load(tmp_path / "s.sg").rank == 1 and "rank=1" in repr(s)
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError, match="rank must be an integer"):
            sg.RandomStream(1, rank=bad)


def _reseeded(rank, seed=9):
    u = sg.random.RandomStreams(0, rank=rank).uniform((8,))
    state = u.rng.get_value()
    state.seed(seed)
    u.rng.set_value(state)
    return sg.function([], u)()


def test_theano_ports_fold_the_rank_into_every_draw():
    a, b = sg.random.RandomStreams(3, rank=0), sg.random.RandomStreams(3, rank=1)
    assert not np.array_equal(sg.function([], a.uniform((8,)))(), sg.function([], b.uniform((8,)))())
    np.testing.assert_array_equal(_reseeded(1), _reseeded(1))  # reseeding one draw keeps the rank
    assert not np.array_equal(_reseeded(1), _reseeded(None))
    m0, m1 = sg.random.MRG_RandomStreams(rank=0), sg.random.MRG_RandomStreams(rank=1)
    assert not np.array_equal(sg.function([], m0.uniform((8,)))(), sg.function([], m1.uniform((8,)))())
