"""sg.grad and run-time broadcasting: a gradient is summed back over the axes an input's type
declares broadcastable (static length 1), as in Theano. An input that broadcast at run time along
an axis its type leaves of unknown length would get a gradient of the broadcast shape (a shared
(1, n) bias grew to the batch's shape with its update, silently); a function taking a gradient
through such a node raises instead (``BroadcastCheck``), on every backend, and leaves shared
variables as they were. Forward-only functions keep numpy's broadcasting."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import ShapeError
from tests.conftest import NO_OPENCL

BACKENDS = ["numpy", "dask"] + ([] if NO_OPENCL else ["opencl"])


def _bias_step(backend: str, shape: tuple | None = None):
    b = sg.shared(np.zeros((1, 3), "f"), "b", shape=shape)
    x = T.fmatrix("x")
    loss = T.sum((x + b) ** 2)
    return b, sg.function([x], loss, updates=[(b, b - 0.1 * sg.grad(loss, b))], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_undeclared_broadcast_raises_and_leaves_the_bias_as_it_was(backend):
    b, step = _bias_step(backend)
    with pytest.raises(ShapeError, match=r"input 1 \(shape \[1, 3\]\) of add broadcast at run time along its axis 0") \
            as caught:
        step(np.ones((4, 3), "f"))
    assert "loss = T.sum((x + b) ** 2)" in str(caught.value)  # the line that built the node
    np.testing.assert_array_equal(b.get_value(), np.zeros((1, 3), "f"))
    step(np.ones((1, 3), "f"))  # no broadcast: the same function trains
    np.testing.assert_allclose(b.get_value(), np.full((1, 3), -0.2, "f"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_declared_broadcast_gets_the_summed_gradient(backend):
    b, step = _bias_step(backend, shape=(1, None))
    step(np.ones((4, 3), "f"))
    np.testing.assert_allclose(b.get_value(), np.full((1, 3), -0.8, "f"))  # 0.1 * sum over 4 rows of 2 * 1


def test_forward_only_functions_keep_numpy_broadcasting():
    x, y = T.fmatrix("x"), T.fmatrix("y")
    f = sg.function([x, y], x * y)
    np.testing.assert_array_equal(f(np.ones((4, 3), "f"), np.full((1, 3), 2, "f")), np.full((4, 3), 2, "f"))
    assert "BroadcastCheck" not in str(f.source)


def test_no_check_where_the_types_rule_out_a_run_time_broadcast():
    x, v = T.fmatrix("x"), T.fvector("v")
    w = sg.shared(np.ones((3, 3), "f"), shape=(3, 3))
    c = sg.shared(np.ones((1, 3), "f"), shape=(1, 3))
    for cost in (T.sum(T.tanh(x) * 2.0), T.sum(T.dot(x, w) + c)):
        f = sg.function([x], sg.grad(cost, x))
        assert "BroadcastCheck" not in str(f.source), cost


_AXIS = st.sampled_from(["same", "declared", "undeclared"])


@settings(deadline=None, max_examples=25)
@given(lengths=st.lists(st.integers(2, 4), min_size=1, max_size=3), kinds=st.lists(_AXIS, min_size=3, max_size=3),
       backend=st.sampled_from(BACKENDS))
def test_gradients_of_broadcast_products_against_numpy(lengths, kinds, backend):
    """x * y with y's axes each either of x's length, length 1 declared, or length 1 declared of
    unknown length: the gradients are numpy's sums over the broadcast axes, or the call raises
    ShapeError exactly when an undeclared axis broadcast."""
    kinds = kinds[:len(lengths)]
    yshape = tuple(n if k == "same" else 1 for n, k in zip(lengths, kinds))
    x = T.tensor("float64", (None,) * len(lengths), "x")
    y = T.tensor("float64", tuple(1 if k == "declared" else None for k in kinds), "y")
    cost = T.sum(T.sin(x * y))
    f = sg.function([x, y], sg.grad(cost, [x, y]), backend=backend)
    rng = np.random.default_rng(len(lengths))
    xv, yv = rng.normal(size=tuple(lengths)), rng.normal(size=yshape)
    if "undeclared" in kinds:
        with pytest.raises(ShapeError, match="broadcast at run time"):
            f(xv, yv)
        return
    gx, gy = f(xv, yv)
    d = np.cos(xv * yv)
    np.testing.assert_allclose(gx, d * yv, rtol=1e-10)
    axes = tuple(a for a, k in enumerate(kinds) if k != "same")
    np.testing.assert_allclose(gy, (d * xv).sum(axis=axes, keepdims=True), rtol=1e-10)


@pytest.mark.skipif(NO_OPENCL is not None, reason=str(NO_OPENCL))
def test_the_one_kernel_loop_checks_a_hoisted_shape_before_it_launches():
    """A training loop in one call (sg.scan_updates) whose check reads a shape hoisted out of the
    body (an argument's): checked on the host before the launch; the loop still runs as one kernel."""
    w = sg.shared(np.zeros((1, 3), "f"), "w")
    x = T.fmatrix("x")
    loss = T.sum((x - w) ** 2)
    losses, final = sg.scan_updates(sg.updates.sgd(loss, [w], 0.1), n_steps=5, outputs=[loss])
    f = sg.function([x], losses[0], updates=final, backend="opencl", placement="device")
    with pytest.raises(ShapeError, match="broadcast at run time"):
        f(np.ones((4, 3), "f"))
    np.testing.assert_array_equal(w.get_value(), np.zeros((1, 3), "f"))
    out = f(np.ones((1, 3), "f"))
    assert out.shape == (5,) and out[-1] < out[0]
    assert any(k.startswith("loop") and "for (long t = start" in v for k, v in f.kernels.items())


def test_a_loop_bodys_gradient_is_built_without_checks():
    """Inside a scan body a check would read the shapes of forward intermediates, which the reverse
    loop would then recompute (W7: two products of the whole sequence more per call); the body's
    gradient has none (its carries' shapes are checked every step instead)."""
    from symgraph.scan.op import Scan
    x, h0 = T.ftensor3("x"), T.fmatrix("h0")
    U, W = sg.shared(np.ones((4, 5), "f")), sg.shared(np.ones((5, 5), "f"))
    b = sg.shared(np.zeros(5, "f"))
    hs, _ = sg.scan(lambda x_t, h: T.tanh(T.dot(x_t, U) + T.dot(h, W) + b), sequences=[x], outputs_info=[h0])
    f = sg.function([x, h0], sg.grad(T.sum(hs), [U, W, b]))
    scans = [n for n in f.graph.apply_nodes if isinstance(n.op, Scan)]
    assert len(scans) == 2
    for n in scans:
        assert not [m for m in n.op.body.nodes if type(m.op).__name__ == "BroadcastCheck"]
    assert len([n for n in f.graph.apply_nodes if type(n.op).__name__ == "MatMul"]) == 1  # x @ U, once


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "dask"])  # dask runs a scan as one host task
@pytest.mark.parametrize("checkpoint", [None, 2])
def test_a_loop_body_broadcasting_a_non_sequence_says_how_to_declare_it(backend, checkpoint):
    """A scan body that broadcasts a (1, 3) shared bias (type (None, None)) over a batch of 4: the
    reverse loop's accumulator for it would grow, and the error says why and what to declare, and
    leaves the bias untouched; declared (1, None), its gradient is the sum over steps and batch."""
    x = T.dtensor3("x")
    xv = np.random.default_rng(0).normal(size=(5, 4, 3))

    def loss_of(b):
        hs, _ = sg.scan(lambda xt, h: T.tanh(xt + h + b), sequences=[x], outputs_info=[T.zeros((4, 3))],
                        checkpoint=checkpoint)
        return T.sum(hs ** 2)
    b = sg.shared(np.full((1, 3), 0.1), "b")
    f = sg.function([x], loss_of(b), updates=[(b, b - 0.1 * sg.grad(loss_of(b), b))], backend=backend)
    with pytest.raises(ShapeError, match=r"gradient's reverse loop.*declare the axis broadcastable"):
        f(xv)
    np.testing.assert_array_equal(b.get_value(), np.full((1, 3), 0.1))
    row = sg.shared(np.full((1, 3), 0.1), "row", shape=(1, None))
    g = sg.function([x], sg.grad(loss_of(row), row), backend=backend)(xv)
    eps, base = 1e-6, np.full((1, 3), 0.1)
    num = []
    for j in range(3):
        bumped = base.copy()
        bumped[0, j] += eps
        row.set_value(bumped)
        up = sg.function([x], loss_of(row), backend="numpy")(xv)
        bumped[0, j] -= 2 * eps
        row.set_value(bumped)
        num.append((up - sg.function([x], loss_of(row), backend="numpy")(xv)) / (2 * eps))
    assert g.shape == (1, 3)
    np.testing.assert_allclose(g[0], num, rtol=1e-5)
