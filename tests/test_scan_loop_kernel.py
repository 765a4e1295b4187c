"""The OpenCL one-kernel loop (issue 15, build item 6; backends/opencl/loop_kernel.py): a scan whose
body is elementwise, reduction and small-product work runs every step in one kernel launch. Each
test checks that the one-kernel path was taken (its specialised kernel is in ``f.kernels``) or
declined, and that the results agree with the numpy backend and an independent numpy loop. The
kernel runs in a work-group of one item on CPU devices (loop nests); ``local`` 4 runs the
work-group form (steps spread over work-items, barriers between them) that GPUs use."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import NO_OPENCL
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.opencl import loop_kernel, loop_nest
from symgraph.compile.placement import HostPlaced

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=NO_OPENCL or "")
if NO_OPENCL is None:
    from tests.test_placement import calibrated  # noqa: F401  (the fixture: a fixed calibration)
LOCALS = [1, 4]


def _loop_sources(f) -> dict[str, str]:
    """The specialised loop kernels of ``f`` (built at calls: ``loop<k>_<name>_<hash>``)."""
    return {k: v for k, v in f.kernels.items() if k.startswith("loop") and "for (long t = start; " in v}


def _both(inputs, outputs, args, updates=None, local=1):
    """The OpenCL function (with the loop kernel's work-group of ``local`` items) and the numpy
    one on the same graph, and their results on ``args``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop_kernel, "CPU_LOCAL", local)
        f = sg.function(inputs, outputs, backend="opencl", updates=updates)
    g = sg.function(inputs, outputs, backend="numpy", updates=updates)
    return f, f(*args), g(*args)


@pytest.mark.parametrize("local", LOCALS)
@settings(deadline=None, max_examples=6)
@given(n=st.integers(0, 12), backwards=st.booleans())
def test_cumulative_sum(local, n, backwards):
    x = T.fvector("x")
    out, _ = sg.scan(lambda xt, c: c + xt, sequences=[x], outputs_info=[T.zeros_like(x[0])], go_backwards=backwards)
    xv = np.arange(1, n + 1, dtype=np.float32)
    f, got, want = _both([x], out, [xv], local=local)
    ref = np.cumsum(xv[::-1] if backwards else xv)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len(_loop_sources(f)) == 1


def _rnn_reference(xv, h0, U, W, b):
    h, hs = h0, []
    for xt in xv:
        h = np.tanh(xt @ U + h @ W + b)
        hs.append(h)
    return np.stack(hs)


@pytest.mark.parametrize("local", LOCALS)
def test_vanilla_rnn(local):
    rng = np.random.default_rng(0)
    xv = rng.normal(size=(7, 3, 4)).astype(np.float32)
    h0, U, W, b = (rng.normal(size=s).astype(np.float32) for s in [(3, 5), (4, 5), (5, 5), (5,)])
    x, h, u, w, bb = T.ftensor3("x"), T.fmatrix("h"), T.fmatrix("U"), T.fmatrix("W"), T.fvector("b")
    hs, _ = sg.scan(lambda xt, hp, u, w, bb: T.tanh(T.dot(xt, u) + T.dot(hp, w) + bb), sequences=[x], outputs_info=[h],
                    non_sequences=[u, w, bb])
    f, got, want = _both([x, h, u, w, bb], hs, [xv, h0, U, W, b], local=local)
    np.testing.assert_allclose(got, _rnn_reference(xv, h0, U, W, b), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    (src,) = _loop_sources(f).values()
    assert "tanh" in src


@pytest.mark.parametrize("local", LOCALS)
@settings(deadline=None, max_examples=5)
@given(rows=st.integers(1, 9), cols=st.integers(1, 40), steps=st.integers(1, 6))
def test_reductions_in_the_body(local, rows, cols, steps):
    """Column sums, a full sum and a max in the body; stacked outputs of two shapes."""
    x = T.ftensor3("x")

    def step(xt, c):
        return [c + xt.sum(axis=0) * 2, xt.max(), (xt * xt).sum(axis=1)]
    (cs, mx, rs), _ = sg.scan(step, sequences=[x], outputs_info=[T.zeros((cols,), "float32"), None, None])
    xv = np.random.default_rng(rows * 100 + cols).normal(size=(steps, rows, cols)).astype(np.float32)
    f, got, want = _both([x], [cs, mx, rs], [xv], local=local)
    refs = [np.cumsum(xv.sum(axis=1) * 2, axis=0), xv.max(axis=(1, 2)), (xv * xv).sum(axis=2)]
    for g, w, r in zip(got, want, refs):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    assert len(_loop_sources(f)) == 1


@settings(deadline=None, max_examples=6)
@given(rows=st.integers(1, 24), cols=st.integers(1, 20), steps=st.integers(1, 4))
def test_products_and_broadcasts_in_loops_marked_for_the_vectoriser(rows, cols, steps):
    """On CPU devices the loop nests mark the loops whose iterations touch disjoint memory
    (loop_nest.INDEPENDENT: elementwise work, products' and column sums' outputs innermost):
    products in both forms, a column sum and broadcasting elementwise work, with length-1 axes
    and odd sizes, agree with numpy, and the build says nothing (no warning reaches the user)."""
    x, w = T.ftensor3("x"), T.fmatrix("w")

    def step(xt, c, w):
        h = T.relu(T.dot(xt, w) + c)
        g = (h > 0) * xt
        return [c + 0.1 * g.sum(axis=0), T.dot(h.T, g), T.dot(xt, c)]
    (cs, prod, mv), _ = sg.scan(step, sequences=[x], outputs_info=[T.zeros((cols,), "float32"), None, None],
                                non_sequences=[w])
    rng = np.random.default_rng(rows * 100 + cols)
    xv = rng.normal(size=(steps, rows, cols)).astype(np.float32)
    wv = rng.normal(size=(cols, cols)).astype(np.float32)
    with warnings.catch_warnings():  # the OpenCL build and run only: some BLAS builds raise the
        warnings.simplefilter("error")  # floating-point invalid flag on finite float32 products
        f = sg.function([x, w], [cs, prod, mv], backend="opencl")
        got = f(xv, wv)
    want = sg.function([x, w], [cs, prod, mv], backend="numpy")(xv, wv)
    c, refs = np.zeros(cols, np.float32), ([], [], [])
    for xt in xv:
        h = np.maximum(xt @ wv + c, 0)
        g = (h > 0) * xt
        refs[1].append(h.T @ g)
        refs[2].append(xt @ c)
        c = c + 0.1 * g.sum(axis=0)
        refs[0].append(c)
    for g_, w_, r in zip(got, want, refs):
        np.testing.assert_allclose(g_, np.stack(r), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(g_, w_, rtol=1e-4, atol=1e-4)
    (src,) = _loop_sources(f).values()
    assert (loop_nest.INDEPENDENT in src) == (rows * cols > 1)


def _adam_problem(seed: int = 0):
    """W2's training loop, small: a 1-16-1 ReLU network on a noisy sine, Adam, 60 steps in one call."""
    rng = np.random.default_rng(seed)
    params = [sg.shared(rng.normal(0, 1, (1, 16)).astype(np.float32)), sg.shared(np.zeros(16, np.float32)),
              sg.shared(rng.normal(0, 0.35, (16, 1)).astype(np.float32)), sg.shared(np.zeros(1, np.float32))]
    x, y = T.fmatrix("x"), T.fmatrix("y")
    loss = T.mean((T.dot(T.relu(T.dot(x, params[0]) + params[1]), params[2]) + params[3] - y) ** 2)
    losses, final = sg.scan_updates(sg.updates.adam(loss, params, learning_rate=0.01), n_steps=60, outputs=[loss])
    return params, x, y, losses[0], final


@pytest.mark.parametrize("local", LOCALS)
def test_adam_training_loop_matches_numpy(monkeypatch, local):
    monkeypatch.setattr(loop_kernel, "CPU_LOCAL", local)
    xv = np.linspace(0, 2 * np.pi, 50, dtype=np.float32)[:, None]
    yv = (np.sin(xv) + np.random.default_rng(1).normal(0, 0.2, xv.shape)).astype(np.float32)
    results = {}
    for backend in ("opencl", "numpy"):
        params, x, y, losses, final = _adam_problem()
        f = sg.function([x, y], losses, updates=final, backend=backend)
        results[backend] = (f(xv, yv), [p.get_value() for p in params], f)
    (lo, po, f), (ln, pn, _) = results["opencl"], results["numpy"]
    assert lo[-1] < lo[0] / 2  # it trains
    np.testing.assert_allclose(lo, ln, rtol=1e-4, atol=1e-6)
    for a, b in zip(po, pn):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    (src,) = _loop_sources(f).values()
    assert "sqrt" in src  # Adam's update runs inside the kernel


@pytest.mark.parametrize("local", LOCALS)
@settings(deadline=None, max_examples=4)
@given(rows=st.integers(1, 6), classes=st.integers(1, 7), axis=st.sampled_from([0, 1]), seed=st.integers(0, 2**31))
def test_softmax_and_a_classifiers_training_loop(local, rows, classes, axis, seed):
    """softmax and log-softmax along either axis (as the op computes them: the maximum subtracted)
    in a carry's update, and a softmax classifier trained by SGD on minibatches of one-hot targets
    (log_softmax and its gradient), every step in the kernel, with numpy's numbers. Large logits
    check that the maximum is subtracted (exp(800) overflows)."""
    c0 = T.dmatrix("c0")
    out, _ = sg.scan(lambda c: T.nnet.softmax(c * 3.0, axis=axis) + T.nnet.log_softmax(c, axis=1 - axis) * 0.1,
                     outputs_info=[c0], n_steps=4)
    init = np.random.default_rng(seed).normal(size=(rows, classes)) * 300
    f, got, want = _both([c0], out, [init], local=local)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.isfinite(got).all() and _loop_sources(f)
    X, Y, w0 = T.dmatrix("X"), T.dmatrix("Y"), T.dmatrix("w0")

    def step(i, w, X, Y):
        xb, yb = X[i * 2:(i + 1) * 2], Y[i * 2:(i + 1) * 2]
        loss = -T.mean(T.sum(yb * T.nnet.log_softmax(T.dot(xb, w)), axis=1))
        return w - 0.5 * sg.grad(loss, w)
    ws, _ = sg.scan(step, sequences=[T.arange(X.shape[0] // 2)], outputs_info=[w0], non_sequences=[X, Y])
    rng = np.random.default_rng(seed)
    xv, labels = rng.normal(size=(4 * rows, 3)), rng.integers(0, classes, 4 * rows)
    args = [xv, np.eye(classes)[labels], np.zeros((3, classes))]
    f, got, want = _both([X, Y, w0], ws[-1], args, local=local)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    assert _loop_sources(f)


@pytest.mark.parametrize("local", LOCALS)
def test_a_classifier_with_integer_labels_trains_in_one_kernel(local):
    """categorical_crossentropy(softmax(.), labels) with integer labels (their one-hot rows: a range
    check, then a comparison with the classes) in a minibatch SGD loop runs every step in the kernel
    with numpy's numbers; a label out of range sends the call step by step, where OneHot raises,
    and the shared weights keep their value."""
    X, labels = T.dmatrix("X"), T.lvector("labels")
    w = sg.shared(np.zeros((3, 4)), "w")

    def step(i, w_, X, labels):
        xb, yb = X[i * 2:(i + 1) * 2], labels[i * 2:(i + 1) * 2]
        loss = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(xb, w_)), yb))
        return w_ - 0.5 * sg.grad(loss, w_)
    ws, _ = sg.scan(step, sequences=[T.arange(X.shape[0] // 2)], outputs_info=[w], non_sequences=[X, labels])
    rng = np.random.default_rng(5)
    xv, yv = rng.normal(size=(12, 3)), rng.integers(0, 4, 12)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop_kernel, "CPU_LOCAL", local)
        f = sg.function([X, labels], ws[-1], backend="opencl", updates=[(w, ws[-1])])
    g = sg.function([X, labels], ws[-1], backend="numpy")
    want = g(xv, yv)
    np.testing.assert_allclose(f(xv, yv), want, rtol=1e-12, atol=1e-14)
    (source,) = _loop_sources(f).values()
    assert "labels in range" in source
    np.testing.assert_allclose(w.get_value(), want, rtol=1e-12, atol=1e-14)
    bad = yv.copy()
    bad[7] = 4
    with pytest.raises(IndexError, match="class index 4 is out of range for 4 classes"):
        f(xv, bad)
    np.testing.assert_allclose(w.get_value(), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [0, 1])
def test_zero_and_one_step(n):
    x, h = T.fmatrix("x"), T.fvector("h")
    (hs, ys), _ = sg.scan(lambda xt, hp: [hp * 0.5 + xt, xt.sum()], sequences=[x], outputs_info=[h, None])
    last, _ = sg.scan(lambda xt, hp: hp * 0.5 + xt, sequences=[x], outputs_info=[h], return_updates=True)
    xv = np.ones((n, 3), np.float32)
    hv = np.arange(3, dtype=np.float32)
    f, got, want = _both([x, h], [hs, ys, last[-1] if n else h], [xv, hv])
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w)
    assert len(_loop_sources(f)) == 1 + n  # (the second loop's trace[-1] is h when no step runs)


def test_passthrough_carry_and_constant_output():
    """A carry returned unchanged, one that becomes another carry's old value, and a constant
    stacked output: copied into place by the kernel."""
    x, a, b = T.fvector("x"), T.fvector("a"), T.fvector("b")
    (ra, rb, rc), _ = sg.scan(lambda xt, pa, pb: [pa, pa + xt, T.constant(np.float32(3))], sequences=[x],
                              outputs_info=[a, b, None])
    args = [np.arange(4, dtype=np.float32), np.ones(2, np.float32), np.zeros(2, np.float32)]
    f, got, want = _both([x, a, b], [ra, rb, rc], args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w)
    assert len(_loop_sources(f)) == 1


def test_fibonacci_with_taps_runs_in_one_kernel():
    """Taps [-2, -1] build a window carry (its body slices it and concatenates the next window):
    views and a concatenation in the one kernel (tests/test_scan_loop_kernel_views.py)."""
    x0 = T.fvector("x0")
    fib, _ = sg.scan(lambda a, b: a + b, outputs_info=[{"initial": x0, "taps": [-2, -1]}], n_steps=8)
    f, got, want = _both([x0], fib, [np.array([1, 1], np.float32)])
    np.testing.assert_allclose(got, [2, 3, 5, 8, 13, 21, 34, 55])
    np.testing.assert_allclose(got, want)
    assert _loop_sources(f)


def test_unsupported_op_falls_back():
    x = T.fmatrix("x")
    out, _ = sg.scan(lambda xt, c: c + T.sort(xt), sequences=[x], outputs_info=[T.zeros_like(x[0])])
    xv = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    f, got, want = _both([x], out, [xv])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got, np.cumsum(np.sort(xv, axis=1), axis=0), rtol=1e-5)
    assert not _loop_sources(f)
    (summary,) = [v for k, v in f.kernels.items() if k.startswith("loop")]  # f.kernels says why
    assert summary.startswith("/* ONE-KERNEL LOOP: Scan{for} runs step by step: Sort") and "no one-kernel form" in summary


def test_too_big_declines_and_runs_step_by_step(monkeypatch):
    monkeypatch.setattr(loop_kernel, "MAX_WORK", 100)
    x = T.fmatrix("x")
    out, _ = sg.scan(lambda xt, c: c + xt * 2, sequences=[x], outputs_info=[T.zeros_like(x[0])])
    small, big = np.ones((3, 10), np.float32), np.ones((3, 200), np.float32)
    f = sg.function([x], out, backend="opencl")
    np.testing.assert_allclose(f(small), np.cumsum(small * 2, axis=0))
    np.testing.assert_allclose(f(big), np.cumsum(big * 2, axis=0))
    assert len(_loop_sources(f)) == 1  # the small shapes only
    summary = next(v for k, v in f.kernels.items() if k.startswith("loop") and k not in _loop_sources(f))
    assert "declined for input shapes" in summary and "element operations per step" in summary


def test_kernel_names_sanitise_the_scan_name():
    """A scan's name reaches the kernel name only as letters, digits and underscores."""
    x = T.fvector("x")
    out, _ = sg.scan(lambda xt, c: c + xt, sequences=[x], outputs_info=[T.zeros_like(x[0])],
                     name="evil */ #define x; void f(")
    f = sg.function([x], out, backend="opencl")
    f(np.ones(3, np.float32))
    for name, src in _loop_sources(f).items():
        assert name.replace("_", "").isalnum()
        assert "#define" not in src and "evil" not in src.split("__kernel")[0]


@pytest.mark.parametrize("local", LOCALS)
def test_integer_bool_and_float64_values(local):
    """An int64 counter, integer floor division and modulo (Python's semantics), a bool mask
    and a float64 carry in one body."""
    x = T.lvector("x")
    d = T.dvector("d")

    def step(xt, k, acc, m):
        mask = T.eq(xt % 3, 0)
        return [k + 1, acc + T.switch(mask, T.cast(xt // -2, "float64"), d), T.cast(mask, "int64") + m]
    (ks, accs, ms), _ = sg.scan(step, sequences=[x], outputs_info=[T.constant(np.int64(0)), T.zeros_like(d),
                                                                  T.zeros_like(x[:2])])
    xv, dv = np.arange(-5, 6, dtype=np.int64), np.array([0.5, -1.25])
    f, got, want = _both([x, d], [ks, accs, ms], [xv, dv], local=local)
    acc, m, ref_acc, ref_m = np.zeros(2), np.zeros(2, np.int64), [], []
    for v in xv:
        acc = acc + np.where(v % 3 == 0, float(v // -2), dv)
        m = m + int(v % 3 == 0)
        ref_acc.append(acc)
        ref_m.append(m)
    np.testing.assert_array_equal(got[0], np.arange(1, len(xv) + 1))
    np.testing.assert_allclose(got[1], ref_acc)
    np.testing.assert_array_equal(got[2], ref_m)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert len(_loop_sources(f)) == 1


def test_auto_placement_keeps_a_long_loop_on_the_device(calibrated):  # noqa: F811
    """Under 'auto' placement a loop of many steps runs as one kernel (nothing in its body is
    placed on the host), while a loop of a few steps keeps its body's small nodes on the host:
    one launch pays only over enough steps (the calibrated launch against numpy calls)."""
    x = T.fvector("x")
    long_loop, _ = sg.scan(lambda c: T.tanh(c * 0.5 + 1), outputs_info=[x], n_steps=500)
    short_loop, _ = sg.scan(lambda c: T.tanh(c * 0.5 + 1), outputs_info=[x], n_steps=2)
    xv = np.linspace(-1, 1, 5, dtype=np.float32)
    for out, steps, one_kernel in ((long_loop, 500, True), (short_loop, 2, False)):
        f = sg.function([x], out[-1], backend="opencl", placement="auto")
        want = xv
        for _ in range(steps):
            want = np.tanh(want * 0.5 + 1)
        np.testing.assert_allclose(f(xv), want, rtol=1e-5)
        graph = f._impl.variants[f._impl.signature({x: (5,)})].fgraph if hasattr(f._impl, "variants") else f.graph
        placed = [n for node in graph.apply_nodes for g in getattr(node.op, "inner_graphs", {}).values()
                  for n in g.nodes if isinstance(n.op, HostPlaced)]
        assert bool(_loop_sources(f)) == one_kernel
        assert bool(placed) != one_kernel
