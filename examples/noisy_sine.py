"""Fit a noisy sine with small ReLU networks: does depth or the optimizer matter more?

x = linspace(0, 2*pi, 200), y = sin(x) + N(0, 0.2**2). A wide 1-60-1 and a deep 1-10-10-1 network
(120 weights each) are each trained with SGD and with Adam on mini-batches. A TrainingHistory
records the loss of every batch and the predictions every 50 batches; the script plots the four
loss curves and fits and writes the training as a GIF. The noise floor (the best possible MSE) is 0.04.

    python examples/noisy_sine.py [--backend numpy|opencl] [--quick] [--epochs N] [--batch-size B]
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import example_kit as kit  # noqa: E402

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402

NOISE_FLOOR = 0.2 ** 2
ARCHITECTURES = {"1-60-1": [1, 60, 1], "1-10-10-1": [1, 10, 10, 1]}


def data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The noisy sine as float32 column vectors."""
    x = np.linspace(0, 2 * np.pi, n)
    y = np.sin(x) + np.random.default_rng(seed).normal(0, 0.2, n)
    return x.astype(np.float32)[:, None], y.astype(np.float32)[:, None]


class TrainingHistory:
    """The loss after every batch, and the predictions on the full grid every ``every`` batches."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, every: int = 50):
        self.predict, self.x, self.every = predict, x, every
        self.losses: list[float] = []
        self.snapshots: list[tuple[int, np.ndarray]] = []

    def record(self, loss: float) -> None:
        """Call after each batch with its loss."""
        self.losses.append(float(loss))
        if len(self.losses) % self.every == 1 or self.every == 1:
            self.snapshots.append((len(self.losses), self.predict(self.x).ravel()))


def mlp(sizes: list[int], x: T.TensorVariable, seed: int) -> tuple[list, T.TensorVariable]:
    """A ReLU network with He-initialised float32 weights; returns (params, output)."""
    rng = np.random.default_rng(seed)
    params, h = [], x
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        w = sg.shared(rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)).astype(np.float32), name=f"W{k}")
        b = sg.shared(np.zeros(n_out, np.float32), name=f"b{k}")
        params += [w, b]
        h = T.dot(h, w) + b
        h = T.relu(h) if k < len(sizes) - 2 else h
    return params, h


def train(sizes: list[int], optimizer: str, args, x: np.ndarray, y: np.ndarray) -> tuple[TrainingHistory, float]:
    """Compile one training step, loop over epochs of shuffled mini-batches; return the history."""
    xs, ys = T.fmatrix("x"), T.fmatrix("y")
    params, out = mlp(sizes, xs, seed=1)
    loss = T.mean((out - ys) ** 2)
    updates = (sg.updates.sgd(loss, params, learning_rate=args.sgd_lr) if optimizer == "SGD"
               else sg.updates.adam(loss, params, learning_rate=args.adam_lr))
    step = sg.function([xs, ys], loss, updates=updates, backend=args.backend, name="step")
    predict = sg.function([xs], out, backend=args.backend, name="predict")
    history = TrainingHistory(predict, x, every=50)
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    label = f"{'-'.join(map(str, sizes))} {optimizer}"
    for _ in kit.progress(range(args.epochs), desc=label, enabled=not args.quick):
        order = rng.permutation(len(x))
        for s in range(0, len(x), args.batch_size):
            idx = order[s:s + args.batch_size]
            history.record(step(x[idx], y[idx]))
    seconds = time.perf_counter() - start
    history.snapshots.append((len(history.losses), predict(x).ravel()))
    return history, seconds


def plot(runs: dict, x: np.ndarray, y: np.ndarray, out_dir: str, plt) -> tuple[str, list[str]]:
    """Four loss curves (left) and the final fits against the data and sin(x) (right); returns
    the path and the legend entries."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, (h, _) in runs.items():  # one colour per run in both panels; the left legend names them
        ax1.plot(h.losses, label=name, lw=0.8)
        ax2.plot(x, h.snapshots[-1][1])
    ax1.axhline(NOISE_FLOOR, color="k", ls=":", lw=1, label="noise floor")
    ax1.set(xlabel="batch", ylabel="MSE", yscale="log", ylim=(0.01, 5), title="training loss")
    dots = ax2.scatter(x, y, s=4, c="0.5", label="data")
    (sine,) = ax2.plot(x, np.sin(x), "k--", lw=1, label="sin(x)")
    ax2.set(xlabel="x", ylabel="y", title="final fits (colours as on the left)")
    legends = [ax1.legend(loc="upper right", ncol=2), ax2.legend(handles=[dots, sine], loc="upper right")]
    labels = [t.get_text() for leg in legends for t in leg.get_texts()]
    return kit.save_figure(fig, out_dir, "noisy_sine.png"), labels


def animate(runs: dict, x: np.ndarray, y: np.ndarray, path: str, plt, frames: int = 40) -> None:
    """The predictions as training goes, one panel per run, as a GIF (matplotlib + Pillow)."""
    kit.require("PIL", "pillow")
    from matplotlib.animation import FuncAnimation, PillowWriter
    fig, axes = plt.subplots(2, 2, figsize=(7, 5), sharex=True, sharey=True)
    lines, names = [], list(runs)
    for ax, name in zip(axes.flat, names):
        ax.scatter(x, y, s=3, c="0.6")
        lines.append(ax.plot(x, runs[name][0].snapshots[0][1], c="C1")[0])
        ax.set_ylim(-1.8, 1.8)
    count = len(runs[names[0]][0].snapshots)
    picks = np.unique(np.linspace(0, count - 1, frames).astype(int))

    def show(k):
        for ax, line, name in zip(axes.flat, lines, names):
            batch, pred = runs[name][0].snapshots[min(picks[k], len(runs[name][0].snapshots) - 1)]
            line.set_ydata(pred)
            ax.set_title(f"{name}, batch {batch}", fontsize=9)
        return lines

    FuncAnimation(fig, show, frames=len(picks)).save(path, writer=PillowWriter(fps=8))
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict:
    """Train the four networks, print the summary table, write the plot and the GIF."""
    p = kit.parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--sgd-lr", type=float, default=0.01)
    p.add_argument("--adam-lr", type=float, default=0.01)
    args = kit.parse(p, argv)
    if args.quick:
        args.epochs = min(args.epochs, 300)
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch-size must be positive")
    plt = kit.pyplot()
    x, y = data()

    runs = {f"{arch} {opt}": train(sizes, opt, args, x, y)
            for arch, sizes in ARCHITECTURES.items() for opt in ("SGD", "Adam")}
    final = {name: float(np.mean((h.snapshots[-1][1] - y.ravel()) ** 2)) for name, (h, _) in runs.items()}
    print(f"noisy sine, {args.epochs} epochs, batches of {args.batch_size}, on {args.backend}")
    print(kit.table(["run", "final train MSE", "noise floor", "seconds", "steps/s"],
                    [(name, final[name], NOISE_FLOOR, s, len(h.losses) / s) for name, (h, s) in runs.items()]))
    by_optimizer = np.mean([abs(final[f"{a} SGD"] - final[f"{a} Adam"]) for a in ARCHITECTURES])
    by_depth = np.mean([abs(final[f"1-60-1 {o}"] - final[f"1-10-10-1 {o}"]) for o in ("SGD", "Adam")])
    print(f"changing the optimizer moved the final MSE by {by_optimizer:.3f} on average, "
          f"changing the depth by {by_depth:.3f}: the {'optimizer' if by_optimizer > by_depth else 'depth'} "
          "mattered more.")

    path, labels = plot(runs, x.ravel(), y.ravel(), args.out, plt)
    outputs = {"plot": path}
    if not args.quick:
        outputs["gif"] = os.path.join(args.out, "noisy_sine.gif")
        animate(runs, x.ravel(), y.ravel(), outputs["gif"], plt)
        print(f"wrote {outputs['gif']}")
    return {"final_mse": final, "seconds": {n: s for n, (_, s) in runs.items()},
            "losses": {n: h.losses for n, (h, _) in runs.items()}, "legend": labels, **outputs}


if __name__ == "__main__":
    main()
