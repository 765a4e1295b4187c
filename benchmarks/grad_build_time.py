"""Time building sg.grad of a 1000-op elementwise chain (graph construction only, no compile).

    python benchmarks/grad_build_time.py [n_ops] [repeats]

Prints the median seconds over the repeats; the goal (issue 3) is well under a second."""
from __future__ import annotations

import statistics
import sys
import time

import symgraph as sg
import symgraph.tensor as T

OPS = (T.sin, T.tanh, T.exp, T.sigmoid)


def chain(n_ops: int):
    """x -> n_ops unary elementwise ops, each scaled to keep values tame (2 ops per step)."""
    x = T.dvector("x")
    z = x
    for i in range(n_ops // 2):
        z = OPS[i % len(OPS)](z) * 0.5
    return x, z.sum()


def main(n_ops: int = 1000, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        x, cost = chain(n_ops)
        t0 = time.perf_counter()
        sg.grad(cost, x)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"grad of a {n_ops}-op elementwise chain: median {median:.4f} s over {repeats} builds")
    return median


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
