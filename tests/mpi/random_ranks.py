"""Run under mpirun (tests/test_mpi.py): each rank draws dropout masks from
``sg.distributed.random_stream(SEED)`` inside a data-parallel step and prints a digest of them.
The ranks' masks must differ (checked here, over the communicator); the test compares the
digests with single-process streams of the same seed and rank (the same numbers on every run)."""
from __future__ import annotations

import hashlib

import numpy as np

import symgraph as sg
import symgraph.tensor as T

SEED, CALLS = 2024, 3


def masks_digest(srng: sg.RandomStream) -> str:
    """The digest of CALLS calls of a step that drops out half of a (16, 8) input and all-reduces
    the gradient of a parameter through the mask (the step data-parallel training runs)."""
    w = sg.shared(np.ones(8), "w")
    x = T.dmatrix("x")
    h = T.nnet.dropout(x, 0.5, srng)
    loss = (T.dot(h, w) ** 2).mean()
    step = sg.function([x], h, updates=sg.updates.sgd(loss, [w], 0.0, data_parallel=True))
    out = np.concatenate([step(np.ones((16, 8))).ravel() for _ in range(CALLS)])
    return hashlib.sha256(out.tobytes()).hexdigest()[:16]


if __name__ == "__main__":
    with sg.distributed.abort_on_error():
        rank, size = sg.distributed.rank(), sg.distributed.size()
        digest = masks_digest(sg.distributed.random_stream(SEED))
        everyone = sg.distributed.communicator().allgather(digest)
        if len(set(everyone)) != size:
            raise AssertionError(f"ranks drew the same masks: {everyone}")
        print(f"rank {rank} of {size}: {digest}", flush=True)
