"""The OpenCL devices: which exist (``list_devices``), which one a device string names
(``choose_device``), and what symgraph knows of a device before opening it, cached across processes.

Opening a device costs a quarter of a second on pocl (importing pyopencl, loading the ICD's
platforms, creating the context, queue and pool, building the zero-copy probe), more than a small
function's whole compile. Yet compiling needs only facts about the device: which one a device
string names, its name, type and fp64 support, and whether its buffers share host memory (which
decides placement). Those facts are stored here the first time a device is opened, in
``devices.json`` next to the placement calibration, keyed by the device string and by a
fingerprint of the OpenCL installation (the ICD vendor files, the drivers they name, pyopencl's
files and the environment variables OpenCL drivers read). So a function whose every node runs on
the host never opens the device at all (``backends/opencl/runtime.py`` opens a runtime on first
device use), and a new driver, a new GPU or another device setting is measured afresh.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, replace
from typing import Any

from symgraph.config import config
from symgraph.errors import BackendError

VERSION = 1
"""Bumped when the stored facts change: older entries are ignored."""
_MAX_ENTRIES = 32
_ENV_PREFIXES = ("OCL_", "OPENCL_", "POCL_", "CUDA_", "ROCR_", "HIP_", "GPU_", "ZE_", "INTEL_",
                 "LD_LIBRARY_PATH", "SYMGRAPH_DEVICE")


def _cl():
    """pyopencl, imported on first use: it is optional, and ``python -m symgraph devices`` reports its absence."""
    import pyopencl as cl
    return cl


@dataclass
class DeviceInfo:
    """One OpenCL device as ``python -m symgraph devices`` shows it."""
    platform_index: int
    device_index: int
    platform: str
    name: str
    type: str
    compute_units: int
    global_mem: int
    max_work_group_size: int
    fp64: bool
    driver: str = "?"

    @property
    def spec(self) -> str:
        return f"opencl:{self.platform_index}:{self.device_index}"

    def same_device(self, other: DeviceInfo) -> bool:
        """Whether ``other`` describes the same device, memory aside: pocl reports a share of the
        machine's memory as its global memory, a figure that moves between runs (5.5 and 6.0 GiB
        here), and no stored fact depends on it."""
        return replace(self, global_mem=0) == replace(other, global_mem=0)

    def describe(self) -> str:
        return (f"{self.spec}  {self.name} [{self.type}] on {self.platform}: {self.compute_units} compute units, "
                f"{self.global_mem / 2**30:.1f} GiB global memory, max work-group {self.max_work_group_size}, "
                f"fp64 {'yes' if self.fp64 else 'no'}")


def _devices() -> list[tuple[DeviceInfo, Any]]:
    cl = _cl()
    found = []
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        platforms = []
    for p, plat in enumerate(platforms):
        try:
            devices = plat.get_devices()
        except cl.Error:
            continue
        for d, dev in enumerate(devices):
            kind = cl.device_type.to_string(dev.type).replace("ALL | ", "")
            info = DeviceInfo(p, d, plat.name.strip(), dev.name.strip(), kind,
                              dev.max_compute_units, dev.global_mem_size, dev.max_work_group_size,
                              bool(dev.double_fp_config), str(getattr(dev, "driver_version", "?")))
            found.append((info, dev))
    return found


def list_devices() -> list[DeviceInfo]:
    """Every OpenCL device on every platform."""
    return [info for info, _ in _devices()]


def _rank(info: DeviceInfo) -> tuple:
    """Best first: GPUs before accelerators before CPUs, then more compute units and memory."""
    kind = 2 if "GPU" in info.type else 1 if "ACCELERATOR" in info.type else 0
    return (kind, info.compute_units, info.global_mem)


def choose_device(spec: str | None = None) -> tuple[DeviceInfo, Any]:
    """The device for ``spec`` ('opencl' or None = best, preferring a GPU; 'opencl:P:D' = platform P,
    device D); default from sg.config.device / SYMGRAPH_DEVICE."""
    if spec is None:
        spec = config.device
    devices = _devices()
    listing = "\n".join("  " + info.describe() for info, _ in devices) or "  (none: no OpenCL platform found)"
    if not devices:
        raise BackendError("the opencl backend found no OpenCL device. Install an OpenCL driver "
                           "(e.g. Debian's pocl-opencl-icd for the CPU) or use backend='numpy'.")
    if spec in (None, "", "cpu", "opencl"):
        return max(devices, key=lambda item: _rank(item[0]))
    parts = str(spec).split(":")
    if len(parts) == 3 and parts[0] == "opencl" and parts[1].isdigit() and parts[2].isdigit():
        p, d = int(parts[1]), int(parts[2])
        for info, dev in devices:
            if (info.platform_index, info.device_index) == (p, d):
                return info, dev
        raise BackendError(f"no OpenCL device {spec!r} (platform {p}, device {d}); available devices:\n{listing}")
    raise BackendError(f"bad device string {spec!r}: use 'opencl' (best device) or 'opencl:P:D' "
                       f"(platform P, device D); available devices:\n{listing}")


def cache_dir() -> str:
    """``$SYMGRAPH_CACHE_DIR``, else ``$XDG_CACHE_HOME/symgraph``, else ``~/.cache/symgraph``."""
    return os.environ.get("SYMGRAPH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "symgraph")


def read_json(path: str) -> dict:
    """The JSON object in ``path``; {} when it is missing, unreadable or not an object."""
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_json(path: str, entries: dict) -> None:
    """Write ``entries`` atomically (a concurrent reader sees the old file or the new one); a
    read-only cache folder keeps what was learnt for this process only."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".symgraph")
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def _stat(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _library_dirs() -> list[str]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    return dirs + [os.path.join("/usr/lib", multiarch), "/usr/lib64", "/usr/lib", "/usr/local/lib",
                   os.path.join(sys.prefix, "lib")]


_FILES: dict[tuple, list[str]] = {}
"""The installation files' part of the fingerprint, per environment: read once per process (the
drivers a process loaded do not change when their files do)."""


def fingerprint() -> str:
    """A hash of what decides which OpenCL devices exist and how they behave: the environment
    variables drivers read, each ICD vendor file (name, contents) with the size and date of the
    driver library it names, and pyopencl's own files."""
    env = tuple(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(_ENV_PREFIXES))
    if env not in _FILES:
        _FILES[env] = _installation(dict(os.environ))
    return hashlib.sha256("\n".join(env + tuple(_FILES[env])).encode()).hexdigest()[:20]


def _installation(environ: dict[str, str]) -> list[str]:
    """The ICD vendor files, the drivers they name and pyopencl's files, as text (a few stat calls)."""
    parts = []
    vendor_dirs = [d for d in environ.get("OCL_ICD_VENDORS", "").split(os.pathsep) if d]
    vendor_dirs += ["/etc/OpenCL/vendors", "/usr/local/etc/OpenCL/vendors",
                    os.path.join(sys.prefix, "etc", "OpenCL", "vendors")]
    for folder in vendor_dirs:
        try:
            names = sorted(os.listdir(folder)) if os.path.isdir(folder) else [folder]
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name) if os.path.isdir(folder) else name
            try:
                with open(path) as f:
                    lib = f.read().strip()
            except OSError:
                continue
            found = [_stat(lib)] if os.path.isabs(lib) else [_stat(os.path.join(d, lib)) for d in _library_dirs()]
            parts.append(f"{path}:{lib}:{','.join(found)}")
    spec = importlib.util.find_spec("pyopencl")
    if spec is not None and spec.origin:
        folder = os.path.dirname(spec.origin)
        parts.append(f"pyopencl:{folder}:{_stat(spec.origin)}:{_stat(folder)}")
    return parts


def _key(spec: str) -> str:
    return f"{spec} @ {fingerprint()}"


def path() -> str:
    return os.path.join(cache_dir(), "devices.json")


def lookup(spec: str) -> dict[str, Any] | None:
    """The facts stored for device string ``spec`` under this installation's fingerprint
    (``info``: DeviceInfo's fields; ``zero_copy``), or None."""
    entry = read_json(path()).get(_key(spec))
    if not isinstance(entry, dict) or entry.get("version") != VERSION or not isinstance(entry.get("info"), dict):
        return None
    return entry


def store(spec: str, info: dict[str, Any], zero_copy: bool) -> None:
    """Remember what opening the device of ``spec`` found (the oldest entries beyond _MAX_ENTRIES dropped)."""
    file = path()
    entries = read_json(file)
    key = _key(spec)
    entry = {"version": VERSION, "info": info, "zero_copy": bool(zero_copy)}
    if entries.get(key) == entry:
        return
    entries.pop(key, None)
    entries[key] = entry
    while len(entries) > _MAX_ENTRIES:
        entries.pop(next(iter(entries)))
    write_json(file, entries)


def forget(spec: str) -> None:
    """Drop what is stored for ``spec`` (the device it named turned out different)."""
    file = path()
    entries = read_json(file)
    if entries.pop(_key(spec), None) is not None:
        write_json(file, entries)
