"""Placement of heavy nodes on OpenCL devices that share host memory (issue 21,
backends/opencl/heavy_cost.py): products, convolutions (and their gradients) and poolings go to
the side the calibrated cost model finds cheaper; the numbers never change, a host-placed heavy
node makes no copy, and the decision is a function of the calibration cache."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.compile.placement import HostPlaced, concrete_shapes
from symgraph.graph.fgraph import FunctionGraph
from tests.conftest import NO_OPENCL
from tests.test_placement import FIXED

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=str(NO_OPENCL))

if NO_OPENCL is None:
    from symgraph.backends.opencl import heavy_cost as hc
    from symgraph.backends.opencl import calibration as calibration_module
    from symgraph.backends.opencl import placement as pl
    from symgraph.backends.opencl.runtime import TRANSFERS, get_runtime

# the kernels faster than BLAS and numpy's convolution at every size: a device that should keep them
KERNELS_WIN = {**FIXED, "gemm_us": 1.0, "gemm_gflops": 500.0, "conv_device_us": 1.0, "conv_device_gflops": 500.0}


@pytest.fixture
def calibrate(tmp_path, monkeypatch):
    """Write a calibration cache for this device holding the given fields (measuring is an error)."""
    rt = get_runtime()
    if not rt.zero_copy:
        pytest.skip("placement by cost needs a device that shares host memory")
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(calibration_module, "measure",
                        lambda rt, key: pytest.fail("measured instead of reading the cache"))

    def write(fields: dict) -> None:
        key = pl.device_key(rt)
        (tmp_path / "placement.json").write_text(json.dumps({key: {"device": key, "version": pl.CALIBRATION_VERSION,
                                                                   **fields}}))
        pl.forget()
    yield write
    pl.forget()


def _onhost(graph: FunctionGraph) -> list[str]:
    return sorted(type(n.op.op).__name__ for n in graph.apply_nodes if isinstance(n.op, HostPlaced))


def _conv_step(x, w, g):
    """A convolution, its bias-free epilogue, both gradients and a max-pool of the result."""
    y = T.relu(T.conv(x, w, padding=1))
    p = T.max_pool(y, (2, 2))
    cost = T.sum(p * g)
    return [p, *sg.grad(cost, [x, w])]


def _dense_step(x, w, g):
    """A product with its epilogue, a tensordot and both gradients."""
    h = T.tanh(T.dot(x, w) + 1)
    cost = T.sum(T.tensordot(h, g, axes=([0], [0])))
    return [h, *sg.grad(cost, [x, w])]


STEPS = {"conv": (_conv_step, (2, 3, 4, 4), (5, 3, 3, 3), (2, 5, 2, 2)),
         "dense": (_dense_step, (3, 4), (4, 5), (3, 2))}


@pytest.mark.parametrize("placement", ["host", "device", "auto"])
@pytest.mark.parametrize("name", sorted(STEPS))
def test_heavy_nodes_on_either_side_never_change_a_number(calibrate, name, placement):
    calibrate(FIXED)
    step, *shapes = STEPS[name]
    ins = [T.TensorType("float32", (None,) * len(s))(n) for n, s in zip("xwg", shapes)]
    want = sg.function(ins, step(*ins), backend="numpy")
    got = sg.function(ins, step(*ins), backend="opencl", placement=placement)
    if placement != "device":
        assert {"Conv"} <= set(_onhost(got.graph)) if name == "conv" else {"Dot"} <= set(_onhost(got.graph))

    @settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.tuples(*(hnp.arrays("float32", s, elements=st.floats(-2, 2, width=32)) for s in shapes)))
    def check(values):
        for a, b in zip(got(*values), want(*values)):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)
    check()


def test_a_host_placed_convolution_makes_no_copy(calibrate):
    calibrate({**FIXED, "launch_us": 200.0})  # the max-pool gradient's 32 numpy calls cost less than a launch
    x, w, g = T.ftensor4("x"), T.ftensor4("w"), T.ftensor4("g")
    f = sg.function([x, w, g], _conv_step(x, w, g), backend="opencl", placement="auto")
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(s).astype("f") for s in STEPS["conv"][1:]]
    for _ in range(3):  # the variant placed for these shapes is compiled by now
        f(*values)
    variant = f._impl.variants[f._impl.signature(dict(zip([x, w, g], (v.shape for v in values))))]
    assert {"Conv", "MaxPoolGrad", "Pool"} <= set(_onhost(variant.fgraph))
    before = dict(TRANSFERS)
    f(*values)
    assert dict(TRANSFERS) == before  # no copy, and not even a zero-copy wrap
    reasons = [text for name, text in f.kernels.items() if name.startswith("onhost") and "Conv" in name]
    assert reasons and all("calibrated" in text for text in reasons)


def test_the_heavy_decision_is_a_function_of_the_calibration(calibrate):
    x = sg.shared(np.ones((8, 3, 6, 6), "f"), "x")
    w = sg.shared(np.ones((4, 3, 3, 3), "f"), "w")
    a, b = sg.shared(np.ones((64, 32), "f"), "a"), sg.shared(np.ones((32, 16), "f"), "b")
    outs = [T.conv(x, w, padding=1), T.dot(a, b)]
    placed = {}
    for label, fields in (("host", FIXED), ("device", KERNELS_WIN)):
        calibrate(fields)
        graphs = [sg.function([], outs, backend="opencl", placement="auto").graph for _ in range(2)]
        assert _onhost(graphs[0]) == _onhost(graphs[1])  # the same cache: the same placement
        placed[label] = _onhost(graphs[0])
    assert placed == {"host": ["Conv", "Dot"], "device": []}


def test_the_cost_model_of_heavy_nodes():
    cal = pl.Calibration(device="d", **FIXED)
    a, b = T.TensorType("float32", (None, None))("a"), T.TensorType("float32", (None, None))("b")
    node = T.dot(a, b).owner
    shapes = {a: (64, 32), b: (32, 16), node.outputs[0]: (64, 16)}
    flops = 2 * 64 * 32 * 16
    assert hc.flops(node, shapes) == flops
    host, device = hc.costs(node, shapes, cal)
    assert host == pytest.approx(2.0 + flops / 50e3) and device == pytest.approx(150.0 + flops / 2e3)
    assert pl.host_side(node, shapes, cal) and pl.host_side(node, {}, cal)  # unknown size: the faster rate
    assert not pl.host_side(node, {}, pl.Calibration(device="d", **KERNELS_WIN))
    assert pl.saving_us(node, shapes, cal) == pytest.approx(device - host)
    x, w = T.ftensor4("x"), T.ftensor4("w")
    conv = T.conv(x, w, stride=1, padding=1).owner
    cshapes = {x: (2, 3, 8, 8), w: (4, 3, 3, 3), conv.outputs[0]: (2, 4, 8, 8)}
    assert hc.flops(conv, cshapes) == 2 * (2 * 4 * 8 * 8) * (3 * 9)
    pool = T.max_pool(x, (2, 2)).owner
    pshapes = {x: (2, 3, 8, 8), pool.outputs[0]: (2, 3, 4, 4)}
    elements = 2 * 3 * 4 * 4
    assert hc.costs(pool, pshapes, cal) == pytest.approx((4 * (1.0 + elements * 1e-3), 20.0 + 4 * elements * 0.1e-3))
    assert hc.on_host(pool, {}, cal) is None  # a pooling of unknown size waits for its size


def test_the_rates_are_measured_without_counting_transfers():
    rt = get_runtime()
    before = dict(TRANSFERS)
    rates = hc.measure_rates(rt, rounds=1, passes=1)
    assert dict(TRANSFERS) == before
    assert set(rates) == set(hc.RATE_FIELDS)
    assert all(math.isfinite(v) and v >= 0 for v in rates.values())
    assert all(rates[k] > 0 for k in hc.RATE_FIELDS if k.endswith("gflops"))


def test_sizes_computed_from_known_shapes_are_known_to_placement():
    """A slice with computed bounds and an Alloc of computed lengths (what a scan's gradient
    loop reads) have concrete sizes once the inputs' shapes are known; a length read from a
    value stays unknown."""
    x, k = T.fmatrix("x"), T.lscalar("k")
    n = x.shape[0] - 1
    rev = x[:n][::-(n // n)]  # a step computed from lengths
    zeros = T.zeros((x.shape[1], n), "float32")
    taken = x[:k]
    batches = T.arange(x.shape[0] // 2)  # a minibatch loop's sequence: its length divides in floats
    graph = FunctionGraph([x, k], [rev, zeros, taken, batches])
    shapes = concrete_shapes(graph.toposort(), {x: (5, 3), k: ()})
    assert shapes[graph.outputs[0]] == (4, 3) and shapes[graph.outputs[1]] == (3, 4)
    assert graph.outputs[2] not in shapes
    assert shapes[graph.outputs[3]] == (2,)


def _dense_body(w):
    return lambda c: T.tanh(T.dot(c, w) + 1)


def test_a_loop_whose_products_blas_does_faster_is_not_one_kernel(calibrate):
    """Under 'auto' a long loop runs as one kernel when its launch pays (the step count against
    numpy calls), unless the products in its body cost more as kernel work than in BLAS (the
    calibrated rates, at the sizes known): then its body is placed by cost, the products on the
    host."""
    calibrate(FIXED)
    for size, one_kernel in ((64, False), (2, True)):
        xv = np.linspace(-1, 1, 4 * size, dtype="f").reshape(4, size)
        x, w = sg.shared(xv, "x"), sg.shared(np.full((size, size), 0.01, "f"), "w")
        out, _ = sg.scan(_dense_body(w), outputs_info=[x], n_steps=200)
        f = sg.function([], out[-1], backend="opencl", placement="auto")
        want = xv
        for _ in range(200):
            want = np.tanh(want @ w.get_value() + 1)
        np.testing.assert_allclose(f(), want, rtol=1e-4, atol=1e-5)
        loops = [k for k, v in f.kernels.items() if k.startswith("loop") and "for (long t = start; " in v]
        assert bool(loops) == one_kernel, (size, list(f.kernels))


def test_a_minibatch_loop_over_arange_runs_as_one_kernel_under_auto(calibrate):
    """The step count of a loop over T.arange(X.shape[0] // B) is known to placement once X's shape
    is (a length computed through floats), so the loop runs as one kernel, every minibatch window
    read by the kernel, where it ran step by step with its body on the host."""
    calibrate(FIXED)
    X, w0 = T.dmatrix("X"), T.dvector("w0")
    out, _ = sg.scan(lambda i, w, X: w * 0.9 + X[i * 4:(i + 1) * 4].sum(axis=0) * 0.01,
                     sequences=[T.arange(X.shape[0] // 4)], outputs_info=[w0], non_sequences=[X])
    f = sg.function([X, w0], out[-1], backend="opencl", placement="auto")
    xv = np.arange(600.0).reshape(200, 3)
    np.testing.assert_allclose(f(xv, np.zeros(3)), sg.function([X, w0], out[-1], backend="numpy")(xv, np.zeros(3)))
    assert [k for k, v in f.kernels.items() if k.startswith("loop") and "sg_start(" in v], list(f.kernels)


def test_the_rates_are_measured_only_for_graphs_with_products(calibrate, monkeypatch):
    """A first OpenCL function without products or convolutions measures no rates (about 2 s of
    kernel builds and timing on pocl); the first with a product measures them once, into the cache."""
    elementwise_only = {k: v for k, v in FIXED.items() if k not in hc.RATE_FIELDS}
    calibrate(elementwise_only)
    measured = []
    monkeypatch.setattr(hc, "measure_rates", lambda rt: measured.append(1) or {k: FIXED[k] for k in hc.RATE_FIELDS})
    x = T.fmatrix("x")
    sg.function([x], T.tanh(x) * 2, backend="opencl", placement="auto")
    assert measured == [] and not pl.calibration(get_runtime()).has_rates
    w = T.fmatrix("w")
    sg.function([x, w], T.dot(x, w) + 1, backend="opencl", placement="auto")
    sg.function([x, w], T.dot(w, x), backend="opencl", placement="auto")
    assert measured == [1] and pl.calibration(get_runtime()).has_rates
    pl.forget()
    assert pl.calibration(get_runtime()).has_rates  # read back from the cache file
    with pytest.raises(RuntimeError, match="rates"):
        hc.rate_side(T.dot(x, w).owner, pl.Calibration(device="d", **elementwise_only))
