"""The workloads in JAX (jit on CPU), as its users would write them: jitted step functions called
from a Python loop, inputs placed on the device once, results waited for."""
from __future__ import annotations

import time

import numpy as np

from benchmarks import data as D
from benchmarks import loops


def _jax():
    import jax
    jax.config.update("jax_platforms", "cpu")
    D.collect_import_garbage()
    return jax, jax.numpy


def w1(variant: str, quick: bool) -> dict:
    jax, jnp = _jax()
    xv, yv = D.w1_inputs(D.W1_SIZES[variant])
    f = jax.jit(lambda x, y: jax.nn.sigmoid(x * y + 0.5) * jnp.tanh(x) - jnp.maximum(y, 0))
    x, y = jax.device_put(xv), jax.device_put(yv)
    out = np.asarray(f(x, y))
    assert out.dtype == np.float32 and np.allclose(out, D.w1_reference(xv, yv), atol=1e-5)
    sec = D.median_time(lambda: f(x, y).block_until_ready(), number=2 if quick else 5, rounds=3 if quick else 5)
    return {"ms": sec * 1e3, "GB/s": 3 * 4 * xv.size / sec / 1e9}


def _mlp(jax, params, x):
    h = x
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        h = jax.nn.relu(h) if k < len(params) - 2 else h  # gradient 0 at 0, like the others
    return h


def w2(variant: str, quick: bool) -> dict:
    jax, jnp = _jax()
    xv, yv = D.sine_data()
    lr, b1, b2, eps = D.ADAM["lr"], D.ADAM["beta1"], D.ADAM["beta2"], D.ADAM["epsilon"]

    def loss_fn(params, x, y):
        return jnp.mean((_mlp(jax, params, x) - y) ** 2)

    def adam_step(params, m, v, t, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        t = t + 1
        m = [b1 * mk + (1 - b1) * g for mk, g in zip(m, grads)]
        v = [b2 * vk + (1 - b2) * g * g for vk, g in zip(v, grads)]
        params = [p - lr * (mk / (1 - b1 ** t)) / (jnp.sqrt(vk / (1 - b2 ** t)) + eps)
                  for p, mk, vk in zip(params, m, v)]
        return params, m, v, t, loss

    steps = D.W2_QUICK_STEPS if quick else D.W2_STEPS
    if variant.endswith(D.W2_ONE_CALL):
        return loops.w2_one_call_jax(steps, adam_step)
    step = jax.jit(adam_step)
    params = [jnp.asarray(p) for p in D.mlp_params((1, 60, 1))]
    m, v, t = [jnp.zeros_like(p) for p in params], [jnp.zeros_like(p) for p in params], jnp.float32(0)
    x, y = jax.device_put(xv), jax.device_put(yv)
    start = time.perf_counter()
    step.lower(params, m, v, t, x, y).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        params, m, v, t, loss = step(params, m, v, t, x, y)
    loss = float(loss)
    return {"s": time.perf_counter() - start, "final_loss": loss, "compile_s": compile_s}


def w3(variant: str, quick: bool) -> dict:
    jax, jnp = _jax()
    xv, labels = D.w3_batch()

    def loss_fn(params, x, t):
        return -jnp.mean(jnp.sum(t * jax.nn.log_softmax(_mlp(jax, params, x), axis=1), axis=1))

    @jax.jit
    def step(params, x, t):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, t)
        return [p - D.W3_LR * g for p, g in zip(params, grads)], loss

    state = {"p": [jnp.asarray(p) for p in D.mlp_params(D.W3_SIZES)]}
    x, t = jax.device_put(xv), jax.device_put(np.eye(10, dtype=np.float32)[labels])

    def run():
        state["p"], loss = step(state["p"], x, t)
        loss.block_until_ready()

    run()
    sec = D.median_time(run, number=2 if quick else 5, rounds=3 if quick else 5)
    return {"ms": sec * 1e3, "GFLOP/s": D.w3_flops_per_step() / sec / 1e9}


def w4(variant: str, quick: bool) -> dict:
    jax, jnp = _jax()
    n = D.w4_n(variant)
    xv = np.linspace(-1, 1, 1000, dtype=np.float32)
    start = time.perf_counter()

    def value(x):
        h = x
        for op, c in D.chain_numpy(n):
            h = getattr(jnp, op)(h) if c is None else (h * np.float32(c) if op == "mul" else h + np.float32(c))
        return jnp.sum(h)

    f = jax.jit(lambda x: (value(x), jax.grad(value)(x)))
    jax.block_until_ready(f(xv))
    return {"s": time.perf_counter() - start}


def w5(variant: str, quick: bool) -> dict:
    jax, jnp = _jax()
    f = jax.jit(lambda x: x + 1)
    x = jax.device_put(np.ones(10, np.float32))
    f(x).block_until_ready()
    calls = D.W5_QUICK_CALLS if quick else D.W5_CALLS
    return {"us": 1e6 * D.median_time(lambda: f(x).block_until_ready(), number=calls)}


def w6(variant: str, quick: bool) -> dict:
    jax, jnp = _jax()
    X, Y, w0v, w1v = D.xor_data()
    start = time.perf_counter()

    def loss_fn(w, x, y):
        return jnp.sum((y - jax.nn.sigmoid(jax.nn.sigmoid(x @ w[0]) @ w[1])) ** 2)

    @jax.jit
    def step(w, x, y):
        loss, g = jax.value_and_grad(loss_fn)(w, x, y)
        return [wk - gk for wk, gk in zip(w, g)], loss

    w, x, y = [jnp.asarray(w0v), jnp.asarray(w1v)], jax.device_put(X), jax.device_put(Y)
    loop_start = None
    for k in range(D.W6_STEPS):
        w, loss = step(w, x, y)
        if k == 0:
            loop_start = time.perf_counter()
    loss = float(loss)
    end = time.perf_counter()
    return {"s": end - start, "us_per_step": 1e6 * (end - loop_start) / (D.W6_STEPS - 1), "final_loss": loss}


def w9(variant: str, quick: bool) -> dict:
    jax, jnp = _jax()
    jax.config.update("jax_enable_x64", True)
    case, n = D.w9_split(variant)
    av, bv, wv = D.w9_inputs(n)
    a, b, w = (jax.device_put(v) for v in (av, bv, wv))
    logdet = lambda m: jnp.linalg.slogdet(m)[1]  # noqa: E731
    if case == "slogdet":
        f, args = jax.jit(lambda m: [logdet(m)]), (a,)
    elif case == "slogdet+grad":
        f, args = jax.jit(lambda m: list(jax.value_and_grad(logdet)(m))), (a,)
    elif case == "solve":
        f, args = jax.jit(lambda m, v: [jnp.linalg.solve(m, v)]), (a, b)
    else:
        def solve_grad(m, v, p):
            x, vjp = jax.vjp(jnp.linalg.solve, m, v)
            return [x, *vjp(p)]
        f, args = jax.jit(solve_grad), (a, b, w)
    D.w9_check(case, av, bv, wv, f(*args))
    sec = D.median_time(lambda: jax.block_until_ready(f(*args)), number=2 if quick else 5, rounds=3 if quick else 7)
    return {"ms": sec * 1e3}




def w8(variant: str, quick: bool) -> dict:
    """lax.conv_general_dilated under jit: the forward pass, and value_and_grad of sum(y * g)."""
    jax, jnp = _jax()
    xv, wv, gv = D.w8_data(variant)

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME")

    fwd = jax.jit(conv)
    both = jax.jit(jax.value_and_grad(lambda x, w, g: jnp.sum(conv(x, w) * g), argnums=(0, 1)))
    x, w, g = jax.device_put(xv), jax.device_put(wv), jax.device_put(gv)
    out = np.asarray(fwd(x, w))
    assert out.dtype == np.float32 and np.allclose(out, D.w8_reference(xv, wv), atol=1e-3)
    jax.block_until_ready(both(x, w, g))
    n, r = (2, 3) if quick else (3, 5)
    fwd_s = D.median_time(lambda: fwd(x, w).block_until_ready(), number=n, rounds=r)
    sec = D.median_time(lambda: jax.block_until_ready(both(x, w, g)), number=n, rounds=r)
    return {"ms": sec * 1e3, "fwd_ms": fwd_s * 1e3, "GFLOP/s": 3 * D.w8_flops(variant) / sec / 1e9}




def w10(variant: str, quick: bool) -> dict:
    """jax.random (threefry, a new key per call by splitting): float32 uniforms, and dropout."""
    jax, jnp = _jax()
    case, n = D.w10_split(variant)
    xv = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    x = jax.device_put(xv)
    if case == "uniform":
        f = jax.jit(lambda k, x: jax.random.uniform(k, (n,), dtype=jnp.float32))
    else:
        f = jax.jit(lambda k, x: jnp.maximum(jnp.where(jax.random.bernoulli(k, D.W10_KEEP, (n,)),
                                                       x * (2 / D.W10_KEEP), 0) + 1, 0))
    state = {"key": jax.random.PRNGKey(D.W10_SEED)}

    def call():
        state["key"], sub = jax.random.split(state["key"])
        return f(sub, x).block_until_ready()
    D.w10_check(case, xv, np.asarray(call()))
    number, rounds = (2, 3) if quick else (5, 7)
    return {"ms": 1e3 * D.median_time(call, number, rounds)}


def w11(variant: str, quick: bool) -> dict:
    """ifelse as ``lax.cond`` under jit (the symgraph case's twin, benchmarks/theano_style.w11)."""
    jax, jnp = _jax()
    on, off = D.W11_TRUE, D.W11_FALSE
    if variant == "call":
        f = jax.jit(lambda c, x: jax.lax.cond(c != 0, lambda v: v + 1, lambda v: v - 1, x))
        plain = jax.jit(lambda x: x + 1)
        xv = jax.device_put(np.ones(10, np.float32))
        assert np.array_equal(np.asarray(f(on, xv)), np.full(10, 2, np.float32))
        plain(xv).block_until_ready()
        number = D.W11_QUICK_CALLS if quick else D.W11_CALLS
        return D.paired_overhead(lambda: f(on, xv).block_until_ready(), lambda: plain(xv).block_until_ready(), number)
    xv = D.w11_data(variant)
    scale = np.float32(xv.shape[0])

    def expensive(x):
        y = x
        for _ in range(D.W11_ROUNDS):
            y = jnp.tanh(y @ x / scale)
        return y
    f = jax.jit(lambda c, x: jax.lax.cond(c != 0, expensive, lambda v: v, x))
    x = jax.device_put(xv)
    np.testing.assert_allclose(np.asarray(f(on, x)), D.w11_expensive_by_hand(xv), rtol=1e-4, atol=1e-5)
    assert np.array_equal(np.asarray(f(off, x)), xv)
    taken_us = 1e6 * D.median_time(lambda: f(on, x).block_until_ready(), 3 if quick else 10)
    us = 1e6 * D.median_time(lambda: f(off, x).block_until_ready(), 50 if quick else 500)
    return {"us": us, "taken_us": taken_us, "vs_taken": us / taken_us}


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": loops.w7_jax, "W9": w9, "W8": w8,
             "W10": w10, "W11": w11}
