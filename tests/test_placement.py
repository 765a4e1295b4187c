"""Size-aware placement on OpenCL devices that share host memory (issue 21 item 2,
backends/opencl/placement.py): small nodes run as numpy code inside the schedule, as visible
``OnHost{...}`` nodes; large ones as kernels; never a changed number, never a copy for a
host-placed node; the calibration is cached and the placement a function of the cache."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.compile.placement import HostPlaced
from tests.conftest import NO_OPENCL

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=str(NO_OPENCL))

if NO_OPENCL is None:
    from symgraph.backends.opencl import calibration as calibration_module
    from symgraph.backends.opencl import placement as pl
    from symgraph.backends.opencl import size_placed
    from symgraph.backends.opencl.runtime import OPENS, TRANSFERS, get_runtime

# launch 20 us, numpy 1 us a call: below ~20,000 elements a one-step node runs on the host (a
# reduction alike, so that these tests place by size alone; test_reductions_have_their_own_costs
# has its own); BLAS and numpy's convolution faster than the kernels at every size (as measured on pocl)
FIXED = {"launch_us": 20.0, "device_ns": 0.1, "call_us": 1.0, "host_ns": 1.0,
         "reduce_device_ns": 0.1, "reduce_host_ns": 1.0,
         "blas_us": 2.0, "blas_gflops": 50.0, "gemm_us": 150.0, "gemm_gflops": 2.0,
         "conv_host_us": 60.0, "conv_host_gflops": 40.0, "conv_device_us": 500.0, "conv_device_gflops": 2.0}


@pytest.fixture
def calibrated(tmp_path, monkeypatch):
    """A calibration cache in a fresh folder holding FIXED for this device; measuring is an error."""
    rt = get_runtime()
    if not rt.zero_copy:
        pytest.skip("placement by size needs a device that shares host memory")
    key = pl.device_key(rt)
    (tmp_path / "placement.json").write_text(json.dumps({key: {"device": key, "version": pl.CALIBRATION_VERSION,
                                                               **FIXED}}))
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(calibration_module, "measure",
                        lambda rt, key: pytest.fail("measured instead of reading the cache"))
    pl.forget()
    yield rt
    pl.forget()


def _placed(f) -> list[str]:
    return [str(n.op) for n in f.graph.apply_nodes if isinstance(n.op, HostPlaced)]


def test_small_calls_run_on_the_host_large_ones_as_kernels_with_the_same_numbers(calibrated):
    x = T.fvector("x")
    f = sg.function([x], T.tanh(x) * 2 + 1, backend="opencl", placement="auto")
    small, large = np.linspace(-1, 1, 10, dtype="f"), np.linspace(-1, 1, 200_000, dtype="f")
    np.testing.assert_allclose(f(small), np.tanh(small) * 2 + 1, rtol=1e-6)  # pays back at once: compiled
    assert len(f._impl.variants) == 2
    small_variant = f._impl.variants[f._impl.signature({x: small.shape})]
    placed = [str(n.op) for n in small_variant.fgraph.apply_nodes if isinstance(n.op, HostPlaced)]
    assert placed and all(name.startswith("OnHost{") for name in placed) and not _placed(f)  # f.graph: compile time
    onhost = [k for k in f.kernels if k.startswith("onhost")]
    assert onhost and "ON HOST" in f.kernels[onhost[0]]
    for _ in range(2):
        np.testing.assert_allclose(f(large), np.tanh(large) * 2 + 1, rtol=1e-5, atol=1e-6)
    assert len(f._impl.variants) == 2 and any(not k.startswith("onhost") for k in f.kernels)
    assert f._impl.signature({x: large.shape}) == frozenset()  # large: the compile-time variant, all kernels
    f(small[:5])
    f(large[:100_000])
    assert len(f._impl.variants) == 2  # new shapes, same placements: no new variant
    assert "HostPlaced" in sg.printing.to_dot(small_variant.fgraph).source  # the compact view shows the decision


def test_the_variant_compiled_with_the_function_places_by_the_sizes_known_then(calibrated):
    x = T.fvector("x")
    f = sg.function([x], T.exp(x) + 1, backend="opencl", placement="auto")
    assert f.kernels and not [k for k in f.kernels if k.startswith("onhost")] and "_call_lock" in f.source
    for _ in range(2):
        np.testing.assert_allclose(f(np.zeros(4, "f")), np.full(4, 2.0))
    assert len(f._impl.variants) == 2 and [k for k in f.kernels if k.startswith("onhost")]
    w = sg.shared(np.ones((4, 4), "f"), "w")  # sizes known at compile time: placed in f.graph itself
    g = sg.function([], T.exp(w) + 1, backend="opencl", placement="auto")
    assert _placed(g) == ["OnHost{Composite{exp(i0) + 1.0}}"]
    assert "label=onhost1_Composite" in sg.printing.to_dot(g).source  # the compact view: the host step's group
    np.testing.assert_allclose(g(), np.exp(np.ones((4, 4))) + 1, rtol=1e-6)


def test_a_placement_that_does_not_pay_back_soon_is_compiled_when_asked_again(calibrated, monkeypatch):
    monkeypatch.setattr(size_placed, "PAYBACK_CALLS", 0)
    monkeypatch.setattr(size_placed, "BUILD_US", 0.0)
    x = T.fvector("x")
    f = sg.function([x], T.tanh(x) * 2 + 1, backend="opencl", placement="auto")
    xv = np.linspace(-1, 1, 10, dtype="f")
    np.testing.assert_allclose(f(xv), np.tanh(xv) * 2 + 1, rtol=1e-5, atol=1e-6)
    assert len(f._impl.variants) == 1  # the first call ran the compile-time variant
    np.testing.assert_allclose(f(xv), np.tanh(xv) * 2 + 1, rtol=1e-5, atol=1e-6)
    assert len(f._impl.variants) == 2


def test_a_first_call_that_would_build_a_kernel_is_placed_for_its_sizes_at_once(calibrated, monkeypatch):
    """Before the compile-time variant has run, its kernels are not built: a placement that moves a
    node to the host also saves that build (W4 cold: the sum of a 1000-element chain), so the first
    call compiles it at once, and no kernel is built for the node it moves."""
    monkeypatch.setattr(size_placed, "PAYBACK_CALLS", 0)
    x = T.fvector("x")
    f = sg.function([x], T.sum(T.tanh(x) * 2 + 1), backend="opencl", placement="auto")
    builds = OPENS["programs"]
    xv = np.linspace(-1, 1, 10, dtype="f")
    np.testing.assert_allclose(f(xv), np.sum(np.tanh(xv) * 2 + 1), rtol=1e-5)
    assert len(f._impl.variants) == 2 and OPENS["programs"] == builds  # placed on the host: nothing built
    big = np.linspace(-1, 1, 1 << 20, dtype="f")
    g = sg.function([x], T.sum(T.tanh(x) * 2 + 1), backend="opencl", placement="auto")
    np.testing.assert_allclose(g(big), np.sum(np.tanh(big.astype("d")) * 2 + 1), rtol=1e-4)
    g(big)  # a compile-time variant that ran has built its kernels: a later placement must pay back by calls
    np.testing.assert_allclose(g(xv), np.sum(np.tanh(xv) * 2 + 1), rtol=1e-5)
    assert len(g._impl.variants) == 1


def test_a_host_placed_node_makes_no_copy_and_keeps_no_device_scope(calibrated):
    x = T.fvector("x")
    f = sg.function([x], x + 1, backend="opencl", placement="auto")
    xv = np.ones(10, "f")
    f(xv)
    f(xv)
    before = dict(TRANSFERS)
    out = f(xv)
    assert dict(TRANSFERS) == before  # no copy, and not even a zero-copy wrap
    np.testing.assert_array_equal(out, xv + 1)
    small = f._impl.variants[f._impl.signature({x: xv.shape})]
    assert "_call_lock" not in small.source and "_end_of_call" not in small.source and "np.add" in small.source
    f.trust_input = True  # the same variants, without the argument checks
    np.testing.assert_array_equal(f(xv), xv + 1)
    np.testing.assert_array_equal(f(x=xv), xv + 1)
    assert "_filter_x" not in small.trusted_source and "np.add" in small.trusted_source
    with pytest.raises(sg.errors.InputError, match="takes 1 argument"):
        f(xv, xv)


def test_shared_variables_updated_on_the_host_cross_no_bus(calibrated):
    w = sg.shared(np.ones((3, 2), "f"), "w")
    x = T.fmatrix("x")
    loss = T.sum(T.dot(x, w) ** 2)
    f = sg.function([x], loss, updates=[(w, w - 0.1 * sg.grad(loss, w))], backend="opencl", placement="host")
    g = sg.function([x], loss, updates=[(w, w - 0.1 * sg.grad(loss, w))], backend="numpy")
    xv = np.arange(6, dtype="f").reshape(2, 3) / 6
    f(xv)
    before = dict(TRANSFERS)
    got = [float(f(xv)) for _ in range(3)]
    assert dict(TRANSFERS) == before
    w.set_value(np.ones((3, 2), "f"))
    g(xv)
    np.testing.assert_allclose(got, [float(g(xv)) for _ in range(3)], rtol=1e-6)


EXPRS = {"sum": lambda x, y: T.sum(T.exp(x) * y, axis=1), "dot": lambda x, y: T.dot(x, T.tanh(y)),
         "max": lambda x, y: T.max(x - y, axis=0), "mean": lambda x, y: T.mean(T.relu(x * y + 1))}


@pytest.mark.parametrize("placement", ["host", "device", "auto"])
@pytest.mark.parametrize("name", sorted(EXPRS))
def test_placement_never_changes_a_number(calibrated, name, placement):
    x, y = T.fmatrix("x"), T.fvector("y")
    want = sg.function([x, y], EXPRS[name](x, y), backend="numpy")
    got = sg.function([x, y], EXPRS[name](x, y), backend="opencl", placement=placement)

    @settings(max_examples=6, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(hnp.arrays("float32", st.tuples(st.integers(1, 4), st.just(3)), elements=st.floats(-3, 3, width=32)),
           hnp.arrays("float32", 3, elements=st.floats(-3, 3, width=32)))
    def check(xv, yv):
        np.testing.assert_allclose(got(xv, yv), want(xv, yv), rtol=1e-5, atol=1e-5)
    check()


def test_the_calibration_is_cached_and_the_placement_a_function_of_it(tmp_path, monkeypatch):
    rt = get_runtime()
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    measured = []

    def fake_measure(rt, key):
        measured.append(key)
        return pl.Calibration(device=key, **FIXED)
    monkeypatch.setattr(calibration_module, "measure", fake_measure)
    pl.forget()
    first = pl.calibration(rt)
    pl.forget()
    second = pl.calibration(rt)  # read back from the file, not measured again
    pl.forget()
    assert measured == [pl.device_key(rt)] and first == second
    assert json.loads((tmp_path / "placement.json").read_text())[pl.device_key(rt)]["launch_us"] == 20.0
    (tmp_path / "placement.json").write_text(json.dumps({pl.device_key(rt): {**FIXED, "version": -1}}))
    pl.calibration(rt)  # an older version of the measurement is measured again
    pl.forget()
    assert len(measured) == 2
    x = T.fvector("x")
    sigs = set()
    for _ in range(2):
        f = sg.function([x], T.exp(x) + 1, backend="opencl", placement="auto")
        sigs.add((f._impl.signature({x: (10,)}), f._impl.signature({x: (10**6,)})))
    assert len(sigs) == 1 and next(iter(sigs))[0] and not next(iter(sigs))[1]
    pl.forget()


def test_reductions_have_their_own_costs():
    """On pocl a sum of many elements into few costs the kernel several times numpy's: with such
    a calibration a large sum goes to the host while an elementwise program of the same size
    stays a kernel; a cache entry without the reduction's costs prices it as an elementwise step."""
    cal = pl.Calibration(device="d", **{**FIXED, "reduce_device_ns": 2.5, "reduce_host_ns": 0.3})
    x = T.TensorType("float32", (409600,))("x")
    prog, total = (sg.function([x], e, backend="numpy").graph.outputs[0].owner for e in (T.tanh(x) * 1.5, x.sum()))
    known = {v: v.type.shape for n in (prog, total) for v in n.inputs + n.outputs if None not in v.type.shape}
    assert pl.work(prog, known) == (409600, 2, False) and pl.work(total, known) == (409600, 1, True)
    assert pl.host_side(total, known, cal) and not pl.host_side(prog, known, cal)
    assert cal.crossover(1, True) == float("inf") and cal.crossover(2) < 10**5
    old = pl.Calibration(device="d", **{k: v for k, v in FIXED.items() if not k.startswith("reduce")})
    assert old.saving_us(1000, 2, True) == pl.Calibration(device="d", **FIXED).saving_us(1000, 2, True)


def test_the_measured_calibration_has_every_cost():
    cal = pl.measure(get_runtime(), "this device")
    fields = ("launch_us", "device_ns", "call_us", "host_ns", "reduce_device_ns", "reduce_host_ns")
    assert all(np.isfinite(getattr(cal, f)) and getattr(cal, f) >= 0 for f in fields)


def test_the_cost_model_and_the_modes():
    cal = pl.Calibration(device="d", **FIXED)
    assert cal.host_is_cheaper(100, 1) and not cal.host_is_cheaper(10**6, 1)
    assert cal.crossover(1) == pytest.approx(19 / 0.9e-3)
    discrete = SimpleNamespace(zero_copy=False)
    assert pl.mode_for(discrete, "auto") == pl.mode_for(discrete, "host") == "device"  # a GPU keeps its nodes
    assert pl.mode_for(SimpleNamespace(zero_copy=True), "host") == "host"
    with pytest.raises(ValueError, match="placement must be one of"):
        pl.mode_for(SimpleNamespace(zero_copy=True), "gpu")
