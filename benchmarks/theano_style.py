"""The workloads written once in the Theano API, run by symgraph (numpy or OpenCL backend) and by
PyTensor (C or numba mode): the two libraries share the API, so they do exactly the same work."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from benchmarks import data as D
from benchmarks import loops


def symgraph_lib(backend: str) -> SimpleNamespace:
    """symgraph with ``backend``; Adam and SGD come from sg.updates. The backend's modules are
    imported here, with the library (as the JAX workloads import jax before their clocks start);
    what a backend sets up on first use (an OpenCL device, its kernels) stays inside the timings.
    The imports' garbage is collected before any clock starts (see ``collect_import_garbage``)."""
    import symgraph as sg
    import symgraph.tensor as T
    from symgraph.backends import get_backend
    get_backend(backend)
    D.collect_import_garbage()

    def function(inputs, outputs, updates=None):
        return sg.function(inputs, outputs, updates=updates, backend=backend)

    def adam(loss, params):
        return sg.updates.adam(loss, params, learning_rate=D.ADAM["lr"], beta1=D.ADAM["beta1"],
                               beta2=D.ADAM["beta2"], epsilon=D.ADAM["epsilon"])

    return SimpleNamespace(function=function, shared=sg.shared, grad=sg.grad, T=T, adam=adam, scan=sg.scan,
                           sgd=lambda loss, params, lr: sg.updates.sgd(loss, params, learning_rate=lr),
                           log_softmax=T.nnet.log_softmax, sigmoid=T.sigmoid, relu=T.relu,
                           slogdet=T.linalg.slogdet, solve=T.linalg.solve, backend=backend,
                           uniform=lambda srng, n: srng.uniform((n,), dtype="float32"),
                           stream=sg.RandomStream, dropout=lambda x, p, srng: T.nnet.dropout(x, p, srng),
                           ifelse=sg.ifelse)


def pytensor_lib(mode: str) -> SimpleNamespace:
    """PyTensor in ``mode`` ('FAST_RUN' = C, 'NUMBA'); Adam and SGD written out with the same formulas."""
    import pytensor
    import pytensor.tensor as pt
    D.collect_import_garbage()

    def function(inputs, outputs, updates=None):
        return pytensor.function(inputs, outputs, updates=updates, mode=mode)

    def sgd(loss, params, lr):
        return [(p, p - lr * g) for p, g in zip(params, pytensor.grad(loss, params))]

    def adam(loss, params):
        lr, b1, b2, eps = D.ADAM["lr"], D.ADAM["beta1"], D.ADAM["beta2"], D.ADAM["epsilon"]
        t = pytensor.shared(np.float32(0))
        t_new = t + 1
        updates = [(t, t_new)]
        for p, g in zip(params, pytensor.grad(loss, params)):
            m, v = (pytensor.shared(np.zeros_like(p.get_value())) for _ in range(2))
            m_new, v_new = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            m_hat, v_hat = m_new / (1 - b1 ** t_new), v_new / (1 - b2 ** t_new)
            updates += [(m, m_new), (v, v_new), (p, p - lr * m_hat / (pt.sqrt(v_hat) + eps))]
        return updates

    T = SimpleNamespace(fvector=pt.fvector, fmatrix=pt.fmatrix, ftensor3=pt.ftensor3, dvector=pt.dvector,
                        dmatrix=pt.dmatrix, dot=pt.dot, sum=pt.sum, mean=pt.mean, maximum=pt.maximum,
                        tanh=pt.tanh, sin=pt.sin, iscalar=pt.iscalar)
    from pytensor.ifelse import ifelse
    from pytensor.tensor import nlinalg, slinalg
    from pytensor.tensor.random.utils import RandomStream

    def dropout(x, p, srng):
        return x * srng.binomial(1, 1 - p, size=x.shape).astype("float32") * np.float32(1 / (1 - p))
    return SimpleNamespace(function=function, shared=pytensor.shared, grad=pytensor.grad, T=T, adam=adam, sgd=sgd,
                           scan=pytensor.scan,
                           log_softmax=lambda z: pt.special.log_softmax(z, axis=-1),
                           sigmoid=pt.sigmoid, relu=lambda z: pt.switch(z > 0, z, 0),  # gradient 0 at 0, as the others
                           slogdet=nlinalg.slogdet, solve=slinalg.solve, backend="pytensor", stream=RandomStream,
                           uniform=lambda srng, n: srng.uniform(0.0, 1.0, size=(n,), dtype="float32"), dropout=dropout,
                           ifelse=ifelse)


def _mlp(lib, x, params, relu_layers: int):
    h = x
    for k in range(0, len(params), 2):
        h = lib.T.dot(h, params[k]) + params[k + 1]
        h = lib.relu(h) if k // 2 < relu_layers else h
    return h


def w1(lib, variant: str, quick: bool) -> dict:
    x, y = lib.T.fvector("x"), lib.T.fvector("y")
    f = lib.function([x, y], lib.sigmoid(x * y + 0.5) * lib.T.tanh(x) - lib.T.maximum(y, 0))
    xv, yv = D.w1_inputs(D.W1_SIZES[variant])
    out = f(xv, yv)
    assert out.dtype == np.float32 and np.allclose(out, D.w1_reference(xv, yv), atol=1e-5)
    sec = D.median_time(lambda: f(xv, yv), number=2 if quick else 5, rounds=3 if quick else 5)
    return {"ms": sec * 1e3, "GB/s": 3 * 4 * xv.size / sec / 1e9}


def w2(lib, variant: str, quick: bool) -> dict:
    if variant.endswith(D.W2_ONE_CALL):
        if lib.backend == "pytensor":
            raise NotImplementedError("W2 in one call is written for symgraph (sg.scan_updates) and JAX only")
        return loops.w2_one_call_symgraph(lib, D.W2_QUICK_STEPS if quick else D.W2_STEPS)
    xv, yv = D.sine_data()
    params = [lib.shared(p) for p in D.mlp_params((1, 60, 1))]
    x, y = lib.T.fmatrix("x"), lib.T.fmatrix("y")
    loss = lib.T.mean((_mlp(lib, x, params, 1) - y) ** 2)
    start = time.perf_counter()
    step = lib.function([x, y], loss, updates=lib.adam(loss, params))
    compile_s = time.perf_counter() - start
    steps = D.W2_QUICK_STEPS if quick else D.W2_STEPS
    start = time.perf_counter()
    for _ in range(steps):
        last = step(xv, yv)
    return {"s": time.perf_counter() - start, "final_loss": float(last), "compile_s": compile_s}


def w3(lib, variant: str, quick: bool) -> dict:
    xv, labels = D.w3_batch()
    onehot = np.eye(10, dtype=np.float32)[labels]
    params = [lib.shared(p) for p in D.mlp_params(D.W3_SIZES)]
    x, t = lib.T.fmatrix("x"), lib.T.fmatrix("t")
    loss = -lib.T.mean(lib.T.sum(t * lib.log_softmax(_mlp(lib, x, params, 2)), axis=1))
    step = lib.function([x, t], loss, updates=lib.sgd(loss, params, D.W3_LR))
    step(xv, onehot)
    sec = D.median_time(lambda: step(xv, onehot), number=2 if quick else 5, rounds=3 if quick else 5)
    return {"ms": sec * 1e3, "GFLOP/s": D.w3_flops_per_step() / sec / 1e9}


def w4(lib, variant: str, quick: bool) -> dict:
    n = D.w4_n(variant)
    start = time.perf_counter()
    x = lib.T.fvector("x")
    h = x
    for op, c in D.chain_numpy(n):
        h = getattr(lib.T, op)(h) if c is None else (h * np.float32(c) if op == "mul" else h + np.float32(c))
    value = lib.T.sum(h)
    f = lib.function([x], [value, lib.grad(value, x)])
    f(np.linspace(-1, 1, 1000, dtype=np.float32))
    return {"s": time.perf_counter() - start}


def w5(lib, variant: str, quick: bool) -> dict:
    x = lib.T.fvector("x")
    f = lib.function([x], x + 1)
    xv = np.ones(10, np.float32)
    f(xv)
    return {"us": 1e6 * D.median_time(lambda: f(xv), number=D.W5_QUICK_CALLS if quick else D.W5_CALLS)}


def w6(lib, variant: str, quick: bool) -> dict:
    X, Y, w0v, w1v = D.xor_data()
    start = time.perf_counter()
    w0, w1 = lib.shared(w0v), lib.shared(w1v)
    x, y = lib.T.fmatrix("x"), lib.T.fmatrix("y")
    out = lib.sigmoid(lib.T.dot(lib.sigmoid(lib.T.dot(x, w0)), w1))
    loss = lib.T.sum((y - out) ** 2)
    step = lib.function([x, y], loss, updates=lib.sgd(loss, [w0, w1], 1.0))
    loop_start = time.perf_counter()
    for _ in range(D.W6_STEPS):
        last = step(X, Y)
    end = time.perf_counter()
    return {"s": end - start, "us_per_step": 1e6 * (end - loop_start) / D.W6_STEPS, "final_loss": float(last)}


def w9(lib, variant: str, quick: bool) -> dict:
    case, n = D.w9_split(variant)
    av, bv, wv = D.w9_inputs(n)
    a, b, w = lib.T.dmatrix("a"), lib.T.dvector("b"), lib.T.dvector("w")
    grad = case.endswith("grad")
    if case.startswith("slogdet"):
        logdet = lib.slogdet(a)[1]
        inputs, args, outs = [a], (av,), [logdet] + ([lib.grad(logdet, a)] if grad else [])
    else:
        x = lib.solve(a, b)
        inputs, args = ([a, b, w], (av, bv, wv)) if grad else ([a, b], (av, bv))
        outs = [x] + (lib.grad(lib.T.sum(x * w), [a, b]) if grad else [])
    f = lib.function(inputs, outs)
    D.w9_check(case, av, bv, wv, f(*args))
    sec = D.median_time(lambda: f(*args), number=2 if quick else 5, rounds=3 if quick else 7)
    return {"ms": sec * 1e3}




def w8(lib, variant: str, quick: bool) -> dict:
    """Theano's conv2d (cross-correlation, 'half' = same for 3x3): the forward pass alone, and the
    forward pass with the gradients of sum(y * g) with respect to the input and the kernel."""
    xv, wv, gv = D.w8_data(variant)
    x, w, g = (lib.T.ftensor4(n) for n in "xwg")
    y = lib.T.nnet.conv2d(x, w, border_mode="half", filter_flip=False)
    fwd = lib.function([x, w], y)
    both = lib.function([x, w, g], [y] + lib.grad(lib.T.sum(y * g), [x, w]))
    out = fwd(xv, wv)
    assert out.dtype == np.float32 and np.allclose(out, D.w8_reference(xv, wv), atol=1e-3)
    both(xv, wv, gv)
    n, r = (2, 3) if quick else (3, 5)
    fwd_s = D.median_time(lambda: fwd(xv, wv), number=n, rounds=r)
    sec = D.median_time(lambda: both(xv, wv, gv), number=n, rounds=r)
    return {"ms": sec * 1e3, "fwd_ms": fwd_s * 1e3, "GFLOP/s": 3 * D.w8_flops(variant) / sec / 1e9}




def w10(lib, variant: str, quick: bool) -> dict:
    """Random streams: ``ms`` is a compiled call (host arrays in and out). On symgraph the same run
    also times the same work with the data kept in shared variables (``device_ms``; on OpenCL: no
    transfers) against its peer without randomness: a kernel that only writes the array (uniform)
    or the same elementwise kernel without dropout (dropout)."""
    case, n = D.w10_split(variant)
    x = lib.T.fvector("x")
    xv = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    srng = lib.stream(D.W10_SEED)
    if case == "uniform":
        f, args = lib.function([], lib.uniform(srng, n)), ()
    else:
        f, args = lib.function([x], lib.relu(lib.dropout(x, 1 - D.W10_KEEP, srng) * 2 + 1)), (xv,)
    D.w10_check(case, xv, f(*args))
    number, rounds = (2, 3) if quick else (5, 7)
    metrics = {"ms": 1e3 * D.median_time(lambda: f(*args), number, rounds)}
    if lib.backend in ("numpy", "opencl"):
        metrics.update(_w10_resident(lib, case, xv, number, rounds))
    return metrics


def _w10_resident(lib, case: str, xv: np.ndarray, number: int, rounds: int) -> dict:
    """The W10 work with inputs and outputs in shared variables, and its peer without randomness."""
    T, n = lib.T, xv.size
    sx, out = lib.shared(xv), lib.shared(np.zeros(n, np.float32))
    srng = lib.stream(D.W10_SEED)
    if case == "uniform":
        work, peer, name = lib.uniform(srng, n), T.alloc(np.float32(0.5), n), "write_only"
    else:
        work, peer, name = lib.relu(lib.dropout(sx, 1 - D.W10_KEEP, srng) * 2 + 1), lib.relu(sx * 2 + 1), "no_dropout"
    runs = {}
    for key, expr in (("device", work), (name, peer)):
        f = lib.function([], [], updates=[(out, expr)])
        done = _finisher(f)
        runs[key] = 1e3 * D.median_time(lambda: (f(), done()), number, rounds)
    return {"device_ms": runs["device"], f"{name}_ms": runs[name], f"vs_{name}": runs["device"] / runs[name]}


def w11(lib, variant: str, quick: bool) -> dict:
    """ifelse (issue 14). 'branch': ``ifelse(c, expensive(x), x)``; ``us`` is a call with c false
    (only the copy of x runs), ``taken_us`` one with c true, ``vs_taken`` their ratio (the goal:
    at most 0.05). 'call': ``ifelse(c, x + 1, x - 1)`` on 10 floats; ``plain_us`` is ``x + 1``
    compiled alone (W5) and ``overhead_us`` what the ifelse adds to a call (the goal: at most 1 µs
    on the numpy backend)."""
    T = lib.T
    c = T.iscalar("c")
    if variant == "call":
        x = T.fvector("x")
        f, plain = lib.function([c, x], lib.ifelse(c, x + 1, x - 1)), lib.function([x], x + 1)
        xv, on = np.ones(10, np.float32), D.W11_TRUE
        assert np.array_equal(f(on, xv), xv + 1) and np.array_equal(f(D.W11_FALSE, xv), xv - 1)
        number = (D.W11_QUICK_CALLS if quick else D.W11_CALLS) // (20 if lib.backend == "opencl" else 1)
        return D.paired_overhead(lambda: f(on, xv), lambda: plain(xv), number)
    xv = D.w11_data(variant)
    x = T.fmatrix("x")
    y = x
    for _ in range(D.W11_ROUNDS):
        y = T.tanh(T.dot(y, x) / np.float32(xv.shape[0]))
    f = lib.function([c, x], lib.ifelse(c, y, x))
    on, off = D.W11_TRUE, D.W11_FALSE
    np.testing.assert_allclose(f(on, xv), D.w11_expensive_by_hand(xv), rtol=1e-4, atol=1e-5)
    assert np.array_equal(f(off, xv), xv)
    taken_us = 1e6 * D.median_time(lambda: f(on, xv), 3 if quick else 10)
    us = 1e6 * D.median_time(lambda: f(off, xv), 50 if quick else 500)
    return {"us": us, "taken_us": taken_us, "vs_taken": us / taken_us}


def _finisher(f):
    """Waits for a compiled function's queued device work (nothing to wait for on the numpy backend)."""
    runtime = getattr(getattr(f, "_impl", None), "runtime", None)
    return runtime.queue.finish if runtime is not None else (lambda: None)


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": loops.w7_lib, "W9": w9, "W8": w8,
             "W10": w10, "W11": w11}
