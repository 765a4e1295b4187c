"""Classify scikit-learn's 8x8 handwritten digits with a small LeNet-style convolutional network.

Two 3x3 convolution + ReLU + 2x2 max-pool stages (16 and 32 filters, Theano's T.nnet.conv2d and
T.signal.pool.pool_2d), a 64-unit ReLU layer and a softmax output, trained with Adam on
mini-batches of 75% of the 1797 images and scored on the held-out 25% (about 98% after 15
epochs). The picture shows the accuracy per epoch and the 16 learned first-layer filters.

    python examples/cnn_digits.py [--backend numpy|opencl] [--quick]
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


def load() -> tuple[np.ndarray, ...]:
    """Train and test splits of the digits as (N, 1, 8, 8) float32 images in [0, 1]."""
    kit.require("sklearn", "scikit-learn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    return tuple(train_test_split(x, digits.target.astype(np.int64), test_size=0.25, random_state=0))


def _param(rng: np.random.Generator, shape: tuple, fan_in: int, name: str) -> sg.SharedVariable:
    """He-initialised weights with a static shape (so the convolution gradients' paddings are static)."""
    value = rng.normal(0, np.sqrt(2 / fan_in), shape).astype(np.float32)
    return sg.shared(value, name=name, shape=shape)


def build(backend: str, lr: float) -> tuple:
    """The network, its compiled training step and predictor, and the first-layer filters."""
    rng = np.random.default_rng(0)
    k1, k2 = _param(rng, (16, 1, 3, 3), 9, "K1"), _param(rng, (32, 16, 3, 3), 144, "K2")
    w3, w4 = _param(rng, (128, 64), 128, "W3"), _param(rng, (64, 10), 64, "W4")
    b1, b2 = sg.shared(np.zeros(16, np.float32), "b1"), sg.shared(np.zeros(32, np.float32), "b2")
    b3, b4 = sg.shared(np.zeros(64, np.float32), "b3"), sg.shared(np.zeros(10, np.float32), "b4")
    x, labels = T.ftensor4("x"), T.lvector("labels")
    h = T.relu(T.nnet.conv2d(x, k1, border_mode="half") + b1.dimshuffle("x", 0, "x", "x"))
    h = T.signal.pool.pool_2d(h, (2, 2))  # 16 x 4 x 4
    h = T.relu(T.nnet.conv2d(h, k2, border_mode="half") + b2.dimshuffle("x", 0, "x", "x"))
    h = T.signal.pool.pool_2d(h, (2, 2)).flatten(2)  # 32 x 2 x 2 = 128 features
    probs = T.nnet.softmax(T.dot(T.relu(T.dot(h, w3) + b3), w4) + b4)
    loss = T.mean(T.nnet.categorical_crossentropy(probs, labels))
    params = [k1, b1, k2, b2, w3, b3, w4, b4]
    step = sg.function([x, labels], loss, updates=sg.updates.adam(loss, params, learning_rate=lr),
                       backend=backend, name="step")
    predict = sg.function([x], T.argmax(probs, axis=1), backend=backend, name="predict")
    return step, predict, k1


def train(backend: str, data: tuple, args) -> dict:
    """Train for ``args.epochs`` epochs; losses, accuracies, seconds per epoch, learned filters."""
    x_tr, x_te, y_tr, y_te = data
    step, predict, k1 = build(backend, args.lr)
    rng = np.random.default_rng(1)
    losses, accuracy, epoch_seconds = [], [], []
    for _ in kit.progress(range(args.epochs), desc=backend, enabled=not args.quick):
        start = time.perf_counter()
        order, total = rng.permutation(len(x_tr)), 0.0
        for s in range(0, len(x_tr), args.batch_size):
            idx = order[s:s + args.batch_size]
            total += float(step(x_tr[idx], y_tr[idx])) * len(idx)
        epoch_seconds.append(time.perf_counter() - start)
        losses.append(total / len(x_tr))
        accuracy.append(float(np.mean(predict(x_te) == y_te)))
    return {"losses": losses, "accuracy": accuracy, "epoch_seconds": epoch_seconds, "filters": k1.get_value()}


def filter_tiles(filters: np.ndarray, per_row: int = 4) -> np.ndarray:
    """(K, 1, h, w) filters as one image: a grid of tiles, each scaled to [-1, 1], NaN gaps between."""
    k, _, h, w = filters.shape
    rows = -(-k // per_row)
    img = np.full((rows * (h + 1) - 1, per_row * (w + 1) - 1), np.nan)
    for i, f in enumerate(filters[:, 0]):
        r, c = divmod(i, per_row)
        img[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = f / max(np.abs(f).max(), 1e-12)
    return img


def plot(plt, result: dict, out_dir: str) -> str:
    """Accuracy per epoch, and the first-layer filters (each scaled to its own range)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.4), gridspec_kw={"width_ratios": [3, 2]})
    ax1.plot(result["accuracy"], marker=".")
    ax1.set(xlabel="epoch", ylabel="held-out accuracy", title="accuracy on unseen digits")
    ax2.imshow(filter_tiles(result["filters"]), cmap="RdBu_r", vmin=-1, vmax=1)
    ax2.set(title="learned 3x3 filters, layer 1", xticks=[], yticks=[])
    return kit.save_figure(fig, out_dir, "cnn_digits.png")


def main(argv: Sequence[str] | None = None) -> dict:
    """Train on one backend, print the summary, draw the picture."""
    p = kit.parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.003)
    args = kit.parse(p, argv)
    if args.quick:
        args.epochs = min(args.epochs, 2)
    plt = kit.pyplot()
    data = load()
    result = train(args.backend, data, args)
    print(f"8x8 digits, conv(16)-pool-conv(32)-pool-64-10 CNN, Adam lr {args.lr}, {args.epochs} epochs, "
          f"{len(data[0])} train / {len(data[1])} test images")
    print(kit.table(["backend", "first loss", "last loss", "test accuracy", "ms per epoch (median)"],
                    [(args.backend, result["losses"][0], result["losses"][-1], result["accuracy"][-1],
                      1e3 * float(np.median(result["epoch_seconds"])))]))
    result["plot"] = plot(plt, result, args.out)
    return result


if __name__ == "__main__":
    main()
