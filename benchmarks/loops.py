"""Loop workloads (issue 15), every implementation in one place:

- W7: a vanilla RNN ``h_t = tanh(x_t U + h_{t-1} W + b)``, hidden 128, batch 32, T = 100, float32;
  one call computes the cost ``sum(h * G)`` (a fixed projection of every state) and its gradients
  with respect to U, W and b: forward and backward through time. symgraph and PyTensor write it
  with ``scan`` (the Theano API), JAX with ``jax.lax.scan`` under ``jit``, numpy by hand as a
  loop with hand-written BPTT (``data.w7_bptt``, also the float64 reference every answer is
  checked against).
- W2 in one call: W2's 5000 Adam steps run by one call -- ``sg.scan_updates`` (the optimizer's
  updates inside one ``sg.scan``), JAX's ``lax.fori_loop`` under ``jit`` -- a call after JAX's
  ahead-of-time compile, and for symgraph the median of three calls after the first (whose time,
  which includes building what is specialised on the call's shapes, is ``first_call_s``).
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks import data as D


def _w7_inputs(variant: str) -> tuple[np.ndarray, ...]:
    return D.w7_data(int(variant.split("=")[1]))


def _w7_check(cost: float, grads: list, ref: tuple) -> None:
    want_cost, want_grads = ref
    assert abs(float(cost) - want_cost) <= 1e-3 * abs(want_cost), (cost, want_cost)
    for g, w in zip(grads, want_grads):
        err = np.abs(np.asarray(g, np.float64) - w).max() / np.abs(w).max()
        assert err < 1e-3, err


def _number(quick: bool) -> tuple[int, int]:
    return (2, 3) if quick else (5, 5)


# --- W7 -------------------------------------------------------------------------------------------

def w7_lib(lib, variant: str, quick: bool) -> dict:
    """symgraph (numpy, OpenCL) or PyTensor, through the Theano API's scan."""
    xv, h0v, gv, *pv = _w7_inputs(variant)
    params = [lib.shared(p) for p in pv]
    U, W, b = params
    x, g = lib.T.ftensor3("x"), lib.T.ftensor3("g")
    start = time.perf_counter()
    hs, _ = lib.scan(lambda x_t, h: lib.T.tanh(lib.T.dot(x_t, U) + lib.T.dot(h, W) + b), sequences=[x],
                     outputs_info=[lib.shared(h0v)])
    cost = lib.T.sum(hs * g)
    f = lib.function([x, g], [cost, *lib.grad(cost, params)])
    compile_s = time.perf_counter() - start
    out = f(xv, gv)
    _w7_check(out[0], out[1:], D.w7_bptt(xv, h0v, gv, *pv, dtype=np.float64))
    sec = D.median_time(lambda: f(xv, gv), *_number(quick))
    return {"ms": sec * 1e3, "compile_s": compile_s}


def w7_jax(variant: str, quick: bool) -> dict:
    """JAX: lax.scan under jit, value_and_grad."""
    import jax
    jax.config.update("jax_platforms", "cpu")
    jnp = jax.numpy
    xv, h0v, gv, *pv = _w7_inputs(variant)

    def cost(params, x, h0, g):
        U, W, b = params
        _, hs = jax.lax.scan(lambda h, x_t: (jnp.tanh(x_t @ U + h @ W + b),) * 2, h0, x)
        return jnp.sum(hs * g)
    f = jax.jit(jax.value_and_grad(cost))
    args = [jax.device_put(a) for a in ([*pv], xv, h0v, gv)]
    start = time.perf_counter()
    f.lower(*args).compile()
    compile_s = time.perf_counter() - start
    value, grads = f(*args)
    _w7_check(float(value), [np.asarray(a) for a in grads], D.w7_bptt(xv, h0v, gv, *pv, dtype=np.float64))

    def run():
        value, grads = f(*args)
        jax.block_until_ready(grads)
    sec = D.median_time(run, *_number(quick))
    return {"ms": sec * 1e3, "compile_s": compile_s}


def w7_by_hand(variant: str, quick: bool) -> dict:
    """numpy: the forward loop and hand-written BPTT (data.w7_bptt) in float32."""
    xv, h0v, gv, *pv = _w7_inputs(variant)
    cost, grads = D.w7_bptt(xv, h0v, gv, *pv)
    _w7_check(cost, grads, D.w7_bptt(xv, h0v, gv, *pv, dtype=np.float64))
    sec = D.median_time(lambda: D.w7_bptt(xv, h0v, gv, *pv), *_number(quick))
    return {"ms": sec * 1e3, "compile_s": 0.0}


# --- W2 as one call ---------------------------------------------------------------------------------

def w2_one_call_symgraph(lib, steps: int) -> dict:
    """sg.scan_updates: the Adam updates of W2's step inside one loop; one call runs every step.
    ``s`` is the median of three calls after the first (each trains ``steps`` more steps: the same
    work), as JAX's figure is a call after its ahead-of-time compile: the first call also builds
    what is specialised on the call's shapes (the OpenCL one-kernel loop), and is ``first_call_s``.
    ``final_loss`` is the first call's (``steps`` steps from the initial parameters, as by hand)."""
    import symgraph as sg
    xv, yv = D.sine_data()
    params = [lib.shared(p) for p in D.mlp_params((1, 60, 1))]
    x, y = lib.T.fmatrix("x"), lib.T.fmatrix("y")
    h = lib.relu(lib.T.dot(x, params[0]) + params[1])
    loss = lib.T.mean((lib.T.dot(h, params[2]) + params[3] - y) ** 2)
    start = time.perf_counter()
    losses, final = sg.scan_updates(lib.adam(loss, params), n_steps=steps, outputs=[loss])
    run = lib.function([x, y], losses[0][-1], updates=final)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    last = run(xv, yv)
    first = time.perf_counter() - start
    later = []
    for _ in range(3):
        start = time.perf_counter()
        run(xv, yv)
        later.append(time.perf_counter() - start)
    return {"s": float(np.median(later)), "first_call_s": first, "final_loss": float(last), "compile_s": compile_s}


def w2_one_call_jax(steps: int, loss_and_step) -> dict:
    """JAX: W2's jitted step inside ``lax.fori_loop`` under one jit."""
    import jax
    jnp = jax.numpy
    xv, yv = D.sine_data()
    step = loss_and_step

    @jax.jit
    def train(params, m, v, x, y):
        def body(i, state):
            params, m, v, t, _ = state
            return step(params, m, v, t, x, y)
        zero = jnp.float32(0)
        return jax.lax.fori_loop(0, steps, body, (params, m, v, zero, zero))

    params = [jnp.asarray(p) for p in D.mlp_params((1, 60, 1))]
    m, v = [jnp.zeros_like(p) for p in params], [jnp.zeros_like(p) for p in params]
    args = (params, m, v, jax.device_put(xv), jax.device_put(yv))
    start = time.perf_counter()
    train.lower(*args).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    loss = float(train(*args)[-1])
    return {"s": time.perf_counter() - start, "final_loss": loss, "compile_s": compile_s}
