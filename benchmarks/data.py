"""The workloads' data and constants, generated the same way for every implementation,
and the small timing helpers they share."""
from __future__ import annotations

import gc
import sys
import time
import traceback
from typing import Callable

import numpy as np

F32 = np.float32

# W1: sigmoid(x*y + 0.5) * tanh(x) - maximum(y, 0)
W1_SIZES = {"1e7": 10_000_000, "1e6": 1_000_000}
W1_QUICK_SIZES = {"1e6": 1_000_000}
# W2: 1-60-1 ReLU MLP on the noisy sine, Adam, full batch (also as one call: every step in one loop)
W2_STEPS, W2_QUICK_STEPS = 5000, 500
W2_ONE_CALL = ", one call"
ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7}
# W3: 784-512-512-10 ReLU MLP, softmax crossentropy, SGD
W3_SIZES, W3_BATCH, W3_LR = (784, 512, 512, 10), 256, 0.01
# W4: chain of N elementwise ops
W4_SIZES, W4_QUICK_SIZES = (200, 1000, 3000), (200,)
# W4 cold (issue 21): the same, in a process whose kernel caches start empty (a fresh POCL_CACHE_DIR and
# SYMGRAPH_CACHE_DIR): what the first use costs on a new machine, a new user or CI
W4_COLD_SIZES, W4_QUICK_COLD_SIZES = (1000, 3000), ()
# W5: f(x) = x + 1 on 10 floats
W5_CALLS, W5_QUICK_CALLS = 10_000, 2_000
# W6: XOR, 3-4-1 sigmoid net, 1500 steps of size 1
W6_STEPS = 1500
# W9: linear algebra in float64: log|det A| and x = A^-1 b, each alone and with its gradient
W9_N, W9_QUICK_N = 500, 200
W9_CASES = ("slogdet", "slogdet+grad", "solve", "solve+grad")

# W8: 3x3 'same' convolution, float32, forward and backward (input and kernel gradients)
W8_SIZES = {"N=32": (32, 64, 32, 32)}  # N, C = K, H, W
W8_QUICK_SIZES = {"N=8": (8, 32, 16, 16)}
# W7: vanilla RNN (issue 15), forward + backward through time: T steps, batch 32, hidden 128, float32
W7_T, W7_QUICK_T, W7_BATCH, W7_HIDDEN, W7_IN = 100, 20, 32, 128, 128
# W10: random streams (issue 16): float32 uniforms; dropout (keep 0.8) fused into relu(x * 2 + 1)
W10_SIZES, W10_QUICK_SIZES = {"1e7": 10_000_000}, {"1e6": 1_000_000}
W10_CASES, W10_KEEP, W10_SEED = ("uniform", "dropout"), 0.8, 1234
# W11: ifelse (issue 14). 'branch n=N': ifelse(c, expensive(x), x) on an N x N float32 matrix,
# expensive = three rounds of tanh(y @ x / N); 'call': ifelse(c, x + 1, x - 1) on 10 floats
W11_SIZES, W11_QUICK_SIZES, W11_ROUNDS = (400,), (100,), 3
W11_CALLS, W11_QUICK_CALLS = 10_000, 2_000  # a twentieth of these on OpenCL (~0.5 ms a call)
# the condition as a 0-d int32 array, as numpy code holds one: a Python int goes through the
# input filter's slow path (about 20 µs on the numpy backend, with or without an ifelse)
W11_TRUE, W11_FALSE = np.array(1, np.int32), np.array(0, np.int32)


def w11_variants(quick: bool) -> list[str]:
    return [f"branch n={n}" for n in (W11_QUICK_SIZES if quick else W11_SIZES)] + ["call"]


def w11_data(variant: str) -> np.ndarray:
    """The W11 'branch' input: an N x N float32 matrix of standard normals."""
    n = int(variant.split("n=")[1])
    return np.random.default_rng(11).standard_normal((n, n)).astype(np.float32)


def w11_expensive_by_hand(x: np.ndarray) -> np.ndarray:
    y = x
    for _ in range(W11_ROUNDS):
        y = np.tanh(y @ x / np.float32(x.shape[0]))
    return y


def w10_split(variant: str) -> tuple[str, int]:
    """('uniform' or 'dropout', n) from a W10 variant name such as 'dropout 1e7'."""
    case, size = variant.split()
    return case, {**W10_SIZES, **W10_QUICK_SIZES}[size]


def w10_check(case: str, x: np.ndarray, out: np.ndarray) -> None:
    """Uniforms lie in [0, 1) with mean 1/2; dropout zeroes about 1 - keep of the outputs' inputs."""
    out = np.asarray(out)
    assert out.dtype == F32 and out.shape == x.shape
    if case == "uniform":
        assert out.min() >= 0 and out.max() < 1 and abs(out.mean() - 0.5) < 0.01
    else:
        # atol too: near x = -0.4, x * 2.5 + 1 cancels, and XLA's fused multiply-add rounds once
        kept = np.isclose(out, np.maximum(x * (2 / W10_KEEP) + 1, 0), rtol=1e-5, atol=1e-6)
        dropped = out == 1  # relu(0 * 2 + 1)
        assert np.all(kept | dropped) and abs((dropped & ~kept).mean() - (1 - W10_KEEP)) < 0.01


def w1_inputs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 vectors of length ``n``."""
    rng = np.random.default_rng(0)
    return rng.standard_normal(n, dtype=F32), rng.standard_normal(n, dtype=F32)


def w1_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """W1 in float64, to check each implementation's answer."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    return 1 / (1 + np.exp(-(x * y + 0.5))) * np.tanh(x) - np.maximum(y, 0)


def sine_data() -> tuple[np.ndarray, np.ndarray]:
    """W2's data: x = linspace(0, 2*pi, 200), y = sin(x) + N(0, 0.2**2), as (200, 1) float32."""
    x = np.linspace(0, 2 * np.pi, 200)
    y = np.sin(x) + np.random.default_rng(0).normal(0, 0.2, 200)
    return x.astype(F32)[:, None], y.astype(F32)[:, None]


def mlp_params(sizes: tuple[int, ...], seed: int = 1) -> list[np.ndarray]:
    """He-initialised float32 weights and zero biases: [W0, b0, W1, b1, ...]."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        params += [rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)).astype(F32), np.zeros(n_out, F32)]
    return params


def w3_batch() -> tuple[np.ndarray, np.ndarray]:
    """One batch of W3 inputs (float32) and integer class labels."""
    rng = np.random.default_rng(2)
    return rng.standard_normal((W3_BATCH, W3_SIZES[0]), dtype=F32), rng.integers(0, 10, W3_BATCH)


def w3_flops_per_step() -> float:
    """6 * parameters * batch: forward and backward multiply-adds of the dense layers."""
    params = sum(a * b + b for a, b in zip(W3_SIZES, W3_SIZES[1:]))
    return 6.0 * params * W3_BATCH


def w8_data(variant: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W8: input x (N, C, H, W), kernel w (K, C, 3, 3) (He-initialised) and the output projection g
    whose product with the output is the cost (so the backward pass starts from g), float32."""
    n, c, h, w = {**W8_SIZES, **W8_QUICK_SIZES}[variant]
    rng = np.random.default_rng(8)
    x = rng.standard_normal((n, c, h, w), dtype=F32)
    w3 = (rng.standard_normal((c, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(F32)
    return x, w3, rng.standard_normal((n, c, h, w), dtype=F32)


def w8_flops(variant: str) -> float:
    """Multiply-adds x 2 of one forward pass (the backward pass does twice as many)."""
    n, c, h, w = {**W8_SIZES, **W8_QUICK_SIZES}[variant]
    return 2.0 * n * c * c * h * w * 9


def w8_reference(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The forward pass in float64 (zero-padded 'same' cross-correlation) to check each answer."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, wd = x.shape[2:]
    return sum(np.einsum("nchw,kc->nkhw", xp[:, :, i:i + h, j:j + wd], w[:, :, i, j].astype(np.float64))
               for i in range(3) for j in range(3))


def xor_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """W6: X, y (float32) and the tutorial's seeded weights w0 (3x4), w1 (4x1)."""
    X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], F32)
    y = np.array([[0], [1], [1], [0]], F32)
    np.random.seed(1)
    w0 = (2 * np.random.random((3, 4)) - 1).astype(F32)
    w1 = (2 * np.random.random((4, 1)) - 1).astype(F32)
    return X, y, w0, w1


def chain_numpy(n: int) -> list[tuple[str, float | None]]:
    """W4's op sequence: cycling tanh, *1.01, +0.1, sin, tanh, *1.01, -0.1, sin."""
    cycle = [("tanh", None), ("mul", 1.01), ("add", 0.1), ("sin", None),
             ("tanh", None), ("mul", 1.01), ("add", -0.1), ("sin", None)]
    return [cycle[k % len(cycle)] for k in range(n)]


def w9_inputs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A well-conditioned float64 (n, n) matrix (normal / sqrt(n) + 2 I), a right-hand side b and the
    projection w of the solve's cost sum(w * x)."""
    rng = np.random.default_rng(7)
    return rng.standard_normal((n, n)) / np.sqrt(n) + 2 * np.eye(n), rng.standard_normal(n), rng.standard_normal(n)


def w9_split(variant: str) -> tuple[str, int]:
    """("solve+grad", 500) from "solve+grad n=500"."""
    case, size = variant.split()
    return case, int(size.split("=")[1])


def w9_check(case: str, a: np.ndarray, b: np.ndarray, w: np.ndarray, got: list) -> None:
    """Each implementation's answer against numpy (log|det|, inv(A)^T; x, -gb x^T and gb = A^-T w)."""
    if case.startswith("slogdet"):
        expected = [np.linalg.slogdet(a)[1]] + ([np.linalg.inv(a).T] if case.endswith("grad") else [])
    else:
        x = np.linalg.solve(a, b)
        gb = np.linalg.solve(a.T, w)
        expected = [x] + ([-np.outer(gb, x), gb] if case.endswith("grad") else [])
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert np.allclose(np.asarray(g), e, rtol=1e-8, atol=1e-10), case


def paired_overhead(fn: Callable[[], object], base: Callable[[], object], number: int,
                    rounds: int = 11) -> dict:
    """µs per call of ``fn`` and of ``base``, each timed in alternation within every round, and the
    median over rounds of their difference: what ``fn`` adds, robust to the machine's load
    drifting between two separate timings."""
    pairs = [(median_time(fn, number, 1), median_time(base, number, 1)) for _ in range(rounds)]
    us, base_us = (1e6 * float(np.median(col)) for col in zip(*pairs))
    return {"us": us, "plain_us": base_us, "overhead_us": 1e6 * float(np.median([a - b for a, b in pairs]))}


def failed(e: BaseException, limit: int) -> dict:
    """A failed case as a result to report (not a crash of the runner): its traceback on stderr,
    and ``{"error": "Type: first line"}`` cut to ``limit`` characters."""
    traceback.print_exc(file=sys.stderr)
    first = (str(e).strip().splitlines() or [""])[0]
    return {"error": f"{type(e).__name__}: {first}"[:limit]}


def collect_import_garbage() -> None:
    """A full garbage collection, right after a library is imported and before a workload's clock
    starts. Importing numpy, scipy, symgraph, JAX or PyTensor leaves hundreds of thousands of new
    objects, and the full collection they make due lands in whatever runs next: measured on W6,
    30-100 ms (on the 2-core machine under load) inside one implementation's 'total including
    compile' and not another's, by the chance of which crossed the collector's threshold first."""
    gc.collect()


def median_time(fn: Callable[[], object], number: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean seconds per call of ``fn`` over ``number`` calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return float(np.median(times))


def w7_data(steps: int) -> tuple[np.ndarray, ...]:
    """W7: inputs x (T, B, IN), initial state h0 (B, H), the cost's projection G (T, B, H), and the
    weights U (IN, H), W (H, H) (scaled so the state neither dies nor saturates), b (H,), float32."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((steps, W7_BATCH, W7_IN), dtype=F32)
    h0 = np.zeros((W7_BATCH, W7_HIDDEN), F32)
    g = rng.standard_normal((steps, W7_BATCH, W7_HIDDEN), dtype=F32)
    u = (rng.standard_normal((W7_IN, W7_HIDDEN)) / np.sqrt(W7_IN)).astype(F32)
    w = (rng.standard_normal((W7_HIDDEN, W7_HIDDEN)) * 0.9 / np.sqrt(W7_HIDDEN)).astype(F32)
    return x, h0, g, u, w, np.zeros(W7_HIDDEN, F32)


def w7_bptt(x: np.ndarray, h0: np.ndarray, g: np.ndarray, u: np.ndarray, w: np.ndarray, b: np.ndarray,
            dtype: type = F32) -> tuple[float, list[np.ndarray]]:
    """W7 by hand: the forward loop, then backpropagation through time (the weight gradients as one
    product over all steps after the reverse loop). ``dtype=np.float64`` gives the reference."""
    x, h0, g, u, w, b = (a.astype(dtype) for a in (x, h0, g, u, w, b))
    hs = np.empty(g.shape, dtype)
    h = h0
    for t in range(len(x)):
        h = hs[t] = np.tanh(x[t] @ u + h @ w + b)
    da = np.empty_like(hs)
    carry = np.zeros_like(h0)
    for t in range(len(x) - 1, -1, -1):
        da[t] = (g[t] + carry) * (1 - hs[t] * hs[t])
        carry = da[t] @ w.T
    prev = np.concatenate([h0[None], hs[:-1]])
    grads = [np.tensordot(x, da, axes=([0, 1], [0, 1])), np.tensordot(prev, da, axes=([0, 1], [0, 1])),
             da.sum((0, 1))]
    return float(np.sum(hs * g)), grads


def w4_n(variant: str) -> int:
    """N from a W4 variant name: 'N=1000' or 'N=1000 cold'."""
    return int(variant.split("=")[1].split()[0])


def is_cold(variant: str) -> bool:
    """A variant measured with empty kernel caches ('N=1000 cold')."""
    return variant.endswith(" cold")
