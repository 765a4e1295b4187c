"""How long elementwise programs are built, so that a cold build stays cheap (issue 21).

pocl compiles a kernel (clang, then LLVM's optimiser and its work-group vectoriser) the first
time it is launched, and with an empty kernel cache that compile dominates the first call of a
long fused chain: measured on pocl (2 shared cores), a W4-style chain of tanh/mul/add/sin
steps costs about 5-8 ms per step at the default optimisation level (a 1600-step kernel: 10 s),
but about 1 ms per step with ``-cl-opt-disable`` (3000 steps: 3 s), and the unoptimised
kernel ran *faster* on a million elements in every size measured (100 steps: 0.26 s against
0.84 s): the steps call pocl's prebuilt math functions instead of inlining and re-vectorising
them. So programs of ``LONG_PROGRAM`` steps or more are built unoptimised; short programs
(memory-bound, where the optimiser's vector code matters) keep the default.

Unoptimised code keeps every temporary in memory, and pocl holds a work-group's private values
together on a worker's stack (measured: 800 float16 steps at 256 work-items crashed; 3000 steps
at 16 work-items ran), so a long program's contiguous kernel runs in work-groups small enough
that ``steps * bytes per value * items`` stays within ``STACK_BUDGET``.
"""
from __future__ import annotations

import numpy as np

from symgraph.tensor.composite import Composite

LONG_PROGRAM = 64
"""Steps from which an elementwise program's contiguous kernel is built with -cl-opt-disable."""
STACK_BUDGET = 1 << 21
"""Bytes of step temporaries a work-group of an unoptimised kernel may hold (pocl's worker stacks
are several MiB; this leaves room for the math functions' own frames)."""


def is_long(prog: Composite) -> bool:
    """Whether ``prog`` is long enough to be built without the optimiser."""
    return len(prog.steps) >= LONG_PROGRAM


def build_options(prog: Composite) -> tuple[str, ...]:
    """The OpenCL build options of ``prog``'s contiguous kernel."""
    return ("-cl-opt-disable",) if is_long(prog) else ()


def work_group(prog: Composite, width: int, default: int) -> int:
    """Work-items per work-group of ``prog``'s contiguous kernel (``width`` elements each): the
    ``default`` for short programs, else the largest power of two (at most ``default``) whose
    temporaries fit ``STACK_BUDGET``."""
    if not is_long(prog):
        return default
    widest = max((np.dtype(d).itemsize for d in prog.step_dtypes + prog.in_dtypes), default=8)
    per_item = (len(prog.steps) + prog.nin) * widest * width
    wg = default
    while wg > 1 and wg * per_item > STACK_BUDGET:
        wg //= 2
    return wg
