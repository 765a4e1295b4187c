"""Loop rewrites and memory: trace[-1] reads the final carry (IndexError kept when no step may
run), unread traces/outputs/carries are dropped, loop-invariant work is hoisted, sequence-only
products are vectorised, constant work is folded in the body; peak memory (tracemalloc) of long
loops, checkpointed gradients and while loops; the OpenCL loop keeps its values on the device and
reads a while loop's condition every 8 steps, ending exactly where the plain loop would."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph.basic import Constant
from symgraph.graph.inner import InnerGraph
from symgraph.scan import Scan
from symgraph.scan.op import CheckRan
from symgraph.tensor.math import Dot, MatMul


def _scans(f):
    return [n for n in f.graph.apply_nodes if isinstance(n.op, Scan)]


def _peak(fn, *args) -> int:
    """Peak bytes traced while calling ``fn`` (after one warm-up call)."""
    fn(*args)
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_last_row_reads_the_final_carry():
    h0 = T.dvector("h0")
    h, _ = sg.scan(lambda h: h * 0.5 + 1, outputs_info=[h0], n_steps=5)
    f = sg.function([h0], h[-1])
    (node,) = _scans(f)
    assert node.op.traced == (False,) and not any(isinstance(n.op, CheckRan) for n in f.graph.apply_nodes)
    np.testing.assert_allclose(f(np.zeros(2)), [1.9375, 1.9375])
    n = T.lscalar("n")
    h, _ = sg.scan(lambda h: h * 0.5 + 1, outputs_info=[h0], n_steps=n)
    g = sg.function([h0, n], h[-1])
    assert _scans(g)[0].op.traced == (False,) and any(isinstance(k.op, CheckRan) for k in g.graph.apply_nodes)
    with pytest.raises(IndexError):
        g(np.zeros(2), 0)
    assert sg.function([h0, n], h[-1], mode=None)(np.zeros(2), 1).tolist() == [1, 1]


def test_unread_outputs_and_carries_are_dropped():
    x = T.dvector("x")
    (a, b, c), _ = sg.scan(lambda xt, a, b: (a + xt, b * a, T.exp(xt)), sequences=[x],
                           outputs_info=[T.constant(0.0), T.constant(1.0), None])
    f = sg.function([x], a)
    (node,) = _scans(f)
    assert node.op.n_carries == 1 and node.op.n_ys == 0
    np.testing.assert_allclose(f(np.arange(3.0)), [0, 1, 3])
    g = sg.function([x], b[-1])  # b reads a: both carries stay, no trace
    (node,) = _scans(g)
    assert node.op.n_carries == 2 and node.op.traced == (False, False)


def test_loop_invariant_work_is_hoisted():
    h, W = T.dvector("h"), T.dmatrix("W")
    body = InnerGraph([h, W], [T.tanh(T.dot(h, T.exp(W)))])  # exp(W) depends on no step
    n, h0, W0 = T.lscalar("n"), T.dvector("h0"), T.dmatrix("W0")
    out = Scan(body, n_seqs=0, n_carries=1)(n, h0, W0)[0]
    f = sg.function([n, h0, W0], out)
    (node,) = _scans(f)
    assert not any("exp" in str(k.op) for k in node.op.body.nodes)
    wv = np.array([[0.1, 0.2], [0.3, -0.4]])
    h = np.array([1.0, -1.0])
    for _ in range(3):
        h = np.tanh(h @ np.exp(wv))
    np.testing.assert_allclose(f(3, np.array([1.0, -1.0]), wv), h)


def test_constant_work_in_a_body_is_folded_not_hoisted_into_an_input():
    """The gradient of (x w - y) ** 2 holds (x w - y) ** (2 - 1): folded in the body (and then
    simplified), not hoisted as an input that would hide the constant from the body's rewrites."""
    x, y, n = T.dmatrix("x"), T.dmatrix("y"), T.lscalar("n")
    out, _ = sg.scan(lambda w: w - 0.1 * sg.grad(T.mean((T.dot(x, w) - y) ** 2), w),
                     outputs_info=[T.ones((2, 1))], n_steps=n)
    f = sg.function([x, y, n], out[-1])
    (node,) = _scans(f)
    assert not any("**" in str(k.op) or "pow" in str(k.op) for k in node.op.body.nodes)
    consts = node.inputs[1 + node.op.n_seqs + node.op.n_carries:]  # x, y, x.T: no hoisted constant work
    assert not any(c.owner is not None and all(isinstance(i, Constant) for i in c.owner.inputs) for c in consts)
    xv, yv = np.array([[1.0, 2.0], [0.5, -1.0]]), np.array([[1.0], [0.0]])
    w = np.ones((2, 1))
    for _ in range(4):
        w = w - 0.1 * (2 * xv.T @ (xv @ w - yv) / yv.size)
    np.testing.assert_allclose(f(xv, yv, 4), w, rtol=1e-12)


def test_sequence_only_products_run_as_one_product_before_the_loop():
    x, h0, W, U = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W"), T.dmatrix("U")
    h, _ = sg.scan(lambda xt, h: T.tanh(T.dot(h, W) + T.dot(xt, U)), sequences=[x], outputs_info=[h0])
    f = sg.function([x, h0, W, U], h)
    (node,) = _scans(f)
    outside = [n for n in f.graph.apply_nodes if isinstance(n.op, (Dot, MatMul))]
    inside = [n for n in node.op.body.nodes if "Dot" in str(n.op) or "MatMul" in str(n.op)]
    assert len(outside) == 1 and len(inside) == 1  # x_t @ U for every t at once; h @ W (fused with tanh) per step
    assert "vectorise" in str(f.rewrite_report()["applied"])
    rng = np.random.default_rng(0)
    vals = [rng.normal(size=(4, 2, 3)), rng.normal(size=(2, 5)), rng.normal(size=(5, 5)), rng.normal(size=(3, 5))]
    want, hv = [], vals[1]
    for xt in vals[0]:
        hv = np.tanh(hv @ vals[2] + xt @ vals[3])
        want.append(hv)
    np.testing.assert_allclose(f(*vals), np.stack(want), rtol=1e-12)


def test_gradient_accumulators_become_one_product_after_the_loop(backend):
    """The BPTT loop's weight gradients (sum over steps of h_t^T g_t) are summed after the loop."""
    x, h0, W = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W")
    h, _ = sg.scan(lambda xt, h: T.tanh(T.dot(h, W) + xt), sequences=[x], outputs_info=[h0])
    gw, gh = sg.grad((h ** 2).sum(), [W, h0])
    f = sg.function([x, h0, W], [gw, gh], backend=backend)
    assert "scan_push_out_sum" in f.rewrite_report()["applied"]
    grad_loop = [n for n in _scans(f) if n.op.name == "grad"][0]
    assert grad_loop.op.n_carries == 1  # the state's gradient; W's is a tensordot after the loop
    rng = np.random.default_rng(1)
    vals = [rng.normal(size=(4, 2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(3, 3))]
    plain = sg.function([x, h0, W], [gw, gh], mode=sg.Mode().excluding("scan"))
    for a, b in zip(f(*vals), plain(*vals)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for a, b in zip(f(np.zeros((0, 2, 3)), *vals[1:]), plain(np.zeros((0, 2, 3)), *vals[1:])):
        np.testing.assert_array_equal(a, b)


# --- memory -----------------------------------------------------------------------------------------

def test_last_value_of_a_long_loop_costs_the_state_not_the_trace():
    h0 = T.dvector("h0")
    n = T.lscalar("n")
    h, _ = sg.scan(lambda h: h * 0.5 + 1.0, outputs_info=[h0], n_steps=n)
    f = sg.function([h0, n], h[-1])
    state = np.zeros(100)  # 800 bytes; the trace of 10**5 steps would be 80 MB
    assert _peak(f, state, 10 ** 5) < 50 * state.nbytes


def test_checkpointed_gradient_keeps_few_states():
    T_, k, size = 10 ** 4, 100, 128
    h0, W = T.dvector("h0"), T.dmatrix("W")
    state_bytes = size * 8

    def gradient(checkpoint):
        h, _ = sg.scan(lambda h, W: T.tanh(T.dot(h, W)), outputs_info=[h0], non_sequences=[W], n_steps=T_,
                       checkpoint=checkpoint)
        return sg.function([h0, W], sg.grad(h[-1].sum(), [W, h0]))
    rng = np.random.default_rng(0)
    vals = (rng.normal(size=size), rng.normal(size=(size, size)) / np.sqrt(size))
    peak = _peak(gradient(k), *vals)
    assert peak < 8 * (T_ // k + k) * state_bytes + 4 * size * size * 8, peak  # O(T/k + k) states (+ W's gradient)
    assert peak < _peak(gradient(None), *vals) / 5


def test_a_while_loop_that_stops_early_allocates_for_the_steps_run():
    v, _ = sg.scan(lambda v: (v + 1.0, sg.until(v[0] >= 9.0)), outputs_info=[T.zeros((1000,))], n_steps=10 ** 6)
    f = sg.function([], v)
    assert f().shape == (10, 1000)
    assert _peak(f) < 10 * 32 * 1000 * 8  # traces start at 16 rows: never n_steps x state


# --- OpenCL: the loop stays on the device ------------------------------------------------------------

def test_opencl_loop_reads_nothing_back_per_step(backend):
    if backend != "opencl":
        pytest.skip("placement exists on OpenCL only")
    from symgraph.backends.opencl.runtime import TRANSFERS
    x, h0, W = T.fmatrix("x"), T.fvector("h0"), T.fmatrix("W")
    h, _ = sg.scan(lambda xt, h: T.tanh(T.dot(h, W) + xt), sequences=[x], outputs_info=[h0])
    f = sg.function([x, h0, W], h[-1], backend="opencl")
    counts = []
    for n in (3, 40):
        vals = (np.ones((n, 4), "float32"), np.zeros(4, "float32"), np.eye(4, dtype="float32") * 0.5)
        f(*vals)
        before = dict(TRANSFERS)
        f(*vals)
        counts.append({key: TRANSFERS[key] - before.get(key, 0) for key in ("to_host", "zero_copy_out", "to_device")})
    assert counts[0] == counts[1], counts  # the same transfers for 3 steps as for 40
    assert counts[0]["to_host"] + counts[0]["zero_copy_out"] == 1  # the result


# --- OpenCL while loops: the stop condition read every few steps ------------------------------------

def _doubling():
    x0, lim = T.fscalar("x0"), T.fscalar("lim")
    vals, _ = sg.scan(lambda v: (v * 2, sg.until(v * 2 > lim)), outputs_info=[x0], n_steps=T.lscalar("n"))
    return x0, lim, vals


@pytest.mark.parametrize("one_kernel", [False, True])
@pytest.mark.parametrize("stop", [0, 1, 6, 7, 8, 9, 15, 16, 23, 47, 48])
def test_opencl_while_loop_reads_its_condition_every_few_steps_and_ends_where_it_should(stop, one_kernel, monkeypatch):
    """A doubling loop stopping after step ``stop`` (around the windows of 8 pending steps, and the
    one-kernel loop's launches of 16, 32, ... steps), and with n_steps cutting it first: the same
    traces and final values as the numpy backend. Step by step, the stop flags are read about
    once per 8 steps; in one kernel, once per launch."""
    from symgraph.backends.opencl import loop_kernel
    from symgraph.backends.opencl.loops import SPECULATE
    from symgraph.backends.opencl.runtime import TRANSFERS
    assert SPECULATE >= 8 and loop_kernel.FIRST_CHUNK == 16
    if not one_kernel:
        monkeypatch.setattr(loop_kernel, "MAX_WORK", 0)  # every call declined: step by step
    x0, lim, vals = _doubling()
    n = vals.owner.inputs[0]
    fs = {b: sg.function([x0, lim, n], [vals, vals[-1]], backend=b) for b in ("numpy", "opencl")}
    limit = np.float32(1.5 * 2.0 ** stop)  # step t computes 2 ** (t + 1): the first above it is step `stop`
    for steps in (1000, stop + 1, max(stop, 1), 0):
        want = fs["numpy"](np.float32(1), limit, steps) if steps else None
        before = dict(TRANSFERS)
        if steps == 0:
            with pytest.raises(IndexError):
                fs["opencl"](np.float32(1), limit, steps)
            continue
        got = fs["opencl"](np.float32(1), limit, steps)
        reads = TRANSFERS["to_host"] - before.get("to_host", 0)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        ran = len(got[0])
        assert ran == min(stop + 1, steps)
        launches = next(k for k in range(1, 20) if 16 * (2 ** k - 1) >= ran)  # 16, 32, 64, ... steps
        assert reads <= 2 + (launches if one_kernel else (ran + 7) // 8), reads  # the results, then the flags
    built = any("for (long t = start; t < end; t++)" in v for k, v in fs["opencl"].kernels.items())
    assert built == one_kernel


def test_a_step_past_the_stop_that_would_fail_is_not_run_as_an_error(backend):
    """Step i reads data[i]; the loop stops at the last row. Speculative steps past it index out
    of bounds on OpenCL and are discarded; a failure before the stop is still an error."""
    data, stop_at = T.fvector("data"), T.lscalar("stop_at")

    def step(i, acc):
        return [i + 1, acc + data[i]], sg.until(T.ge(i + 1, stop_at))
    (idx, acc), _ = sg.scan(step, outputs_info=[T.constant(np.int64(0)), T.constant(np.float32(0))],
                            n_steps=10**6)
    f = sg.function([data, stop_at], acc[-1], backend=backend)
    values = np.arange(1, 6, dtype="float32")
    assert f(values, 5) == 15 and f(values, 2) == 3 and f(values, 1) == 1
    with pytest.raises(IndexError):
        f(values, 7)  # the plain loop fails at step 5 too


def test_opencl_lays_out_a_strided_loop_constant_once(backend):
    """The BPTT loop reads W.T (a transposed view) at every step: on OpenCL it is copied to a
    contiguous buffer once before the loop (the strided matmul path was ~40x slower on pocl); the
    gradients equal the numpy backend's."""
    x, h0, W = T.ftensor3("x"), T.fmatrix("h0"), T.fmatrix("W")
    h, _ = sg.scan(lambda xt, h: T.tanh(T.dot(h, W) + xt), sequences=[x], outputs_info=[h0])
    grads = sg.grad((h ** 2).sum(), [W, h0])
    f = sg.function([x, h0, W], grads, backend=backend)
    rng = np.random.default_rng(3)
    vals = [rng.normal(size=(5, 2, 3)).astype("float32"), rng.normal(size=(2, 3)).astype("float32"),
            (rng.normal(size=(3, 3)) * 0.5).astype("float32")]
    want = sg.function([x, h0, W], grads, backend="numpy")(*vals)
    for a, b in zip(f(*vals), want):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    if backend == "opencl":
        loop = f.source.index("for _t")
        assert "_contiguous(" in f.source[:f.source.index("for _t", loop + 1)]


def test_vectorised_elementwise_work_aligns_a_per_step_scalar_with_the_step_axis():
    """A product of sequence-only elementwise work computed before the loop: a per-step scalar t
    (a sequence of shape (n,)) times a vector of the step's own shape must pair each step with its
    whole row, as (n, 1) * (1, k). Right-aligned as it stood, (n,) * (1, k) failed to compile, or,
    with lengths only the run knows and n == k, paired steps with elements: wrong numbers."""
    c0, ts, w = T.dvector("c0"), T.dvector("ts"), T.dmatrix("w")
    static, _ = sg.scan(lambda t, c, w: c + T.dot(T.arange(5) * t, w), sequences=[T.arange(1, 7)],
                        outputs_info=[c0], non_sequences=[w])
    dynamic, _ = sg.scan(lambda t, c, w: c + T.dot(T.arange(w.shape[0]) * t, w), sequences=[ts],
                         outputs_info=[c0], non_sequences=[w])
    f = sg.function([c0, ts, w], [static[-1], dynamic[-1]])
    assert f.rewrite_report()["applied"].get("scan_vectorise", 0) == 2, f.rewrite_report()["applied"]
    wv = np.random.default_rng(0).normal(size=(5, 5))
    got_static, got_dynamic = f(np.zeros(5), np.arange(1.0, 6.0), wv)
    np.testing.assert_allclose(got_static, 21 * np.arange(5.0) @ wv)
    np.testing.assert_allclose(got_dynamic, 15 * np.arange(5.0) @ wv)  # 5 steps, 5 elements
