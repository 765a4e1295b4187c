"""A recurrent network trained with BPTT through sg.scan: predict the next value of noisy sines.

Each training sequence is amp * sin(w t + phase) + N(0, 0.1**2) over T = 40 steps, with a random
frequency, phase and amplitude; the network reads x_t and predicts x_{t+1}. A vanilla tanh RNN
(or a GRU, ``--cell gru``) with 24 hidden units runs over the sequence as one ``sg.scan``; its
gradient is the reverse scan symgraph builds (backpropagation through time), and ``sg.updates.adam``
trains it on a fresh batch of 32 sequences per step. The script prints the test error next to
two references -- predicting that the next value equals the current one, and the noise floor
(0.01: no model can predict the noise) -- and plots the loss curve and one test sequence.

    python examples/rnn.py [--backend numpy|opencl] [--quick] [--cell rnn|gru] [--steps N]
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import example_kit as kit  # noqa: E402

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402

NOISE = 0.1
STEPS_PER_SEQUENCE, BATCH, HIDDEN = 40, 32, 24


def sequences(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` noisy sines of T + 1 points, as a (T + 1, n, 1) float32 array (time first, as scan reads it)."""
    t = np.arange(STEPS_PER_SEQUENCE + 1)[:, None]
    w, phase, amp = rng.uniform(0.15, 0.45, n), rng.uniform(0, 2 * np.pi, n), rng.uniform(0.5, 1.5, n)
    clean = amp * np.sin(w * t + phase)
    return (clean + rng.normal(0, NOISE, clean.shape)).astype(np.float32)[:, :, None]


def _weights(cell: str, rng: np.random.Generator) -> dict[str, sg.SharedVariable]:
    """Glorot-scaled input and recurrent weights (one block per gate for the GRU), zero biases."""
    gates = 3 if cell == "gru" else 1
    def mat(n_in: int, n_out: int) -> np.ndarray:
        return rng.normal(0, np.sqrt(1 / n_in), (n_in, n_out)).astype(np.float32)
    return {"U": sg.shared(mat(1, gates * HIDDEN), name="U"), "W": sg.shared(mat(HIDDEN, gates * HIDDEN), name="W"),
            "b": sg.shared(np.zeros(gates * HIDDEN, np.float32), name="b"),
            "V": sg.shared(mat(HIDDEN, 1), name="V"), "c": sg.shared(np.zeros(1, np.float32), name="c")}


def _step(cell: str, p: dict) -> object:
    """The body of the loop: (x_t, h_{t-1}) -> h_t."""
    def rnn(x_t, h):
        return T.tanh(T.dot(x_t, p["U"]) + T.dot(h, p["W"]) + p["b"])

    def gru(x_t, h):
        n = HIDDEN
        xs, hs = T.dot(x_t, p["U"]) + p["b"], T.dot(h, p["W"][:, :2 * n])
        z = T.nnet.sigmoid(xs[:, :n] + hs[:, :n])
        r = T.nnet.sigmoid(xs[:, n:2 * n] + hs[:, n:])
        candidate = T.tanh(xs[:, 2 * n:] + T.dot(r * h, p["W"][:, 2 * n:]))
        return z * h + (1 - z) * candidate
    return gru if cell == "gru" else rnn


def build(cell: str, backend: str, seed: int = 0) -> tuple:
    """(train step, predict function, parameters): the loss is the mean squared error of the
    predictions x_{t+1} over every step of every sequence."""
    params = _weights(cell, np.random.default_rng(seed))
    xs = T.ftensor3("xs")  # (T + 1, batch, 1)
    h0 = T.zeros((xs.shape[1], HIDDEN), "float32")
    hs, _ = sg.scan(_step(cell, params), sequences=[xs[:-1]], outputs_info=[h0], name="rnn")
    pred = T.dot(hs, params["V"]) + params["c"]
    loss = T.mean((pred - xs[1:]) ** 2)
    train = sg.function([xs], loss, updates=sg.updates.adam(loss, list(params.values()), learning_rate=0.01),
                        backend=backend, name="train")
    predict = sg.function([xs], [pred, loss], backend=backend, name="predict")
    return train, predict, params


def plot(losses: list[float], test: np.ndarray, pred: np.ndarray, refs: dict, out_dir: str, plt) -> str:
    """The training loss with the two references (left), one test sequence and its predictions (right)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(losses, lw=0.8, label="training batch MSE")
    ax1.axhline(refs["next = current"], color="C1", ls="--", lw=1, label="predict x[t+1] = x[t]")
    ax1.axhline(NOISE ** 2, color="k", ls=":", lw=1, label="noise floor")
    ax1.set(xlabel="training step", ylabel="MSE", yscale="log", title="training loss")
    ax1.legend(loc="upper right")
    t = np.arange(1, len(test))
    ax2.plot(np.arange(len(test)), test[:, 0, 0], "o", ms=3, c="0.5", label="sequence")
    ax2.plot(t, pred[:, 0, 0], c="C0", label="RNN's prediction of the next value")
    ax2.set(xlabel="t", ylabel="x", title="a test sequence")
    ax2.legend(loc="lower left")
    return kit.save_figure(fig, out_dir, "rnn.png")


def main(argv: Sequence[str] | None = None) -> dict:
    """Train, print the test error against the references, write the plot."""
    p = kit.parser(__doc__.splitlines()[0])
    p.add_argument("--cell", choices=("rnn", "gru"), default="rnn")
    p.add_argument("--steps", type=int, default=2000)
    args = kit.parse(p, argv)
    if args.quick:
        args.steps = min(args.steps, 60)
    if args.steps < 1:
        p.error("--steps must be positive")
    plt = kit.pyplot()
    train, predict, _ = build(args.cell, args.backend)
    rng, test = np.random.default_rng(1), sequences(256, np.random.default_rng(2))
    losses = []
    start = time.perf_counter()
    for _ in kit.progress(range(args.steps), desc=args.cell, enabled=not args.quick):
        losses.append(float(train(sequences(BATCH, rng))))
    seconds = time.perf_counter() - start
    pred, test_mse = predict(test)
    refs = {"next = current": float(np.mean((test[1:] - test[:-1]) ** 2)), "noise floor": NOISE ** 2}
    print(f"{args.cell.upper()} with {HIDDEN} hidden units, {args.steps} Adam steps of {BATCH} sequences of "
          f"{STEPS_PER_SEQUENCE} steps, on {args.backend}: {seconds:.1f} s ({1e3 * seconds / args.steps:.1f} ms/step)")
    print(kit.table(["predictor", "test MSE"], [(f"{args.cell.upper()} (BPTT through sg.scan)", float(test_mse)),
                                               *refs.items()]))
    path = plot(losses, test, pred, refs, args.out, plt)
    return {"losses": losses, "test_mse": float(test_mse), "references": refs, "seconds": seconds, "plot": path}


if __name__ == "__main__":
    main()
