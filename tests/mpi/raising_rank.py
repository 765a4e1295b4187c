"""Run under mpirun -np 2 (tests/test_mpi.py): rank 1 raises while rank 0 waits in an all-reduce;
abort_on_error ends both, so the job exits non-zero instead of hanging."""
from __future__ import annotations

import numpy as np

import symgraph as sg
import symgraph.tensor as T

if __name__ == "__main__":
    with sg.distributed.abort_on_error():
        v = T.dvector("v")
        f = sg.function([v], T.allreduce(v, "sum"))
        if sg.distributed.rank() == 1:
            raise RuntimeError("rank 1 fails before its all-reduce")
        f(np.ones(3))  # rank 0 would wait here forever without the abort
        print("rank 0 finished: the abort did not happen", flush=True)
