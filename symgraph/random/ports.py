"""Theano's two stream classes with their own signatures, for ports of Theano code. Both draw
from the same counter-based generator as ``sg.RandomStream``: the numbers do not depend on the
backend, and MRG's ``nstreams`` (which changed Theano's numbers) is accepted and ignored.

Theano's ``shared_randomstreams`` gave every draw its own generator, ``rv.rng`` (a shared
variable holding a numpy RandomState: ``rv.rng.get_value().seed(n)``, ``get_state()``,
``set_state()``). Its port does the same with the counter-based generator: each draw site has its
own key (derived from the stream's seed and the site) besides its call counter, and ``rv.rng`` is
a :class:`DrawRNG` whose value, a :class:`DrawState`, seeds or restores that one draw."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.compile.shared import SharedVariable
from symgraph.graph.basic import Variable
from symgraph.random import distributions as D
from symgraph.random.streams import RandomStream, fresh_seed, state_variable, stream_key
from symgraph.tensor.elemwise import cast
from symgraph.tensor.random_ops import Words
from symgraph.tensor.type import TensorVariable


def site_seed(seed: int, site: int) -> int:
    """The seed of draw site ``site`` of a stream seeded ``seed`` (numpy's SeedSequence mixes them,
    so sites of one stream and equal sites of nearby seeds get unrelated keys)."""
    low, high = (int(w) for w in np.random.SeedSequence([int(seed), site]).generate_state(2, np.uint64))
    return low | high << 64


class DrawState:
    """The state of one draw site (Theano's RandomState in ``rv.rng``): its key and call counter.
    ``seed(n)`` restarts the draw from seed ``n`` (the stream's rank folded in);
    ``get_state()``/``set_state()`` copy it."""

    def __init__(self, key: np.ndarray, counter: Any, rank: int | None = None):
        self.key, self.counter, self.rank = np.array(key, np.uint64), np.uint64(counter), rank

    def seed(self, seed: int | None = None) -> None:
        """Restart this draw from ``seed`` (None: a seed from the operating system)."""
        self.key, self.counter = stream_key(fresh_seed() if seed is None else seed, self.rank), np.uint64(0)

    def get_state(self) -> tuple[str, np.ndarray, np.uint64]:
        return ("philox", self.key.copy(), self.counter)

    def set_state(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 3 and state[0] == "philox"
                and np.shape(state[1]) == (2,)):
            raise ValueError(f"set_state takes what get_state returned (('philox', key, counter)), got {state!r}"
                             [:300])
        self.key, self.counter = np.array(state[1], np.uint64), np.uint64(state[2])


class DrawRNG:
    """``rv.rng``: the state of one draw, read and written like Theano's shared RandomState.
    ``get_value()`` is a copy of the state; changes take effect through ``set_value``."""

    def __init__(self, key: SharedVariable, counter: SharedVariable, rank: int | None = None):
        self.key, self.counter, self.name, self.rank = key, counter, key.name, rank

    def get_value(self, borrow: bool = False, return_internal_type: bool = False) -> DrawState:
        return DrawState(self.key.get_value(), self.counter.get_value(), self.rank)

    def set_value(self, value: DrawState, borrow: bool = False) -> None:
        if not isinstance(value, DrawState):
            raise TypeError(f"{self.name}.set_value takes the DrawState that get_value returned, got {value!r}"[:300])
        self.key.set_value(value.key.copy())
        self.counter.set_value(np.uint64(value.counter))

    def __repr__(self) -> str:
        return f"<DrawRNG {self.name}>"


class RandomStreams(RandomStream):
    """``theano.tensor.shared_randomstreams.RandomStreams``: size first in every draw,
    ``random_integers`` with an inclusive high, ``choice(size, a)`` and ``permutation(size, n)``;
    each draw has its own key and ``rv.rng`` (see the module docstring)."""

    def __init__(self, seed: int | None = None, rank: int | None = None):
        super().__init__(seed, rank)
        self.site_keys: list[SharedVariable] = []

    def next_words(self) -> Words:
        """The words of a new draw site: its own key, its call counter."""
        words = super().next_words()
        site = len(self.counters) - 1
        key = state_variable(stream_key(site_seed(self.default_seed, site), self.rank), f"rng_key{site}")
        self.site_keys.append(key)
        return words._replace(k0=key[0], k1=key[1])

    def _with_rng(self, v: Variable) -> Variable:
        v.rng = DrawRNG(self.site_keys[-1], self.counters[-1], self.rank)  # type: ignore[attr-defined]
        return v

    def seed(self, seed: int | None = None) -> None:
        """Reseed every draw, each with its own seed derived from ``seed`` (Theano's), counters zeroed."""
        super().seed(seed)
        for site, key in enumerate(self.site_keys):
            key.set_value(stream_key(site_seed(self.default_seed, site), self.rank))

    @property
    def state_updates(self) -> list[tuple[Any, Variable]]:
        """(``rv.rng``, its update) per draw, as Theano listed them: copying ``rng.get_value()``
        from one stream's list to another's copies the whole state of each draw."""
        return [(DrawRNG(k, c, self.rank), u) for k, (c, u) in zip(self.site_keys, self.updates())]

    def get_state(self) -> dict[str, np.ndarray]:
        state = super().get_state()
        state["site_keys"] = np.array([k.get_value() for k in self.site_keys], np.uint64).reshape(-1, 2)
        return state

    def set_state(self, state: dict) -> None:
        keys = np.asarray(state.get("site_keys", ()), np.uint64).reshape(-1, 2)
        if len(keys) != len(self.site_keys):
            raise ValueError(f"the state has {len(keys)} draw keys, the stream {len(self.site_keys)}")
        super().set_state(state)
        for k, v in zip(self.site_keys, keys):
            k.set_value(v)

    def uniform(self, size: Any = None, low: Any = 0.0, high: Any = 1.0, ndim: int | None = None,
                dtype: str | None = None) -> Variable:
        return self._with_rng(super().uniform(size, low, high, ndim, dtype))

    def normal(self, size: Any = None, avg: Any = 0.0, std: Any = 1.0, ndim: int | None = None,
               dtype: str | None = None) -> Variable:
        return self._with_rng(super().normal(size, avg, std, ndim, dtype))

    def binomial(self, size: Any = None, n: Any = 1, p: Any = 0.5, ndim: int | None = None,
                 dtype: str = "int64", prob: Any = None) -> Variable:
        return self._with_rng(super().binomial(size, n, p if prob is None else prob, ndim, dtype))

    def random_integers(self, size: Any = None, low: Any = 0, high: Any = 1, ndim: int | None = None,
                        dtype: str = "int64") -> Variable:
        """Integers in [low, high], both ends included (Theano's)."""
        hi = high + 1 if isinstance(high, int) else cast(high, "int64") + 1
        return self._with_rng(D.integers(self.next_words(), low, hi, size, dtype, ndim))

    def choice(self, size: Any = None, a: Any = 2, replace: bool = True, p: Any = None,  # type: ignore[override]
               ndim: int | None = None, dtype: str = "int64") -> Variable:
        return self._with_rng(D.choice(self.next_words(), a, () if size is None else size, replace, p, dtype))

    def permutation(self, size: Any = None, n: Any = 1, ndim: int | None = None,  # type: ignore[override]
                    dtype: str = "int64") -> Variable:
        """``size`` permutations of range(n), along a last axis."""
        return self._with_rng(D.permutation(self.next_words(), n, () if size is None else size, dtype))


class MRG_RandomStreams(RandomStream):
    """``theano.sandbox.rng_mrg.MRG_RandomStreams`` (default seed 12345). ``nstreams`` is accepted
    for compatibility and has no effect: these streams do not depend on it."""

    def __init__(self, seed: int = 12345, rank: int | None = None):
        super().__init__(seed, rank)

    def uniform(self, size: Any = None, low: Any = 0.0, high: Any = 1.0, ndim: int | None = None,
                dtype: str | None = None, nstreams: Any = None) -> Variable:
        return super().uniform(size, low, high, ndim, dtype)

    def normal(self, size: Any = None, avg: Any = 0.0, std: Any = 1.0, ndim: int | None = None,
               dtype: str | None = None, nstreams: Any = None) -> Variable:
        return super().normal(size, avg, std, ndim, dtype)

    # Theano's rng_mrg signature: p second (n, when given, by keyword), unlike RandomStream's (size, n, p)
    def binomial(self, size: Any = None, p: Any = 1, ndim: int | None = None,  # type: ignore[override]
                 dtype: str = "int64", nstreams: Any = None, n: Any = 1) -> Variable:
        return super().binomial(size, n, p, ndim, dtype)

    def choice(self, size: Any = 1, a: Any = None, replace: bool = True, p: Any = None,  # type: ignore[override]
               ndim: int | None = None, dtype: str = "int64", nstreams: Any = None) -> Variable:
        if a is None:
            if p is None:
                raise ValueError("MRG_RandomStreams.choice needs a or p")
            a = p.shape[-1] if isinstance(p, TensorVariable) else len(p)
        return D.choice(self.next_words(), a, size, replace, p, dtype)
