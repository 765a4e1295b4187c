"""Collective ops for data-parallel training over MPI (Horovod's model): ``T.allreduce(x, op)``
sums (or averages) ``x`` over every process of the communicator and gives each the result.

The communicator is MPI's COMM_WORLD through mpi4py (an optional library, imported on first use)
unless ``set_communicator`` chose another; without mpi4py, or in a run of one process, it is a
communicator of one and the all-reduce gives its input back. Every all-reduce is one host
``Allreduce(IN_PLACE)`` on a buffer the op owns; ``STATS`` counts calls and bytes.
``AllReduceBucket`` does several all-reduces of one dtype as one call on one flat buffer (the
rewrite ``bucket_allreduce`` makes it).
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.type import TensorVariable, as_tensor_variable, is_inexact, tensor_outputs

OPS = ("sum", "mean")
STATS = {"calls": 0, "bytes": 0}
"""All-reduce calls made by this process and the bytes they reduced (tests and benchmarks read it)."""


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
        comm.Allreduce(in_place, buf, op=sum_op)
        if op == "mean":
            buf /= size
    STATS["calls"] += 1
    STATS["bytes"] += buf.nbytes
    return buf


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

    def take(self, n: int) -> np.ndarray:
        """A C-contiguous 1-d buffer of ``n`` elements that nobody else refers to."""
        with self.lock:
            for b in self.bufs:
                if b.size == n and sys.getrefcount(b) <= 3:  # the list, ``b``, getrefcount's argument
                    return b
            b = np.empty(n, self.dtype)
            free = [k for k, old in enumerate(self.bufs) if sys.getrefcount(old) <= 3]
            if len(self.bufs) < self.keep:
                self.bufs.append(b)
            elif free:  # a buffer of another size nobody holds: replaced by this size
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
    """``x`` all-reduced over the communicator, in a buffer of its own (from ``buffers``): one
    copy in (assignment casts to the buffer's dtype), one ``Allreduce(IN_PLACE)``."""
    if x.__class__ is not np.ndarray:
        x = np.asarray(x)
    buf = buffers.take(x.size)
    if x.ndim != 1:
        buf = buf.reshape(x.shape)
    buf[...] = x
    allreduce_inplace(buf, op)
    return buf


def allreduce_many(xs: Sequence[Any], op: str, buffers: Buffers) -> list[np.ndarray]:
    """Several values all-reduced with one call on one flat buffer (from ``buffers``): each
    copied into its span, one ``Allreduce(IN_PLACE)``, the results views of the spans."""
    xs = _arrays(xs)
    n = 0
    for x in xs:
        n += x.size
    flat = buffers.take(n)
    out, at = [], 0
    for x in xs:
        part = flat[at:at + x.size]
        at += x.size
        if x.ndim != 1:
            part = part.reshape(x.shape)
        part[...] = x
        out.append(part)
    allreduce_inplace(flat, op)
    return out


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
