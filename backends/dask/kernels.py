"""The code a dask task runs: the numpy backend's compiled function for one node, shipped to the
workers in ``sg.save``'s safe format (a graph, never generated code) and compiled once per
process, cached by the content hash of those bytes.

A ``NodeKernel`` pickles as its bytes and label only, so a dask.distributed worker receives the
saved graph of one node, checks its checksum, rebuilds the op from the registry of symgraph's
own ops and compiles it with the numpy backend (the same code the numpy backend runs for that
node, with its input checks and its error messages naming the user line that built the node).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from symgraph.compile.function import function
from symgraph.graph.basic import Apply, Op
from symgraph.serialize import dumps, loads
from symgraph.tensor.type import TensorType

_CACHE: OrderedDict[str, Callable] = OrderedDict()
_CACHE_SIZE = 256
_LOCK = threading.Lock()
_COMPILED: list[str] = []  # the content hash of each kernel this process compiled from its bytes


def compiled_keys() -> list[str]:
    """The kernels this process compiled from their bytes, in order (each appears once: a kernel
    is compiled once per process and then found in the cache by its content)."""
    return list(_COMPILED)


def _compiled(key: str, payload: bytes) -> Callable:
    """The numpy function saved in ``payload`` (sha256 ``key``), compiled on first use here."""
    with _LOCK:
        fn = _CACHE.get(key)
        if fn is not None:
            _CACHE.move_to_end(key)
            return fn
    fn = loads(payload, backend="numpy")
    with _LOCK:
        if key not in _CACHE:
            _COMPILED.append(key)
            _CACHE[key] = fn
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return _CACHE[key]


class NodeKernel:
    """A node's numpy code as a picklable callable: ``kernel(*chunks)`` gives its output for
    one chunk (a tuple when the node has several outputs)."""

    __slots__ = ("payload", "label", "key")

    def __init__(self, payload: bytes, label: str):
        self.payload, self.label = payload, label
        self.key = hashlib.sha256(payload).hexdigest()

    def __reduce__(self) -> tuple:
        return NodeKernel, (self.payload, self.label)

    def __dask_tokenize__(self) -> tuple:
        return ("symgraph-kernel", self.key)

    def __repr__(self) -> str:
        return f"<symgraph kernel {self.label} {self.key[:8]}>"

    def __call__(self, *chunks: Any) -> Any:
        out = _compiled(self.key, self.payload)(*chunks)
        return tuple(out) if isinstance(out, list) else out


def chunk_type(t: TensorType) -> TensorType:
    """The type of one chunk of a value of type ``t``: broadcastable axes stay length 1, every
    other length is unknown (chunks differ in length)."""
    return TensorType(t.dtype, tuple(1 if s == 1 else None for s in t.shape))


def make_kernel(op: Op, input_types: list, trace: Any, label: str | None = None) -> NodeKernel:
    """A kernel running ``op`` on inputs of ``input_types`` with the numpy backend. ``trace``
    (the original node's user line) is saved with it, so errors on a worker name that line."""
    fresh = [t.make_variable(f"i{k}") for k, t in enumerate(input_types)]
    node: Apply = op.make_node(*fresh)
    node.trace = trace
    outs = node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)
    fn = function(fresh, outs, backend="numpy", mode=None, on_unused_input="ignore", name="chunk")
    kernel = NodeKernel(dumps(fn), label or str(op))
    with _LOCK:  # this process compiled it already: the other processes load it from the bytes
        _CACHE.setdefault(kernel.key, fn)
    return kernel


__all__ = ["NodeKernel", "make_kernel", "chunk_type", "compiled_keys"]
