"""How long elementwise programs are built, so that a cold build stays cheap (issue 21).

pocl compiles a kernel (clang, then LLVM's optimiser and its work-group vectoriser) the first
time it is launched, and with an empty kernel cache that compile dominates the first call of a
long fused chain. Measured on pocl (2 shared cores) with a W4-style chain of tanh/mul/add/sin
steps in the float16 vector kernel: about 5-8 ms per step at the default optimisation level (a
1600-step kernel: 10 s, the first launch, not clBuildProgram, taking nearly all of it), but well
under 1 ms per step with ``-cl-opt-disable`` in work-groups of 16 (800 steps: 0.4 s; 3000
steps: 3 s); and the unoptimised vector kernel ran *faster* on a million elements at every size
measured (100 steps: 0.26 s against 0.84 s; 800 steps: 1.5 s): its steps call pocl's prebuilt
vector math instead of inlining and re-vectorising it. A width-1 (scalar) kernel unoptimised,
though, ran about 15 times slower than optimised (pocl's work-item vectoriser is then off), so
only vector kernels of ``LONG_PROGRAM`` steps or more are built unoptimised; short programs
(memory-bound, where the optimiser's code matters) keep the default. All of this was measured on
pocl: GPU drivers compile differently and run work-groups by warps, so on a GPU every program keeps
the default build and work-group size (``on_cpu=False``).

Unoptimised code keeps every temporary in memory, and pocl's first launch of a kernel wraps its
body in a loop over the work-group's items, giving each private value one slot per item: with
``reqd_work_group_size(1)`` that loop and those slots disappear, and the first launch of a long
program costs about half as much (W4's 2,275-step kernel, N=1000: 0.74 s of CPU at 8 items, 0.27 s
at 1; 2,000 float16 steps: 0.55-0.70 s at 8, 0.24-0.35 s at 1) for the same run time (16k and 4M
elements, within noise). So such kernels run in work-groups of ``LONG_WORK_GROUP`` = 1 item, each
holding only its own temporaries on pocl's worker stack (800 float16 steps at 256 items crashed).
"""
from __future__ import annotations

from symgraph.tensor.composite import Composite

LONG_PROGRAM = 64
"""Steps from which a vector program's contiguous kernel is built with -cl-opt-disable."""
LONG_WORK_GROUP = 1
"""Work-items per work-group of an unoptimised kernel (1 compiles in half the time of 8 or 16 and
runs as fast; 16 compiled and ran faster than 128)."""


def unoptimised(prog: Composite, width: int, on_cpu: bool = True) -> bool:
    """Whether ``prog``'s contiguous kernel (``width`` elements a work-item) is built without the
    optimiser: long vector programs on a CPU device."""
    return on_cpu and width > 1 and len(prog.steps) >= LONG_PROGRAM


def build_options(prog: Composite, width: int, on_cpu: bool = True) -> tuple[str, ...]:
    """The OpenCL build options of ``prog``'s contiguous kernel."""
    return ("-cl-opt-disable",) if unoptimised(prog, width, on_cpu) else ()


def work_group(prog: Composite, width: int, default: int, on_cpu: bool = True) -> int:
    """Work-items per work-group of ``prog``'s contiguous kernel: the ``default`` for optimised
    kernels, else ``LONG_WORK_GROUP``."""
    return min(LONG_WORK_GROUP, default) if unoptimised(prog, width, on_cpu) else default
