"""The generator under random streams: Philox4x64-10 known answers (Random123's kat_vectors), the
block layout numpy's own Philox gives, the same blocks from the OpenCL C, streams that do not
depend on chunking (a draw computed in pieces equals the whole), and the statistics of the
distributions (KS, chi-square, lag correlation) on every backend."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as stats

import symgraph as sg
from symgraph.rng import binomial as B
from symgraph.rng import draws as D
from symgraph.rng import philox as P
from tests.conftest import BACKENDS

# Random123 kat_vectors, philox4x64 with 10 rounds: counter (4 words), key (2 words) -> block
KAT = [
    ([0, 0, 0, 0], [0, 0],
     [0x16554d9eca36314c, 0xdb20fe9d672d0fdc, 0xd7e772cee186176b, 0x7e68b68aec7ba23b]),
    ([2**64 - 1] * 4, [2**64 - 1] * 2,
     [0x87b092c3013fe90b, 0x438c3c67be8d0224, 0x9cc7d7c69cd777b6, 0xa09caebf594f0ba0]),
    ([0x243f6a8885a308d3, 0x13198a2e03707344, 0xa4093822299f31d0, 0x082efa98ec4e6c89],
     [0x452821e638d01377, 0xbe5466cf34e90c6c],
     [0xa528f45403e61d95, 0x38c72dbd566e9788, 0xa5a1610e72fd18b5, 0x57bd43b5e52b7fe6]),
]
KEY, CTR = (0x1234, 0xABCD), (5, 7, 0)


@pytest.mark.parametrize("counter, key, block", KAT)
def test_known_answers_numpy(counter, key, block):
    got = P.philox(np.array([counter], np.uint64), tuple(key))[0]
    assert [int(w) for w in got] == block
    # numpy's own Philox, started one before, gives the same block first (exact C-speed oracle)
    fast = P.blocks(tuple(key), tuple(counter[1:]), counter[0], 1)[0]
    assert [int(w) for w in fast] == block


def test_contiguous_runs_carry_like_the_counter():
    """Blocks from numpy's Philox over a run that wraps word 0 equal the vectorised version's."""
    first = 2**64 - 2
    got = P.blocks(KEY, CTR, first, 4)
    ctr = np.array([[(first + j) % 2**64, CTR[0] + ((first + j) >> 64), CTR[1], CTR[2]] for j in range(4)], np.uint64)
    np.testing.assert_array_equal(got, P.philox(ctr, KEY))


def test_lane_layouts():
    """32-bit lanes are lo(w0), hi(w0), lo(w1)...; uniforms are (u32 >> 8) 2**-24 and (u64 >> 11) 2**-53."""
    blk = P.blocks(KEY, CTR, 0, 2)
    w32 = np.array([(int(w) >> s) & 0xFFFFFFFF for w in blk.reshape(-1) for s in (0, 32)], np.uint64)
    np.testing.assert_array_equal(D.bits32(KEY, CTR, 0, 16), w32)
    np.testing.assert_array_equal(D.bits64(KEY, CTR, 0, 8), blk.reshape(-1))
    np.testing.assert_array_equal(D.uniform32(KEY, CTR, 0, 16), (w32 >> 8).astype(np.float32) * np.float32(2.0 ** -24))
    np.testing.assert_array_equal(D.uniform64(KEY, CTR, 0, 8), (blk.reshape(-1) >> np.uint64(11)) * 2.0 ** -53)
    z = D.normal64(KEY, CTR, 0, 2)
    u1, u2 = ((int(blk[0, 0]) >> 11) + 1) * 2.0 ** -53, (int(blk[0, 1]) >> 11) * 2.0 ** -53
    r = math.sqrt(-2 * math.log(u1))
    np.testing.assert_allclose(z, [r * math.cos(2 * math.pi * u2), r * math.sin(2 * math.pi * u2)], rtol=1e-15)


DRAWS = [D.bits32, D.bits64, D.uniform32, D.uniform64, D.normal32, D.normal64,
         lambda k, c, s, n: D.bernoulli32(k, c, s, n, 0.3), lambda k, c, s, n: D.integers(k, c, s, n, -5, 2**62),
         lambda k, c, s, n: B.binomial(k, c, s, n, 40, 0.3), lambda k, c, s, n: B.binomial(k, c, s, n, 3, 0.6)]


@pytest.mark.parametrize("draw", DRAWS)
def test_a_draw_in_pieces_equals_the_whole(draw):
    whole = draw(KEY, CTR, 0, 1001)
    for cut in (1, 3, 7, 8, 13, 500):
        np.testing.assert_array_equal(np.concatenate([draw(KEY, CTR, 0, cut), draw(KEY, CTR, cut, 1001 - cut)]), whole)
    np.testing.assert_array_equal(draw(KEY, CTR, 37, 100), whole[37:137])


def test_rejections_take_sub_streams():
    """A range of 3 * 2**62 rejects a quarter of the words: every value stays in range and uniform."""
    lo, hi = -2**63, 2**62
    x = D.integers(KEY, CTR, 0, 200_000, lo, hi)
    assert x.min() >= lo and x.max() < hi
    frac = (x < 0).mean()  # 2**63 of the 3 * 2**62 values are negative
    assert abs(frac - 2 / 3) < 0.005


# --- the same blocks and draws from the OpenCL C --------------------------------------------------

def _device_kernels():
    from symgraph.backends.opencl import kernels_random as kr
    from symgraph.backends.opencl.runtime import get_runtime
    rt = get_runtime()
    helpers = kr.helper_source({"sg_uniform32", "sg_normal64", "sg_integers"})
    src = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" + helpers + r"""
__kernel void blocks(__global const ulong *ctr, __global const ulong *key, __global ulong *out) {
    const long g = get_global_id(0);
    const ulong4 b = sg_philox(ctr[4 * g], key[2 * g], key[2 * g + 1], ctr[4 * g + 1], ctr[4 * g + 2], ctr[4 * g + 3]);
    vstore4(b, g, out);
}
__kernel void pieces(ulong k0, ulong k1, ulong c1, ulong c2, ulong c3, long start,
                     __global float *u, __global double *z, __global long *m) {
    const ulong ix = (ulong)(start + get_global_id(0));
    const ulong4 b8 = sg_philox(ix >> 3, k0, k1, c1, c2, c3), b4 = sg_philox(ix >> 2, k0, k1, c1, c2, c3);
    u[get_global_id(0)] = sg_uniform32(b8, ix, k0, k1, c1, c2, c3);
    z[get_global_id(0)] = sg_normal64(b4, ix, k0, k1, c1, c2, c3);
    m[get_global_id(0)] = sg_integers(b4, ix, k0, k1, c1, c2, c3, -9223372036854775807L - 1, 4611686018427387904L);
}
"""
    return rt, rt.kernel(src, "blocks"), rt.kernel(src, "pieces")


@pytest.mark.skipif("opencl" not in BACKENDS, reason="no OpenCL device")
def test_known_answers_opencl():
    rt, blocks, _ = _device_kernels()
    ctr = rt.to_device(np.array([c for c, _, _ in KAT], np.uint64))
    key = rt.to_device(np.array([k for _, k, _ in KAT], np.uint64))
    out = rt.empty((len(KAT), 4), np.uint64)
    blocks(rt.queue, (len(KAT),), None, ctr.buffer, key.buffer, out.buffer)
    assert out.to_host().tolist() == [b for _, _, b in KAT]


@pytest.mark.skipif("opencl" not in BACKENDS, reason="no OpenCL device")
def test_opencl_pieces_equal_numpy_whole():
    """Elements computed by the device in two launches (any split point) equal numpy's whole draw."""
    rt, _, pieces = _device_kernels()
    n = 203
    want_u, want_z = D.uniform32(KEY, CTR, 0, n), D.normal64(KEY, CTR, 0, n)
    want_m = D.integers(KEY, CTR, 0, n, -2**63, 2**62)
    for cut in (0, 5, 8, 101):
        got = [[], [], []]
        for start, count in ((0, cut), (cut, n - cut)):
            if not count:
                continue
            bufs = [rt.empty((count,), dt) for dt in (np.float32, np.float64, np.int64)]
            words = [np.uint64(w) for w in (*KEY, *CTR)]
            pieces(rt.queue, (count,), None, *words, np.int64(start), *[b.buffer for b in bufs])
            for g, b in zip(got, bufs):
                g.append(b.to_host())
        np.testing.assert_array_equal(np.concatenate(got[0]), want_u)
        np.testing.assert_array_equal(np.concatenate(got[2]), want_m)
        ulp = np.abs(np.concatenate(got[1]).view(np.int64) - want_z.view(np.int64))
        assert ulp.max() <= 2


@pytest.mark.skipif("opencl" not in BACKENDS, reason="no OpenCL device")
def test_opencl_groups_equal_numpy():
    """The vector path's group helpers (eight Philox blocks per ulong8, products split into 32-bit
    halves, lanes transposed into element order) give numpy's draws, from any group-aligned start
    (one past 2**32 elements too: 64-bit element indices); float64 normals within 2 ulp."""
    from symgraph.backends.opencl import kernels_random as kr
    from symgraph.backends.opencl.runtime import get_runtime
    rt = get_runtime()
    helpers = kr.helper_source({"sg_uniform32_x64", "sg_uniform64_x64", "sg_normal32_x64", "sg_normal64_x64"})
    src = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" + helpers + r"""
__kernel void groups(ulong k0, ulong k1, ulong c1, ulong c2, ulong c3, ulong start,
                     __global float *u, __global double *d, __global float *z, __global double *y) {
    const ulong g = get_global_id(0), ix = start + 64 * g;
    float16 r[4], n[4];
    double16 q[4], m[4];
    sg_uniform32_x64(ix, k0, k1, c1, c2, c3, r);
    sg_uniform64_x64(ix, k0, k1, c1, c2, c3, q);
    sg_normal32_x64(ix, k0, k1, c1, c2, c3, n);
    sg_normal64_x64(ix, k0, k1, c1, c2, c3, m);
    for (int s = 0; s < 4; s++) {
        vstore16(r[s], 4 * g + s, u); vstore16(q[s], 4 * g + s, d);
        vstore16(n[s], 4 * g + s, z); vstore16(m[s], 4 * g + s, y);
    }
}
"""
    kernel = rt.kernel(src, "groups")
    count = 3 * 64
    for start in (0, 64 * 5, 2**32 + 64):
        bufs = [rt.empty((count,), dt) for dt in (np.float32, np.float64, np.float32, np.float64)]
        kernel(rt.queue, (3,), None, *[np.uint64(w) for w in (*KEY, *CTR)], np.uint64(start), *[b.buffer for b in bufs])
        u, d, z, y = (b.to_host() for b in bufs)
        np.testing.assert_array_equal(u, D.uniform32(KEY, CTR, start, count))
        np.testing.assert_array_equal(d, D.uniform64(KEY, CTR, start, count))
        np.testing.assert_array_equal(z, D.normal32(KEY, CTR, start, count))
        assert np.abs(y.view(np.int64) - D.normal64(KEY, CTR, start, count).view(np.int64)).max() <= 2


# --- statistics, on each backend ------------------------------------------------------------------

def _draw(backend, build):
    return sg.function([], build(sg.RandomStream(2024)), backend=backend)()


def test_uniforms_and_normals_pass_ks(backend):
    u32, u64, z32, z64 = _draw(backend, lambda s: [s.uniform((10**6,), dtype="float32"), s.uniform((10**6,)),
                                                   s.normal((10**6,), dtype="float32"), s.normal((10**6,))])
    for u in (u32, u64):
        assert u.min() >= 0 and u.max() < 1
        assert stats.kstest(u, "uniform").pvalue > 1e-3
    for z in (z32, z64):
        assert np.isfinite(z).all()
        assert stats.kstest(z, "norm").pvalue > 1e-3


def test_lag_correlation_is_below_1e_3(backend):
    """Neighbours, lanes of one block, and the same lane of the next blocks are uncorrelated
    (10**7 draws: one standard error is 3e-4)."""
    u = _draw(backend, lambda s: s.uniform((10**7,), dtype="float32")).astype(np.float64) - 0.5
    for lag in (1, 2, 3, 4, 7, 8, 16):
        r = np.dot(u[:-lag], u[lag:]) / np.dot(u, u)
        assert abs(r) < 1e-3, (lag, r)


@pytest.mark.parametrize("n, p", [(1, 0.3), (7, 0.2), (60, 0.45), (500, 0.9)])
def test_binomial_chi_square(backend, n, p):
    x = _draw(backend, lambda s: s.binomial((200_000,), n=n, p=p))
    assert x.min() >= 0 and x.max() <= n
    ks = np.arange(n + 1)
    expected = stats.binom.pmf(ks, n, p) * x.size
    keep = expected >= 20  # pool the thin tails
    observed = np.bincount(x, minlength=n + 1)
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    if exp[-1] < 1:
        obs, exp = obs[:-1], exp[:-1] * obs[:-1].sum() / exp[:-1].sum()
    assert stats.chisquare(obs, exp).pvalue > 1e-3


@pytest.mark.parametrize("low, high", [(0, 6), (-3, 10), (0, 1000)])
def test_integers_chi_square(backend, low, high):
    x = _draw(backend, lambda s: s.integers(low, high, size=(300_000,)))
    assert x.min() >= low and x.max() < high
    counts = np.bincount(x - low, minlength=high - low)
    assert stats.chisquare(counts).pvalue > 1e-3
