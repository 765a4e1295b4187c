"""Collective ops for data-parallel training over MPI (Horovod's model): ``T.allreduce(x, op)``
sums (or averages) ``x`` over every process of the communicator and gives each the result.

The communicator is MPI's COMM_WORLD through mpi4py (an optional library, imported on first use)
unless ``set_communicator`` chose another; without mpi4py, or in a run of one process, it is a
communicator of one and the all-reduce gives its input back. Every all-reduce is one host
``Allreduce`` into a reused buffer the op owns, its input MPI's send buffer (``allreduce_to``);
``STATS`` counts calls, bytes and the bytes copied in first. ``AllReduceBucket`` does several
all-reduces of one dtype as one in-place call on one flat buffer (the rewrite
``bucket_allreduce`` makes it); a compiled bucket's ``Bucket`` hands out that buffer's spans for
its inputs to be computed into, so nothing is packed.
"""
from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Sequence
from operator import is_
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.type import TensorVariable, as_tensor_variable, is_inexact, tensor_outputs

OPS = ("sum", "mean")
STATS = {"calls": 0, "bytes": 0, "packed": 0}
"""All-reduce calls made by this process, the bytes they reduced, and the bytes copied into
all-reduce buffers first ('packed': a bucket's inputs that were not computed into their spans,
values MPI cannot read as they are); tests and benchmarks read it."""


class SelfComm:
    """A communicator of one process: what all-reduces run on without MPI."""

    rank, size = 0, 1

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def Allreduce(self, sendbuf: Any, recvbuf: Any, op: Any = None) -> None:
        if not (isinstance(sendbuf, str) or sendbuf is None or sendbuf is recvbuf):
            np.copyto(recvbuf, sendbuf)

    def Bcast(self, buf: Any, root: int = 0) -> None:
        pass

    def allgather(self, value: Any) -> list:
        return [value]

    def Abort(self, code: int = 1) -> None:
        raise SystemExit(code)


_STATE: dict[str, Any] = {"comm": None, "mpi": None}


def set_communicator(comm: Any) -> None:
    """All-reduces from now on use ``comm`` (an mpi4py communicator; None: COMM_WORLD again)."""
    _STATE["comm"], _STATE["mpi"] = comm, None


def communicator() -> Any:
    """The communicator all-reduces use: the one set, else MPI.COMM_WORLD, else a SelfComm."""
    comm = _STATE["comm"]
    if comm is None:
        try:
            from mpi4py import MPI  # optional: loaded on first use
            comm = MPI.COMM_WORLD
        except ImportError:
            comm = SelfComm()
        _STATE["comm"] = comm
    return comm


def _mpi() -> tuple[Any, Any, Any, int]:
    """The communicator, MPI.IN_PLACE, MPI.SUM and the communicator's size, looked up once (until
    ``set_communicator``): an all-reduce of a few KB costs a few microseconds, so per-call imports
    and attribute look-ups would be a visible share of it."""
    mpi = _STATE["mpi"]
    if mpi is None:
        comm = communicator()
        size = int(comm.Get_size())
        if isinstance(comm, SelfComm) or size == 1:
            mpi = (comm, None, None, size)
        else:
            from mpi4py import MPI  # optional: loaded on first use
            mpi = (comm, MPI.IN_PLACE, MPI.SUM, size)
        _STATE["mpi"] = mpi
    return mpi


def allreduce_inplace(buf: np.ndarray, op: str) -> np.ndarray:
    """All-reduce ``buf`` (C-contiguous, owned by the caller) in place and return it."""
    comm, in_place, sum_op, size = _STATE["mpi"] or _mpi()
    if size > 1:
        comm.Allreduce(in_place, buf, sum_op)
    return _finished(buf, op, size)


def _finished(out: np.ndarray, op: str, size: int) -> np.ndarray:
    """``out`` after MPI summed into it: divided by the ranks for 'mean', counted."""
    if op == "mean" and size > 1:
        out /= size
    STATS["calls"] += 1
    STATS["bytes"] += out.nbytes
    return out


_GIL = getattr(sys, "_is_gil_enabled", lambda: True)()  # free-threaded builds: reference counts are not exact


class Buffers:
    """Reused host buffers of one dtype for all-reduce results. MPI is several times slower on
    freshly allocated memory (new pages for every call) than on memory it has seen, so a result
    buffer is taken from here; a buffer is handed out again only once nothing else refers to it
    (its reference count says so: the result, or a view of it, was dropped), so a value returned
    to the user or kept in a shared variable is never overwritten. Each compiled all-reduce has
    its own (a few buffers: one per result still held); ``POOL`` serves ``perform``."""

    def __init__(self, dtype: Any, keep: int = 4):
        self.dtype, self.keep = np.dtype(dtype), keep
        self.bufs: list[np.ndarray] = []
        self.lock = threading.Lock()

    def take(self, shape: tuple) -> np.ndarray:
        """A C-contiguous buffer of ``shape`` that nobody else refers to. The search takes no
        lock: the loop variable holds the buffer while its count is read, so two threads looking
        at one buffer at once both see the other's reference and neither takes it."""
        if _GIL:
            for b in self.bufs:
                if b.shape == shape and sys.getrefcount(b) <= 3:  # the list, ``b``, getrefcount's argument
                    return b
        with self.lock:
            b = np.empty(shape, self.dtype)
            free = [k for k, old in enumerate(self.bufs) if _GIL and sys.getrefcount(old) <= 3]
            if len(self.bufs) < self.keep:
                self.bufs.append(b)
            elif free:  # a buffer of another shape nobody holds: replaced by this one
                self.bufs[free[0]] = b
            return b


class BufferPool:
    """``Buffers`` per dtype, for ``perform`` (a compiled function keeps its own per node)."""

    def __init__(self) -> None:
        self.by_dtype: dict[np.dtype, Buffers] = {}

    def of(self, dtype: Any) -> Buffers:
        """The buffers of ``dtype``."""
        dt = np.dtype(dtype)
        bufs = self.by_dtype.get(dt)
        return self.by_dtype.setdefault(dt, Buffers(dt)) if bufs is None else bufs


POOL = BufferPool()


def _arrays(xs: Sequence[Any]) -> list[np.ndarray]:
    return [x if x.__class__ is np.ndarray else np.asarray(x) for x in xs]


def allreduce_value(x: Any, op: str, buffers: Buffers) -> np.ndarray:
    """``x`` all-reduced over the communicator, in a buffer of its own (from ``buffers``)."""
    if x.__class__ is not np.ndarray:
        x = np.asarray(x)
    return allreduce_to(x, buffers.take(x.shape), op)


def allreduce_to(x: np.ndarray, out: np.ndarray, op: str) -> np.ndarray:
    """``x`` all-reduced into ``out`` (C-contiguous, of ``x``'s shape). A C-contiguous ``x`` of
    ``out``'s dtype goes straight to MPI as the send buffer (one ``Allreduce(x, out)``: MPI reads
    ``x`` while it reduces, no copy of ours, and ``x`` is not written); anything else is copied
    in first (the assignment casts; counted in STATS['packed']), then reduced in place."""
    comm, _, sum_op, size = _STATE["mpi"] or _mpi()
    if size > 1 and x.dtype is out.dtype and x.flags.c_contiguous:
        comm.Allreduce(x, out, sum_op)
        return _finished(out, op, size)
    out[...] = x
    STATS["packed"] += out.nbytes
    return allreduce_inplace(out, op)


def allreducer(dtype: Any, op: str, in_place: bool = False) -> Callable[[Any], np.ndarray]:
    """The run-time function of one compiled all-reduce: ``allreduce_value`` with its own
    ``Buffers`` and its operation bound once, and ``allreduce_to``'s common case inline (the
    generated code passes only the value; at a few KB, MPI takes a few microseconds, so each
    Python call and look-up per all-reduce is a visible share of the time). ``in_place``: the
    value's memory may be overwritten (a dead intermediate, a mutable argument): a C-contiguous
    array of the dtype is reduced in place, ``Allreduce(IN_PLACE)``, with no result buffer and
    no copy of MPI's (anything else goes the usual way)."""
    buffers = Buffers(dtype)
    take, bufs, dt, mean, refcount = buffers.take, buffers.bufs, buffers.dtype, op == "mean", sys.getrefcount

    def allreduce(x: Any) -> np.ndarray:
        if x.__class__ is np.ndarray and x.dtype is dt and x.flags.c_contiguous:
            comm, ip, sum_op, size = _STATE["mpi"] or _mpi()
            if in_place:
                if size > 1:
                    comm.Allreduce(ip, x, sum_op)
                return _finished(x, op, size)
            if size > 1:
                shape = x.shape
                for out in bufs:  # Buffers.take's search, inline (a method call is 0.1-0.2 us)
                    if out.shape == shape and _GIL and refcount(out) <= 3:
                        break
                else:
                    out = take(shape)
                comm.Allreduce(x, out, sum_op)
                if mean:
                    out /= size
                STATS["calls"] += 1
                STATS["bytes"] += out.nbytes
                return out
        return allreduce_value(x, op, buffers)
    return allreduce


def allreduce_many(xs: Sequence[Any], op: str, buffers: Buffers) -> list[np.ndarray]:
    """Several values all-reduced with one call on one flat buffer (from ``buffers``): each
    copied into its span, one ``Allreduce(IN_PLACE)``, the results views of the spans."""
    xs = _arrays(xs)
    flat, views = _layout([x.shape for x in xs], buffers.take)
    for x, part in zip(xs, views):
        part[...] = x
        STATS["packed"] += part.nbytes
    allreduce_inplace(flat, op)
    return list(views)


def _layout(shapes: Sequence[tuple], alloc: Any) -> tuple[np.ndarray, tuple]:
    """A flat buffer of the sizes of ``shapes`` together (``alloc((n,))``) and one C-contiguous
    view of it per shape, laid end to end."""
    sizes = [math.prod(s) for s in shapes]
    flat = alloc((sum(sizes),))
    views, at = [], 0
    for shape, size in zip(shapes, sizes):
        views.append(flat[at:at + size].reshape(shape))
        at += size
    return flat, tuple(views)


class Spans:
    """One call's flat buffer of a ``Bucket`` and its views (``views[k]``: where input ``k`` goes;
    None before the bucket knows its layout). The generated code holds it for the whole call."""

    __slots__ = ("bucket", "flat", "views", "held", "count")

    def __init__(self, bucket: Bucket, flat: np.ndarray | None, views: tuple):
        self.bucket, self.flat, self.views = bucket, flat, views
        self.held = (flat, views, *views)  # what a caller may still refer to, besides the spans
        self.count = -1  # the reference counts of the spans and of ``held`` while only the bucket held them


class Bucket:
    """The flat buffers of one compiled ``AllReduceBucket`` node, laid out as its inputs were in
    the last call. ``open()`` hands a call the spans its inputs are computed into (``out=``), so
    the all-reduce finds them in place and packs nothing; an input that was not computed into its
    span (an argument, an op that cannot write into given memory, a changed shape) is copied in
    (counted in ``STATS['packed']``), and a changed shape lays the buffer out anew for the next
    call. A ``Spans`` is handed out again only when nothing refers to it, its flat buffer or any
    of its views (reference counts: a result the caller or a shared variable still holds keeps
    its memory from being written); a few are kept."""

    def __init__(self, dtype: Any, n: int, keep: int = 4):
        self.dtype, self.n, self.keep = np.dtype(dtype), int(n), keep
        self.shapes: tuple | None = None  # the inputs' shapes in the last call
        self.kept: list[Spans] = []
        self.lock = threading.Lock()

    def open(self) -> Spans:
        """This call's spans: kept ones nothing refers to, else new ones of the last layout. One
        sum of reference counts tells (each count only grows above what it was while the bucket
        alone held them, so the sum is that total exactly when no count grew). The search takes
        no lock: the loop variable holds the spans while their counts are read, so
        two threads looking at the same spans both see the other's reference (neither takes
        them), and one that takes them holds them from then on."""
        if _GIL:
            for s in self.kept:
                if _references(s) == s.count:
                    return s
        with self.lock:
            return self._new(self.shapes)

    def _new(self, shapes: tuple | None) -> Spans:
        """New spans for ``shapes`` (None: no layout yet), kept when there is room (the lock is
        held); their reference counts are read here as ``open`` reads them (a local, the list)."""
        if shapes is None:
            return Spans(self, None, (None,) * self.n)
        s = Spans(self, *_layout(shapes, lambda shape: np.empty(shape, self.dtype)))
        if len(self.kept) < self.keep:
            self.kept.append(s)
            s.count = _references(s)
        return s

    def relayout(self, shapes: tuple) -> Spans:
        """New spans for inputs of ``shapes``, the layout of every later call (kept spans of the
        old layout are dropped)."""
        with self.lock:
            if shapes != self.shapes:
                self.shapes, self.kept = shapes, []
            return self._new(shapes)


def _references(s: Spans) -> int:
    """The reference counts of ``s`` and of what a caller may hold of it, summed (``Bucket.open``
    compares the sum with the one taken while only the bucket held them)."""
    return sys.getrefcount(s) + sum(map(sys.getrefcount, s.held))


def allreduce_spans(spans: Spans, xs: list, op: str) -> tuple:
    """The bucket's inputs ``xs`` all-reduced in one ``Allreduce(IN_PLACE)`` on the flat buffer of
    ``spans`` (from ``Bucket.open``): an input already in its span (computed there) is not
    copied; the results are the views."""
    views = spans.views
    if not all(map(is_, xs, views)):  # some input was not computed in its span
        for x, v in zip(xs, views):
            if x is not v:
                if v is None or (x.shape if x.__class__ is np.ndarray else np.shape(x)) != v.shape:
                    return _relaid(spans.bucket, xs, op)
                v[...] = x
                STATS["packed"] += v.nbytes
    allreduce_inplace(spans.flat, op)  # type: ignore[arg-type]  # views exist, so flat does
    return views


def _relaid(bucket: Bucket, xs: list, op: str) -> tuple:
    """The first call, or shapes that changed: every input copied into new spans of their shapes."""
    xs = _arrays(xs)
    spans = bucket.relayout(tuple(x.shape for x in xs))
    for x, v in zip(xs, spans.views):
        v[...] = x
        STATS["packed"] += v.nbytes
    allreduce_inplace(spans.flat, op)  # type: ignore[arg-type]
    return spans.views


def _check_op(op: str, x: TensorVariable) -> None:
    if op not in OPS:
        raise ValueError(f"allreduce: op must be one of {OPS}, got {op!r}")
    if op == "mean" and not is_inexact(x.dtype):
        raise GraphTypeError(f"allreduce(op='mean') needs a floating-point value, got {x} ({x.type}); "
                             "cast it first or use op='sum'")


class AllReduce(Op):
    """``x`` summed (``op='sum'``) or averaged (``op='mean'``) over all processes."""

    __props__ = ("op",)

    def __init__(self, op: str = "mean"):
        if op not in OPS:
            raise ValueError(f"allreduce: op must be one of {OPS}, got {op!r}")
        self.op = op

    def __str__(self) -> str:
        return f"allreduce{{{self.op}}}"

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        _check_op(self.op, x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [allreduce_value(inputs[0], self.op, POOL.of(tensor_outputs(node)[0].dtype))]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        """Each process's output reads every process's input, with weight 1 (sum) or 1/size
        (mean): the gradient is the same all-reduce of the output gradients."""
        return [AllReduce(self.op)(output_grads[0])]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [input_shapes[0]]


class AllReduceBucket(Op):
    """Several all-reduces of one dtype as one: inputs copied into one flat buffer, one
    ``Allreduce``, the outputs views of that buffer (the gradient bucket of a training step)."""

    __props__ = ("op", "n")

    def __init__(self, op: str, n: int):
        self.op, self.n = op, int(n)

    def __str__(self) -> str:
        return f"allreduce_bucket{{{self.op}, {self.n}}}"

    def make_node(self, *args: Any) -> Apply:
        xs = [as_tensor_variable(x) for x in args]
        if len(xs) != self.n or len({x.dtype for x in xs}) != 1:
            raise GraphTypeError(f"{self} takes {self.n} inputs of one dtype, got {[x.type for x in xs]}")
        for x in xs:
            _check_op(self.op, x)
        return Apply(self, xs, [x.type.make_variable() for x in xs])

    def perform(self, node: Apply, inputs: list) -> list:
        return allreduce_many(inputs, self.op, POOL.of(tensor_outputs(node)[0].dtype))

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return list(input_shapes)

    def expand(self, inputs: list[Variable]) -> list[TensorVariable]:
        return [AllReduce(self.op)(x) for x in inputs]


def allreduce(x: Any, op: str = "mean") -> TensorVariable:
    """``x`` summed (``op='sum'``) or averaged (``op='mean'``, the default) over every process of
    the MPI communicator; every process gets the result. Gradients of a data-parallel step:
    ``[T.allreduce(g) for g in T.grad(loss, params)]``."""
    return AllReduce(op)(x)


__all__ = ["allreduce", "AllReduce", "AllReduceBucket", "Buffers", "set_communicator", "communicator", "SelfComm"]
