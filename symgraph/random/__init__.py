"""Random numbers in graphs: streams (``sg.RandomStream``) and a functional, JAX-style API::

    k = sg.random.key(0)
    k1, k2 = sg.random.split(k)
    z = sg.random.normal(k1, (3, 4))            # a graph: the same key gives the same numbers

A functional draw reads only its key (counter words 0): reusing a key for two draws reuses their
numbers (split or fold_in first). Keys are uint64 vectors of two words; ``split``/``fold_in`` derive
new ones with the generator itself. Every backend computes the same numbers (symgraph/rng).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.graph.basic import Variable
from symgraph.random import distributions as _D
from symgraph.random.ports import MRG_RandomStreams, RandomStreams
from symgraph.random.streams import RandomStream
from symgraph.rng.philox import key_from_seed
from symgraph.tensor.random_ops import KeyFoldIn, KeySplit, Words, _as_key
from symgraph.tensor.type import TensorConstant, constant

__all__ = ["RandomStream", "RandomStreams", "MRG_RandomStreams", "key", "split", "fold_in", "uniform", "normal",
           "bernoulli", "binomial", "integers", "randint", "bits", "choice", "permutation"]

_ZERO = np.uint64(0)


def key(seed: int) -> TensorConstant:
    """The key of ``seed`` (0 <= seed < 2**128): a uint64 constant of two words."""
    return constant(key_from_seed(seed))


def split(k: Any, num: int = 2) -> tuple[Variable, ...]:
    """``num`` new, independent keys derived from ``k``."""
    keys = KeySplit(num)(_as_key(k))
    return tuple(keys[i] for i in range(num))


def fold_in(k: Any, data: Any) -> Variable:
    """A new key from ``k`` and an integer (a step number, a worker id...)."""
    return KeyFoldIn()(_as_key(k), data)


def _words(k: Any) -> Words:
    k = _as_key(k)
    return Words(k[0], k[1], constant(_ZERO), constant(_ZERO), constant(_ZERO))


def uniform(k: Any, shape: Any = (), dtype: str | None = None, minval: Any = 0.0, maxval: Any = 1.0) -> Variable:
    """Uniform floats in [minval, maxval)."""
    return _D.uniform(_words(k), shape, minval, maxval, dtype)


def normal(k: Any, shape: Any = (), dtype: str | None = None) -> Variable:
    """Standard normal floats."""
    return _D.normal(_words(k), shape, 0.0, 1.0, dtype)


def bernoulli(k: Any, p: Any = 0.5, shape: Any = None) -> Variable:
    """Booleans, True with probability ``p``."""
    return _D.binomial(_words(k), shape, 1, p, "bool")


def binomial(k: Any, n: Any, p: Any, shape: Any = None, dtype: str = "int64") -> Variable:
    """Binomial(n, p) counts."""
    return _D.binomial(_words(k), shape, n, p, dtype)


def integers(k: Any, low: Any, high: Any = None, shape: Any = None, dtype: str = "int64") -> Variable:
    """Integers in [low, high) without modulo bias."""
    return _D.integers(_words(k), low, high, shape, dtype)


def randint(k: Any, shape: Any, minval: Any, maxval: Any, dtype: str = "int64") -> Variable:
    """JAX's spelling of ``integers``: [minval, maxval)."""
    return _D.integers(_words(k), minval, maxval, shape, dtype)


def bits(k: Any, shape: Any = (), dtype: str = "uint32") -> Variable:
    """Raw random words (uint32 or uint64)."""
    return _D.bits(_words(k), shape, dtype)


def choice(k: Any, a: Any, shape: Any = (), replace: bool = True, p: Any = None) -> Variable:
    """Samples of range(a) or of a tensor's rows."""
    return _D.choice(_words(k), a, shape, replace, p)


def permutation(k: Any, x: Any) -> Variable:
    """A random permutation of range(x) or of tensor x's rows."""
    return _D.permutation(_words(k), x)
