"""Theano's two stream classes with their own signatures, for ports of Theano code. Both draw
from the same counter-based generator as ``sg.RandomStream``: the numbers do not depend on the
backend, and MRG's ``nstreams`` (which changed Theano's numbers) is accepted and ignored."""
from __future__ import annotations

from typing import Any

from symgraph.graph.basic import Variable
from symgraph.random import distributions as D
from symgraph.random.streams import RandomStream
from symgraph.tensor.elemwise import cast
from symgraph.tensor.type import TensorVariable


class RandomStreams(RandomStream):
    """``theano.tensor.shared_randomstreams.RandomStreams``: size first in every draw,
    ``random_integers`` with an inclusive high, ``choice(size, a)`` and ``permutation(size, n)``."""

    def binomial(self, size: Any = None, n: Any = 1, p: Any = 0.5, ndim: int | None = None,
                 dtype: str = "int64", prob: Any = None) -> Variable:
        return super().binomial(size, n, p if prob is None else prob, ndim, dtype)

    def random_integers(self, size: Any = None, low: Any = 0, high: Any = 1, ndim: int | None = None,
                        dtype: str = "int64") -> Variable:
        """Integers in [low, high], both ends included (Theano's)."""
        hi = high + 1 if isinstance(high, int) else cast(high, "int64") + 1
        return D.integers(self.next_words(), low, hi, size, dtype, ndim)

    def choice(self, size: Any = None, a: Any = 2, replace: bool = True, p: Any = None,  # type: ignore[override]
               ndim: int | None = None, dtype: str = "int64") -> Variable:
        return D.choice(self.next_words(), a, () if size is None else size, replace, p, dtype)

    def permutation(self, size: Any = None, n: Any = 1, ndim: int | None = None,  # type: ignore[override]
                    dtype: str = "int64") -> Variable:
        """``size`` permutations of range(n), along a last axis."""
        return D.permutation(self.next_words(), n, () if size is None else size, dtype)


class MRG_RandomStreams(RandomStream):
    """``theano.sandbox.rng_mrg.MRG_RandomStreams`` (default seed 12345). ``nstreams`` is accepted
    for compatibility and has no effect: these streams do not depend on it."""

    def __init__(self, seed: int = 12345):
        super().__init__(seed)

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
