"""Beyond one machine, two ways (docs/scaling.md explains how each extends to a cluster).

(a) The dask backend: estimate pi from 10^8 random points (a 10^8 x 2 array, 1.6 GB) that are
    generated chunk by chunk on the workers of a local dask.distributed cluster (127.0.0.1, no
    dashboard) and never gathered: each worker runs the compiled statistic on its chunks, with a
    progress bar while it runs.

        python examples/distributed.py [--rows 1e8] [--chunk-rows 5e6] [--quick]

(b) MPI data parallelism: with --mpi, every process trains the digits MLP on its share of each
    batch, gradients averaged by one all-reduce per step; rank 0 also trains one process on the
    full batches and prints both loss curves, which agree to rounding.

        mpirun -np 2 python examples/distributed.py --mpi [--epochs 10] [--quick]
"""
from __future__ import annotations

import os
import sys
import time
from typing import Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import example_kit as kit  # noqa: E402

# This file is called distributed.py: with its folder on sys.path, ``import distributed`` (dask
# does it) would find this script instead of the dask.distributed package.
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != HERE]

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402


# --- (a) a statistic of an array larger than one worker's memory --------------------------------

def estimate_pi(rows: int, chunk_rows: int, processes: bool, worker_memory: str, show_progress: bool) -> dict:
    """4 x the fraction of uniform points in [0, 1)^2 that fall inside the unit circle."""
    da = kit.require("dask.array", "dask")
    distributed = kit.require("distributed")
    points = T.dmatrix("points")
    inside = T.cast((points ** 2).sum(axis=1) <= 1.0, "float64")
    pi_hat = 4.0 * inside.mean()
    f = sg.function([points], [pi_hat, points.shape[0]], backend="dask", compute=False, name="pi")
    where = {"host": "127.0.0.1"} if processes else {}  # threads in this process talk in-process
    # a memory limit is per worker process; thread workers would measure (and pause on) this whole process
    memory_limit = worker_memory if processes else 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None,
                                  memory_limit=memory_limit, **where) as cluster, \
            distributed.Client(cluster) as client:
        start = time.perf_counter()
        xy = da.random.default_rng(0).random((rows, 2), chunks=(chunk_rows, 2))  # made on the workers
        futures = client.compute(f(xy))  # lazy outputs (compute=False), computed by the cluster
        if show_progress:
            distributed.progress(futures)
            print()
        estimate, n = client.gather(futures)
        seconds = time.perf_counter() - start
    error = 4.0 * np.sqrt((np.pi / 4) * (1 - np.pi / 4) / n)  # the estimate's standard error
    return {"pi": float(estimate), "rows": int(n), "seconds": seconds, "standard_error": float(error),
            "chunks": -(-rows // chunk_rows)}


# --- (b) data-parallel training over MPI ---------------------------------------------------------

def digits() -> tuple[np.ndarray, np.ndarray]:
    kit.require("sklearn", "scikit-learn")
    from sklearn.datasets import load_digits
    data = load_digits()
    return data.data / 16.0, data.target.astype(np.int64)


def mlp(hidden: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [sg.shared(rng.normal(0, np.sqrt(2 / 64), (64, hidden)), "W1"), sg.shared(np.zeros(hidden), "b1"),
            sg.shared(rng.normal(0, np.sqrt(1 / hidden), (hidden, 10)), "W2"), sg.shared(np.zeros(10), "b2")]


def training_step(params: list, lr: float, data_parallel: bool):
    """One SGD-with-momentum step; with ``data_parallel`` the gradients and the reported loss are
    averaged over the processes (one bucketed all-reduce)."""
    w1, b1, w2, b2 = params
    x, y = T.dmatrix("x"), T.lvector("y")
    probs = T.nnet.softmax(T.dot(T.relu(T.dot(x, w1) + b1), w2) + b2)
    loss = T.nnet.categorical_crossentropy(probs, y).mean()
    updates = sg.updates.momentum(loss, params, lr, data_parallel=data_parallel)
    return sg.function([x, y], T.allreduce(loss) if data_parallel else loss, updates=updates)


def train_data_parallel(epochs: int, batch: int, hidden: int, lr: float, reference: bool) -> dict:
    """Train on this rank's half (third, ...) of every global batch of ``batch`` images."""
    d = sg.distributed
    rank, size = d.rank(), d.size()
    if batch % size:
        raise SystemExit(f"--batch {batch} must divide evenly among {size} processes")
    x, y = digits()
    params = mlp(hidden, seed=rank)  # each rank starts elsewhere: the broadcast makes them equal
    d.broadcast_parameters(params, root=0)
    step = training_step(params, lr, data_parallel=True)
    one = None
    if reference and rank == 0:
        ref_params = [sg.shared(p.get_value(), p.name) for p in params]
        one = training_step(ref_params, lr, data_parallel=False)
    curves: dict = {"parallel": [], "one process": []}
    rng = np.random.default_rng(1)  # every rank draws the same batches
    share = batch // size
    for _ in kit.progress(range(epochs), desc=f"rank {rank}", enabled=False):
        order, totals = rng.permutation(len(x) - len(x) % batch), [0.0, 0.0]
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            mine = idx[rank * share:(rank + 1) * share]
            totals[0] += float(step(x[mine], y[mine]))
            if one is not None:
                totals[1] += float(one(x[idx], y[idx]))
        n = len(order) // batch
        curves["parallel"].append(totals[0] / n)
        curves["one process"].append(totals[1] / n)
    return {"rank": rank, "size": size, "curves": curves, "calls": d.STATS["calls"], "steps": epochs * n}


def report_mpi(r: dict, batch: int) -> None:
    if r["rank"] != 0:
        return
    par, one = r["curves"]["parallel"], r["curves"]["one process"]
    print(f"digits MLP, data parallel over {r['size']} processes x batch {batch // r['size']} "
          f"(global batch {batch}); one all-reduce call per step ({r['calls']} calls, {r['steps']} steps)")
    if not any(one):
        print(kit.table(["epoch", "loss"], [(k + 1, a) for k, a in enumerate(par)]))
        return
    print(kit.table(["epoch", f"loss, {r['size']} processes", "loss, 1 process, full batch", "difference"],
                    [(k + 1, a, b, f"{a - b:.1e}") for k, (a, b) in enumerate(zip(par, one))]))
    print(f"largest difference between the curves: {max(abs(a - b) for a, b in zip(par, one)):.1e}")


def main(argv: Sequence[str] | None = None) -> dict:
    p = kit.parser(__doc__.splitlines()[0])
    p.add_argument("--mpi", action="store_true", help="(b): data-parallel training (run under mpirun)")
    p.add_argument("--rows", type=float, default=1e8)
    p.add_argument("--chunk-rows", type=float, default=5e6)
    p.add_argument("--worker-memory", default="1GB",
                   help="(a): each worker process's memory limit (--quick's threads get none)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--no-reference", action="store_true", help="(b): skip the one-process comparison")
    args = kit.parse(p, argv)
    if args.mpi:
        with sg.distributed.abort_on_error():
            r = train_data_parallel(2 if args.quick else args.epochs, args.batch, args.hidden, args.lr,
                                    not args.no_reference)
            report_mpi(r, args.batch)
        return r
    rows, chunk = (int(2e6), int(5e5)) if args.quick else (int(args.rows), int(args.chunk_rows))
    r = estimate_pi(rows, chunk, processes=not args.quick, worker_memory=args.worker_memory,
                    show_progress=not args.quick)
    print(f"pi from {r['rows']:.0e} random points in {r['chunks']} chunks on 2 local workers: {r['pi']:.5f} "
          f"(error {r['pi'] - np.pi:+.5f}, standard error {r['standard_error']:.5f}), {r['seconds']:.1f} s")
    return r


if __name__ == "__main__":
    main()
