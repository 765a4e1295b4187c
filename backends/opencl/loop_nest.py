"""Loop nests of the one-kernel loop on CPU devices (backends/opencl/loop_source.py prints the
kernel; this module prints a step's work when one work-item runs it all).

pocl runs a work-group on one core, so there the kernel's one work-item walks each step's
elements itself, in nested ``for`` loops the compiler can vectorise: no index division, the
innermost loop over the axis with unit strides, and axes that every operand walks as one merged
into one loop (``kernels_elemwise.merge_axes``). A reduction over many outputs (a column sum, a
matrix product: the sum over k of ``a[i, k] * b[k, j]``) runs its reduced axes outermost and
accumulates into one value per output in memory, so the innermost loop runs over independent
outputs rather than along one chain of dependent additions; its epilogue program then runs as
an elementwise loop over the accumulators. A reduction into a single output keeps one private
accumulator.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from symgraph.backends.opencl import kernels_random as kr
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_elemwise import merge_axes
from symgraph.backends.opencl.kernels_reduce import _OPS, _combine
from symgraph.backends.opencl.loop_plan import Slot, Step
from symgraph.tensor.composite import Composite

LANES = 8
"""Partial results of a reduction along a long innermost axis (a vector's worth of floats)."""


class Printer(Protocol):
    """What prints programs: their statements on given loads and the helper functions they need."""
    needed: set[str]

    def program(self, prog: Composite, loads: Sequence[str | None],
                index: Callable[[int], str] | None = None) -> tuple[list[str], list[str]]: ...


def space_strides(slot: Slot, shape: tuple) -> list[int]:
    """``slot``'s element strides over a space of ``shape`` (right-aligned; 0 where it broadcasts)."""
    pad = len(shape) - len(slot.shape)
    return [0] * pad + [0 if n == 1 else st for n, st in zip(slot.shape, slot.strides)]


def offset(strides: list[int], idx: list[str], dims: list[int] | tuple) -> str:
    terms = [idx[d] if st == 1 else f"{idx[d]} * {st}" for d, st in enumerate(strides) if dims[d] != 1 and st]
    return " + ".join(terms) or "0"


INDEPENDENT = "#pragma clang loop vectorize(assume_safety)"
"""Put before a loop whose iterations touch disjoint memory: without it, the compiler sees the
scratch regions, carries and constants as possibly overlapping pointers and keeps the loop
scalar (W2 in one call: 0.13 s a call; with it, 0.06-0.09 s). Only on CPU devices (loop nests
are theirs); clang-based compilers read it. A marked loop the optimiser still keeps scalar (one
calling pocl's sqrt) is no news: the kernel turns clang's "-Wpass-failed" warning off."""


def nest(axes: list[tuple[str, int]], body: list[str], independent: bool = False) -> list[str]:
    """``body`` inside one ``for`` per (index name, length), outermost first (length-1 axes: none);
    ``independent``: the innermost loop's iterations touch disjoint memory (see INDEPENDENT)."""
    loops = [(name, n) for name, n in axes if n != 1]
    if not loops:  # a block of its own all the same: each step's names are its own
        return ["{"] + ["    " + ln for ln in body] + ["}"]
    lines = []
    for k, (name, n) in enumerate(loops):
        if independent and k == len(loops) - 1:
            lines.append("    " * k + INDEPENDENT)
        lines.append("    " * k + f"for (long {name} = 0; {name} < {n}; {name}++) {{")
    lines += ["    " * len(loops) + ln for ln in body]
    return lines + ["    " * k + "}" for k in reversed(range(len(loops)))]


def elemwise(step: Step, printer: Printer) -> list[str]:
    """An elementwise step as a loop nest over its shape, axes merged where every operand allows;
    a random step's flat index in its own shape rides along as one more operand of the merging."""
    assert step.prog is not None
    operands = [s for s in step.ins if s.ptr] + [d for dests in step.outs for d in dests]
    draws = sorted(step.draws)
    pad = {j: len(step.shape) - len(step.draws[j]) for j in draws}
    index_strides = [[0] * pad[j] + kr.index_strides(step.draws[j]) for j in draws]
    dims, merged = merge_axes(step.shape, [space_strides(s, step.shape) for s in operands] + index_strides, 1)
    idx = [f"i{d}" for d in range(len(dims))]

    def at(s: Slot) -> str:
        return s.literal if not s.ptr else f"{s.ptr}[{offset(merged[operands.index(s)], idx, dims)}]"
    lines, outs = printer.program(step.prog, loads(step, at),
                                  lambda j: offset(merged[len(operands) + draws.index(j)], idx, dims))
    stores = [f"{at(d)} = {o};" for q, o in enumerate(outs) for d in step.outs[q]]
    # each iteration writes its own elements (no output broadcasts along the innermost loop) and
    # carries nothing to the next (a random step's block cache does)
    inner = max((d for d, n in enumerate(dims) if n != 1), default=None)
    disjoint = inner is not None and not draws and \
        all(merged[operands.index(d)][inner] != 0 for ds in step.outs for d in ds)
    return block_caches(step, [f"/* {step.label} */"] + nest(list(zip(idx, dims)), lines + stores, disjoint))


def loads(step: Step, at: Callable[[Slot], str]) -> list[str | None]:
    """An elementwise step's input expressions (``at``); None for an input that random steps read
    only for its shape (never loaded, as in every elementwise kernel)."""
    assert step.prog is not None
    roles = kr.input_roles(step.prog)
    return [None if role == "shape" else at(s) for s, role in zip(step.ins, roles)]


def block_caches(step: Step, loop: list[str]) -> list[str]:
    """``loop`` after the declarations of its random steps' Philox block caches, in a block of its
    own: a block serves the elements it covers, within this step of the loop (the counter word
    changes between steps)."""
    if not step.draws:
        return loop
    assert step.prog is not None
    return ["{"] + ["    " + ln for ln in kr.cache_lines(step.prog) + loop] + ["}"]


def reduce(step: Step, printer: Printer) -> list[str]:
    """A reduction (or product): accumulators in memory when there are several outputs and
    several reduced elements, else one private accumulator per output."""
    kept = [d for d in range(len(step.xshape)) if d not in step.axes]
    outputs = int(np.prod([step.xshape[d] for d in kept], dtype=np.int64))
    reduced = int(np.prod([step.xshape[d] for d in step.axes], dtype=np.int64))
    if outputs > 1 and reduced > 1 and step.acc_slot is not None and _strided(step, kept) <= _strided(step, step.axes):
        return _columns(step, printer, kept)
    return _rows(step, printer, kept)


def _strided(step: Step, axes: list[int] | tuple) -> int:
    """How many operands walk the innermost of ``axes`` (of length > 1) with a stride other than
    0 or 1: the innermost loop should be the axis with fewest (a loop the compiler vectorises)."""
    long_axes = [d for d in axes if step.xshape[d] != 1]
    if not long_axes:
        return len(step.ins) + 1
    d = long_axes[-1]
    return sum(space_strides(s, step.xshape)[d] not in (0, 1) for s in step.ins if s.ptr)


def _value(step: Step, printer: Printer, idx: list[str]) -> tuple[list[str], str]:
    """Statements computing the value to reduce at index ``idx`` of the space, as ``v``."""
    assert step.prog is not None and step.acc is not None
    loads = [s.literal if not s.ptr else
             f"{s.ptr}[{offset(space_strides(s, step.xshape), idx, step.xshape)}]" for s in step.ins]
    lines, (value,) = printer.program(step.prog, loads)
    acc, in_dt = np.dtype(step.acc), np.dtype(step.prog.out_dtypes[0])
    A = ks.ctype(acc)
    conv = f"({value} != 0)" if acc.kind == "b" and in_dt.kind != "b" else f"(({A}){value})" if acc != in_dt else value
    return lines + [f"const {A} v = {conv};"], A


def _combine_lines(step: Step, printer: Printer) -> tuple[list[str], str]:
    acc = np.dtype(step.acc)
    serial, _, ident, _, helpers = _combine(_OPS[step.op], False, acc, acc)
    printer.needed |= helpers
    return serial, ident


def _out_idx(step: Step, idx: list[str], kept: list[int]) -> list[str]:
    """The output's indices, from the space's (a kept-dimension reduction's reduced axes: 0)."""
    return [idx[d] if d in kept else "0" for d in range(len(step.xshape))] if step.keepdims else [idx[d] for d in kept]


def _rows(step: Step, printer: Printer, kept: list[int]) -> list[str]:
    """Per output: a private accumulator over the reduced axes, then the epilogue and the stores."""
    idx = [f"i{d}" for d in range(len(step.xshape))]
    inner, A = _accumulate(step, printer, idx)
    out_idx = _out_idx(step, idx, kept)

    def at(s: Slot) -> str:
        return s.literal if not s.ptr else f"{s.ptr}[{offset(space_strides(s, step.shape), out_idx, step.shape)}]"
    assert step.epi is not None
    loads = [at(s) for s in step.others]
    loads.insert(step.epi_slot, "a")
    epi, outs = printer.program(step.epi, loads)
    stores = [f"{at(d)} = {o};" for q, o in enumerate(outs) for d in step.outs[q]]
    inline = not any(ln.lstrip().startswith("for") for ln in inner)  # no reduction loop inside: outputs innermost
    return [f"/* {step.label} */"] + nest([(idx[d], step.xshape[d]) for d in kept], inner + epi + stores,
                                          independent=inline)


def _accumulate(step: Step, printer: Printer, idx: list[str]) -> tuple[list[str], str]:
    """Statements leaving in ``a`` the reduction over the reduced axes at the kept indices ``idx``.
    A long innermost reduced axis runs in LANES interleaved partial results (independent chains
    the compiler vectorises), combined at the end."""
    serial, ident = _combine_lines(step, printer)
    red = [d for d in step.axes if step.xshape[d] != 1]
    lines, A = _value(step, printer, idx)
    if not red or step.xshape[red[-1]] < 2 * LANES:
        body = ["{"] + ["    " + ln for ln in lines + serial] + ["}"]
        return [f"{A} a = {ident};"] + nest([(idx[d], step.xshape[d]) for d in red], body), A
    last, n = red[-1], step.xshape[red[-1]]
    lane = list(idx)
    lane[last] = f"({idx[last]} + l)"
    lane_lines, _ = _value(step, printer, lane)
    main = n - n % LANES
    update = [f"{A} a = p[l];"] + serial + ["p[l] = a;"]
    loops = [f"for (long {idx[last]} = 0; {idx[last]} < {main}; {idx[last]} += {LANES})",
             f"    for (int l = 0; l < {LANES}; l++) {{"] + ["        " + ln for ln in lane_lines + update] + ["    }"]
    if main < n:
        tail = [ln.replace("p[l]", "p[0]") for ln in update]
        loops += [f"for (long {idx[last]} = {main}; {idx[last]} < {n}; {idx[last]}++) {{"] + \
            ["    " + ln for ln in lines + tail] + ["}"]
    out = [f"{A} p[{LANES}];", f"for (int l = 0; l < {LANES}; l++) p[l] = {ident};"]
    out += nest([(idx[d], step.xshape[d]) for d in red[:-1]], loops)
    return out + [f"{A} a = p[0];", f"for (int l = 1; l < {LANES}; l++) {{", f"    const {A} v = p[l];"] + \
        ["    " + ln for ln in serial] + ["}"], A


def _columns(step: Step, printer: Printer, kept: list[int]) -> list[str]:
    """Reduced axes outermost, outputs innermost, accumulating in memory; then the epilogue."""
    acc = step.acc_slot
    assert acc is not None and step.epi is not None
    idx = [f"i{d}" for d in range(len(step.xshape))]
    lines, A = _value(step, printer, idx)
    serial, ident = _combine_lines(step, printer)
    at = f"{acc.ptr}[{offset(list(acc.strides), _out_idx(step, idx, kept), acc.shape)}]"
    body = lines + [f"{A} a = {at};"] + serial + [f"{at} = a;"]
    n = int(np.prod(acc.shape, dtype=np.int64))
    out = [f"/* {step.label}: accumulators */", f"for (long o = 0; o < {n}; o++) {acc.ptr}[o] = {ident};"]
    order = [(idx[d], step.xshape[d]) for d in list(step.axes) + kept]
    outputs_innermost = any(step.xshape[d] != 1 for d in kept)  # each iteration: its own accumulator
    out += nest(order, ["{"] + ["    " + ln for ln in body] + ["}"], independent=outputs_innermost)
    epi_ins = list(step.others)
    epi_ins.insert(step.epi_slot, acc)
    return out + elemwise(Step("elemwise", f"{step.label}: epilogue", step.shape, epi_ins, step.outs, prog=step.epi),
                          printer)


__all__ = ["Printer", "block_caches", "elemwise", "loads", "reduce", "nest", "offset", "space_strides"]
