"""The noisy-sine training loop compiled as one function: 100 Adam steps per call.

The 1-60-1 ReLU network of noisy_sine.py, trained full-batch with Adam, twice from the same
start: once step by step (one call per step, as noisy_sine.py does) and once with
``sg.scan_updates``, which puts the optimizer's updates inside one ``sg.scan`` whose carries are
the parameters and Adam's moments, so each call runs ``--per-call`` steps without returning to
Python. Both runs compute the same numbers; the script prints both final losses, their
difference, and the time each took.

    python examples/noisy_sine_loop.py [--backend numpy|opencl] [--quick] [--steps N] [--per-call K]
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import example_kit as kit  # noqa: E402
import noisy_sine  # noqa: E402

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402


def problem() -> tuple:
    """(parameters, x, y, loss, Adam's updates) of the 1-60-1 network, from the same seeded start."""
    x, y = T.fmatrix("x"), T.fmatrix("y")
    params, out = noisy_sine.mlp([1, 60, 1], x, seed=1)
    loss = T.mean((out - y) ** 2)
    return params, x, y, loss, sg.updates.adam(loss, params, learning_rate=0.01)


def step_by_step(steps: int, backend: str, xv: np.ndarray, yv: np.ndarray) -> tuple[list[float], float]:
    """One call per step; (the losses, seconds)."""
    _, x, y, loss, updates = problem()
    step = sg.function([x, y], loss, updates=updates, backend=backend, name="step")
    start = time.perf_counter()
    losses = [float(step(xv, yv)) for _ in range(steps)]
    return losses, time.perf_counter() - start


def one_loop(steps: int, per_call: int, backend: str, xv: np.ndarray, yv: np.ndarray) -> tuple[list[float], float]:
    """``per_call`` steps per call inside one compiled loop; (the losses, seconds)."""
    _, x, y, loss, updates = problem()
    n = T.lscalar("n")
    traced, final = sg.scan_updates(updates, n_steps=n, outputs=[loss], name="train")
    run = sg.function([x, y, n], traced[0], updates=final, backend=backend, name="train_loop")
    start, losses = time.perf_counter(), []
    for done in range(0, steps, per_call):
        losses += run(xv, yv, min(per_call, steps - done)).tolist()
    return losses, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> dict:
    """Train both ways, print the comparison, plot both loss curves."""
    p = kit.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--per-call", type=int, default=100)
    args = kit.parse(p, argv)
    if args.quick:
        args.steps = min(args.steps, 300)
    if args.steps < 1 or args.per_call < 1:
        p.error("--steps and --per-call must be positive")
    plt = kit.pyplot()
    xv, yv = noisy_sine.data()
    by_step, t_step = step_by_step(args.steps, args.backend, xv, yv)
    looped, t_loop = one_loop(args.steps, args.per_call, args.backend, xv, yv)
    diff = float(np.max(np.abs(np.subtract(by_step, looped))))
    print(f"noisy sine, 1-60-1 ReLU, Adam, full batch, {args.steps} steps on {args.backend}")
    print(kit.table(["training loop", "final loss", "seconds", "steps/s"],
                    [("one call per step", by_step[-1], t_step, args.steps / t_step),
                     (f"sg.scan_updates, {args.per_call} steps per call", looped[-1], t_loop, args.steps / t_loop)]))
    print(f"largest difference between the two loss curves: {diff:.3g}; the loop was {t_step / t_loop:.1f}x faster")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(by_step, lw=2.5, c="0.7", label="one call per step")
    ax.plot(looped, lw=0.8, c="C0", ls="--", label=f"{args.per_call} steps per call")
    ax.axhline(noisy_sine.NOISE_FLOOR, color="k", ls=":", lw=1, label="noise floor")
    ax.set(xlabel="step", ylabel="MSE", yscale="log", title="the same training, two ways")
    ax.legend(loc="upper right")
    path = kit.save_figure(fig, args.out, "noisy_sine_loop.png")
    return {"step_by_step": by_step, "one_loop": looped, "seconds": {"step": t_step, "loop": t_loop},
            "max_difference": diff, "plot": path}


if __name__ == "__main__":
    main()
