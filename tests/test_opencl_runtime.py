"""OpenCL runtime: device listing and choice, device-string and fp64 errors, kernel build errors,
device arrays (strided views back to the host) and the transfer counter."""
from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np
import pytest

pytest.importorskip("pyopencl")
from conftest import NO_OPENCL  # noqa: E402

if NO_OPENCL:
    pytest.skip(NO_OPENCL, allow_module_level=True)

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402
from symgraph.backends.opencl import runtime as rtmod  # noqa: E402
from symgraph.errors import BackendError  # noqa: E402


def test_list_devices_describes_each_device():
    devices = rtmod.list_devices()
    assert devices
    for d in devices:
        assert d.compute_units > 0 and d.global_mem > 0 and d.max_work_group_size > 0
        assert d.spec == f"opencl:{d.platform_index}:{d.device_index}"
        assert "fp64" in d.describe()


def test_devices_command_says_which_device_it_would_pick():
    from symgraph.__main__ import main
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["devices"])
    text = out.getvalue()
    assert rc == 0
    chosen, _ = rtmod.choose_device("opencl")
    assert f"symgraph would use: {chosen.spec}" in text
    assert "compute units" in text and "fp64" in text and "max work-group size" in text


def test_explicit_device_string_selects_that_device():
    info = rtmod.list_devices()[0]
    assert rtmod.get_runtime(info.spec).info.spec == info.spec


@pytest.mark.parametrize("spec", ["opencl:7:3", "cuda", "opencl:x"])
def test_bad_device_string_lists_the_devices(spec):
    with pytest.raises(BackendError) as info:
        rtmod.get_runtime(spec)
    msg = str(info.value)
    assert spec in msg and rtmod.list_devices()[0].spec in msg


def test_float64_graph_on_device_without_fp64_suggests_float32(monkeypatch):
    rt = rtmod.get_runtime()
    monkeypatch.setattr(rt, "fp64", False)
    x = T.dvector("x")
    with pytest.raises(BackendError, match="floatX = 'float32'"):
        sg.function([x], x * 2, backend="opencl")
    xf = T.fvector("xf")  # float32 still compiles
    np.testing.assert_allclose(sg.function([xf], xf * 2, backend="opencl")(np.ones(3, "float32")), 2)


def test_build_failure_shows_source_and_compiler_log():
    rt = rtmod.get_runtime()
    src = "__kernel void broken(__global float *x) { x[0] = undefined_name; }\n"
    with pytest.raises(BackendError) as info:
        rt.kernel(src, "broken")
    msg = str(info.value)
    assert "undefined_name" in msg and "compiler log" in msg and "generated source" in msg


def test_device_array_views_come_back_as_numpy_would_show_them():
    rt = rtmod.get_runtime()
    host = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    arr = rt.to_device(host)
    np.testing.assert_array_equal(arr.to_host(), host)
    t = arr.view((4, 3, 2), (1, 4, 12), 0)  # the full transpose
    np.testing.assert_array_equal(t.to_host(), host.transpose())
    rev = arr.view((3,), (-4,), 8 + 3)  # host[0, ::-1, 3]
    np.testing.assert_array_equal(rev.to_host(), host[0, ::-1, 3])
    assert not t.is_contiguous and arr.is_contiguous


def test_transfers_are_counted():
    rt = rtmod.get_runtime()
    before = dict(rtmod.TRANSFERS)
    host = np.ones(5)
    arr = rt.to_device(host)
    back = arr.to_host()
    assert rtmod.TRANSFERS["to_host"] == before.get("to_host", 0) + 1  # a borrowed array always comes back copied
    assert not np.shares_memory(back, host)
    if not rt.zero_copy:
        assert rtmod.TRANSFERS["to_device"] == before.get("to_device", 0) + 1
        return
    # zero-copy (CPU) device: the input is wrapped, not copied; a kernel's result is handed out as is
    assert rtmod.TRANSFERS["to_device"] == before.get("to_device", 0)
    assert rtmod.TRANSFERS["zero_copy_in"] == before.get("zero_copy_in", 0) + 1
    from symgraph.backends.opencl.kernels_copy import copy_into
    out = rt.empty((5,), "float64")
    copy_into(out, arr)
    got = out.to_host()
    np.testing.assert_array_equal(got, host)
    assert np.shares_memory(got, out.host) and rtmod.TRANSFERS["zero_copy_out"] == before.get("zero_copy_out", 0) + 1
    assert not np.shares_memory(out.to_host(copy=True), out.host)


def test_out_of_memory_names_the_allocation():
    rt = rtmod.get_runtime()
    with pytest.raises(MemoryError, match="huge test buffer"):
        rt.alloc(1 << 62, "huge test buffer")
