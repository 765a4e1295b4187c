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
from collections import OrderedDict
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


_STATE: dict[str, Any] = {"comm": None}


def set_communicator(comm: Any) -> None:
    """All-reduces from now on use ``comm`` (an mpi4py communicator; None: COMM_WORLD again)."""
    _STATE["comm"] = comm


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


def _mpi_sum(comm: Any) -> Any:
    if isinstance(comm, SelfComm):
        return None
    from mpi4py import MPI  # optional: loaded on first use
    return MPI.SUM


def _in_place() -> Any:
    comm = communicator()
    if isinstance(comm, SelfComm):
        return None
    from mpi4py import MPI  # optional: loaded on first use
    return MPI.IN_PLACE


def allreduce_inplace(buf: np.ndarray, op: str) -> np.ndarray:
    """All-reduce ``buf`` (C-contiguous, owned by the caller) in place and return it."""
    comm = communicator()
    if comm.Get_size() > 1:
        comm.Allreduce(_in_place(), buf, op=_mpi_sum(comm))
        if op == "mean":
            buf /= comm.Get_size()
    STATS["calls"] += 1
    STATS["bytes"] += buf.nbytes
    return buf


class BufferPool:
    """Reused host buffers for all-reduce results. MPI is several times slower on freshly
    allocated memory (new pages for every call) than on memory it has seen, so a result buffer is
    taken from here; a buffer is handed out again only once nothing else refers to it (its
    reference count says so: the result, or a view of it, was dropped), so a value returned to
    the user or kept in a shared variable is never overwritten. A few buffers per size are kept."""

    def __init__(self, per_size: int = 4, sizes: int = 16):
        self.per_size, self.sizes = per_size, sizes
        self.free: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def take(self, n: int, dtype: str) -> np.ndarray:
        """A C-contiguous 1-d buffer of ``n`` elements of ``dtype`` that nobody else refers to."""
        key = (n, np.dtype(dtype).str)
        with self.lock:
            bufs = self.free.setdefault(key, [])
            self.free.move_to_end(key)
            for b in bufs:
                if sys.getrefcount(b) <= 3:  # the list, the loop variable, getrefcount's argument
                    return b
            b = np.empty(n, dtype)
            if len(bufs) < self.per_size:
                bufs.append(b)
            while len(self.free) > self.sizes:
                self.free.popitem(last=False)
            return b


POOL = BufferPool()


def allreduce_value(x: Any, op: str, dtype: str) -> np.ndarray:
    """``x`` all-reduced over the communicator, in a buffer of its own (from ``POOL``)."""
    x = np.asarray(x)
    buf = POOL.take(x.size, dtype)
    np.copyto(buf.reshape(x.shape), x, casting="unsafe")
    return allreduce_inplace(buf, op).reshape(x.shape)


def allreduce_many(xs: Sequence[Any], op: str, dtype: str) -> list[np.ndarray]:
    """Several values all-reduced with one call on one flat buffer, then split back (views)."""
    sizes = [int(np.size(x)) for x in xs]
    flat = POOL.take(sum(sizes), dtype)
    at = 0
    for x, n in zip(xs, sizes):
        flat[at:at + n] = np.ravel(x)
        at += n
    allreduce_inplace(flat, op)
    out, at = [], 0
    for x, n in zip(xs, sizes):
        out.append(flat[at:at + n].reshape(np.shape(x)))
        at += n
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
        return [allreduce_value(inputs[0], self.op, tensor_outputs(node)[0].dtype)]

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
        return allreduce_many(inputs, self.op, tensor_outputs(node)[0].dtype)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return list(input_shapes)

    def expand(self, inputs: list[Variable]) -> list[TensorVariable]:
        return [AllReduce(self.op)(x) for x in inputs]


def allreduce(x: Any, op: str = "mean") -> TensorVariable:
    """``x`` summed (``op='sum'``) or averaged (``op='mean'``, the default) over every process of
    the MPI communicator; every process gets the result. Gradients of a data-parallel step:
    ``[T.allreduce(g) for g in T.grad(loss, params)]``."""
    return AllReduce(op)(x)


__all__ = ["allreduce", "AllReduce", "AllReduceBucket", "set_communicator", "communicator", "SelfComm"]
