"""Run one benchmark case in this (fresh) process and print its metrics as one JSON line.

    python -m benchmarks.run_case W1 1e7 numpy [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

from benchmarks import data as D

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11")
# name: (what runs it, module needed to run it)
BACKENDS = {
    "numpy": ("symgraph, numpy backend", "symgraph"),
    "opencl": ("symgraph, OpenCL backend", "pyopencl"),
    "numpy_by_hand": ("numpy by hand", "numpy"),
    "pytensor": ("PyTensor (C)", "pytensor"),
    "pytensor_numba": ("PyTensor (numba)", "numba"),
    "jax": ("JAX (jit, CPU)", "jax"),
}
PRIMARY = {"W1": ("ms", "ms"), "W2": ("s", "s"), "W3": ("ms", "ms"), "W4": ("s", "s"), "W5": ("us", "µs"),
           "W6": ("s", "s"), "W7": ("ms", "ms"), "W8": ("ms", "ms"), "W9": ("ms", "ms"), "W10": ("ms", "ms"),
           "W11": ("us", "µs")}


def variants(workload: str, quick: bool) -> list[str]:
    """The sizes a workload is measured at."""
    return {"W1": list(D.W1_QUICK_SIZES if quick else D.W1_SIZES),
            "W2": [f"{D.W2_QUICK_STEPS if quick else D.W2_STEPS} steps{one}" for one in ("", D.W2_ONE_CALL)],
            "W3": ["step"], "W7": [f"T={D.W7_QUICK_T if quick else D.W7_T}"],
            "W4": [f"N={n}" for n in (D.W4_QUICK_SIZES if quick else D.W4_SIZES)]
            + [f"N={n} cold" for n in (D.W4_QUICK_COLD_SIZES if quick else D.W4_COLD_SIZES)],
            "W5": ["call"], "W6": [f"{D.W6_STEPS} steps"],
            "W9": [f"{c} n={D.W9_QUICK_N if quick else D.W9_N}" for c in D.W9_CASES],
            "W8": list(D.W8_QUICK_SIZES if quick else D.W8_SIZES),
            "W10": [f"{c} {s}" for c in D.W10_CASES for s in (D.W10_QUICK_SIZES if quick else D.W10_SIZES)],
            "W11": D.w11_variants(quick)}[workload]


def implementation(workload: str, backend: str):
    """A callable (variant, quick) -> metrics, or None where this backend has no such workload."""
    if backend in ("numpy", "opencl"):
        from benchmarks import theano_style as ts
        return lambda v, q: ts.WORKLOADS[workload](ts.symgraph_lib(backend), v, q)
    if backend in ("pytensor", "pytensor_numba"):
        if workload == "W8":
            return None  # PyTensor removed its convolutions (PR 1817)
        os.environ.setdefault("PYTENSOR_FLAGS", "floatX=float32")
        from benchmarks import theano_style as ts
        mode = "NUMBA" if backend == "pytensor_numba" else "FAST_RUN"
        return lambda v, q: ts.WORKLOADS[workload](ts.pytensor_lib(mode), v, q)
    if backend == "jax":
        from benchmarks import jax_impl
        return jax_impl.WORKLOADS[workload]
    from benchmarks import by_hand
    return by_hand.WORKLOADS.get(workload)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workload", choices=WORKLOADS)
    p.add_argument("variant")
    p.add_argument("backend", choices=list(BACKENDS))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if D.is_cold(args.variant):  # empty kernel caches: pocl's and symgraph's (before either is imported)
        os.environ["POCL_CACHE_DIR"] = tempfile.mkdtemp(prefix="sg-cold-pocl-")
        os.environ["SYMGRAPH_CACHE_DIR"] = tempfile.mkdtemp(prefix="sg-cold-")
    from symgraph.compile.host_memory import keep_freed_memory
    from symgraph.config import config
    keep_freed_memory(config.host_memory_pad)  # the same allocator for every peer (as sg.function does)
    fn = implementation(args.workload, args.backend)
    if fn is None:
        result = {"skipped": f"{args.workload} has no {args.backend} version"}
    else:
        try:
            D.collect_import_garbage()
            result = {"metrics": fn(args.variant, args.quick)}
        except RecursionError as e:
            result = {"error": f"RecursionError: {e}"}
        except Exception as e:  # a failing case is a result to report, not a crash of the runner
            result = D.failed(e, 200)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
