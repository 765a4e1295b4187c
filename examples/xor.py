"""XOR with the classic numpy 3-4-1 sigmoid network, written symbolically.

The network and its training follow the well-known "neural network in 11 lines" tutorial:
no biases (the third input column is a constant 1), weights drawn with np.random.seed(1),
and 1500 plain gradient steps of size 1 on the sum-of-squares loss. Here sg.grad derives
the backward pass that the tutorial writes by hand.

    python examples/xor.py [--backend numpy|opencl] [--quick]
"""
from __future__ import annotations

import os
import sys
import time
from typing import Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import example_kit as kit  # noqa: E402

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402

X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float)
Y = np.array([0, 1, 1, 0], dtype=float)
COURSE = [0.023, 0.979, 0.975, 0.025]  # what the course's numpy version printed


def build(backend: str):
    """The network, its loss, and two compiled functions: one training step, and predict."""
    np.random.seed(1)
    w0 = sg.shared(2 * np.random.random((3, 4)) - 1, name="w0")
    w1 = sg.shared(2 * np.random.random((4, 1)) - 1, name="w1")
    x, y = T.dmatrix("x"), T.dvector("y")
    hidden = T.sigmoid(T.dot(x, w0))
    out = T.sigmoid(T.dot(hidden, w1)).flatten()
    loss = T.sum((y - out) ** 2)
    step = sg.function([x, y], loss, updates=sg.updates.sgd(loss, [w0, w1], learning_rate=1.0),
                       backend=backend, name="step")
    predict = sg.function([x], out, backend=backend, name="predict")
    return step, predict


def main(argv: Sequence[str] | None = None) -> dict:
    """Train, print predictions next to targets, plot the loss; return the numbers."""
    p = kit.parser(__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=1500)
    args = kit.parse(p, argv)
    iterations = 300 if args.quick else args.iterations
    plt = kit.pyplot()

    start = time.perf_counter()
    step, predict = build(args.backend)
    losses = [float(step(X, Y)) for _ in range(iterations)]
    seconds = time.perf_counter() - start
    pred = predict(X)

    print(f"XOR, 3-4-1 sigmoid net, {iterations} steps on {args.backend}: {seconds:.3f} s with compile")
    rows = [(str(X[i].astype(int)), int(Y[i]), float(pred[i]), COURSE[i] if not args.quick else "-")
            for i in range(4)]
    print(kit.table(["input", "target", "symgraph", "course"], rows))
    print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f}")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(losses)
    ax.set(xlabel="iteration", ylabel="sum of squared errors", yscale="log", title="XOR: training loss")
    path = kit.save_figure(fig, args.out, "xor_loss.png", dpi=100)
    return {"predictions": pred.tolist(), "losses": losses, "seconds": seconds, "plot": path}


if __name__ == "__main__":
    main()
