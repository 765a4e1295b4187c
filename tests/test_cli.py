"""``python -m symgraph devices`` (runs without an OpenCL device: the device list is faked)."""
from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest

from symgraph.__main__ import main

rtmod = pytest.importorskip("symgraph.backends.opencl.runtime")


def _fake(platform_index: int, device_index: int, kind: str = "CPU") -> rtmod.DeviceInfo:
    return rtmod.DeviceInfo(platform_index, device_index, "Portable Computing Language",
                            f"cpu-{platform_index}-{device_index}", kind, 4, 2**33, 4096, True)


def test_devices_prints_every_platform_even_when_two_share_a_name(monkeypatch):
    """Issue 22 item 16: Debian's pocl and pip's pocl are two platforms with one name; the
    listing printed a single "Platform" header over the devices of both."""
    fakes = [_fake(0, 0), _fake(1, 0), _fake(1, 1)]
    monkeypatch.setattr(rtmod, "_devices", lambda: [(info, None) for info in fakes])
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["devices"]) == 0
    text = out.getvalue()
    assert "Platform 0: Portable Computing Language" in text
    assert "Platform 1: Portable Computing Language" in text
    assert text.index("Platform 1") < text.index("cpu-1-0") and text.index("cpu-0-0") < text.index("Platform 1")
    assert text.count("Device 0:") == 2 and "[SYMGRAPH_DEVICE=opencl:1:1]" in text
