"""Running a script under ``mpirun -np 2`` for the tests: as root with --allow-run-as-root,
--oversubscribe (CI has 2 cores), one thread per rank, and a timeout."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys


def mpi_available() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return shutil.which("mpirun") is not None


def mpirun(args: list[str], timeout: float, np_: int = 2) -> subprocess.CompletedProcess:
    """``mpirun -np 2 python ARGS`` with a timeout (raises subprocess.TimeoutExpired)."""
    cmd = ["mpirun", "--oversubscribe", "-np", str(np_)]
    if os.geteuid() == 0:
        cmd.insert(1, "--allow-run-as-root")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", SYMGRAPH_SKIP_OPENCL="1")
    return subprocess.run(cmd + [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)
