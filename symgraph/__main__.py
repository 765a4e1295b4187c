"""Command line: ``python -m symgraph devices`` lists the OpenCL platforms and devices and says
which one symgraph would pick (the honest answer to "does this computer have a GPU?")."""
from __future__ import annotations

import argparse
import sys


def devices() -> int:
    """Print every OpenCL device and the one the opencl backend would choose."""
    try:  # pyopencl is optional: imported here, where its absence is reported
        from symgraph.backends.opencl.runtime import choose_device, list_devices
        found = list_devices()
    except ImportError as e:
        print(f"pyopencl is not installed ({e}); only the numpy backend is available.")
        return 1
    if not found:
        print("No OpenCL platform or device found; only the numpy backend is available.")
        return 1
    platform = None
    for info in found:
        if info.platform_index != platform:  # by index: two ICDs may share a name (Debian's and pip's pocl)
            platform = info.platform_index
            print(f"Platform {info.platform_index}: {info.platform}")
        print(f"  Device {info.device_index}: {info.name}\n"
              f"      type {info.type}, {info.compute_units} compute units, "
              f"{info.global_mem / 2**30:.1f} GiB global memory, max work-group size {info.max_work_group_size}, "
              f"fp64 {'yes' if info.fp64 else 'no'}   [SYMGRAPH_DEVICE={info.spec}]")
    try:
        chosen, _ = choose_device()
    except Exception as e:  # a bad SYMGRAPH_DEVICE: say so rather than crash
        print(f"\nsymgraph cannot use the configured device: {e}")
        return 1
    gpu = any("GPU" in info.type for info in found)
    print(f"\nsymgraph would use: {chosen.spec} ({chosen.name}, {chosen.type})")
    print("A GPU is available." if gpu else "No GPU found: the opencl backend runs on the CPU.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand."""
    parser = argparse.ArgumentParser(prog="python -m symgraph", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("devices", help="list OpenCL platforms/devices and the one symgraph would pick")
    args = parser.parse_args(argv)
    if args.command == "devices":
        return devices()
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
