"""Fit a Gaussian process's kernel hyperparameters by gradient descent on its log marginal likelihood.

40 noisy samples of f(x) = sin(3x) + 0.3x on [-2, 2] (noise sd 0.15). The GP has a squared-
exponential kernel k(x, x') = s^2 exp(-(x - x')^2 / (2 l^2)) plus noise n^2 on the diagonal. Its
negative log marginal likelihood,

    nll = 1/2 y^T K^-1 y + 1/2 log det K + N/2 log(2 pi),   K = k(X, X) + n^2 I,

is written with T.linalg: L = cholesky(K), K^-1 y = cho_solve((L, True), y), log det K = slogdet(K).
sg.grad differentiates through all three, and Adam on (log l, log s, log n) descends it. The
posterior mean K_*^T K^-1 y and its two-sigma band are plotted with the data and the true f.
On OpenCL the linalg ops run on the host: the compiler says so, once per op.

    python examples/gaussian_process.py [--backend numpy|opencl] [--quick] [--steps N]
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import example_kit as kit  # noqa: E402

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402

L = T.linalg
NOISE = 0.15
START = {"lengthscale": 1.5, "signal sd": 0.5, "noise sd": 0.5}


def truth(x: np.ndarray) -> np.ndarray:
    return np.sin(3 * x) + 0.3 * x


def data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy samples of ``truth`` at sorted uniform points on [-2, 2]."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2, 2, n))
    return x, truth(x) + rng.normal(0, NOISE, n)


def kernel(a: T.TensorVariable, b: T.TensorVariable, log_l, log_s) -> T.TensorVariable:
    """Squared-exponential kernel matrix between the points of vectors ``a`` and ``b``."""
    d = (a[:, None] - b[None, :]) / T.exp(log_l)
    return T.exp(2 * log_s) * T.exp(-0.5 * d * d)


def model(x: T.TensorVariable, y: T.TensorVariable, params: list) -> tuple:
    """(nll, K's Cholesky factor, K^-1 y) of the GP on data (x, y)."""
    log_l, log_s, log_n = params
    n = x.shape[0]
    k = kernel(x, x, log_l, log_s) + T.exp(2 * log_n) * T.eye(n)
    chol = L.cholesky(k)
    alpha = L.cho_solve((chol, True), y)
    nll = 0.5 * T.dot(y, alpha) + 0.5 * L.slogdet(k)[1] + 0.5 * T.cast(n, "float64") * np.log(2 * np.pi)
    return nll, chol, alpha


def posterior(x, x_new, params, chol, alpha) -> tuple:
    """Posterior mean and standard deviation (of f, without the noise) at ``x_new``."""
    log_l, log_s, _ = params
    k_star = kernel(x, x_new, log_l, log_s)  # (N, M)
    mean = T.dot(k_star.T, alpha)
    v = L.solve_triangular(chol, k_star, lower=True)
    var = T.exp(2 * log_s) - (v * v).sum(axis=0)
    return mean, T.sqrt(T.maximum(var, 0.0))


def fit(x_data: np.ndarray, y_data: np.ndarray, steps: int, backend: str, lr: float = 0.05) -> dict:
    """Adam on the log hyperparameters; returns the nll history, the fitted values and the posterior."""
    params = [sg.shared(np.log(np.float64(v)), name=f"log_{k.split()[0]}") for k, v in START.items()]
    x, y, x_new = T.dvector("x"), T.dvector("y"), T.dvector("x_new")
    nll, chol, alpha = model(x, y, params)
    step = sg.function([x, y], nll, updates=sg.updates.adam(nll, params, learning_rate=lr), backend=backend)
    grid = np.linspace(-2.5, 2.5, 200)
    predict = sg.function([x, y, x_new], posterior(x, x_new, params, chol, alpha), backend=backend)
    history = [float(step(x_data, y_data)) for _ in kit.progress(range(steps), total=steps, desc="GP fit")]
    final = sg.function([x, y], nll, backend=backend)(x_data, y_data)
    mean, sd = predict(x_data, y_data, grid)
    fitted = {k: float(np.exp(p.get_value())) for k, p in zip(START, params)}
    return {"nll": history + [float(final)], "params": fitted, "grid": grid, "mean": mean, "sd": sd,
            "host_fallbacks": [str(n.op) for n in step.graph.apply_nodes if "HostFallback" in str(n.op)]}


def main(argv: Sequence[str] | None = None) -> dict:
    """Fit the hyperparameters, print them and how well the posterior mean follows f, and plot."""
    p = kit.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    args = kit.parse(p, argv)
    steps = 80 if args.quick else args.steps
    plt = kit.pyplot()

    x_data, y_data = data()
    r = fit(x_data, y_data, steps, args.backend)
    rmse = float(np.sqrt(np.mean((r["mean"] - truth(r["grid"])) ** 2)))
    inside = float(np.mean(np.abs(r["mean"] - truth(r["grid"])) <= 2 * r["sd"]))
    print(f"GP hyperparameters by Adam (lr 0.05) on the negative log marginal likelihood, {steps} steps "
          f"on {args.backend}")
    rows = [(k, START[k], v) for k, v in r["params"].items()]
    print(kit.table(["hyperparameter", "start", "fitted"], rows))
    print(f"nll {r['nll'][0]:.3f} -> {r['nll'][-1]:.3f}; true noise sd {NOISE}; posterior mean RMSE to f "
          f"{rmse:.3f}; f inside the two-sigma band at {100 * inside:.0f}% of the grid")
    if r["host_fallbacks"]:
        print(f"on {args.backend}, {len(r['host_fallbacks'])} linalg nodes of the training step ran on the host")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    ax1.fill_between(r["grid"], r["mean"] - 2 * r["sd"], r["mean"] + 2 * r["sd"], alpha=0.25, label="two sigma")
    ax1.plot(r["grid"], truth(r["grid"]), "k--", lw=1, label="true f")
    ax1.plot(r["grid"], r["mean"], lw=2, label="posterior mean")
    ax1.scatter(x_data, y_data, s=10, c="k", label="data")
    ax1.set(xlabel="x", ylabel="y", title="GP posterior after fitting")
    ax1.legend(loc="lower right")
    ax2.plot(r["nll"])
    ax2.set(xlabel="Adam step", ylabel="negative log marginal likelihood", title="fit")
    plot = kit.save_figure(fig, args.out, "gaussian_process.png", dpi=100)
    return {**{k: v for k, v in r.items() if k not in ("grid", "mean", "sd")}, "rmse": rmse,
            "inside_band": inside, "plot": plot, "data": (x_data, y_data)}


if __name__ == "__main__":
    main()
