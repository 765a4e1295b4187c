"""What the GPU check needs on a fresh machine, and the device's peak figures.

``ensure_modules`` installs pyopencl (its manylinux wheel carries the OpenCL ICD loader) from a
local wheelhouse when there is one (a machine without network: ``make gpu-wheels`` fills
``.whl/`` here, and the folder travels with the checkout), else from the package index.
``ensure_symgraph`` installs this checkout (editable, no dependencies fetched) when
``symgraph.backends`` does not import. ``nvidia_icd`` registers NVIDIA's OpenCL driver with the
loader when the driver library is there but no ``.icd`` file names it (containers often mount
the library alone), through ``OCL_ICD_VENDORS``, without writing outside a temporary folder.

``peak_bandwidth_gbs`` and ``fp32_peak_gflops`` give the device's data-sheet figures the check
reports percentages of: from a small table of known boards, else from NVML (memory clock x bus
width), else from the OpenCL device (compute units x lanes x 2 x clock); None when unknown.
"""
from __future__ import annotations

import ctypes.util
import glob
import importlib
import os
import subprocess
import sys
import tempfile
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEEL_DIRS = (os.path.join(ROOT, ".whl"), os.path.join(ROOT, "benchmarks", "wheels"))
NVIDIA_LIB = "libnvidia-opencl.so.1"
NVIDIA_LIB_DIRS = ("/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu",
                   "/usr/lib64", "/usr/lib/aarch64-linux-gnu", "/usr/local/cuda/lib64")


def _pip(args: list[str]) -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)
    return proc.returncode == 0, (proc.stderr.strip().splitlines() or [""])[-1]


def _imports(module: str) -> bool:
    importlib.invalidate_caches()
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


REQUIRED = ("pyopencl", "graphviz")
"""What the check imports beyond a scientific Python (numpy, scipy, networkx, pytest, hypothesis):
pyopencl (its wheel carries the OpenCL ICD loader) and graphviz (symgraph's printers import it)."""


def ensure_modules(modules: tuple[str, ...] = REQUIRED, wheel_dirs: tuple[str, ...] = WHEEL_DIRS) -> str:
    """Install the ``modules`` that do not import, from local wheels when ``wheel_dirs`` hold theirs,
    else from the package index; what was done, in words (raises RuntimeError if it failed)."""
    missing = [m for m in modules if not _imports(m)]
    if not missing:
        return f"{', '.join(modules)} already installed"
    local = [d for d in wheel_dirs if any(glob.glob(os.path.join(d, f"{m}-*.whl")) for m in missing)]
    if local:
        ok, why = _pip(["--no-index", *[arg for d in local for arg in ("--find-links", d)], *missing])
        source = "the local wheels in " + ", ".join(os.path.relpath(d, ROOT) for d in local)
    else:
        ok, why = _pip(missing)
        source = "the package index"
    if not ok or not all(_imports(m) for m in missing):
        raise RuntimeError(f"could not install {', '.join(missing)} from {source}: {why}. On a machine without "
                           "network, run `make gpu-wheels` on one with network and bring the .whl/ folder along")
    return f"installed {', '.join(missing)} from {source}"


def ensure_symgraph() -> str:
    """Install this checkout (editable, no dependencies fetched) if ``symgraph.backends.opencl`` does not
    import. A fresh process sees the install (the caller restarts itself when it cannot import it yet)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if _imports("symgraph.backends.opencl"):
        return "symgraph importable"
    ok, why = _pip(["--no-deps", "--no-build-isolation", "--no-index", "-e", ROOT])
    check = subprocess.run([sys.executable, "-c", "import symgraph.backends.opencl"], cwd=ROOT,
                           capture_output=True, text=True)
    if not ok or check.returncode:
        why = why if not ok else (check.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"could not install symgraph from {ROOT}: {why}")
    return "installed symgraph (editable) from this checkout"


def _listed_libraries(vendor_dirs: list[str]) -> set[str]:
    names = set()
    for d in vendor_dirs:
        for icd in glob.glob(os.path.join(d, "*.icd")):
            try:
                with open(icd) as f:
                    names.add(os.path.basename(f.read().strip()))
            except OSError:
                continue
    return names


def find_nvidia_library(dirs: tuple[str, ...] = NVIDIA_LIB_DIRS) -> str | None:
    """The path (or loader name) of NVIDIA's OpenCL driver library, or None."""
    for d in dirs:
        path = os.path.join(d, NVIDIA_LIB)
        if os.path.exists(path):
            return path
    return NVIDIA_LIB if ctypes.util.find_library("nvidia-opencl") else None


def nvidia_icd(env: dict[str, str], dirs: tuple[str, ...] = NVIDIA_LIB_DIRS,
               vendor_dir: str = "/etc/OpenCL/vendors") -> str | None:
    """Make NVIDIA's OpenCL driver visible to the ICD loader if no .icd file names it: write one into
    a temporary folder and point ``OCL_ICD_VENDORS`` at it in ``env`` (with the system's vendor files
    beside it). Returns what was done, or None when nothing was needed or possible."""
    lib = find_nvidia_library(dirs)
    current = env.get("OCL_ICD_VENDORS")
    searched = [current] if current and os.path.isdir(current) else [vendor_dir]
    if lib is None or NVIDIA_LIB in _listed_libraries(searched):
        return None
    folder = tempfile.mkdtemp(prefix="sg-icd-")
    for icd in glob.glob(os.path.join(searched[0], "*.icd")):
        with open(icd) as src, open(os.path.join(folder, os.path.basename(icd)), "w") as dst:
            dst.write(src.read())
    with open(os.path.join(folder, "nvidia-sg.icd"), "w") as f:
        f.write(lib + "\n")
    env["OCL_ICD_VENDORS"] = folder
    return f"registered {lib} with the OpenCL loader (OCL_ICD_VENDORS={folder})"


# --- the data-sheet figures -------------------------------------------------------------------

# board name fragment -> (memory GB/s, FP32 TFLOP/s without sparsity), from the vendors' data sheets;
# the first fragment found in the device name wins (more specific fragments first).
BOARDS: tuple[tuple[str, float, float], ...] = (
    ("H200", 4800, 67.0), ("H100 PCIe", 2000, 51.2), ("H100", 3350, 67.0), ("GH200", 4000, 67.0),
    ("A100-SXM4-80GB", 2039, 19.5), ("A100 80GB PCIe", 1935, 19.5), ("A100", 1555, 19.5),
    ("L40S", 864, 91.6), ("L4", 300, 30.3), ("A10", 600, 31.2), ("V100", 900, 15.7), ("T4", 320, 8.1),
    ("RTX 4090", 1008, 82.6), ("MI300X", 5300, 163.4), ("MI250X", 3277, 47.9),
)
# NVIDIA compute capability -> FP32 lanes per multiprocessor
_NV_LANES = {(6, 0): 64, (7, 0): 64, (7, 5): 64, (8, 0): 64, (6, 1): 128, (8, 6): 128, (8, 7): 128, (8, 9): 128,
             (9, 0): 128, (10, 0): 128, (12, 0): 128}


def board(name: str) -> tuple[float, float] | None:
    for fragment, bw, tflops in BOARDS:
        if fragment.lower() in name.lower():
            return bw, tflops
    return None


def _nvml_bandwidth_gbs() -> float | None:
    try:
        import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        clock = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM)
        width = pynvml.nvmlDeviceGetMemoryBusWidth(handle)
    except Exception:  # no NVML, no NVIDIA device, or an old driver: unknown
        return None
    return 2 * clock * 1e6 * width / 8 / 1e9


def peak_bandwidth_gbs(name: str, override: float | None = None) -> tuple[float | None, str]:
    """The device's memory bandwidth in GB/s and where the figure came from."""
    if override:
        return override, "given on the command line"
    known = board(name)
    if known:
        return known[0], "data sheet"
    nvml = _nvml_bandwidth_gbs()
    if nvml:
        return nvml, "NVML: 2 x max memory clock x bus width"
    return None, "unknown (pass --peak-bandwidth GB/s)"


def fp32_peak_gflops(name: str, device: Any, is_gpu: bool, override: float | None = None) -> tuple[float | None, str]:
    """The device's FP32 peak in GFLOP/s (fused multiply-add = 2 flops) and where it came from."""
    if override:
        return override, "given on the command line"
    known = board(name)
    if known:
        return known[1] * 1e3, "data sheet"
    try:
        cc = (device.compute_capability_major_nv, device.compute_capability_minor_nv)
    except Exception:  # not an NVIDIA device
        cc = None
    lanes = _NV_LANES.get(cc) if cc else None
    vendor = str(getattr(device, "vendor", ""))
    if lanes is None and is_gpu and ("AMD" in vendor or "Advanced Micro" in vendor):
        lanes = 64
    if lanes is None:
        return None, "unknown (pass --peak-gflops)"
    return device.max_compute_units * lanes * 2 * device.max_clock_frequency * 1e-3, \
        f"{device.max_compute_units} units x {lanes} lanes x 2 x {device.max_clock_frequency} MHz"
