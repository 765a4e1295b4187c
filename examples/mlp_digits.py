"""Classify scikit-learn's bundled 8x8 handwritten digits with a small MLP (no download needed).

A 64-64-10 ReLU network with a softmax output is trained on 75% of the 1797 images with Adam on
mini-batches, and scored on the held-out 25%. With --compare, the same training runs on every
backend usable here, and the table shows each one's time per epoch. With --dropout P, training
zeroes each hidden unit with probability P (T.nnet.dropout with an sg.RandomStream; prediction
uses the whole network): the masks are the same numbers on every backend, and each step's mask
is drawn inside the kernel that applies it. With --epoch-per-call, each epoch's minibatch steps
run inside one call (``sg.scan_updates`` over the batch index, each step slicing its rows of the
epoch's shuffled data: on OpenCL, the whole epoch is one kernel launch); the last partial batch of
an epoch is left out then.

    python examples/mlp_digits.py [--backend numpy|opencl] [--compare] [--dropout 0.2 | --epoch-per-call] [--quick]
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import example_kit as kit  # noqa: E402

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402


def load() -> tuple[np.ndarray, ...]:
    """Train and test splits of the digits, pixels scaled to [0, 1] as float32."""
    kit.require("sklearn", "scikit-learn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    return tuple(train_test_split(x, digits.target.astype(np.int64), test_size=0.25, random_state=0))


def build(backend: str, hidden: int, lr: float, dropout: float = 0.0, seed: int = 0, epoch_batch: int = 0):
    """The network and its compiled training step (with dropout on the hidden layer when
    ``dropout`` > 0) and predictor. ``epoch_batch`` > 0: the step is a whole epoch, one call taking
    the epoch's shuffled images and labels and running an Adam step on each of their minibatches
    of that size in turn (returning each step's loss)."""
    rng = np.random.default_rng(0)
    w1 = sg.shared(rng.normal(0, np.sqrt(2 / 64), (64, hidden)).astype(np.float32), name="W1")
    b1 = sg.shared(np.zeros(hidden, np.float32), name="b1")
    w2 = sg.shared(rng.normal(0, np.sqrt(1 / hidden), (hidden, 10)).astype(np.float32), name="W2")
    b2 = sg.shared(np.zeros(10, np.float32), name="b2")
    x, labels = T.fmatrix("x"), T.lvector("labels")
    probs = T.nnet.softmax(T.dot(T.relu(T.dot(x, w1) + b1), w2) + b2)
    predict = sg.function([x], T.argmax(probs, axis=1), backend=backend, name="predict")
    if epoch_batch:  # the step's inputs are the i-th minibatch of the epoch's data; i runs over them in the loop
        i, xs, ys = T.lscalar("i"), x, labels
        x, labels = xs[i * epoch_batch:(i + 1) * epoch_batch], ys[i * epoch_batch:(i + 1) * epoch_batch]
    hid = T.relu(T.dot(x, w1) + b1)
    if dropout:
        hid = T.nnet.dropout(hid, dropout, sg.RandomStream(seed))
    loss = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(hid, w2) + b2), labels))
    updates = sg.updates.adam(loss, [w1, b1, w2, b2], learning_rate=lr)
    if epoch_batch:
        losses, final = sg.scan_updates(updates, sequences={i: T.arange(xs.shape[0] // epoch_batch)}, outputs=[loss])
        return sg.function([xs, ys], losses[0], updates=final, backend=backend, name="epoch"), predict
    return sg.function([x, labels], loss, updates=updates, backend=backend, name="step"), predict


def train(backend: str, data: tuple, args) -> dict:
    """Train for ``args.epochs`` epochs; return losses, accuracies and seconds per epoch."""
    x_tr, x_te, y_tr, y_te = data
    step, predict = build(backend, args.hidden, args.lr, args.dropout, args.seed,
                          args.batch_size if args.epoch_per_call else 0)
    rng = np.random.default_rng(1)
    losses, accuracy, epoch_seconds = [], [], []
    for _ in kit.progress(range(args.epochs), desc=backend, enabled=not args.quick):
        start = time.perf_counter()
        order, total = rng.permutation(len(x_tr)), 0.0
        if args.epoch_per_call:  # one call: every minibatch's step (the last partial batch left out)
            total = float(np.mean(step(x_tr[order], y_tr[order]))) * len(x_tr)
        for s in range(0, len(x_tr) if not args.epoch_per_call else 0, args.batch_size):
            idx = order[s:s + args.batch_size]
            total += float(step(x_tr[idx], y_tr[idx])) * len(idx)
        epoch_seconds.append(time.perf_counter() - start)
        losses.append(total / len(x_tr))
        accuracy.append(float(np.mean(predict(x_te) == y_te)))
    return {"losses": losses, "accuracy": accuracy, "epoch_seconds": epoch_seconds, "predict": predict, "step": step}


def figure(result: dict, data: tuple, plt) -> Any:
    """Held-out accuracy per epoch (whole-number ticks) and 24 test digits with their predictions."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = np.arange(1, len(result["accuracy"]) + 1)
    ax1.plot(epochs, result["accuracy"], marker=".")
    ax1.set(xlabel="epoch", ylabel="held-out accuracy", title="accuracy on unseen digits")
    ax1.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # epochs are whole numbers
    x_te, y_te = data[1], data[3]
    pred = result["predict"](x_te[:24])
    tiles = [np.pad(img.reshape(8, 8), 1) for img in x_te[:24]]  # 10x10 each, a blank frame between
    ax2.imshow(np.vstack([np.hstack(tiles[r * 6:r * 6 + 6]) for r in range(4)]), cmap="gray_r")
    for k in range(24):
        r, c = divmod(k, 6)
        ax2.text(c * 10 + 8.5, r * 10 + 1.5, str(pred[k]), fontsize=9, color="C2" if pred[k] == y_te[k] else "C3")
    ax2.set(title="predictions (green right, red wrong)", xticks=[], yticks=[], xlim=(-0.5, 61))
    return fig


def main(argv: Sequence[str] | None = None) -> dict:
    """Train on one backend (or all with --compare), print accuracy and time per epoch, plot."""
    p = kit.parser(__doc__.splitlines()[0])
    p.add_argument("--compare", action="store_true", help="also train on every other usable backend")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--dropout", type=float, default=0.0, help="probability of zeroing a hidden unit in training")
    p.add_argument("--seed", type=int, default=0, help="seed of the dropout masks' random stream")
    p.add_argument("--epoch-per-call", action="store_true",
                   help="run each epoch's minibatch steps inside one call (on OpenCL: one kernel launch)")
    args = kit.parse(p, argv)
    if args.epoch_per_call and args.dropout:  # draws built outside a loop body repeat every step
        p.error("--epoch-per-call and --dropout: the masks would repeat at every step of the epoch's loop")
    if args.quick:
        args.epochs = min(args.epochs, 4)
    plt = kit.pyplot()
    data = load()

    backends = [args.backend]
    if args.compare:
        from symgraph.backends import BACKENDS
        for name in BACKENDS:
            if name != args.backend:
                try:
                    kit.check_backend(name)
                    backends.append(name)
                except SystemExit as e:
                    print(f"skipping {e}")
    results = {b: train(b, data, args) for b in backends}
    print(f"8x8 digits, 64-{args.hidden}-10 MLP, Adam lr {args.lr}, {args.epochs} epochs, "
          f"{len(data[0])} train / {len(data[1])} test images" + (f", dropout {args.dropout}" if args.dropout else "")
          + (", each epoch in one call" if args.epoch_per_call else ""))
    print(kit.table(["backend", "first loss", "last loss", "test accuracy", "ms per epoch (median)"],
                    [(b, r["losses"][0], r["losses"][-1], r["accuracy"][-1], 1e3 * float(np.median(r["epoch_seconds"])))
                     for b, r in results.items()]))

    fig = figure(results[backends[0]], data, plt)
    kit.save_figure(fig, args.out, "mlp_digits.png")
    return {b: {k: v for k, v in r.items() if k not in ("predict", "step")} | {"step_source": r["step"].source}
            for b, r in results.items()}


if __name__ == "__main__":
    main()
