"""One ReLU neuron on ridiculously simple data, and the dying-ReLU problem.

x = linspace(0, 2, 200); y = 0 on the first half and 2x on the second, so the data jumps from 0
to 2 at x = 1. A neuron relu(w*x + b) trained with SGD (lr 0.01, batch 200) from a healthy start
fits the one hinge it can draw: it bends near x = 0.6 and rises through the ramp (MSE 2.5 ->
0.18 after 2000 epochs; a single ReLU cannot jump, so it never fits exactly). Started where
w*x + b < 0 for every point, the ReLU passes no gradient: the weights never move. A leaky ReLU
(slope 0.1 below zero) from that same start still gets a gradient and recovers.

    python examples/relu_neuron.py [--backend numpy|opencl] [--quick]
"""
from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import example_kit as kit  # noqa: E402

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402

X = np.linspace(0, 2, 200)
Y = np.where(np.arange(200) < 100, 0.0, 2 * X)
# name: (w, b, slope below zero)
RUNS = {"healthy start": (0.5, 0.1, 0.0), "dead start": (-1.0, -0.5, 0.0), "dead start, leaky": (-1.0, -0.5, 0.1)}


def train(w0: float, b0: float, slope: float, epochs: int, backend: str) -> dict:
    """Fit relu(w*x + b) (leaky when ``slope`` > 0) by full-batch SGD; return its history."""
    w, b = sg.shared(np.array(w0), name="w"), sg.shared(np.array(b0), name="b")
    x, y = T.dvector("x"), T.dvector("y")
    z = w * x + b
    out = T.maximum(z, slope * z) if slope else T.relu(z)
    loss = T.mean((out - y) ** 2)
    step = sg.function([x, y], loss, updates=sg.updates.sgd(loss, [w, b], learning_rate=0.01), backend=backend)
    predict = sg.function([x], out, backend=backend)
    losses = [float(step(X, Y)) for _ in range(epochs)]
    w1, b1 = float(w.get_value()), float(b.get_value())
    return {"losses": losses, "w": (w0, w1), "b": (b0, b1), "moved": (w1, b1) != (w0, b0), "fit": predict(X)}


def figure(results: dict, plt) -> Any:
    """The data with each run's fit (left) and each run's loss curve, labelled (right)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.scatter(X, Y, s=4, c="k", label="data")
    for name, r in results.items():
        ax1.plot(X, r["fit"], label=name)
        ax2.plot(r["losses"], label=name)
    ax1.set(xlabel="x", ylabel="y", title="fits")
    ax2.set(xlabel="epoch", ylabel="MSE", yscale="log", title="training loss")
    ax1.legend()
    ax2.legend()
    return fig


def main(argv: Sequence[str] | None = None) -> dict:
    """Train the three neurons, report which ones moved, and plot fits and losses."""
    p = kit.parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2000)
    args = kit.parse(p, argv)
    epochs = 300 if args.quick else args.epochs
    plt = kit.pyplot()

    results = {name: train(*cfg, epochs, args.backend) for name, cfg in RUNS.items()}
    rows = [(name, f"{r['w'][0]:+.2f} -> {r['w'][1]:+.3f}", f"{r['b'][0]:+.2f} -> {r['b'][1]:+.3f}",
             r["losses"][0], r["losses"][-1], "yes" if r["moved"] else "NO")
            for name, r in results.items()]
    print(f"one neuron, SGD lr 0.01, {epochs} full-batch epochs on {args.backend}")
    print(kit.table(["run", "w", "b", "first loss", "last loss", "weights moved"], rows))
    for name, r in results.items():
        if not r["moved"]:
            print(f"dying ReLU: in '{name}' every point has w*x + b < 0, so the gradient is exactly zero "
                  "and the weights never moved.")

    fig = figure(results, plt)
    kit.save_figure(fig, args.out, "relu_neuron.png")
    return {name: {k: v for k, v in r.items() if k != "fit"} for name, r in results.items()}


if __name__ == "__main__":
    main()
