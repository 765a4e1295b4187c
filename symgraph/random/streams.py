"""Random streams: ``srng = sg.RandomStream(seed)``, then ``srng.uniform(size)``, ``srng.normal``...

A stream is a key (a shared uint64 pair) and, per draw site (each call of a draw method), a
shared call counter. Element i of a draw at call c of site s is computed from the key and the
counter (block of i, c, s, loop step) alone (symgraph/rng/philox.py), so:

- every backend computes the same numbers, in any chunking, for any number of streams;
- each compiled call advances the counters of the sites it uses (Theano's default update,
  ``ctr + 1``; ``sg.function(..., no_default_updates=True)`` turns it off), and a call that fails
  advances nothing, because the counters are shared variables committed with the call's updates;
- ``srng.seed(s)`` sets the key and zeroes the counters in place: functions already compiled read
  them at each call, on every backend (no state is copied at compile time);
- keys and counters are shared variables, so sg.save/sg.load keep them with a function;
- ``rank=r`` folds a process rank into the key (data-parallel training: each MPI rank draws its
  own numbers, e.g. its own dropout masks, and the same seed and rank give the same numbers on
  any run): the key is ``fold_in(key(seed), r)``, the key derivation of ``sg.random.fold_in``.
  ``sg.distributed.random_stream(seed)`` passes the MPI rank when there is more than one process.
"""
from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from symgraph.compile.shared import SharedVariable, shared
from symgraph.graph.basic import Variable
from symgraph.random import distributions as D
from symgraph.rng.philox import FOLD_WORD, SUB_SHIFT, derive_keys, key_from_seed
from symgraph.tensor.random_ops import Words, step_word
from symgraph.tensor.type import constant

MAX_SITES = 1 << SUB_SHIFT


def state_variable(value: np.ndarray | np.integer, name: str) -> SharedVariable:
    """A shared variable holding random state: uint64, static shape, kept on the host by device
    backends (kernels take it by value)."""
    v = shared(np.asarray(value, np.uint64), name=name, shape=np.shape(value))
    v.host_resident = True
    return v


def stream_key(seed: int, rank: int | None = None) -> np.ndarray:
    """The key of a stream seeded ``seed``, with ``rank`` folded in (None: no fold, the plain
    stream): ``fold_in(key(seed), rank)``, so ranks draw unrelated numbers from one seed."""
    key = key_from_seed(seed)
    if rank is None:
        return key
    return derive_keys((int(key[0]), int(key[1])), FOLD_WORD, np.array([rank], np.uint64))[0]


def check_rank(rank: int | None) -> int | None:
    """``rank`` as an int (None stays None); a negative or non-integer rank is a ValueError."""
    if rank is None:
        return None
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 0:
        raise ValueError(f"a random stream's rank must be an integer >= 0 or None, got {rank!r}")
    return int(rank)


def fresh_seed() -> int:
    """A seed from the operating system's entropy (for ``RandomStream(seed=None)``)."""
    return secrets.randbits(63)


class RandomStream:
    """A stream of random draws for graphs (PyTensor's ``RandomStream``, Theano's ``RandomStreams``
    with a counter-based generator). ``seed=None`` takes a seed from the operating system.
    ``rank`` (a process rank, e.g. ``sg.distributed.rank()``) is folded into the key: streams of
    one seed and different ranks draw different numbers; None (the default) folds nothing."""

    def __init__(self, seed: int | None = None, rank: int | None = None):
        self.default_seed = fresh_seed() if seed is None else int(seed)
        self.rank = check_rank(rank)
        self.key = state_variable(stream_key(self.default_seed, self.rank), "rng_key")
        self.counters: list[SharedVariable] = []

    def __repr__(self) -> str:
        rank = "" if self.rank is None else f" rank={self.rank}"
        return f"<{type(self).__name__} seed={self.default_seed}{rank} with {len(self.counters)} draw site(s)>"

    # --- state -------------------------------------------------------------------------------------
    def next_words(self) -> Words:
        """The key and counter words of a new draw site (its own call counter, updated by default;
        inside a scan body, the loop step as counter word c3, so every step draws fresh numbers)."""
        site = len(self.counters)
        if site >= MAX_SITES:
            raise ValueError(f"a random stream has at most {MAX_SITES} draw sites")
        ctr = state_variable(np.uint64(0), f"rng_call{site}")
        ctr.default_update = ctr + constant(np.uint64(1))
        self.counters.append(ctr)
        return Words(self.key[0], self.key[1], ctr, constant(np.uint64(site)), step_word())

    def seed(self, seed: int | None = None) -> None:
        """Restart the stream from ``seed`` (default: the stream's own seed): sets the key and
        zeroes every call counter, in place, so functions already compiled see it at their next call
        (the stream's rank stays folded in)."""
        self.default_seed = self.default_seed if seed is None else int(seed)
        self.key.set_value(stream_key(self.default_seed, self.rank))
        for c in self.counters:
            c.set_value(np.uint64(0))

    def updates(self) -> list[tuple[SharedVariable, Variable]]:
        """The default updates of the stream's call counters (Theano's ``srng.updates()``)."""
        return [(c, c.default_update) for c in self.counters if c.default_update is not None]

    @property
    def state_updates(self) -> list[tuple[SharedVariable, Variable]]:
        return self.updates()

    def get_state(self) -> dict[str, np.ndarray]:
        """The key and the call counters, as arrays (``set_state`` restores them)."""
        return {"key": self.key.get_value(), "counters": np.array([c.get_value() for c in self.counters], np.uint64)}

    def set_state(self, state: dict) -> None:
        """Restore what ``get_state`` returned (the same number of draw sites)."""
        counters = np.asarray(state["counters"], np.uint64).reshape(-1)
        if counters.size != len(self.counters):
            raise ValueError(f"the state has {counters.size} call counters, the stream {len(self.counters)}")
        self.key.set_value(np.asarray(state["key"], np.uint64))
        for c, v in zip(self.counters, counters):
            c.set_value(v)

    # --- draws -------------------------------------------------------------------------------------
    def uniform(self, size: Any = None, low: Any = 0.0, high: Any = 1.0, ndim: int | None = None,
                dtype: str | None = None) -> Variable:
        """Uniform floats in [low, high) (u in [0, 1): ``(u32 >> 8) * 2**-24`` in float32,
        ``(u64 >> 11) * 2**-53`` in float64; dtype default floatX or the parameters')."""
        return D.uniform(self.next_words(), size, low, high, dtype, ndim)

    def normal(self, size: Any = None, avg: Any = 0.0, std: Any = 1.0, ndim: int | None = None,
               dtype: str | None = None) -> Variable:
        """Normal floats ``avg + std * z`` (Box-Muller z; gradients flow to avg and std)."""
        return D.normal(self.next_words(), size, avg, std, dtype, ndim)

    def binomial(self, size: Any = None, n: Any = 1, p: Any = 0.5, ndim: int | None = None,
                 dtype: str = "int64") -> Variable:
        """Binomial(n, p) counts (n = 1: Bernoulli, e.g. a dropout mask with dtype=x.dtype)."""
        return D.binomial(self.next_words(), size, n, p, dtype, ndim)

    def integers(self, low: Any, high: Any = None, size: Any = None, dtype: str = "int64") -> Variable:
        """Integers in [low, high) without modulo bias (``integers(n)``: [0, n))."""
        return D.integers(self.next_words(), low, high, size, dtype)

    def choice(self, a: Any, size: Any = None, replace: bool = True, p: Any = None, dtype: str = "int64") -> Variable:
        """Samples of range(a) (a an int) or of a tensor's rows, with or without replacement, weights p."""
        return D.choice(self.next_words(), a, size, replace, p, dtype)

    def permutation(self, x: Any, size: Any = None, dtype: str = "int64") -> Variable:
        """A random permutation of range(x) or of tensor x's rows."""
        return D.permutation(self.next_words(), x, size, dtype)

    def bits(self, size: Any = (), dtype: str = "uint32") -> Variable:
        """Raw random words (uint32 or uint64)."""
        return D.bits(self.next_words(), size, dtype)
