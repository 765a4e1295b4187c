"""A convolution followed by elementwise work that alone reads its result (a bias add and an
activation) fuses into an ``Epilogue`` of the Conv (issue 17, build item 4), on both backends:
the fused function is checked against the same graph compiled without fusion and against an
independent reference (scipy correlate loops plus numpy), on hypothesis data; a convolution
whose result is also read elsewhere must not fuse."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.numpy.lower_fused import in_place_safe
from symgraph.backends.opencl.runtime import TRANSFERS
from symgraph.rewrite import Mode
from symgraph.tensor.convolution import Conv
from symgraph.tensor.fused import Epilogue
from conv_reference import ref_conv

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TOL = {"float32": {"rtol": 2e-4, "atol": 2e-4}, "float64": {"rtol": 1e-10, "atol": 1e-10}}
ACTS = {"relu": (T.relu, lambda v: np.maximum(v, 0)), "tanh": (T.tanh, np.tanh)}


def conv_epilogues(f) -> list:
    return [n for n in f.graph.apply_nodes if isinstance(n.op, Epilogue) and isinstance(n.op.core, Conv)]


def reference(x, w, b, stride, pad, act):
    y = ref_conv(x, w, (stride, stride), [(pad, pad)] * 2, (1, 1), 1)
    return ACTS[act][1](y + b)


@fixture_ok
@given(n=st.integers(1, 3), c=st.integers(1, 3), k=st.integers(1, 4), h=st.integers(3, 7), w=st.integers(3, 7),
       stride=st.sampled_from([1, 2]), pad=st.sampled_from([0, 1]), act=st.sampled_from(sorted(ACTS)),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**16))
def test_conv_bias_activation_fuses_and_agrees(backend, n, c, k, h, w, stride, pad, act, dtype, seed):
    """A bias shaped (1, K, 1, 1), broadcast over the conv result, then relu or tanh."""
    rng = np.random.default_rng(seed)
    x, f_ = T.tensor(dtype, (None,) * 4, "x"), T.tensor(dtype, (None,) * 4, "w")
    b = T.tensor(dtype, (1, None, 1, 1), "b")
    out = ACTS[act][0](T.conv(x, f_, stride=stride, padding=pad) + b)
    fused = sg.function([x, f_, b], out, backend=backend)
    plain = sg.function([x, f_, b], out, backend=backend, mode=Mode().excluding("fusion"))
    assert len(conv_epilogues(fused)) == 1 and not conv_epilogues(plain)
    if backend == "opencl":
        assert any(name.startswith("conv_") for name in fused.kernels)
    xv, wv, bv = (rng.normal(size=s).astype(dtype) for s in [(n, c, h, w), (k, c, 3, 3), (1, k, 1, 1)])
    got = fused(xv, wv, bv)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, plain(xv, wv, bv), **TOL[dtype])
    np.testing.assert_allclose(got, reference(xv, wv, bv, stride, pad, act), **TOL[dtype])


def test_conv_result_read_elsewhere_does_not_fuse(backend):
    x, w, b = T.tensor4("x"), T.tensor4("w"), T.tensor("float64", (1, None, 1, 1), "b")
    y = T.conv(x, w, padding=1)
    f = sg.function([x, w, b], [T.relu(y + b), y], backend=backend)
    assert not conv_epilogues(f)
    assert any(isinstance(n.op, Conv) for n in f.graph.apply_nodes)
    rng = np.random.default_rng(3)
    xv, wv, bv = rng.normal(size=(2, 3, 5, 5)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=(1, 4, 1, 1))
    act, conv = f(xv, wv, bv)
    ref = ref_conv(xv, wv, (1, 1), [(1, 1)] * 2, (1, 1), 1)
    np.testing.assert_allclose(conv, ref, **TOL["float64"])
    np.testing.assert_allclose(act, np.maximum(ref + bv, 0), **TOL["float64"])


def test_program_reading_the_result_late_is_not_written_in_place(backend):
    """relu(y + b) * y + y reads y after a step whose buffer could be the output's: the numpy
    lowering must not overwrite y before its last read (and the result must still agree)."""
    x, w, b = T.tensor4("x"), T.tensor4("w"), T.tensor("float64", (1, None, 1, 1), "b")
    y = T.conv(x, w, padding=1)
    out = T.tanh(y + b) * y + y
    f = sg.function([x, w, b], out, backend=backend)
    g = sg.function([x, w, b], out, backend=backend, mode=Mode().excluding("fusion"))
    assert len(conv_epilogues(f)) == 1
    rng = np.random.default_rng(5)
    vals = rng.normal(size=(2, 3, 6, 5)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=(1, 4, 1, 1))
    np.testing.assert_allclose(f(*vals), g(*vals), **TOL["float64"])


def test_bias_and_relu_run_in_place_on_the_numpy_backend():
    x, w, b = T.tensor4("x"), T.tensor4("w"), T.tensor("float64", (1, None, 1, 1), "b")
    f = sg.function([x, w, b], T.relu(T.conv(x, w) + b))
    (node,) = conv_epilogues(f)
    prog_node = node.op.parts(node.inputs)[1]
    assert in_place_safe(node.op.program.plan(tuple(v.type for v in prog_node.inputs)), node.op.slot)
    assert "conv_epilogue(" in f.source


def test_gradient_through_the_fused_forward(backend):
    """The training step of a conv layer: forward fused, gradients by the unfused graph's values."""
    x, w, b = T.tensor4("x"), T.tensor4("w"), T.tensor("float64", (1, None, 1, 1), "b")
    cost = T.tanh(T.conv(x, w, padding=1) + b).sum()
    outs = [cost] + sg.grad(cost, [x, w, b])
    f = sg.function([x, w, b], outs, backend=backend)
    g = sg.function([x, w, b], outs, backend=backend, mode=Mode().excluding("fusion"))
    rng = np.random.default_rng(7)
    vals = rng.normal(size=(2, 2, 5, 5)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(1, 3, 1, 1))
    for u, v in zip(f(*vals), g(*vals)):
        np.testing.assert_allclose(u, v, **TOL["float64"])


def test_training_step_keeps_the_relu_mask_as_a_second_output(backend):
    """relu(conv + b) with its gradient: the epilogue computes the activation and the mask the
    backward pass reads (two outputs); the activation is written in place of the conv result."""
    x, k, b = T.tensor4("x"), T.tensor4("k"), T.tensor("float64", (1, None, 1, 1), "b")
    h = T.relu(T.conv(x, k, padding=1) + b)
    outs = [h] + sg.grad((h * h).sum(), [x, k, b])
    f = sg.function([x, k, b], outs, backend=backend)
    g = sg.function([x, k, b], outs, backend=backend, mode=Mode().excluding("fusion"))
    (node,) = conv_epilogues(f)
    assert len(node.outputs) == 2
    rng = np.random.default_rng(11)
    vals = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=(1, 4, 1, 1))
    for u, v in zip(f(*vals), g(*vals)):
        np.testing.assert_allclose(u, v, **TOL["float64"])


def test_scalar_argument_in_the_epilogue(backend):
    """A scalar argument (kept on the host by the OpenCL backend) joins the epilogue by value:
    no upload, no transfer line (as in a matrix product's store, tests/test_opencl_matmul.py)."""
    x, w, b, s = T.tensor4("x"), T.tensor4("w"), T.tensor("float64", (1, None, 1, 1), "b"), T.dscalar("s")
    out = T.tanh(T.conv(x, w, padding=1) + b) * s
    f = sg.function([x, w, b, s], out, backend=backend)
    assert len(conv_epilogues(f)) == 1 and "# transfer" not in f.source
    rng = np.random.default_rng(13)
    xv, wv, bv = rng.normal(size=(2, 3, 5, 6)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=(1, 4, 1, 1))
    ref = np.tanh(ref_conv(xv, wv, (1, 1), [(1, 1)] * 2, (1, 1), 1) + bv) * 0.5
    before = dict(TRANSFERS)
    np.testing.assert_allclose(f(xv, wv, bv, 0.5), ref, **TOL["float64"])
    if backend == "opencl":
        assert sum(TRANSFERS[k] - before.get(k, 0) for k in ("to_device", "zero_copy_in")) == 3  # x, w, b; never s
