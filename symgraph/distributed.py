"""``sg.distributed``: data-parallel training over MPI (mpi4py), the Horovod model. Every process
runs the same program on its share of each batch; gradients are averaged with an all-reduce
before every process applies the same update, so the parameters stay equal everywhere.

    import symgraph as sg
    sg.distributed.broadcast_parameters(params)                  # rank 0's initial values everywhere
    updates = sg.updates.adam(loss, params, data_parallel=True)  # all-reduced (mean) gradients
    step = sg.function([x, y], loss, updates=updates)            # one MPI call per step (bucketed)
    srng = sg.distributed.random_stream(seed)                    # each rank its own dropout masks

Run with ``mpirun -np N python train.py``; without mpirun (or without mpi4py) the communicator
has one process and everything runs as usual. ``T.allreduce(x, op='sum'|'mean')`` is the op.
"""
from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from symgraph.compile.shared import SharedVariable
from symgraph.errors import InputError
from symgraph.random import RandomStream
from symgraph.tensor.collective import STATS, SelfComm, allreduce, communicator, set_communicator
from symgraph.updates import get_or_compute_grads


def rank() -> int:
    """This process's rank in the communicator (0 without MPI)."""
    return int(communicator().Get_rank())


def size() -> int:
    """The number of processes in the communicator (1 without MPI)."""
    return int(communicator().Get_size())


def broadcast_parameters(params: Sequence[SharedVariable], root: int = 0) -> None:
    """Give every process ``root``'s values of ``params`` (call once, before training: processes
    that initialised their parameters differently then start from the same point). Shapes and
    dtypes are compared first, so a mismatch is an error on every rank instead of a hang."""
    params = list(params)
    for p in params:
        if not isinstance(p, SharedVariable):
            raise InputError(f"broadcast_parameters takes sg.shared variables, got {p!r}")
    comm = communicator()
    layout = [(p.name, tuple(p.get_value(borrow=True).shape), p.dtype) for p in params]
    everyone = comm.allgather(layout)
    for r, theirs in enumerate(everyone):
        if theirs != layout:
            raise InputError(f"broadcast_parameters: rank {r} has parameters {theirs}, rank {rank()} has "
                             f"{layout}; every process must build the same model")
    for p in params:
        buf = np.array(p.get_value(borrow=True), order="C", copy=True)
        comm.Bcast(buf, root=root)
        p.set_value(buf, borrow=True)


def data_parallel_grads(loss_or_grads: Any, params: Sequence[SharedVariable], op: str = "mean") -> list:
    """The gradients of ``params``, all-reduced over the processes (``op='mean'`` for a loss that
    is a mean over each process's equal share of the batch). Pass them to any ``sg.updates``
    rule; ``sg.updates.adam(loss, params, data_parallel=True)`` does the same."""
    return [allreduce(g, op) for g in get_or_compute_grads(loss_or_grads, params)]


def random_stream(seed: int | None = None, cls: type[RandomStream] = RandomStream) -> RandomStream:
    """A random stream (``cls``: ``sg.RandomStream`` or a Theano port) with this process's rank
    folded into its key when the communicator has more than one process: each rank draws its own
    numbers (its own dropout masks, not copies of rank 0's) and the same seed on the same rank
    gives the same numbers on every run. In a run of one process it is the plain stream
    ``cls(seed)``. Pass the same explicit seed on every rank (``seed=None`` gives each rank an
    unrelated seed from the operating system, so the run cannot be repeated)."""
    return cls(seed, rank=rank() if size() > 1 else None)


@contextlib.contextmanager
def abort_on_error(code: int = 1) -> Iterator[None]:
    """Run a block so that an exception on one rank ends every rank: the traceback is printed and
    ``comm.Abort`` stops the whole job, so the others never wait forever in an all-reduce."""
    try:
        yield
    except BaseException as e:  # SystemExit too: a rank leaving early would hang the others
        if isinstance(e, SystemExit) and not e.code:
            raise
        comm = communicator()
        traceback.print_exc()
        sys.stderr.flush()
        if comm.Get_size() > 1:
            comm.Abort(code)
        raise


__all__ = ["rank", "size", "allreduce", "broadcast_parameters", "data_parallel_grads", "random_stream",
           "abort_on_error", "set_communicator", "communicator", "SelfComm", "STATS"]
