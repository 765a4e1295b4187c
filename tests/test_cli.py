"""``python -m symgraph devices``: every message it can print, with or without OpenCL here
(pyopencl missing, no device, a device string that names no device, a malformed one), and a
bad SYMGRAPH_* environment variable named in the error."""
from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
import runpy
import subprocess
import sys

import pytest

import symgraph
from symgraph.__main__ import main
from conftest import NO_OPENCL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_devices(capsys) -> tuple[int, str]:
    rc = main(["devices"])
    return rc, capsys.readouterr().out


def test_without_pyopencl(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyopencl", None)  # import pyopencl now raises ImportError
    rc, out = run_devices(capsys)
    assert rc == 1
    assert "pyopencl is not installed" in out and "only the numpy backend is available" in out


def test_without_any_device(monkeypatch, capsys):
    pytest.importorskip("pyopencl")
    from symgraph.backends.opencl import runtime
    monkeypatch.setattr(runtime, "list_devices", lambda: [])
    rc, out = run_devices(capsys)
    assert rc == 1
    assert out.strip() == "No OpenCL platform or device found; only the numpy backend is available."


@pytest.mark.skipif(NO_OPENCL is not None, reason=NO_OPENCL or "")
def test_configured_device_that_does_not_exist(capsys):
    with symgraph.config.change_flags(device="opencl:9:9"):
        rc, out = run_devices(capsys)
    assert rc == 1
    assert "Platform 0:" in out  # the devices are still listed, so the user can pick one
    assert "symgraph cannot use the configured device: no OpenCL device 'opencl:9:9'" in out
    assert "available devices:\n  opencl:0:0" in out


@pytest.mark.skipif(NO_OPENCL is not None, reason=NO_OPENCL or "")
def test_device_found_and_chosen(capsys):
    rc, out = run_devices(capsys)
    assert rc == 0
    assert "symgraph would use: opencl:" in out
    assert ("A GPU is available." in out) != ("No GPU found: the opencl backend runs on the CPU." in out)


def test_command_line_needs_a_command(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "required: command" in capsys.readouterr().err


def test_run_as_a_module(monkeypatch, capsys):
    """``python -m symgraph devices`` exits with the command's status."""
    monkeypatch.setattr(sys, "argv", ["python -m symgraph", "devices"])
    monkeypatch.setitem(sys.modules, "pyopencl", None)
    monkeypatch.delitem(sys.modules, "symgraph.__main__")  # runpy runs it afresh, as python -m does
    with pytest.raises(SystemExit) as info:
        runpy.run_module("symgraph", run_name="__main__")
    assert info.value.code == 1
    assert "pyopencl is not installed" in capsys.readouterr().out


def test_bad_environment_variable_in_process(monkeypatch):
    from symgraph.config import Config
    monkeypatch.setenv("SYMGRAPH_FLOATX", "float16")
    with pytest.raises(ValueError, match="environment variable SYMGRAPH_FLOATX='float16' is not valid: "
                                         r"config.floatX must be one of \['float32', 'float64'\]"):
        Config()


@pytest.mark.parametrize("env, value", [("SYMGRAPH_DEVICE", "cuda"), ("SYMGRAPH_BACKEND", "tpu")])
def test_bad_environment_variable_is_named(env, value):
    """A bad flag in the environment stops the import with an error naming the variable."""
    proc = subprocess.run([sys.executable, "-m", "symgraph", "devices"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, env: value}, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ValueError: environment variable {env}={value!r} is not valid:"), last


# --- two platforms with one name (Debian's pocl and pip's pocl) ----------------------------------

def opencl_runtime():
    return pytest.importorskip("symgraph.backends.opencl.runtime")


def _fake(platform_index: int, device_index: int, kind: str = "CPU") -> object:
    return opencl_runtime().DeviceInfo(platform_index, device_index, "Portable Computing Language",
                            f"cpu-{platform_index}-{device_index}", kind, 4, 2**33, 4096, True)


def test_devices_prints_every_platform_even_when_two_share_a_name(monkeypatch):
    """Issue 22 item 16: Debian's pocl and pip's pocl are two platforms with one name; the
    listing printed a single "Platform" header over the devices of both."""
    fakes = [_fake(0, 0), _fake(1, 0), _fake(1, 1)]
    monkeypatch.setattr(pytest.importorskip("symgraph.backends.opencl.devices"), "_devices",
                        lambda: [(info, None) for info in fakes])
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["devices"]) == 0
    text = out.getvalue()
    assert "Platform 0: Portable Computing Language" in text
    assert "Platform 1: Portable Computing Language" in text
    assert text.index("Platform 1") < text.index("cpu-1-0") and text.index("cpu-0-0") < text.index("Platform 1")
    assert text.count("Device 0:") == 2 and "[SYMGRAPH_DEVICE=opencl:1:1]" in text
