"""Host memory kept for reuse from one call to the next (``sg.config.host_memory_pad``).

glibc's ``malloc`` hands the freed top of its heap back to the kernel once more than its trim
threshold is free there (128 KiB at first), and serves blocks above its mmap threshold with fresh
mappings. A compiled function over megabyte arrays allocates and frees the same blocks every call,
so every call touched fresh pages: the W7 RNN's forward and backward pass took 2,768 page faults
a call on the benchmark VM, about 9 of its 20 ms. JAX and PyTorch keep such memory in their own
allocators; numpy arrays come from ``malloc``, so we ask it to keep the memory instead:

- ``M_MMAP_THRESHOLD`` = 32 MiB (glibc's own ceiling for the threshold it raises by itself), so
  blocks up to that size come from the heap and are reused;
- ``M_TOP_PAD`` = the pad, and ``M_TRIM_THRESHOLD`` = twice it: the heap grows in steps of the pad
  and keeps up to that much free memory at its top instead of handing it back.

The cost is resident memory: a process keeps about its peak heap use (plus at most the pad)
rather than shrinking between calls. The settings are per process and applied once, at the first
``sg.function`` after the flag is set; ``host_memory_pad = 0`` (``SYMGRAPH_HOST_MEMORY_PAD=0``)
leaves the allocator as it was. So does a process whose environment already sets malloc's
thresholds (``MALLOC_TRIM_THRESHOLD_`` and friends, or ``glibc.malloc`` tunables): its launcher
chose them. dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed
memory goes back at once and the worker's memory limit sees it (a worker keeping it paused under
its limit and never spilled). On a C library without ``mallopt`` (macOS, musl) nothing changes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Any

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 * 2**20

_state: dict[str, Any] = {"applied": None, "libc": None}


def _mallopt() -> Any:
    """glibc's ``mallopt``, or None where the C library has none."""
    if _state["libc"] is None:
        libc: Any = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            except (OSError, AttributeError):
                libc = False
        _state["libc"] = libc
    return _state["libc"].mallopt if _state["libc"] else None


def keep_freed_memory(pad: int) -> bool:
    """Ask ``malloc`` to keep up to ``pad`` bytes of freed memory for reuse (see the module doc).
    Once per value per process; True when the settings are in force."""
    if pad <= 0:
        return _state["applied"] is not None
    if _state["applied"] == pad:
        return True
    mallopt = _mallopt()
    if mallopt is None or launcher_chose():
        return False
    pad = min(pad, 2**29)  # mallopt takes a C int; the trim threshold is twice the pad
    ok = all(mallopt(option, value) == 1 for option, value in
             ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TOP_PAD, pad), (M_TRIM_THRESHOLD, 2 * pad)))
    _state["applied"] = pad if ok else None
    return ok


_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_")


def launcher_chose() -> bool:
    """True when the environment sets malloc's thresholds itself (see the module doc)."""
    return any(k in os.environ for k in _MALLOC_ENV) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def applied_pad() -> int | None:
    """The pad now in force in this process (None: the allocator's own settings)."""
    return _state["applied"]
