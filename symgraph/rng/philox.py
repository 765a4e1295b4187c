"""Philox4x64-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC11;
the Random123 library), the one generator of symgraph's random streams.

A block is ``philox(key, counter)``: four 64-bit words from a 128-bit key and a 256-bit counter.
Every random value symgraph draws is a pure function of the key, the counter words and the
element's flat index, so any element of any call can be computed anywhere, in any chunking:

- counter word 0: the element block (element index >> the row's ``block_shift``);
- word 1: the call (a draw site's call counter, or 0 in the functional API);
- word 2: the draw site, with a sub-stream number in its high 32 bits (rejection samplers draw
  their extra words from sub-streams 1, 2, ... at the same element position);
- word 3: the loop step (0 outside loops: reserved for scan bodies).

Words of a block: ``w[0..3]``; the 32-bit lanes of a block are ``lo(w0), hi(w0), lo(w1), ...``
(numpy's own order for 32-bit output). The numpy backend computes contiguous runs of blocks at C
speed with numpy's ``np.random.Philox`` (which is exactly this generator: it returns the block of
counter ``c + 1`` first, so it is started at ``c - 1``); ``philox`` below is a vectorised numpy
version for scattered counters and the known-answer tests.

Why Philox4x64-10 and not Philox4x32-10: numpy ships 4x64 at C speed (a vectorised numpy 4x32
is several times slower than the 100 ms budget for 10**7 float32 uniforms); on GPUs and on
pocl 4x32 is cheaper per output bit (native 32-bit multiplies), measured and argued in
docs/random.md. Bit-identical streams on every backend need one generator, and the host
backend's speed decided it.
"""
from __future__ import annotations

import numpy as np

M0, M1 = 0xD2E7470EE14C6C93, 0xCA5A826395121157    # the round multipliers
W0, W1 = 0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B    # the key schedule (Weyl) increments
ROUNDS = 10
MASK64 = (1 << 64) - 1
SUB_SHIFT = 32                                      # sub-stream number: high half of counter word 2
SPLIT_WORD = MASK64                                 # counter word 2 of key derivation (split/fold_in)
FOLD_WORD = MASK64 - 1
_LO32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


def _mulhilo(a: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """High and low 64-bit halves of ``a * m`` (uint64 array times a 64-bit constant)."""
    a_lo, a_hi = a & _LO32, a >> _S32
    m_lo, m_hi = np.uint64(m & 0xFFFFFFFF), np.uint64(m >> 32)
    ll, lh, hl, hh = a_lo * m_lo, a_lo * m_hi, a_hi * m_lo, a_hi * m_hi
    mid = (ll >> _S32) + (lh & _LO32) + (hl & _LO32)
    hi = hh + (lh >> _S32) + (hl >> _S32) + (mid >> _S32)
    return hi, a * np.uint64(m)


def philox(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox4x64-10 blocks of ``counters`` (an (N, 4) uint64 array) under ``key``: an (N, 4)
    uint64 array. Vectorised numpy (about 40 array operations per round): for scattered counters;
    contiguous runs go through ``blocks`` at C speed."""
    c = np.array(counters, dtype=np.uint64, copy=True).reshape(-1, 4)
    x0, x1, x2, x3 = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    k0, k1 = int(key[0]) & MASK64, int(key[1]) & MASK64
    with np.errstate(over="ignore"):
        for r in range(ROUNDS):
            if r:
                k0, k1 = (k0 + W0) & MASK64, (k1 + W1) & MASK64
            hi0, lo0 = _mulhilo(x0, M0)
            hi1, lo1 = _mulhilo(x2, M1)
            x0, x1, x2, x3 = hi1 ^ x1 ^ np.uint64(k0), lo1, hi0 ^ x3 ^ np.uint64(k1), lo0
    return np.stack([x0, x1, x2, x3], axis=1)


def bit_generator(key: tuple[int, int], counter: tuple[int, int, int], first: int) -> np.random.Philox:
    """numpy's Philox positioned so that its first block is ``(first, *counter)`` (numpy returns
    the block of its counter plus one first, so it starts one before, borrowing across words)."""
    c1, c2, c3 = (int(w) & MASK64 for w in counter)
    whole = (int(first) & MASK64) | c1 << 64 | c2 << 128 | c3 << 192
    return np.random.Philox(counter=(whole - 1) % (1 << 256),
                            key=np.array([int(key[0]) & MASK64, int(key[1]) & MASK64], dtype=np.uint64))


def blocks(key: tuple[int, int], counter: tuple[int, int, int], first: int, count: int) -> np.ndarray:
    """The ``count`` blocks of counters ``(first + j, *counter)``, an (count, 4) uint64 array, at C speed."""
    if count <= 0:
        return np.empty((0, 4), np.uint64)
    return bit_generator(key, counter, first).random_raw(4 * count).reshape(count, 4)


def words64_at(key: tuple[int, int], counter: tuple[int, int, int], idx: np.ndarray) -> np.ndarray:
    """The 64-bit lane of each element index in ``idx`` (sorted ascending; 4 elements per block):
    a dense run of blocks at C speed, scattered blocks through the vectorised version."""
    idx = np.asarray(idx, dtype=np.uint64)
    if idx.size == 0:
        return np.empty(0, np.uint64)
    b = idx >> np.uint64(2)
    lo, hi = int(b[0]), int(b[-1])
    lane = (idx & np.uint64(3)).astype(np.intp)
    if hi - lo + 1 <= 4 * idx.size:
        return blocks(key, counter, lo, hi - lo + 1)[(b - np.uint64(lo)).astype(np.intp), lane]
    ub, inv = np.unique(b, return_inverse=True)
    ctr = np.empty((ub.size, 4), np.uint64)
    ctr[:, 0] = ub
    ctr[:, 1:] = [int(w) & MASK64 for w in counter]
    return philox(ctr, key)[inv, lane]


def derive_keys(key: tuple[int, int], word2: int, data: np.ndarray) -> np.ndarray:
    """New keys (an (N, 2) uint64 array): the first two words of the blocks ``(d, 0, word2, 0)``
    for each ``d`` in ``data``. ``split`` uses ``word2 = SPLIT_WORD`` and d = 0, 1, ...;
    ``fold_in`` uses ``FOLD_WORD`` and the folded integer. Draws never use these counters (their
    word 2 is a site below 2**32 with a sub-stream number above)."""
    data = np.asarray(data, dtype=np.uint64).reshape(-1)
    ctr = np.zeros((data.size, 4), np.uint64)
    ctr[:, 0] = data
    ctr[:, 2] = np.uint64(word2)
    return philox(ctr, key)[:, :2].copy()


def key_from_seed(seed: int) -> np.ndarray:
    """The key of a stream seeded with the integer ``seed`` (0 <= seed < 2**128): its low and high
    64-bit halves. Philox needs no mixing of structured keys (Random123 passes BigCrush with any key)."""
    seed = int(seed)
    if not 0 <= seed < 1 << 128:
        raise ValueError(f"a random seed must be an integer in [0, 2**128), got {seed}")
    return np.array([seed & MASK64, seed >> 64], dtype=np.uint64)
