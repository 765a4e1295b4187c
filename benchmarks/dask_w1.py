"""W1 on the dask backend against the same expression written by hand with dask.array, in the
same run (issue 19's goal: within 1.3x at 10^8 elements in 10^7-element chunks).

    python -m benchmarks.dask_w1 [--size 1e8] [--chunk 1e7] [--rounds 5] [--json PATH]

W1 is sigmoid(x*y + 0.5) * tanh(x) - maximum(y, 0) on float32 vectors, computed to a numpy result
with dask's threaded scheduler. Two cases: numpy inputs (each call chunks them: symgraph through
its placeholders, by hand through ``da.from_array(..., name=False)``, which skips hashing the
data as symgraph does) and dask inputs (both compute on the same dask arrays). The numpy backend
on the whole arrays is measured too, for scale. Medians of ``--rounds`` runs.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks import data as D


def _median_seconds(fn, rounds: int) -> float:
    fn()  # warm: compile, build the graph template, fault in the memory
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure(size: int, chunk: int, rounds: int) -> dict:
    import dask
    import dask.array as da

    import symgraph as sg
    import symgraph.tensor as T

    x, y = D.w1_inputs(size)
    xs, ys = T.fvector("x"), T.fvector("y")
    expr = T.sigmoid(xs * ys + np.float32(0.5)) * T.tanh(xs) - T.maximum(ys, np.float32(0))
    f = sg.function([xs, ys], expr, backend="dask", chunks=chunk)
    g = sg.function([xs, ys], expr)

    def by_hand(a, b):
        return (1 / (1 + da.exp(-(a * b + np.float32(0.5)))) * da.tanh(a) - da.maximum(b, np.float32(0))).compute()

    def by_hand_numpy():
        return by_hand(da.from_array(x, chunks=chunk, name=False), da.from_array(y, chunks=chunk, name=False))

    xd, yd = da.from_array(x, chunks=chunk), da.from_array(y, chunks=chunk)
    want = D.w1_reference(x[:1000], y[:1000])
    for out in (f(x, y), by_hand_numpy(), f(xd, yd)):
        assert out.dtype == np.float32 and np.allclose(out[:1000], want, atol=1e-5)
    with dask.config.set(scheduler="threads"):
        r = {"symgraph dask, numpy inputs": _median_seconds(lambda: f(x, y), rounds),
             "dask by hand, numpy inputs": _median_seconds(by_hand_numpy, rounds),
             "symgraph dask, dask inputs": _median_seconds(lambda: f(xd, yd), rounds),
             "dask by hand, dask inputs": _median_seconds(lambda: by_hand(xd, yd), rounds),
             "symgraph numpy backend (whole arrays)": _median_seconds(lambda: g(x, y), rounds)}
    return {"size": size, "chunk": chunk, "rounds": rounds, "seconds": r,
            "ratio numpy inputs": r["symgraph dask, numpy inputs"] / r["dask by hand, numpy inputs"],
            "ratio dask inputs": r["symgraph dask, dask inputs"] / r["dask by hand, dask inputs"]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=float, default=1e8)
    p.add_argument("--chunk", type=float, default=1e7)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", help="also write the measurements here")
    args = p.parse_args(argv)
    r = measure(int(args.size), int(args.chunk), args.rounds)
    print(f"W1 at {r['size']:.0e} float32 elements in {r['chunk']:.0e}-element chunks, threads scheduler, "
          f"median of {r['rounds']}:")
    for name, sec in r["seconds"].items():
        print(f"  {name:<40} {sec * 1e3:9.1f} ms")
    print(f"  symgraph / by hand: {r['ratio numpy inputs']:.2f}x (numpy inputs), "
          f"{r['ratio dask inputs']:.2f}x (dask inputs); goal 1.3x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(r, fh, indent=1)
    return r


if __name__ == "__main__":
    main()
