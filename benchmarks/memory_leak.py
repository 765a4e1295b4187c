"""Resident memory over a long training run: 10^5 SGD steps of a small MLP on each backend,
RSS sampled every 10^4 steps. Prints start/end RSS and the growth (goal: flat).

    python -m benchmarks.memory_leak [--steps 100000] [--every 10000] [--backends numpy,opencl]
"""
from __future__ import annotations

import argparse
import gc
import os
import time
import warnings

import numpy as np

import symgraph as sg
import symgraph.tensor as T


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc; ru_maxrss elsewhere is a peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mlp_step(backend: str, batch: int = 32, n_in: int = 16, hidden: int = 32, seed: int = 0):
    """A compiled SGD step of a 2-layer MLP (softmax cross-entropy) and its data."""
    rng = np.random.default_rng(seed)
    x, t = T.fmatrix("x"), T.lvector("t")
    W1 = sg.shared(rng.normal(0, 0.3, (n_in, hidden)).astype("float32"), "W1")
    b1 = sg.shared(np.zeros(hidden, "float32"), "b1")
    W2 = sg.shared(rng.normal(0, 0.3, (hidden, 4)).astype("float32"), "W2")
    b2 = sg.shared(np.zeros(4, "float32"), "b2")
    p = T.nnet.softmax(T.tanh(x @ W1 + b1) @ W2 + b2)
    loss = T.nnet.categorical_crossentropy(p, t).mean()
    params = [W1, b1, W2, b2]
    step = sg.function([x, t], loss, updates=sg.updates.sgd(loss, params, learning_rate=0.1), backend=backend)
    data = rng.normal(size=(batch, n_in)).astype("float32"), rng.integers(0, 4, batch)
    return step, data, params


def measure(backend: str, steps: int, every: int) -> dict:
    """Train ``steps`` steps, sampling RSS; the first sample is taken after a short warm-up."""
    step, data, _ = mlp_step(backend)
    for _ in range(200):
        step(*data)
    gc.collect()
    samples, start = [(0, rss_mib())], time.perf_counter()
    for k in range(1, steps + 1):
        loss = step(*data)
        if k % every == 0:
            samples.append((k, rss_mib()))
    return {"backend": backend, "steps": steps, "seconds": time.perf_counter() - start,
            "start_mib": samples[0][1], "end_mib": samples[-1][1], "growth_mib": samples[-1][1] - samples[0][1],
            "samples": samples, "final_loss": float(loss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--backends", default="numpy,opencl")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for backend in args.backends.split(","):
        try:
            r = measure(backend, args.steps, args.every)
        except Exception as e:  # noqa: BLE001 -- e.g. no OpenCL device on this machine
            print(f"{backend}: skipped ({type(e).__name__}: {e})")
            continue
        trace = " ".join(f"{m:.1f}" for _, m in r["samples"])
        print(f"{backend}: {r['steps']} steps in {r['seconds']:.1f} s; RSS start {r['start_mib']:.1f} MiB, "
              f"end {r['end_mib']:.1f} MiB, growth {r['growth_mib']:+.2f} MiB (samples: {trace}); "
              f"final loss {r['final_loss']:.4f}")


if __name__ == "__main__":
    main()
