"""OpenCL C for the one-kernel loop (issue 15, build item 6): a LoopPlan (backends/opencl/loop_plan.py)
printed as one kernel that runs every step of a loop in one work-group::

    for (long t = start; t < n; t++) {
        <row t of each sequence, the current and next buffer of each carry, trace and output rows>
        barrier(...);                       /* the last step is done: its next carries are current */
        for (long e = <this work-item's share>) { <step 1: an elementwise program, per element> }
        barrier(...);                       /* only where a step reads what an earlier one wrote */
        for (long o = ...) { <step 2: a reduction or product per output element, its epilogue> }
        ...
        if (cnd[0]) end = t + 1;                /* a while loop: its condition held */
    }

A launch runs steps start .. n-1: a for loop in one launch, a while loop in launches of doubling
length (loop_kernel.py reads ``done`` after each). Carries are double-buffered: step t reads
``cur`` (the initial values at t = 0) and writes ``nxt``, which the next step reads. Elementwise
code is the Composite program printed by ``kernels_elemwise.program_lines`` (the one program
format), as every other kernel prints it. Work-items take contiguous chunks of each step's
elements on CPU devices and interleaved elements on GPUs (coalesced loads); a work-group of one
item (CPU devices by default) runs the loop nests of loop_nest.py instead, with no barrier.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from symgraph.backends.opencl import kernels_random as kr
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl import loop_nest
from symgraph.backends.opencl.kernels_elemwise import preamble, program_dtypes, program_lines
from symgraph.backends.opencl.kernels_reduce import _OPS, _combine
from symgraph.backends.opencl.loop_index import INDEX_CHECK
from symgraph.backends.opencl.loop_plan import LoopPlan, Slot, Step
from symgraph.tensor.composite import Composite

BARRIER = "barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);"
SPECIAL = ("check", "gather", "scatter")  # steps printed as one plain loop in every form


def _spread(var: str, n: int, local: int, chunked: bool) -> str:
    """The loop header giving this work-item its share of ``n`` elements."""
    if local == 1:
        return f"for (long {var} = 0; {var} < {n}; {var}++)"
    if chunked:
        c = -(-n // local)
        return f"for (long {var} = lid * {c}, {var}_end = min((long){n}, (lid + 1) * {c}); {var} < {var}_end; {var}++)"
    return f"for (long {var} = lid; {var} < {n}; {var} += {local})"


def _digits(var: str, prefix: str, shape: tuple) -> list[str]:
    """Per-axis indices ``{prefix}{d}`` of flat index ``var`` over ``shape`` (C order)."""
    lines = []
    for d, n in enumerate(shape):
        inner = int(np.prod(shape[d + 1:], dtype=np.int64))
        q = var if inner == 1 else f"({var} / {inner})"
        lines.append(f"const long {prefix}{d} = {q if d == 0 else f'{q} % {n}'};")
    return lines


def _at(slot: Slot, shape: tuple, idx: list[str], flat: str | None) -> str:
    """``slot``'s element at index ``idx`` of a space of ``shape`` (slot right-aligned, broadcast)."""
    if not slot.ptr:
        return slot.literal
    if flat is not None and slot.shape == shape and slot.contiguous():
        return f"{slot.ptr}[{flat}]"
    pad = len(shape) - len(slot.shape)
    terms = [idx[pad + d] if st == 1 else f"{idx[pad + d]} * {st}"
             for d, (n, st) in enumerate(zip(slot.shape, slot.strides)) if n != 1 and st != 0]
    return f"{slot.ptr}[{' + '.join(terms) or '0'}]"


def draw_index(draw: tuple, shape: tuple, idx: list[str], flat: str) -> str:
    """The flat index, in a random step's own shape ``draw``, of the element at ``idx`` (``flat``)
    of the step's space ``shape``: the same numbers as the step drawn anywhere else."""
    if draw == shape:
        return flat
    pad = len(shape) - len(draw)
    terms = [idx[pad + d] if st == 1 else f"{idx[pad + d]} * {st}"
             for d, st in enumerate(kr.index_strides(draw)) if st]
    return " + ".join(terms) or "0"


def _used(lines: list[str], body: list[str]) -> list[str]:
    """The index lines whose names ``body`` uses."""
    text = "\n".join(body)
    return [ln for ln in lines if re.search(r"\b" + ln.split()[2] + r"\b", text)]


class Source:
    """Prints one LoopPlan; ``needed`` collects the helper functions the programs call."""

    def __init__(self, plan: LoopPlan, local: int, chunked: bool):
        self.plan, self.local, self.chunked = plan, local, chunked
        self.needed: set[str] = set()
        self.dtypes: set[np.dtype] = set(plan.dtypes)

    def program(self, prog: Composite, loads: Sequence[str | None],
                index: Callable[[int], str] | None = None) -> tuple[list[str], list[str]]:
        lines, outs, needed = program_lines(prog, list(loads), index=index)
        self.needed |= needed
        self.dtypes |= program_dtypes(prog)
        return lines, outs

    def _stores(self, step: Step, outs: list[str], shape: tuple, idx: list[str], flat: str) -> list[str]:
        return [f"{_at(d, shape, idx, flat)} = {o};" for q, o in enumerate(outs) for d in step.outs[q]]

    def elemwise(self, step: Step) -> list[str]:
        shape, idx = step.shape, _names(step)
        assert step.prog is not None
        lines, outs = self.program(step.prog, loop_nest.loads(step, lambda s: _at(s, shape, idx, "e")),
                                   lambda j: draw_index(step.draws[j], shape, idx, "e"))
        return loop_nest.block_caches(step, self._each(step, lines + self._stores(step, outs, shape, idx, "e")))

    def _special(self, step: Step) -> list[str]:
        """A step of a kind one loop prints in every form of the kernel (``SPECIAL``)."""
        return {"check": self.check, "gather": self.gather, "scatter": self.scatter}[step.kind](step)

    def check(self, step: Step) -> list[str]:
        """A range check (``Step`` kind 'check'): each element of ``ins[0]`` in 0 .. count - 1, else
        the host's flag (``bad``: the call then runs step by step, where the op raises)."""
        v = _at(step.ins[0], step.shape, _names(step), "e")
        return self._each(step, [f"if ({v} < 0 || {v} >= {step.count}) bad[0] = 1;"])

    def gather(self, step: Step) -> list[str]:
        """``x[i0[e], .., ik[e]]`` for each element ``e`` of the index arrays' broadcast (``Step``
        kind 'gather'), each index checked and wrapped (``sg_index``)."""
        x, arrays, idx = step.ins[0], step.ins[1:], _names(step)
        at = self._indexed(x, arrays, step.shape, idx)
        return self._each(step, [f"const {ks.ctype(x.dtype)} v = {at};"]
                          + [f"{_at(d, step.shape, idx, 'e')} = v;" for d in step.outs[0]])

    def scatter(self, step: Step) -> list[str]:
        """``out[i0[e], .., ik[e]] = v[e]`` (or ``+=``) for each element, in order on one work-item
        (``Step`` kind 'scatter': repeated indices accumulate, as inc_subtensor's do)."""
        value, arrays, idx = step.ins[0], step.ins[1:], _names(step)
        sign, v = "=" if step.op == "set" else "+=", _at(value, step.shape, idx, "e")
        return self._each(step, [f"{self._indexed(d, arrays, step.shape, idx)} {sign} {v};" for d in step.outs[0]],
                          in_order=True)

    def _each(self, step: Step, body: list[str], in_order: bool = False) -> list[str]:
        """``body`` (lines for element ``e`` of ``step.shape``, its indices ``i<d>``) for every
        element: spread over the work-group, or in order on one work-item (``in_order``)."""
        n = int(np.prod(step.shape, dtype=np.int64))
        head = _spread("e", n, 1 if in_order else self.local, self.chunked)
        lines = _used(_digits("e", "i", step.shape), body) + body
        loop = [f"{head} {{  /* {step.label} */"] + ["    " + ln for ln in lines] + ["}"]
        return ["if (lid == 0) {"] + ["    " + ln for ln in loop] + ["}"] if in_order and self.local > 1 else loop

    @staticmethod
    def _indexed(x: Slot, arrays: list[Slot], shape: tuple, idx: list[str]) -> str:
        """The element of ``x`` the index arrays point at, for element ``e`` of their broadcast."""
        terms = [f"{st} * sg_index({_at(a, shape, idx, 'e')}, {n}, bad)"
                 for a, n, st in zip(arrays, x.shape, x.strides)]
        return f"{x.ptr}[{' + '.join(terms) or '0'}]"

    def _epilogue(self, step: Step, result: str) -> list[str]:
        """The epilogue program on ``result`` at output element ``o`` (indices ``q*``), then the stores."""
        shape = step.shape
        q = [f"q{d}" for d in range(len(shape))]
        assert step.epi is not None
        loads = [_at(s, shape, q, "o") for s in step.others]
        loads.insert(step.epi_slot, result)
        lines, outs = self.program(step.epi, loads)
        return lines + self._stores(step, outs, shape, q, "o")

    def reduce(self, step: Step) -> list[str]:
        xshape, axes, acc = step.xshape, step.axes, np.dtype(step.acc)
        kept = [d for d in range(len(xshape)) if d not in axes]
        out_axis = {d: (d if step.keepdims else kept.index(d)) for d in kept}
        idx = [f"r{axes.index(d)}" if d in axes else f"q{out_axis[d]}" for d in range(len(xshape))]
        assert step.prog is not None
        lines, (value,) = self.program(step.prog, [_at(s, xshape, idx, None) for s in step.ins])
        in_dt = np.dtype(step.prog.out_dtypes[0])
        serial, _, ident, final, helpers = _combine(_OPS[step.op], False, acc, acc)
        self.needed |= helpers
        A = ks.ctype(acc)
        conv = "(xv != 0)" if acc.kind == "b" and in_dt.kind != "b" else f"(({A})xv)" if acc != in_dt else "xv"
        n_red = int(np.prod([xshape[d] for d in axes], dtype=np.int64))
        inner = _digits("j", "r", tuple(xshape[d] for d in axes)) + lines
        inner += [f"const {ks.ctype(in_dt)} xv = {value};", f"const {A} v = {conv};"] + serial
        tail = self._epilogue(step, final)
        head = [f"{A} a = {ident};", f"for (long j = 0; j < {n_red}; j++) {{"] + ["    " + ln for ln in inner] + ["}"]
        body = _used(_digits("o", "q", step.shape), head + tail) + head + tail
        return self._outer(step, body)

    def _outer(self, step: Step, body: list[str]) -> list[str]:
        n = int(np.prod(step.shape, dtype=np.int64))
        return [f"{_spread('o', n, self.local, self.chunked)} {{  /* {step.label} */"] + \
            ["    " + ln for ln in body] + ["}"]

    def steps(self) -> list[str]:
        """Every step's loop, with a barrier before a step that reads, or overwrites, memory that
        an earlier step since the last barrier wrote or read, and one first (the previous step's
        writes: its next carries are this step's current ones). That one stands at the top of the
        loop's body, not at its end: pocl 3.1's compiler aborts on some loops whose last statement
        is a barrier. A work-group of one item needs no barrier at all."""
        if self.local == 1:
            return self._alone(self.plan.steps)
        return [BARRIER] + self._shared(self.plan.steps)

    def _alone(self, steps: list[Step]) -> list[str]:
        """``steps`` as one work-item's loop nests."""
        out: list[str] = []
        for step in steps:
            if step.kind == "loop":
                out += _for(step, self._alone(step.branches[0]))
            else:
                out += self._branch(step) if step.kind == "branch" else self._special(step) if step.kind in SPECIAL \
                    else loop_nest.elemwise(step, self) if step.kind == "elemwise" else loop_nest.reduce(step, self)
        return out

    def _shared(self, steps: list[Step], outer: str = "", outer_keys: frozenset = frozenset()) -> list[str]:
        """``steps`` spread over the work-group, barriers where they depend on each other. Barriers
        stay out of conditional code: each step of a branch's sides runs under its guard
        (``if (cond) {...}``, ``if (!cond) {...}``, the condition read from memory each time)
        between barriers. pocl 3.1 gave wrong numbers for a branch with a barrier inside, and
        for guards reading a private flag set before the barriers, when some of a work-group's
        items had no elements (a body of 2 elements, 4 items). A nested loop runs for every item
        (its count is the plan's), a barrier first in each of its steps, its steps under the guard."""
        out: list[str] = []
        written: set[str] = set()
        read: set[str] = set()
        for step, guard, keys in self._flat(steps, outer, outer_keys):
            if step.kind == "branch":
                out.append(f"/* {step.label}: each side's steps below run under its guard */")
                continue
            if step.kind == "loop":
                out += [BARRIER] + _for(step, [BARRIER] + self._shared(step.branches[0], guard, keys)) + [BARRIER]
                written, read = set(), set()
                continue
            reads, writes = step.reads() | keys, step.writes()
            if reads & written or writes & (written | read):
                out.append(BARRIER)
                written, read = set(), set()
            lines = self.elemwise(step) if step.kind == "elemwise" else self._special(step) if step.kind in SPECIAL \
                else self.reduce(step)
            out += [f"if ({guard}) {{"] + ["    " + ln for ln in lines] + ["}"] if guard else lines
            written |= writes
            read |= reads
        return out

    def _flat(self, steps: list[Step], guard: str, keys: frozenset) -> Iterator[tuple[Step, str, frozenset]]:
        """(step, the guard it runs under, the memory its guard reads) for every step, a branch
        followed by its sides' steps: a side's guard reads its condition where the step before
        the branch stored it (no side writes it)."""
        for step in steps:
            yield step, guard, keys
            if step.kind != "branch":
                continue
            cond = step.ins[0]
            c, inner = _at(cond, (), [], None), keys | ({cond.key} if cond.ptr else set())
            both = f"{guard} && " if guard else ""
            yield from self._flat(step.branches[0], f"{both}{c}", inner)
            yield from self._flat(step.branches[1], f"{both}!{c}", inner)

    def _branch(self, step: Step) -> list[str]:
        """One work-item's ``if (condition) { one side } else { the other }``."""
        then, other = (["    " + ln for ln in self._alone(side)] for side in step.branches)
        return [f"if ({_at(step.ins[0], (), [], None)}) {{  /* {step.label} */"] + then + ["} else {"] + other + ["}"]

    def stop(self) -> list[str]:
        """A while loop's end of step: when the step's condition holds, this step is the last
        (after a barrier, every work-item reads the same flag). The loop's condition is its only
        exit: with an early ``return`` after that barrier, pocl 3.1 ran a work-group of 4 items
        through every allowed step (it runs the items as loops around the code between barriers)."""
        if not self.plan.op.until:
            return []
        wait = [] if self.local == 1 else [BARRIER]
        return wait + ["if (cnd[0]) end = t + 1;  /* the condition held: this step is the last */"]

    # --- the kernel around the steps ------------------------------------------------------------
    def params(self) -> list[str]:
        plan, op = self.plan, self.plan.op
        ns, nc = op.n_seqs, op.n_carries
        ct = [ks.ctype(d) for d in plan.dtypes]
        ps = ["const long start", "const long n"]  # steps start .. n-1 (a while loop runs in chunks)
        ps += [f"__global const {ct[k]} *sq{k}, const long sq{k}_off" for k in range(ns)]
        ps += [f"__global const {ct[ns + j]} *in{j}, const long in{j}_off, __global {ct[ns + j]} *ca{j}, "
               f"__global {ct[ns + j]} *cb{j}" for j in range(nc)]
        ps += [f"__global const {ct[k]} *kp{k - ns - nc}, const long kp{k - ns - nc}_off"
               for k in range(ns + nc, len(ct))]
        ps += [f"__global const {ks.ctype(c.dtype)} *bc{m}" for m, c in enumerate(plan.body_constants)]
        ps += [f"__global {ct[ns + j]} *tr{j}" for j in range(nc) if op.traced[j]]
        ys = op.body.outputs[nc:nc + op.n_ys]
        ps += [f"__global {ks.ctype(v.type.dtype)} *y{k}" for k, v in enumerate(ys)]
        ps += [f"__global {c} *s_{c.replace(' ', '_')}" for c in plan.scratch]
        ps += ["__global uchar *cnd", "__global long *done"] if op.until else []
        return ps + (["__global int *bad"] if plan.checks_indices else [])  # an index out of range (INDEX_CHECK)

    def rows(self) -> list[str]:
        """The pointers of step t: sequence rows, carries' current and next buffers, trace and output rows."""
        plan, op = self.plan, self.plan.op
        ns, nc = op.n_seqs, op.n_carries
        ct = [ks.ctype(d) for d in plan.dtypes]
        lines = [f"__global const {ct[k]} *row{k} = sq{k} + sq{k}_off + t * {int(np.prod(row, dtype=np.int64))};"
                 for k, row in enumerate(plan.seq_rows)]
        for j, shape in enumerate(plan.carry_shapes):
            c = ct[ns + j]
            lines.append(f"__global const {c} *cur{j} = t == 0 ? in{j} + in{j}_off : "
                         f"(t & 1) ? (__global const {c} *)cb{j} : (__global const {c} *)ca{j};")
            lines.append(f"__global {c} *nxt{j} = (t & 1) ? ca{j} : cb{j};")
            if op.traced[j]:
                lines.append(f"__global {c} *trr{j} = tr{j} + t * {int(np.prod(shape, dtype=np.int64))};")
        ys = op.body.outputs[nc:nc + op.n_ys]
        for k, (v, row) in enumerate(zip(ys, plan.y_rows)):
            lines.append(f"__global {ks.ctype(v.type.dtype)} *yr{k} = y{k} + t * {int(np.prod(row, dtype=np.int64))};")
        return lines

    def kernel(self, name: str) -> str:
        steps = self.steps()
        consts = [f"__global const {ks.ctype(self.plan.dtypes[self.plan.op.n_seqs + self.plan.op.n_carries + k])} "
                  f"*cst{k} = kp{k} + kp{k}_off;" for k in range(len(self.plan.const_shapes))]
        until = self.plan.op.until
        body = ["const long lid = get_local_id(0);"] + consts
        body += ["long end = n;", "for (long t = start; t < end; t++) {"] if until else \
            ["for (long t = start; t < n; t++) {"]
        body += ["    " + ln for ln in self.rows() + steps + self.stop()] + ["}"]
        if until:
            body.append("if (lid == 0) { done[0] = end; done[1] = cnd[0]; }  /* the steps run; whether one stopped */")
        attr = f"__attribute__((reqd_work_group_size({self.local}, 1, 1)))\n"
        head = preamble(self.dtypes | {np.dtype(d) for d in _step_dtypes(self.plan)}, self.needed)
        head += INDEX_CHECK if self.plan.checks_indices else ""
        if any(ln.strip() == loop_nest.INDEPENDENT for ln in steps):  # a marked loop left scalar is no news
            head = f'#pragma clang diagnostic ignored "-Wpass-failed"\n{head}'
        return (f"{head}__kernel {attr}void {name}(\n        " + ",\n        ".join(self.params())
                + ")\n{\n" + "".join(f"    {ln}\n" for ln in body) + "}\n")


def _names(step: Step) -> list[str]:
    """The per-axis index names ``i<d>`` of a step's elements."""
    return [f"i{d}" for d in range(len(step.shape))]


def _for(step: Step, body: list[str]) -> list[str]:
    """A nested loop's ``for`` around its steps' lines."""
    v = step.var
    head = f"for (long {v} = 0; {v} < {step.count}; {v}++) {{  /* {step.label} */"
    return [head] + ["    " + ln for ln in body] + ["}"]


def _step_dtypes(plan: LoopPlan) -> set:
    def of(steps: list[Step]) -> set:
        own = {s.dtype for step in steps for s in step.ins + step.others + [d for ds in step.outs for d in ds]}
        return own.union(*(of(step.inner()) for step in steps))
    return of(plan.steps)


def kernel_source(name: str, plan: LoopPlan, local: int, chunked: bool) -> str:
    """The one kernel running every step of ``plan``'s loop in a work-group of ``local`` items."""
    return Source(plan, local, chunked).kernel(name)


__all__ = ["kernel_source", "BARRIER"]
