"""XOR with the classic numpy 3-4-1 sigmoid network, written symbolically.

The network is the numpy tutorials' one: no biases (the third input column is a constant 1),
weights drawn with np.random.seed(1); 2 * np.random.random(shape) - 1. Each step is the
tutorial's hand-written update, weights += layerᵀ·(2(y - ŷ)·ŷ(1 - ŷ)) and so on down: plain
gradient descent with step size 1 on the sum of squared errors. Here sg.grad derives that
backward pass. ``numpy_loop`` is the hand-written loop itself, from the same start: after 1500
steps both print 0.015, 0.981, 0.984, 0.022 (they agree to 1e-12). The "course" column is what
the course's own run printed after 1500 steps of the same update from a random start it did
not record, so its third decimals cannot be reproduced here.

    python examples/xor.py [--backend numpy|opencl] [--quick] [--iterations N]
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
COURSE = [0.023, 0.979, 0.975, 0.025]  # what the course's run printed (1500 steps, unrecorded start)


def initial_weights() -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's start: np.random.seed(1), then uniform weights in [-1, 1)."""
    np.random.seed(1)
    return 2 * np.random.random((3, 4)) - 1, 2 * np.random.random((4, 1)) - 1


def numpy_loop(iterations: int) -> np.ndarray:
    """The hand-written numpy training loop (the tutorial's backprop, step size 1 on the sum of
    squared errors) from ``initial_weights``; returns its predictions for X."""
    w0, w1 = initial_weights()
    y = Y[:, None]
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for _ in range(iterations):
        hidden = sigmoid(X @ w0)
        out = sigmoid(hidden @ w1)
        d_out = 2 * (y - out) * out * (1 - out)
        d_w1 = hidden.T @ d_out
        d_w0 = X.T @ (d_out @ w1.T * hidden * (1 - hidden))
        w0 += d_w0
        w1 += d_w1
    return sigmoid(sigmoid(X @ w0) @ w1).ravel()


def build(backend: str):
    """The network, its loss, and two compiled functions: one training step, and predict."""
    start0, start1 = initial_weights()
    w0, w1 = sg.shared(start0, name="w0"), sg.shared(start1, name="w1")
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

    by_hand = numpy_loop(iterations)
    print(f"XOR, 3-4-1 sigmoid net, {iterations} steps of size 1 on {args.backend}: {seconds:.3f} s with compile")
    rows = [(str(X[i].astype(int)), int(Y[i]), float(pred[i]), float(by_hand[i]),
             COURSE[i] if iterations == 1500 else "-") for i in range(4)]
    print(kit.table(["input", "target", "symgraph", "numpy loop", "course"], rows))
    print("numpy loop: the hand-written loop from the same seeded start; course: the course's run "
          "(1500 steps, start not recorded)")
    print(f"loss: {losses[0]:.4f} -> {losses[-1]:.4f}")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(losses)
    ax.set(xlabel="iteration", ylabel="sum of squared errors", yscale="log", title="XOR: training loss")
    path = kit.save_figure(fig, args.out, "xor_loss.png")
    return {"predictions": pred.tolist(), "numpy_loop": by_hand.tolist(), "losses": losses,
            "seconds": seconds, "plot": path}


if __name__ == "__main__":
    main()
