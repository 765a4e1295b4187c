"""Compile time of elementwise chains with their gradient: graph build + sg.grad + rewrite +
lowering, for chains of 200, 1000 and 3000 ops. Standalone: ``python benchmarks/compile_time.py``
prints the median of several runs per size (``run(n)`` is the one-shot measurement other
scripts import)."""
from __future__ import annotations

import statistics
import sys
import time

import symgraph as sg
import symgraph.tensor as T

_OPS = (T.sin, T.tanh, lambda v: v * 0.9, T.sigmoid, lambda v: v + 0.1, T.cos)


def build(n: int):
    """The symbolic chain ``x -> op_n(...op_1(x))`` of ``n`` elementwise ops, its sum as cost,
    and the gradient of the cost with respect to ``x``."""
    x = T.dvector("x")
    y = x
    for i in range(n):
        y = _OPS[i % len(_OPS)](y)
    cost = y.sum()
    return x, cost, sg.grad(cost, x)


def run(n: int, mode: str = "fast_run") -> float:
    """Seconds to build the ``n``-op chain with its gradient and compile it with sg.function."""
    t0 = time.perf_counter()
    x, cost, g = build(n)
    sg.function([x], [cost, g], mode=mode)
    return time.perf_counter() - t0


def measure(n: int, repeat: int = 5, mode: str = "fast_run") -> float:
    """Median of ``repeat`` runs (after one warm-up) in seconds."""
    run(min(n, 50), mode)
    return statistics.median(run(n, mode) for _ in range(repeat))


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [200, 1000, 3000]
    sys.setrecursionlimit(1000)  # the default: every walk must be iterative
    for n in sizes:
        t = measure(n, repeat=5 if n <= 1000 else 3)
        print(f"chain of {n:5d} elementwise ops + gradient: compile {t * 1e3:8.1f} ms (median)")


if __name__ == "__main__":
    main(sys.argv[1:])
