"""The dask graph of a compiled function, built once per chunk structure and reused.

Each argument and shared variable enters the graph as a *placeholder* array: its chunk keys hold
no data, and its name depends only on the function, the argument and the chunk structure. So the
lowered nodes (memoised on their inputs' names, see ``Step``) build the same dask arrays, with the
same keys, whenever the chunk structure repeats; ``Template`` optimises that graph once (dask's
array optimisation: blockwise fusion, culling, linear fusion) with the placeholders kept as keys,
and each call only drops its data into the placeholder keys (a feed) and runs the scheduler.

This module holds every use of dask's graph internals (task objects, aliases), so a change in
dask touches one file.
"""
from __future__ import annotations

import itertools
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask._task_spec import Alias, DataNode, GraphNode
from dask.array.optimization import optimize
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from dask.typing import Key

from symgraph.backends.dask.kernels import LocalOnlyError, local_only_cause
from symgraph.errors import InputError

_CALLS = itertools.count()


class LRU:
    """A small bounded, thread-safe mapping (the most recent ``size`` entries are kept)."""

    def __init__(self, size: int):
        self.size, self.lock = size, threading.Lock()
        self.data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        with self.lock:
            value = self.data.get(key)
            if value is not None:
                self.data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> Any:
        with self.lock:
            self.data.setdefault(key, value)
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)
            return self.data[key]


# --- placeholders and feeds -----------------------------------------------------------------------

class Feed:
    """The data of one argument for one call: the placeholder keys it fills."""

    __slots__ = ("entries", "graph")

    def __init__(self, entries: dict, graph: dict | None = None):
        self.entries, self.graph = entries, graph  # graph: the tasks of a dask-array argument


def placeholder(prefix: str, chunks: tuple, dtype: np.dtype) -> da.Array:
    """An array of ``chunks`` whose keys hold no data yet (filled by a Feed at each call)."""
    name = f"{prefix}-{tokenize(chunks, dtype.str)}"
    layer: dict[Key, None] = dict.fromkeys(_block_keys(name, chunks))
    hlg = HighLevelGraph.from_collections(name, layer, dependencies=())
    return da.Array(hlg, name, chunks, meta=np.empty((0,) * len(chunks), dtype))


def feed_numpy(ph: da.Array, value: np.ndarray) -> Feed:
    """Each placeholder key of ``ph`` filled with its block of ``value`` (a view, no copy)."""
    bounds = [np.cumsum((0,) + c) for c in ph.chunks]
    entries = {}
    for key in _block_keys(ph.name, ph.chunks):  # the keys ``placeholder`` made
        idx = tuple(slice(b[i], b[i + 1]) for b, i in zip(bounds, key[1:]))
        entries[key] = DataNode(key, value[idx])
    return Feed(entries)


def _block_keys(name: str, chunks: tuple) -> list[tuple[str, *tuple[int, ...]]]:
    """The keys of the blocks of an array ``name`` of these chunks: (name, i, j, ...)."""
    return [(name, *k) for k in itertools.product(*(range(len(c)) for c in chunks))]


def feed_dask(ph: da.Array, value: da.Array) -> Feed:
    """Each placeholder key of ``ph`` an alias of the same block of the dask array ``value``."""
    (graph,) = dask.optimize(value)
    entries = {(ph.name, *k[1:]): Alias((ph.name, *k[1:]), k)
               for k in _flatten_keys(graph.__dask_keys__())}
    return Feed(entries, dict(graph.__dask_graph__()))


def _flatten_keys(keys: Any) -> list:
    if isinstance(keys, list):
        return [k for sub in keys for k in _flatten_keys(sub)]
    return [keys]


def known_chunks(value: da.Array, what: str) -> None:
    """Refuse a dask array whose chunk lengths are unknown (NaN): shapes drive the lowering."""
    if any(np.isnan(n) for c in value.chunks for n in c):
        raise InputError(f"{what} is a dask array with unknown chunk sizes {value.chunks}; call "
                         ".compute_chunk_sizes() on it first (the dask backend needs every shape)")


# --- memoised lowering steps ----------------------------------------------------------------------

def token_of(value: Any) -> Any:
    """What identifies a step's input when memoising it: a dask array's name (its keys), a small
    host value's bytes (shapes, indices, scalars)."""
    if isinstance(value, da.Array):
        return value.name
    a = np.asarray(value)
    return (a.dtype.str, a.shape, a.tobytes())


class Step:
    """One lowered node: ``build(*values)`` makes its dask arrays; the result is memoised on
    the inputs' tokens, so a repeated chunk structure reuses the same arrays (and keys)."""

    def __init__(self, build: Callable[..., list], label: str):
        self.build, self.label, self.memo = build, label, LRU(16)

    def __call__(self, *values: Any) -> list:
        key = tuple(token_of(v) for v in values)
        out = self.memo.get(key)
        if out is None:
            out = self.memo.put(key, self.build(*values))
        return out

    def __repr__(self) -> str:
        return f"<dask step {self.label}>"


# --- the template and one call's run ------------------------------------------------------------------

class Template:
    """The optimised task graph computing ``arrays`` from their placeholders, without the data."""

    def __init__(self, arrays: list[da.Array], ph_keys: list):
        self.arrays = arrays
        self.keys = [a.__dask_keys__() for a in arrays]
        self.post = [a.__dask_postcompute__() for a in arrays]
        hlg = HighLevelGraph.merge(*[a.__dask_graph__() for a in arrays])
        dsk = optimize(hlg, self.keys + ph_keys)
        self.tasks = {k: v for k, v in dsk.items() if not (isinstance(v, DataNode) and v.value is None)}

    def graph(self, feeds: list[Feed]) -> dict:
        """The template's tasks with this call's data in the placeholder keys."""
        dsk = dict(self.tasks)
        for f in feeds:
            if f.graph is not None:
                dsk.update(f.graph)
            dsk.update(f.entries)
        return dsk


def renamed(dsk: dict, keys: Any) -> tuple[dict, Any]:
    """``dsk`` with every key made unique to this call (dask.distributed keeps results by key, and
    arrays handed to the user must never share keys with another call's), and ``keys`` renamed."""
    token = f"{next(_CALLS)}-{uuid.uuid4().hex[:12]}"
    subs = {k: _rename(k, token) for k in dsk}
    new = {}
    for k, v in dsk.items():
        new[subs[k]] = v.substitute(subs, key=subs[k]) if isinstance(v, GraphNode) else v
    return new, _map_keys(keys, subs)


def _rename(key: Any, token: str) -> Any:
    return (f"{key[0]}~{token}", *key[1:]) if isinstance(key, tuple) else f"{key}~{token}"


def _map_keys(keys: Any, subs: dict) -> Any:
    return [_map_keys(k, subs) for k in keys] if isinstance(keys, list) else subs[keys]


def is_distributed(get: Callable) -> bool:
    """Whether ``get`` is a dask.distributed client's (results are kept by key across calls)."""
    distributed = sys.modules.get("distributed")  # not loaded: ``get`` cannot be a Client's
    owner = getattr(get, "__self__", None)
    return distributed is not None and isinstance(owner, distributed.Client)


def run(template: Template, feeds: list[Feed], get: Callable) -> list:
    """Compute every array of ``template`` in one scheduler call; numpy results."""
    dsk, keys = template.graph(feeds), template.keys
    if is_distributed(get):
        dsk, keys = renamed(dsk, keys)
    try:
        results = get(dsk, keys)
    except Exception as e:
        refused = local_only_cause(e)
        if refused is None or refused is e:
            raise
        raise LocalOnlyError(str(refused)) from e  # the scheduler's own error names only the graph
    return [fn(r, *extra) for (fn, extra), r in zip(template.post, results)]


def lazy(template: Template, feeds: list[Feed]) -> list[da.Array]:
    """The arrays of ``template`` as dask arrays over this call's data (keys unique to the call)."""
    dsk, keys = renamed(template.graph(feeds), template.keys)
    out = []
    for a, k in zip(template.arrays, keys):
        name = _flatten_keys(k)[0]
        name = name[0] if isinstance(name, tuple) else name
        out.append(da.Array(dsk, name, a.chunks, meta=a._meta))
    return out
