"""Graph pieces of random draws: the ops that are not elementwise (a shape carrier, permutations,
choices, key derivation) and the counter words every draw reads.

Elementwise draws are ordinary Elemwise nodes of the scalar table's random rows
(``random_uniform32(like, k0, k1, c1, c2, c3, *params)``): their value at an element is a function
of the element's flat index in the output, so they fuse like any elementwise op and a backend
computes any element anywhere (symgraph/rng/draws.py). A draw with an explicit size takes a
``Blank`` of that size as ``like``: a broadcast view that costs no memory and is never read.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

from symgraph.errors import GraphTypeError
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.rng import draws, philox
from symgraph.tensor.shape import as_int_entry, entry_var
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable

__all__ = ["Words", "Blank", "Permutation", "Choice", "KeySplit", "KeyFoldIn", "counter_values", "loop_step",
           "current_loop_step", "step_word"]

KEY_TYPE = TensorType("uint64", (2,))


class Words(NamedTuple):
    """The five 0-d uint64 variables a draw reads: key words k0, k1 and counter words c1 (call),
    c2 (site), c3 (loop step)."""
    k0: Variable
    k1: Variable
    c1: Variable
    c2: Variable
    c3: Variable


_LOOP = threading.local()


@contextmanager
def loop_step(step: Variable) -> Iterator[None]:
    """While ``sg.scan`` traces a loop body: ``step`` (a 0-d uint64 body input holding the step
    index) is the counter word c3 of every stream draw built meanwhile, so each step draws fresh
    numbers with no RNG state threaded through the loop (docs/random.md, "Draws in loops")."""
    outer = getattr(_LOOP, "step", None)
    _LOOP.step = step
    try:
        yield
    finally:
        _LOOP.step = outer


def current_loop_step() -> Variable | None:
    """The step word of the loop body being traced (see ``loop_step``), or None outside loops."""
    return getattr(_LOOP, "step", None)


def step_word() -> Variable:
    """Counter word c3 of a stream draw built now: the loop's step inside a body being traced,
    else 0, marked ``outside_loop`` (a scan whose step reads such a draw draws it anew at every
    step, as Theano did: ``symgraph.scan.draws``)."""
    step = current_loop_step()
    if step is not None:
        return step
    zero = as_tensor_variable(np.uint64(0))
    zero.tag.outside_loop = True
    return zero


def counter_values(values: list) -> tuple[tuple[int, int], tuple[int, int, int]]:
    """The key and counter of five run-time word values (0-d arrays)."""
    k0, k1, c1, c2, c3 = (int(np.asarray(v).reshape(())) & philox.MASK64 for v in values)
    return (k0, k1), (c1, c2, c3)


def _check_words(words: list) -> list[TensorVariable]:
    out = [as_tensor_variable(w) for w in words]
    for w in out:
        if w.ndim != 0 or w.dtype != "uint64":
            raise GraphTypeError(f"a random draw's key and counter words are 0-d uint64, got {w} ({w.type})")
    return out


def _size_inputs(size: tuple) -> tuple[list[Variable], tuple]:
    entries = [as_int_entry(s, "random draw size") for s in size]
    static = tuple(e if isinstance(e, int) else None for e in entries)
    return [entry_var(e) for e in entries], static


class Blank(Op):
    """A bool array of the given shape whose values are never read: a random draw with an explicit
    size reads its shape from it. numpy makes it as a zero-strided view (no memory, no work); a
    device backend passes only its shape to the kernels that read it."""

    no_constant_folding = True  # folding would materialise it

    def make_node(self, *shape: Any) -> Apply:
        inputs, static = _size_inputs(shape)
        for e in static:
            if e is not None and e < 0:
                raise GraphTypeError(f"a random draw size must not be negative, got {shape}")
        return Apply(self, inputs, [TensorType("bool", static).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [np.broadcast_to(np.False_, tuple(int(s) for s in inputs))]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None] * len(inputs)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [tuple(node.inputs)]


class Permutation(Op):
    """Random permutations of 0..n-1 along a new last axis, one per element of ``size`` (int64):
    the stable argsort of the draw's 64-bit lanes over shape ``size + (n,)``."""

    __props__ = ("ndim",)

    def __init__(self, ndim: int):
        self.ndim = int(ndim)

    def make_node(self, k0: Any, k1: Any, c1: Any, c2: Any, c3: Any, n: Any, *size: Any) -> Apply:
        if len(size) != self.ndim:
            raise GraphTypeError(f"{self} takes {self.ndim} size entries, got {len(size)}")
        ins, static = _size_inputs(size + (n,))
        return Apply(self, _check_words([k0, k1, c1, c2, c3]) + [ins[-1]] + ins[:-1],
                     [TensorType("int64", static).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        key, counter = counter_values(inputs[:5])
        n, size = int(inputs[5]), tuple(int(s) for s in inputs[6:])
        if n < 0:
            raise ValueError(f"permutation: n must be >= 0, got {n}")
        shape = size + (n,)
        bits = draws.bits64(key, counter, 0, math.prod(shape)).reshape(shape)
        return [np.argsort(bits, axis=-1, kind="stable").astype(np.int64)]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None] * len(inputs)


class Choice(Op):
    """Indices into 0..n-1 of shape ``size`` (int64): with replacement and weights ``p`` (inverse
    CDF of the float64 uniforms), or without replacement (no weights: the first entries of a
    random permutation of n; weights: the largest Efraimidis-Spirakis keys log(u) / p_i)."""

    __props__ = ("replace", "weighted", "ndim")

    def __init__(self, replace: bool, weighted: bool, ndim: int):
        self.replace, self.weighted, self.ndim = bool(replace), bool(weighted), int(ndim)
        if self.replace and not self.weighted:
            raise ValueError("Choice with replacement and no weights is an integers draw")

    def make_node(self, k0: Any, k1: Any, c1: Any, c2: Any, c3: Any, n: Any, p: Any, *size: Any) -> Apply:
        if len(size) != self.ndim:
            raise GraphTypeError(f"{self} takes {self.ndim} size entries, got {len(size)}")
        p = as_tensor_variable(p)
        if p.ndim != 1 or p.dtype not in ("float32", "float64"):
            raise GraphTypeError(f"choice: p must be a 1-d float vector, got {p} ({p.type})")
        ins, static = _size_inputs((n,) + size)
        return Apply(self, _check_words([k0, k1, c1, c2, c3]) + [ins[0], p] + ins[1:],
                     [TensorType("int64", static[1:]).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        key, counter = counter_values(inputs[:5])
        n, p = int(inputs[5]), np.asarray(inputs[6], np.float64)
        size = tuple(int(s) for s in inputs[7:])
        k = math.prod(size)
        if self.weighted and (p.shape != (n,) or not np.all(p >= 0) or not p.sum() > 0):
            raise ValueError(f"choice: p must hold {n} non-negative weights with a positive sum, got {p}")
        if self.replace:
            cdf = np.cumsum(p)
            u = draws.uniform64(key, counter, 0, k) * cdf[-1]
            idx = np.minimum(np.searchsorted(cdf, u, side="right"), n - 1)  # cdf[i-1] <= u < cdf[i]: p[i] > 0
        elif not self.weighted:
            if k > n:
                raise ValueError(f"choice: cannot take {k} values from {n} without replacement")
            idx = np.argsort(draws.bits64(key, counter, 0, n), kind="stable")[:k]
        else:
            if k > np.count_nonzero(p):
                raise ValueError(f"choice: only {np.count_nonzero(p)} of the weights are non-zero; cannot take "
                                 f"{k} values without replacement")
            u = (draws.bits64(key, counter, 0, n) >> np.uint64(11)).astype(np.float64) + 1.0
            with np.errstate(divide="ignore"):
                keys = np.log(u * 2.0 ** -53) / p
            idx = np.argsort(-keys, kind="stable")[:k]
        return [np.asarray(idx, np.int64).reshape(size)]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None] * len(inputs)


class KeySplit(Op):
    """``num`` new keys from a key (uint64 (num, 2)): key j is the first two words of the block
    ``(j, 0, SPLIT_WORD, 0)``; they never coincide with the counters of draws."""

    __props__ = ("num",)

    def __init__(self, num: int):
        self.num = int(num)
        if self.num < 1:
            raise ValueError(f"split needs num >= 1, got {num}")

    def make_node(self, key: Any) -> Apply:
        key = _as_key(key)
        return Apply(self, [key], [TensorType("uint64", (self.num, 2)).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        k = inputs[0]
        return [philox.derive_keys((int(k[0]), int(k[1])), philox.SPLIT_WORD, np.arange(self.num, dtype=np.uint64))]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None]


class KeyFoldIn(Op):
    """A new key from a key and an integer (uint64 (2,)): the block ``(data, 0, FOLD_WORD, 0)``."""

    def make_node(self, key: Any, data: Any) -> Apply:
        key, data = _as_key(key), as_tensor_variable(data)
        if data.ndim != 0 or data.type.numpy_dtype.kind not in "iu":
            raise GraphTypeError(f"fold_in: data must be a 0-d integer, got {data} ({data.type})")
        return Apply(self, [key, data], [KEY_TYPE.make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        k, d = inputs
        data = np.asarray(int(d) & philox.MASK64, dtype=np.uint64)
        return [philox.derive_keys((int(k[0]), int(k[1])), philox.FOLD_WORD, data)[0]]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [None, None]


def _as_key(key: Any) -> TensorVariable:
    key = as_tensor_variable(key)
    if key.dtype != "uint64" or key.ndim != 1 or key.type.shape[0] not in (2, None):
        raise GraphTypeError(f"a random key is a uint64 vector of 2 words (sg.random.key(seed)), "
                             f"got {key} ({key.type})")
    return key
