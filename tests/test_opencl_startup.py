"""OpenCL start-up (issue 21): a device is opened -- pyopencl imported, context, queue and pool
created, programs built -- only when a call needs it. What compiling needs to know of the device
is cached per installation (backends/opencl/devices.py), so a function whose every node runs on
the host never opens it; a later call that needs the device opens it then."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import warnings
from dataclasses import asdict

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from tests.conftest import NO_OPENCL
from tests.xor_step import XOR, train, xor_step

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=str(NO_OPENCL))

if NO_OPENCL is None:
    from symgraph.backends.opencl import calibration, devices
    from symgraph.backends.opencl import runtime as rtmod
    from tests.test_placement import calibrated  # noqa: F401  (the fixture: a fixed calibration)

def test_a_step_placed_wholly_on_the_host_builds_no_program_then_a_large_call_uses_the_device(calibrated):  # noqa: F811
    builds = rtmod.OPENS["programs"]
    f, fw = xor_step("opencl", placement="auto")
    g, gw = xor_step("numpy")
    (got, got_w), (want, want_w) = train(f, fw, *XOR), train(g, gw, *XOR)
    assert rtmod.OPENS["programs"] == builds  # compiled and called three times: no kernel built
    assert "_call_lock" not in f._impl.variants[f._impl.signature({f.graph.inputs[0]: (4, 3),
                                                                   f.graph.inputs[1]: (4, 1)})].source
    for a, b in zip([*got, *got_w], [*want, *want_w]):
        for u, v in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    big = np.random.default_rng(2).random((30_000, 3)).astype("f"), np.ones((30_000, 1), "f")
    (got, got_w), (want, want_w) = train(f, fw, *big, steps=2), train(g, gw, *big, steps=2)
    for u, v in zip([got[-1][0], got[-1][1], *got_w], [want[-1][0], want[-1][1], *want_w]):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
    large = f._impl.variants[f._impl.signature({f.graph.inputs[0]: big[0].shape, f.graph.inputs[1]: big[1].shape})]
    assert "_call_lock" in large.source  # the tanh program ran as a kernel


def test_the_w6_step_is_placed_once_for_every_batch_size(calibrated):  # noqa: F811
    """Its products run in numpy's BLAS and its loss, a scalar summed from their results, on the
    host whatever the batch size: one compiled function, no per-call look-up by shapes."""
    f, fw = xor_step("opencl", extra=False, placement="auto")
    assert type(f._impl).__name__ == "OpenCLFunction" and "OnHost{" in f.source and "_call_lock" not in f.source
    g, gw = xor_step("numpy", extra=False)
    (got, got_w), (want, want_w) = train(f, fw, *XOR), train(g, gw, *XOR)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for u, v in zip(got_w, want_w):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from tests.xor_step import XOR, train, xor_step  # (not this module: its conftest import opens OpenCL)
    from symgraph.backends.opencl import runtime
    f, fw = xor_step("opencl", placement="auto")
    g, gw = xor_step("numpy")
    small = train(f, fw, *XOR), train(g, gw, *XOR)
    opened = "pyopencl" in sys.modules, dict(runtime.OPENS)
    big = np.random.default_rng(2).random((30_000, 3)).astype("f"), np.ones((30_000, 1), "f")
    large = train(f, fw, *big, steps=1), train(g, gw, *big, steps=1)
    for (got, got_w), (want, want_w) in (small, large):
        for u, v in zip([*got[-1], *got_w], [*want[-1], *want_w]):
            np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
    assert opened == (False, {}), opened  # compiled and trained: pyopencl not even imported
    assert runtime.OPENS["runtimes"] == 1, runtime.OPENS  # opened by the large call
    print("ok")
""")


def test_a_fresh_process_opens_no_device_until_a_call_needs_it(calibrated, tmp_path):  # noqa: F811
    rtmod.get_runtime()  # with the cache folder of ``calibrated``: the device's facts are stored there
    assert devices.lookup(str(sg.config.device or "opencl")) is not None
    env = {**os.environ, "SYMGRAPH_CACHE_DIR": os.environ["SYMGRAPH_CACHE_DIR"], "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_device_facts_are_keyed_by_the_installation(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    rt = rtmod.get_runtime()
    spec = str(sg.config.device or "opencl")
    entry = devices.lookup(spec)
    assert entry is not None and entry["info"]["name"] == rt.info.name and entry["zero_copy"] == rt.zero_copy
    monkeypatch.setenv("POCL_MAX_PTHREAD_COUNT", "1")  # a driver setting: another installation
    assert devices.lookup(spec) is None
    monkeypatch.delenv("POCL_MAX_PTHREAD_COUNT")
    assert devices.lookup(spec) == entry


def test_stale_device_facts_are_measured_again_when_the_device_opens(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    real = rtmod.get_runtime().info
    stale = {**asdict(real), "name": "an older device"}
    devices.store(real.spec, stale, zero_copy=False)
    monkeypatch.setattr(rtmod, "_RUNTIMES", {})  # a process that has opened nothing yet
    rt = rtmod.get_runtime(real.spec)
    assert rt.info.name == "an older device" and not rt.zero_copy and "context" not in rt.__dict__
    opened = rtmod.OPENS["runtimes"]
    threads = [threading.Thread(target=lambda: rt.queue) for _ in range(4)]
    with pytest.warns(UserWarning, match="measuring it again"):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert rtmod.OPENS["runtimes"] == opened + 1  # four threads, one open
    assert rt.info == real and rt.zero_copy == rtmod.get_runtime().zero_copy
    assert devices.lookup(real.spec)["info"]["name"] == real.name
    x = T.fvector("x")
    f = sg.function([x], x * 2, backend="opencl", device=real.spec)
    np.testing.assert_array_equal(f(np.arange(3, dtype="f")), [0, 2, 4])


def test_a_device_whose_reported_memory_moved_is_not_measured_again(tmp_path, monkeypatch):
    """pocl reports a share of the machine's memory, which moves between runs: the stored facts
    still hold, so opening the device neither warns nor probes it again."""
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    real = rtmod.get_runtime().info
    devices.store(real.spec, {**asdict(real), "global_mem": real.global_mem + 2**28}, zero_copy=True)
    monkeypatch.setattr(rtmod, "_RUNTIMES", {})
    monkeypatch.setattr(rtmod.Runtime, "_host_memory_is_shared", lambda self: pytest.fail("probed again"))
    rt = rtmod.get_runtime(real.spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rt.queue is not None  # opens the device
    assert rt.info == real and rt.zero_copy


def test_the_kernels_of_one_program_share_one_build():
    """The calibration program holds two kernels: its source is built once for both (a cold
    build costs over a hundred milliseconds on pocl), and again only with other options."""
    rt = rtmod.get_runtime()
    source = ("__kernel void sg_a(__global float *x) { x[get_global_id(0)] += 1.0f; }\n"
              f"__kernel void sg_b(__global float *x) {{ x[get_global_id(0)] *= {np.random.randint(2, 10**6)}.0f; }}\n")
    builds = rtmod.OPENS["programs"]
    a, b = rt.kernel(source, "sg_a"), rt.kernel(source, "sg_b")
    assert rtmod.OPENS["programs"] == builds + 1 and a is not b
    rt.kernel(source, "sg_a", ("-cl-opt-disable",))
    assert rtmod.OPENS["programs"] == builds + 2


def test_an_uncalibrated_device_starts_its_compiler_while_the_graph_is_rewritten(tmp_path, monkeypatch):
    """Under 'auto' placement on a device with no calibration, ``sg.function`` starts the device's
    compiler (a trivial build) in a background thread before it rewrites the graph, with no
    warning. A calibrated device starts nothing."""
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))  # no calibration in this folder
    if not rtmod.get_runtime().zero_copy:
        pytest.skip("placement by size needs a device that shares host memory")
    builds, started = rtmod.OPENS["programs"], []
    real = calibration._warm_quietly
    monkeypatch.setattr(calibration, "_warm_quietly",
                        lambda rt: started.append(threading.current_thread().name) or real(rt))
    calibration.forget()
    x = T.fvector("x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the trivial build's empty log raises nothing
        f = sg.function([x], T.exp(x) + 1, backend="opencl", placement="auto")
    assert started == ["symgraph compiler start"]
    assert rtmod.OPENS["programs"] >= builds + 1  # the trivial build (the measurement's may be built already)
    np.testing.assert_allclose(f(np.zeros(3, "f")), 2.0)
    calibration.forget()  # read back from the file now
    sg.function([x], T.exp(x) + 2, backend="opencl", placement="auto")
    assert started == ["symgraph compiler start"]
    calibration.forget()
