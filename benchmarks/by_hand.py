"""The workloads written directly in numpy (forward and backward passes by hand): the baseline
every ratio in the table is taken against."""
from __future__ import annotations

import time

import numpy as np

from benchmarks import data as D
from benchmarks import loops


def w1(variant: str, quick: bool) -> dict:
    x, y = D.w1_inputs(D.W1_SIZES[variant])

    def f():
        return 1 / (1 + np.exp(-(x * y + 0.5))) * np.tanh(x) - np.maximum(y, 0)

    assert f().dtype == np.float32 and np.allclose(f(), D.w1_reference(x, y), atol=1e-5)
    sec = D.median_time(f, number=2 if quick else 5, rounds=3 if quick else 5)
    return {"ms": sec * 1e3, "GB/s": 3 * 4 * x.size / sec / 1e9}


def _mlp_grads(params: list[np.ndarray], x: np.ndarray, d_out) -> tuple[float, list[np.ndarray]]:
    """Forward through ReLU layers (linear last layer), then backward from ``d_out(out) -> (loss, dL/dout)``."""
    acts, h = [x], x
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        if k < len(params) - 2:
            h = np.maximum(h, 0)
        acts.append(h)
    loss, d = d_out(h)
    grads: list = [None] * len(params)
    for k in range(len(params) - 2, -1, -2):
        a = acts[k // 2]
        grads[k], grads[k + 1] = a.T @ d, d.sum(0)
        if k:
            d = (d @ params[k].T) * (a > 0)
    return loss, grads


def w2(variant: str, quick: bool) -> dict:
    x, y = D.sine_data()
    params = D.mlp_params((1, 60, 1))
    m, v = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    lr, b1, b2, eps = D.ADAM["lr"], D.ADAM["beta1"], D.ADAM["beta2"], D.ADAM["epsilon"]

    def mse(out):
        r = out - y
        return float(np.mean(r * r)), (2 / r.size) * r

    steps = D.W2_QUICK_STEPS if quick else D.W2_STEPS
    start = time.perf_counter()
    for t in range(1, steps + 1):
        loss, grads = _mlp_grads(params, x, mse)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        for p, g, mk, vk in zip(params, grads, m, v):
            mk *= b1
            mk += (1 - b1) * g
            vk *= b2
            vk += (1 - b2) * g * g
            p -= lr * (mk / c1) / (np.sqrt(vk / c2) + eps)
    return {"s": time.perf_counter() - start, "final_loss": loss, "compile_s": 0.0}


def w3(variant: str, quick: bool) -> dict:
    x, labels = D.w3_batch()
    onehot = np.eye(10, dtype=np.float32)[labels]
    params = D.mlp_params(D.W3_SIZES)

    def xent(z):
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-np.mean(np.sum(onehot * logp, axis=1))), (np.exp(logp) - onehot) / len(z)

    def step():
        loss, grads = _mlp_grads(params, x, xent)
        for p, g in zip(params, grads):
            p -= D.W3_LR * g
        return loss

    step()
    sec = D.median_time(step, number=2 if quick else 5, rounds=3 if quick else 5)
    return {"ms": sec * 1e3, "GFLOP/s": D.w3_flops_per_step() / sec / 1e9}


def w5(variant: str, quick: bool) -> dict:
    x = np.ones(10, np.float32)
    return {"us": 1e6 * D.median_time(lambda: x + 1, number=D.W5_QUICK_CALLS if quick else D.W5_CALLS)}


def w6(variant: str, quick: bool) -> dict:
    X, y, w0, w1 = D.xor_data()
    start = time.perf_counter()
    for _ in range(D.W6_STEPS):
        l1 = 1 / (1 + np.exp(-(X @ w0)))
        l2 = 1 / (1 + np.exp(-(l1 @ w1)))
        d2 = 2 * (y - l2) * l2 * (1 - l2)
        d1 = (d2 @ w1.T) * l1 * (1 - l1)
        w1 += l1.T @ d2
        w0 += X.T @ d1
    sec = time.perf_counter() - start
    return {"s": sec, "us_per_step": 1e6 * sec / D.W6_STEPS, "final_loss": float(np.sum((y - l2) ** 2))}


def _w9_by_hand(case: str, a: np.ndarray, b: np.ndarray, w: np.ndarray):
    """W9 as an expert writes it with scipy: the fewest factorisations (one LU shared by the value and
    the gradient), LAPACK's getri for the inverse, no finiteness checks."""
    import scipy.linalg as sla
    if case == "slogdet":
        return lambda: [np.linalg.slogdet(a)[1]]
    if case == "slogdet+grad":
        def slogdet_grad():
            lu, piv = sla.lu_factor(a, check_finite=False)
            inv, _ = sla.lapack.dgetri(lu, piv)
            return [np.log(np.abs(np.diag(lu))).sum(), inv.T]
        return slogdet_grad
    if case == "solve":
        return lambda: [sla.solve(a, b, assume_a="gen", check_finite=False)]

    def solve_grad():
        lu = sla.lu_factor(a, check_finite=False)
        x = sla.lu_solve(lu, b, check_finite=False)
        gb = sla.lu_solve(lu, w, trans=1, check_finite=False)
        return [x, -np.outer(gb, x), gb]
    return solve_grad


def w9(variant: str, quick: bool) -> dict:
    case, n = D.w9_split(variant)
    a, b, w = D.w9_inputs(n)
    f = _w9_by_hand(case, a, b, w)
    D.w9_check(case, a, b, w, f())
    return {"ms": 1e3 * D.median_time(f, number=2 if quick else 5, rounds=3 if quick else 7)}




def _im2col(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N * H * W, 9 * C) columns of the zero-padded 3x3 neighbourhoods (tap-major)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))).transpose(0, 2, 3, 1)  # channels last
    cols = np.empty((n, h, w, 9, c), x.dtype)
    for t in range(9):
        i, j = divmod(t, 3)
        cols[:, :, :, t] = xp[:, i:i + h, j:j + w]
    return cols.reshape(n * h * w, 9 * c)


def w8(variant: str, quick: bool) -> dict:
    """The usual numpy convolution: im2col and one GEMM forward; backward, the kernel gradient as one
    GEMM of the columns and the input gradient as a GEMM followed by col2im (9 strided adds).
    ``gemm_ms`` is one GEMM with the forward's FLOPs, the yardstick of issue 17's forward goal."""
    x, w, g = D.w8_data(variant)
    n, c, h, wd = x.shape
    k = w.shape[0]
    w_mat = w.transpose(2, 3, 1, 0).reshape(9 * c, k)  # (tap, C) x K

    def forward():
        cols = _im2col(x)
        return cols, (cols @ w_mat).reshape(n, h, wd, k).transpose(0, 3, 1, 2)

    def both():
        cols, y = forward()
        g_mat = g.transpose(0, 2, 3, 1).reshape(n * h * wd, k)
        gw = (cols.T @ g_mat).reshape(3, 3, c, k).transpose(3, 2, 0, 1)
        dcols = (g_mat @ w_mat.T).reshape(n, h, wd, 9, c)
        gxp = np.zeros((n, h + 2, wd + 2, c), x.dtype)
        for t in range(9):
            i, j = divmod(t, 3)
            gxp[:, i:i + h, j:j + wd] += dcols[:, :, :, t]
        return y, gxp[:, 1:-1, 1:-1].transpose(0, 3, 1, 2), gw

    assert np.allclose(forward()[1], D.w8_reference(x, w), atol=1e-3)
    a = np.random.default_rng(0).standard_normal((n * h * wd, 9 * c), dtype=np.float32)
    nr, r = (2, 3) if quick else (3, 5)
    gemm_s = D.median_time(lambda: a @ w_mat, number=nr, rounds=r)
    fwd_s = D.median_time(forward, number=nr, rounds=r)
    sec = D.median_time(both, number=nr, rounds=r)
    return {"ms": sec * 1e3, "fwd_ms": fwd_s * 1e3, "gemm_ms": gemm_s * 1e3,
            "GFLOP/s": 3 * D.w8_flops(variant) / sec / 1e9}




def w10(variant: str, quick: bool) -> dict:
    """numpy's default generator (PCG64) by hand: float32 uniforms, and dropout written out."""
    case, n = D.w10_split(variant)
    xv = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    rng = np.random.default_rng(D.W10_SEED)
    scale = np.float32(2 / D.W10_KEEP)

    def f():
        if case == "uniform":
            return rng.random(n, dtype=np.float32)
        return np.maximum(xv * (rng.random(n, dtype=np.float32) < np.float32(D.W10_KEEP)) * scale + np.float32(1), 0)
    D.w10_check(case, xv, f())
    number, rounds = (2, 3) if quick else (5, 7)
    return {"ms": 1e3 * D.median_time(f, number, rounds)}


def w11(variant: str, quick: bool) -> dict:
    """W11 by hand: a Python ``if`` around the numpy code (the untaken case returns x itself)."""
    if variant == "call":
        xv = np.ones(10, np.float32)

        def f(c, x):
            return x + 1 if c else x - 1
        number = D.W11_QUICK_CALLS if quick else D.W11_CALLS
        return D.paired_overhead(lambda: f(D.W11_TRUE, xv), lambda: xv + 1, number)
    xv = D.w11_data(variant)

    def g(c, x):
        return D.w11_expensive_by_hand(x) if c else x
    taken_us = 1e6 * D.median_time(lambda: g(D.W11_TRUE, xv), 3 if quick else 10)
    us = 1e6 * D.median_time(lambda: g(D.W11_FALSE, xv), 50 if quick else 500)
    return {"us": us, "taken_us": taken_us, "vs_taken": us / taken_us}


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W5": w5, "W6": w6, "W7": loops.w7_by_hand, "W9": w9, "W8": w8,
             "W10": w10, "W11": w11}
