"""All-reduce time of symgraph's T.allreduce against a raw mpi4py ``Allreduce(IN_PLACE)`` of the
same bytes, in the same run, on 2 MPI processes (issue 19's goal: within 1.2x).

    python -m benchmarks.mpi_allreduce [--np 2] [--calls 200]   (starts mpirun itself)

Cases, for float64 buffers of 8 KB to 80 MB (32 and 80 KB show where a bucket's Python stops
showing): one tensor (a compiled function returning ``T.allreduce(x, 'sum')`` of its argument: MPI
reads the argument as its send buffer and writes a result buffer the function owns, ``Allreduce(x,
buf)``; compared with the raw in-place call and with the raw call of that same form), one computed
tensor (``T.allreduce(2 * x)``: the product is all-reduced in place, as the same by hand:
``np.multiply(x, 2, out=buf)`` and ``Allreduce(IN_PLACE, buf)``), and a gradient bucket (four
tensors of a quarter of the bytes each, which the bucket_allreduce rewrite sends as one call on one
flat buffer) against one raw call on a buffer of all the bytes. Each figure is the median over calls
of the slower rank's time; a barrier precedes every call; the variants take turns (rounds of a few
calls each), so a busy moment of a shared machine hits all alike.

A compiled all-reduce must not overwrite the caller's array: it hands it to MPI as the send
buffer of an ``Allreduce(x, buf)`` into a buffer it owns. A bucket of arguments must copy them
into one flat buffer (the caller's four arrays are not one buffer): the "raw + 4 copies" column
is the raw call preceded by those copies, so the ratio to it is symgraph's own overhead. In a
training step the gradients are computed in the function, into the spans of the bucket's flat
buffer, and nothing is copied: the "gradient bucket" case computes four gradients (``2 * p``)
and all-reduces them, against the same four numpy products written by hand into one flat buffer
(``np.multiply(p, 2.0, out=span)``) and one raw ``Allreduce(IN_PLACE)``. A second table gives
what the all-reduce adds to a call: the function's time minus that of the same function without
its all-reduce (the call overhead every compiled function pays cancels out), against the raw
in-place call of the same bytes.
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

SIZES = (1_000, 4_000, 10_000, 100_000, 1_000_000, 10_000_000)  # float64 elements


def _median_calls(comm, fns: dict, calls: int, per_round: int = 5) -> dict:
    """The median over ``calls`` calls of each of ``fns`` (the slower rank's time), in rounds."""
    from mpi4py import MPI
    times: dict = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    while len(times[next(iter(fns))]) < calls:
        for name, fn in fns.items():
            for _ in range(per_round):
                comm.Barrier()
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        mine, slowest = np.array(ts), np.empty(len(ts))
        comm.Allreduce(mine, slowest, op=MPI.MAX)
        out[name] = float(np.median(slowest))
    return out


def _case(comm, fns: dict, n: int, reps: int) -> dict:
    """One row: raw, raw after the copies the ops make, one T.allreduce, a bucket of four
    arguments, a bucket of four gradients computed in the function, and the same functions
    without their all-reduce (what the all-reduce adds to a call)."""
    from mpi4py import MPI
    value, raw_buf = np.zeros(n), np.zeros(n)
    quarters = [np.zeros(n // 4) for _ in range(4)]
    spans = [raw_buf[k * (n // 4):(k + 1) * (n // 4)] for k in range(4)]

    def raw() -> None:
        comm.Allreduce(MPI.IN_PLACE, raw_buf, op=MPI.SUM)

    def raw_copy() -> None:
        raw_buf[:] = value
        comm.Allreduce(MPI.IN_PLACE, raw_buf, op=MPI.SUM)

    def raw_send() -> None:  # what T.allreduce of an argument does: MPI reads it as the send buffer
        comm.Allreduce(value, raw_buf, op=MPI.SUM)

    def raw_double() -> None:
        np.multiply(value, 2.0, out=raw_buf)
        comm.Allreduce(MPI.IN_PLACE, raw_buf, op=MPI.SUM)

    def raw_copies() -> None:
        for k, q in enumerate(quarters):
            raw_buf[k * (n // 4):(k + 1) * (n // 4)] = q
        comm.Allreduce(MPI.IN_PLACE, raw_buf, op=MPI.SUM)

    def raw_grads() -> None:
        for q, span in zip(quarters, spans):
            np.multiply(q, 2.0, out=span)
        comm.Allreduce(MPI.IN_PLACE, raw_buf, op=MPI.SUM)

    t = _median_calls(comm, {"raw": raw, "raw + copy": raw_copy, "raw send": raw_send, "raw double": raw_double,
                             "double": lambda: fns["double"](value), "raw + 4 copies": raw_copies,
                             "raw gradients": raw_grads, "ours": lambda: fns["one"](value),
                             "bucket": lambda: fns["bucket"](*quarters), "gradients": lambda: fns["grads"](*quarters),
                             "double alone": lambda: fns["double alone"](value),
                             "gradients alone": lambda: fns["grads alone"](*quarters)}, reps)
    return {"elements": n, "bytes": 8 * n, "calls": reps, "raw mpi4py s": t["raw"],
            "raw + copy s": t["raw + copy"], "raw send s": t["raw send"], "raw double s": t["raw double"],
            "computed s": t["double"], "computed ratio": t["double"] / t["raw double"],
            "raw + 4 copies s": t["raw + 4 copies"],
            "raw gradients s": t["raw gradients"],
            "T.allreduce s": t["ours"], "bucket of 4 s": t["bucket"], "gradient bucket s": t["gradients"],
            "ratio": t["ours"] / t["raw"], "bucket ratio": t["bucket"] / t["raw"],
            "ratio to raw + copy": t["ours"] / t["raw + copy"], "ratio to raw send": t["ours"] / t["raw send"],
            "bucket ratio to raw + copies": t["bucket"] / t["raw + 4 copies"],
            "gradient bucket ratio": t["gradients"] / t["raw gradients"],
            "computed added s": t["double"] - t["double alone"],
            "computed added ratio": (t["double"] - t["double alone"]) / t["raw"],
            "gradient bucket added s": t["gradients"] - t["gradients alone"],
            "gradient bucket added ratio": (t["gradients"] - t["gradients alone"]) / t["raw"]}


def measure(calls: int) -> list[dict]:
    from mpi4py import MPI

    import symgraph as sg
    import symgraph.tensor as T

    comm = MPI.COMM_WORLD
    x = T.dvector("x")
    parts = [T.dvector(f"g{k}") for k in range(4)]
    fns = {"one": sg.function([x], T.allreduce(x, "sum")),
           "double": sg.function([x], T.allreduce(x * 2.0, "sum")),
           "double alone": sg.function([x], x * 2.0),
           "bucket": sg.function(parts, [T.allreduce(p, "sum") for p in parts]),
           "grads": sg.function(parts, [T.allreduce(p * 2.0, "sum") for p in parts]),
           "grads alone": sg.function(parts, [p * 2.0 for p in parts])}
    rows = []
    for n in SIZES:
        reps = max(15, min(calls, int(calls * 1e5 / n)))
        rows.append(_case(comm, fns, n, reps))
    return rows


def report(rows: list[dict], size: int) -> str:
    lines = [f"all-reduce (sum) of float64 buffers on {size} MPI processes, median over calls of the slower rank:",
             f"{'bytes':>8} {'raw mpi4py':>11} {'T.allreduce':>11} {'ratio':>6} {'(to send)':>9} "
             f"{'raw 2x':>11} {'computed':>11} {'ratio':>6} "
             f"{'bucket of 4':>11} {'ratio':>6} {'(to raw+copies)':>15} "
             f"{'raw grads':>11} {'grad bucket':>11} {'ratio':>6}"]
    for r in rows:
        lines.append(f"{r['bytes']:>8.0e} {r['raw mpi4py s'] * 1e6:>8.1f} µs {r['T.allreduce s'] * 1e6:>8.1f} µs "
                     f"{r['ratio']:>5.2f}x {r['ratio to raw send']:>8.2f}x "
                     f"{r['raw double s'] * 1e6:>8.1f} µs {r['computed s'] * 1e6:>8.1f} µs "
                     f"{r['computed ratio']:>5.2f}x "
                     f"{r['bucket of 4 s'] * 1e6:>8.1f} µs {r['bucket ratio']:>5.2f}x "
                     f"{r['bucket ratio to raw + copies']:>14.2f}x "
                     f"{r['raw gradients s'] * 1e6:>8.1f} µs {r['gradient bucket s'] * 1e6:>8.1f} µs "
                     f"{r['gradient bucket ratio']:>5.2f}x")
    lines.append("goal: within 1.2x of raw mpi4py (in place). (to send): against the raw call that reads the "
                 "argument as its send buffer, Allreduce(x, buf), as T.allreduce of an argument must. "
                 "computed: T.allreduce(2 * x) against the product and an in-place call by hand. "
                 "bucket of 4: four arguments (copied into one buffer; "
                 "(to raw+copies): against the raw call after those copies); grad bucket: four gradients "
                 "computed into one buffer, against the same by hand (raw grads)")
    lines.append("what the all-reduce adds to a call (the function's time minus the same function without its "
                 "all-reduce), against the raw in-place call of the same bytes:")
    lines.append(f"{'bytes':>8} {'raw mpi4py':>11} {'computed':>11} {'ratio':>6} {'grad bucket':>11} {'ratio':>6}")
    for r in rows:
        lines.append(f"{r['bytes']:>8.0e} {r['raw mpi4py s'] * 1e6:>8.1f} µs {r['computed added s'] * 1e6:>8.1f} µs "
                     f"{r['computed added ratio']:>5.2f}x {r['gradient bucket added s'] * 1e6:>8.1f} µs "
                     f"{r['gradient bucket added ratio']:>5.2f}x")
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
