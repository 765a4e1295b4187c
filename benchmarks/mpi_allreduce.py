"""All-reduce time of symgraph's T.allreduce against a raw mpi4py ``Allreduce(IN_PLACE)`` of the
same bytes, in the same run, on 2 MPI processes (issue 19's goal: within 1.2x).

    python -m benchmarks.mpi_allreduce [--np 2] [--calls 200]   (starts mpirun itself)

Cases, for float64 buffers of 8 KB to 80 MB: one tensor (a compiled function returning
``T.allreduce(x, 'sum')``: a copy of its input, then one in-place all-reduce), and a gradient
bucket (four tensors of a quarter of the bytes each, which the bucket_allreduce rewrite sends as
one call on one flat buffer) against one raw call on a buffer of all the bytes. Each figure is
the median over calls of the slower rank's time; a barrier precedes every call.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

SIZES = (1_000, 100_000, 1_000_000, 10_000_000)  # float64 elements


def _median_call(comm, fn, calls: int) -> float:
    fn()
    times = []
    for _ in range(calls):
        comm.Barrier()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    from mpi4py import MPI
    mine, slowest = np.array(times), np.empty(len(times))
    comm.Allreduce(mine, slowest, op=MPI.MAX)
    return float(np.median(slowest))


def measure(calls: int) -> list[dict]:
    from mpi4py import MPI

    import symgraph as sg
    import symgraph.tensor as T

    comm = MPI.COMM_WORLD
    x = T.dvector("x")
    one = sg.function([x], T.allreduce(x, "sum"))
    parts = [T.dvector(f"g{k}") for k in range(4)]
    bucket = sg.function(parts, [T.allreduce(p, "sum") for p in parts])
    rows = []
    for n in SIZES:
        reps = max(5, min(calls, int(calls * 1e5 / n)))
        value = np.zeros(n)
        quarters = [np.zeros(n // 4) for _ in range(4)]
        raw_buf = np.zeros(n)
        raw = _median_call(comm, lambda: comm.Allreduce(MPI.IN_PLACE, raw_buf, op=MPI.SUM), reps)
        ours = _median_call(comm, lambda: one(value), reps)
        ours_bucket = _median_call(comm, lambda: bucket(*quarters), reps)
        rows.append({"elements": n, "bytes": 8 * n, "calls": reps, "raw mpi4py s": raw, "T.allreduce s": ours,
                     "bucket of 4 s": ours_bucket, "ratio": ours / raw, "bucket ratio": ours_bucket / raw})
    return rows


def report(rows: list[dict], size: int) -> str:
    lines = [f"all-reduce (sum) of float64 buffers on {size} MPI processes, median over calls of the slower rank:",
             f"{'bytes':>10} {'raw mpi4py':>12} {'T.allreduce':>12} {'ratio':>6} {'bucket of 4':>12} {'ratio':>6}"]
    for r in rows:
        lines.append(f"{r['bytes']:>10.0e} {r['raw mpi4py s'] * 1e6:>9.1f} µs {r['T.allreduce s'] * 1e6:>9.1f} µs "
                     f"{r['ratio']:>5.2f}x {r['bucket of 4 s'] * 1e6:>9.1f} µs {r['bucket ratio']:>5.2f}x")
    lines.append("goal: within 1.2x of raw mpi4py")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--json", help="also write the measurements here (rank 0)")
    p.add_argument("--inside-mpirun", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.inside_mpirun:
        if shutil.which("mpirun") is None:
            raise SystemExit("mpirun not found: make test installs Open MPI (openmpi-bin)")
        cmd = ["mpirun", "--oversubscribe", "-np", str(args.np)]
        cmd += ["--allow-run-as-root"] if os.geteuid() == 0 else []
        cmd += [sys.executable, "-m", "benchmarks.mpi_allreduce", "--inside-mpirun", "--calls", str(args.calls)]
        cmd += ["--json", args.json] if args.json else []
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        raise SystemExit(subprocess.run(cmd, env=env, timeout=1800).returncode)
    from mpi4py import MPI
    rows = measure(args.calls)
    if MPI.COMM_WORLD.Get_rank() == 0:
        print(report(rows, MPI.COMM_WORLD.Get_size()))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
