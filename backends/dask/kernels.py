"""The code a dask task runs: the numpy backend's compiled function for one node, shipped to the
workers in ``sg.save``'s safe format (a graph, never generated code) and compiled once per
process, cached by the content hash of those bytes.

A ``NodeKernel`` pickles as its bytes and label only, so a dask.distributed worker receives the
saved graph of one node, checks its checksum, rebuilds the op from the registry of symgraph's
own ops and compiles it with the numpy backend (the same code the numpy backend runs for that
node, with its input checks and its error messages naming the user line that built the node).

A node ``sg.save`` cannot write (an op holding a Python function: ``as_op``'s, a ``Print``'s
callback; an op or type of the user's own that is not registered) becomes a ``LocalKernel``
instead, with a warning: the compiled function itself, run by dask's threads or synchronous
scheduler in this process. A scheduler that must send it to another process (a distributed
``Client``, the processes scheduler) gets an error naming the op and why, never pickled code.
"""
from __future__ import annotations

import hashlib
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from symgraph.compile.function import function
from symgraph.graph.basic import Apply, Op, user_stacklevel
from symgraph.serialize import dumps, loads
from symgraph.serialize_format import SerializationError
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


class Kernel:
    """A node's numpy code as a dask task's callable: ``kernel(*chunks)`` gives its output for
    one chunk (a tuple when the node has several outputs)."""

    __slots__ = ("label", "key")
    label: str
    key: str

    def compiled(self) -> Callable:
        raise NotImplementedError

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.key)

    def __repr__(self) -> str:
        return f"<symgraph {type(self).__name__} {self.label} {self.key[:8]}>"

    def __call__(self, *chunks: Any) -> Any:
        out = self.compiled()(*chunks)
        return tuple(out) if isinstance(out, list) else out


class NodeKernel(Kernel):
    """A kernel that pickles as the node's saved graph (``sg.save``'s bytes) and its label."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes, label: str):
        self.payload, self.label = payload, label
        self.key = hashlib.sha256(payload).hexdigest()

    def __reduce__(self) -> tuple:
        return NodeKernel, (self.payload, self.label)

    def compiled(self) -> Callable:
        return _compiled(self.key, self.payload)


class LocalOnlyError(SerializationError):
    """A ``LocalKernel`` was to be sent to another process."""


def local_only_cause(error: BaseException | None) -> LocalOnlyError | None:
    """The ``LocalOnlyError`` behind ``error`` (a dask.distributed client wraps it in an error of
    its own about the graph), or None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, LocalOnlyError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class LocalKernel(Kernel):
    """A kernel holding its compiled function, for a node ``sg.save`` cannot write (``why``): it
    runs only in this process; pickling it raises an error that says so."""

    __slots__ = ("fn", "why")

    def __init__(self, fn: Callable, label: str, why: str):
        self.fn, self.label, self.why = fn, label, why
        self.key = uuid.uuid4().hex  # a token of its own: equal only to itself

    def __reduce__(self) -> tuple:
        raise LocalOnlyError(f"dask backend: {self.label} cannot be sent to another process ({self.why}); it "
                             "runs only in the process that compiled the function, with dask's threads or "
                             "synchronous scheduler (an op registered with symgraph.serialize.register_op whose "
                             "props sg.save can write runs on a distributed Client or processes too)")

    def compiled(self) -> Callable:
        return self.fn


def chunk_type(t: TensorType) -> TensorType:
    """The type of one chunk of a value of type ``t``: broadcastable axes stay length 1, every
    other length is unknown (chunks differ in length)."""
    return TensorType(t.dtype, tuple(1 if s == 1 else None for s in t.shape))


def make_kernel(op: Op, input_types: list, trace: Any, label: str | None = None) -> Kernel:
    """A kernel running ``op`` on inputs of ``input_types`` with the numpy backend. ``trace``
    (the original node's user line) is saved with it, so errors on a worker name that line. An
    op ``sg.save`` cannot write gives a ``LocalKernel`` and a RuntimeWarning naming that line."""
    fresh = [t.make_variable(f"i{k}") for k, t in enumerate(input_types)]
    node: Apply = op.make_node(*fresh)
    node.trace = trace
    outs = node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)
    fn = function(fresh, outs, backend="numpy", mode=None, on_unused_input="ignore", name="chunk")
    try:
        payload = dumps(fn)
    except SerializationError as e:
        where = f" (built at {trace.filename}:{trace.lineno})" if trace is not None else ""
        warnings.warn(f"dask backend: {op}{where} cannot be saved for other processes ({e}): it runs only in "
                      "this process (dask's threads or synchronous scheduler)", RuntimeWarning,
                      stacklevel=user_stacklevel())
        return LocalKernel(fn, label or str(op), str(e))
    kernel = NodeKernel(payload, label or str(op))
    with _LOCK:  # this process compiled it already: the other processes load it from the bytes
        _CACHE.setdefault(kernel.key, fn)
    return kernel


__all__ = ["Kernel", "NodeKernel", "LocalKernel", "LocalOnlyError", "local_only_cause", "make_kernel", "chunk_type",
           "compiled_keys"]
