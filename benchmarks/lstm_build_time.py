"""Time building and compiling the gradient of a 2-layer LSTM over T = 50 steps (issue 15's goal:
≤ 0.3 s, and below PyTensor's time in the same run), written once in the Theano API and run by
symgraph and, when it is installed, PyTensor.

    python -m benchmarks.lstm_build_time [repeats]

Each build starts from fresh shared variables: graph construction (two scans, sg.grad through
both), the rewrites and code generation, then one call on a (50, 8, 16) batch, checked to agree
between the libraries. Prints the median seconds per library."""
from __future__ import annotations

import importlib.util
import statistics
import sys
import time

import numpy as np

from benchmarks import theano_style as ts

STEPS, BATCH, N_IN, N_HIDDEN = 50, 8, 16, 32


def _layer(lib, x, n_in: int, rng: np.random.Generator) -> tuple:
    """One LSTM layer over the sequence ``x``: (its states, its parameters)."""
    n = N_HIDDEN
    w = lib.shared(rng.normal(0, 0.1, (n_in, 4 * n)).astype("float32"))
    u = lib.shared(rng.normal(0, 0.1, (n, 4 * n)).astype("float32"))
    b = lib.shared(np.zeros(4 * n, "float32"))

    def step(x_t, h, c):
        z = lib.T.dot(x_t, w) + lib.T.dot(h, u) + b
        i, f, o = (lib.sigmoid(z[:, k * n:(k + 1) * n]) for k in range(3))
        c = f * c + i * lib.T.tanh(z[:, 3 * n:])
        return [o * lib.T.tanh(c), c]
    zeros = np.zeros((BATCH, n), "float32")
    (hs, _), _ = lib.scan(step, sequences=[x], outputs_info=[lib.shared(zeros), lib.shared(zeros)])
    return hs, [w, u, b]


def build(lib) -> tuple[float, float]:
    """(seconds to build and compile the cost and its gradients, the cost on a fixed batch)."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    x = lib.T.ftensor3("x")
    h1, p1 = _layer(lib, x, N_IN, rng)
    h2, p2 = _layer(lib, h1, N_HIDDEN, rng)
    cost = lib.T.mean(h2 ** 2)
    f = lib.function([x], [cost, *lib.grad(cost, p1 + p2)])
    seconds = time.perf_counter() - start
    batch = np.random.default_rng(1).normal(size=(STEPS, BATCH, N_IN)).astype("float32")
    return seconds, float(f(batch)[0])


def main(repeats: int = 5) -> dict:
    libs = {"symgraph (numpy backend)": ts.symgraph_lib("numpy")}
    if importlib.util.find_spec("pytensor") is not None:
        libs["PyTensor (C)"] = ts.pytensor_lib("FAST_RUN")
    medians, costs = {}, {}
    for name, lib in libs.items():
        runs = [build(lib) for _ in range(repeats)]
        medians[name] = statistics.median(s for s, _ in runs)
        costs[name] = runs[0][1]
        print(f"2-layer LSTM gradient over T={STEPS}, built and compiled by {name}: median {medians[name]:.3f} s "
              f"over {repeats} builds (cost {costs[name]:.6g})")
    values = list(costs.values())
    assert all(abs(v - values[0]) <= 1e-4 * abs(values[0]) for v in values), costs
    return medians


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
