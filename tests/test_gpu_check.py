"""The GPU check (benchmarks/gpu_check.py, issue 21 item 5): its choices, its no-GPU path, its
setup steps and its report, on this machine (no GPU needed); one real measurement in a fresh
process on whatever OpenCL device there is."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks import gpu_check as gc
from benchmarks import gpu_setup as gs
from symgraph.backends.opencl.runtime import DeviceInfo
from tests.conftest import NO_OPENCL


def _info(kind: str, units: int, p: int = 0, d: int = 0) -> DeviceInfo:
    return DeviceInfo(p, d, "plat", f"{kind} device {units}", kind, units, 2**30, 256, True)


def test_pick_device_prefers_the_largest_gpu_and_takes_a_cpu_only_when_allowed():
    cpu, small, big = _info("CPU", 64), _info("GPU", 8, d=1), _info("GPU", 132, d=2)
    assert gc.pick_device([cpu, small, big], allow_cpu=False) is big
    assert gc.pick_device([cpu], allow_cpu=False) is None
    assert gc.pick_device([cpu], allow_cpu=True) is cpu
    assert gc.pick_device([cpu, small], allow_cpu=True) is small
    assert gc.pick_device([], allow_cpu=True) is None


def test_without_a_gpu_the_check_says_so_writes_the_listing_and_exits_3(monkeypatch, tmp_path, capsys):
    from symgraph.backends.opencl import devices
    monkeypatch.setattr(devices, "_devices", lambda: [(_info("CPU", 2), None)])
    out = tmp_path / "gpu.json"
    assert gc.main(["--no-install", "--json", str(out)]) == gc.NO_GPU == 3
    said = capsys.readouterr().out
    assert "no GPU" in said and "CPU device 2" in said and "--allow-cpu" in said
    doc = json.loads(out.read_text())
    assert doc["status"].startswith("no GPU") and "results" not in doc
    assert doc["devices"] == [_info("CPU", 2).describe()]


def test_a_failed_setup_is_reported_with_status_2(monkeypatch, tmp_path, capsys):
    def broken(install):
        raise RuntimeError("could not install pyopencl from the package index: offline")
    monkeypatch.setattr(gc, "setup", broken)
    out = tmp_path / "gpu.json"
    assert gc.main(["--json", str(out)]) == 2
    assert "offline" in capsys.readouterr().out and "offline" in json.loads(out.read_text())["status"]


def test_nvidia_driver_is_registered_with_the_loader_only_when_no_icd_names_it(tmp_path):
    libs, vendors = tmp_path / "lib64", tmp_path / "vendors"
    libs.mkdir()
    vendors.mkdir()
    (vendors / "pocl.icd").write_text("libpocl.so.2\n")
    env: dict[str, str] = {}
    assert gs.nvidia_icd(env, dirs=(str(libs),), vendor_dir=str(vendors)) is None  # no driver: nothing to do
    (libs / gs.NVIDIA_LIB).write_text("")
    said = gs.nvidia_icd(env, dirs=(str(libs),), vendor_dir=str(vendors))
    assert said and "OCL_ICD_VENDORS" in said
    folder = env["OCL_ICD_VENDORS"]
    files = {path.name: path.read_text().strip() for path in Path(folder).iterdir()}
    assert files == {"pocl.icd": "libpocl.so.2", "nvidia-sg.icd": str(libs / gs.NVIDIA_LIB)}
    (vendors / "nvidia.icd").write_text(gs.NVIDIA_LIB + "\n")
    assert gs.nvidia_icd({}, dirs=(str(libs),), vendor_dir=str(vendors)) is None  # already listed


def test_installing_is_skipped_when_the_modules_import_and_says_what_it_needs(monkeypatch):
    assert "already installed" in gs.ensure_modules(("json",))
    monkeypatch.setattr(gs, "_pip", lambda args: (False, "No matching distribution"))
    with pytest.raises(RuntimeError, match="make gpu-wheels"):
        gs.ensure_modules(("surely_not_a_module_sg",), wheel_dirs=())


def test_peak_figures_from_the_data_sheet_the_compute_capability_or_the_command_line():
    assert gs.peak_bandwidth_gbs("NVIDIA H200")[0] == 4800
    assert gs.peak_bandwidth_gbs("NVIDIA H100 PCIe")[0] == 2000
    assert gs.peak_bandwidth_gbs("some cpu", override=123.0) == (123.0, "given on the command line")
    hopper = SimpleNamespace(compute_capability_major_nv=9, compute_capability_minor_nv=0, max_compute_units=132,
                             max_clock_frequency=1980, vendor="NVIDIA Corporation")
    peak, source = gs.fp32_peak_gflops("NVIDIA Hopper engineering sample", hopper, is_gpu=True)
    assert peak == pytest.approx(132 * 128 * 2 * 1.98) and "128 lanes" in source
    assert gs.fp32_peak_gflops("pthread-haswell", SimpleNamespace(vendor="GenuineIntel"), is_gpu=False)[0] is None


def test_pytest_counts_from_junit_xml_and_from_the_summary_line(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite name="pytest" tests="10" failures="2" errors="1" skipped="3"/></testsuites>')
    assert gc.junit_counts(str(xml)) == {"passed": 4, "failed": 2, "errors": 1, "skipped": 3}
    assert gc.junit_counts(str(tmp_path / "missing.xml")) is None
    assert gc.summary_counts("...\n==== 3 failed, 10 passed, 2 skipped, 1 error in 4.2s ====") == \
        {"passed": 10, "failed": 3, "errors": 1, "skipped": 2}


def _doc(w1: float, gemm: float) -> dict:
    return {"date": "d", "device": {"name": "NVIDIA H200", "spec": "opencl:0:0", "type": "GPU", "compute_units": 132,
                                    "platform": "NVIDIA CUDA"},
            "peaks": {"bandwidth_gbs": 4800.0, "bandwidth_source": "data sheet", "fp32_gflops": 67000.0,
                      "fp32_source": "data sheet"},
            "results": {"copy": {"metrics": {"GB/s": 4200.0}}, "W1": {"metrics": {"GB/s": w1, "n": 10**8}},
                        "GEMM": {"metrics": {"GFLOP/s": gemm, "n": 4096}}, "W3": {"metrics": {"ms": 2.0}},
                        "W3 numpy": {"metrics": {"ms": 10.0}}, "W8": {"error": "exit 1: boom"}},
            "tests": {"passed": 600, "failed": 0, "errors": 0, "skipped": 5, "seconds": 100, "stopped_at_budget": False,
                      "failed_tests": []}}


def test_the_report_gives_percent_of_peak_and_the_goals_verdicts():
    rows = {r["what"].split()[0]: r for r in gc.summarize(_doc(w1=3900.0, gemm=10000.0))}
    assert rows["W1"]["pct"] == pytest.approx(81.25) and "MET" in rows["W1"]["verdict"]
    assert "93% of the copy" in rows["W1"]["verdict"]
    assert rows["GEMM"]["pct"] == pytest.approx(100 * 10000 / 67000)
    assert rows["GEMM"]["verdict"] == "goal 50% missed (floor 30%: missed)"
    assert rows["W3"]["verdict"].startswith("5.00x")
    assert "floor 70%: met" in gc.summarize(_doc(w1=3500.0, gemm=1.0))[1]["verdict"]
    text = gc.render(_doc(w1=3900.0, gemm=10000.0))
    assert "NVIDIA H200" in text and "W8: exit 1: boom" in text and "600 passed" in text
    assert not gc.ok(_doc(w1=3900.0, gemm=10000.0))  # W8 failed


@pytest.mark.skipif(NO_OPENCL is not None, reason=str(NO_OPENCL))
def test_a_measurement_runs_in_a_fresh_process_on_the_device(monkeypatch):
    monkeypatch.setattr(gc, "MEASURES", (("copy", "benchmarks.gpu_measure", ["copy"], 1e8, 4096, 60),))
    env = dict(os.environ, PYTHONPATH=gc.ROOT)
    result = gc.measure(env, quick=True, deadline=float("inf"))["copy"]
    assert result["metrics"]["n"] == 4096 and result["metrics"]["GB/s"] > 0, result
    assert gc.measure(env, quick=True, deadline=0.0)["copy"] == {"error": "not run: the time budget was spent"}
