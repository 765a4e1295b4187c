"""How a Scan node becomes a loop inside the one generated function (the emitter's ``emit_scan``).

For ``h = scan(step, sequences=[x], outputs_info=[h0])`` the numpy backend writes::

    _n = _check_steps(n_steps, [x], _node)           # an int, checked once
    c = h0                                           # the carry, on the side it lives on
    tr = np.empty((_n,) + c.shape, dtype)            # each trace: preallocated (grown for until)
    for _t in range(_n):
        x_t = x[_t]                                  # a row of each sequence (a view)
        <the body's statements, indented>            # one statement per body node
        c_next = <the body's new carry>
        tr[_t] = c_next                              # rows written into the preallocated trace
        c = c_next
    h_final = c if _n else c.copy()                  # every output owns its memory

Stacked outputs are allocated at step 0 (their row shape is known then). A while loop (``until``)
never preallocates ``n_steps`` rows: its buffers start at 16 rows and double when full, and
are cut to the steps actually run. The statements that read rows, store rows and make buffers
come from the backend (``loop_row``, ``loop_store``, ``loop_rows``, ``loop_resize``), so a device
backend keeps sequences, carries and traces on the device: each step launches the body's
kernels, and nothing is read back except the stop condition of a while loop, which a backend may
read every few steps (``loop_stop_flags``: the loop runs ahead and ends at the first step whose
condition held, with that step's carries).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from symgraph.compile.loop_rows import zero_step_rows
from symgraph.compile.lowering import HOST, describe
from symgraph.compile.shared import held_size
from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply, Variable
from symgraph.scan.op import Scan, carry_shape_message, check_steps
from symgraph.tensor.type import tensor_outputs

if TYPE_CHECKING:
    from symgraph.compile.lowering import CodeContext
    from symgraph.compile.schedule import Schedule
    from symgraph.graph.fgraph import FunctionGraph

FIRST_ROWS = 16  # a while loop's buffers start with this many rows and double when full


def resize_rows(buf: np.ndarray, rows: int) -> np.ndarray:
    """``buf`` with ``rows`` rows: its first rows (a view) when fewer, else a new buffer holding
    the old rows first (a while loop's trace growing)."""
    if rows <= buf.shape[0]:
        return buf[:rows]
    out = np.empty((rows,) + buf.shape[1:], buf.dtype)
    out[:buf.shape[0]] = buf
    return out


def shape_error(node: Apply, what: str, k: int, t: int, want: tuple, got: tuple) -> ShapeError:
    """The error for a step whose carry or stacked output changed shape."""
    if what == "carry":
        text = carry_shape_message(k, t, want, got, node.op)
    else:
        text = (f"scan: step {t} returned stacked output {k} of shape {tuple(got)}, but earlier steps gave shape "
                f"{tuple(want)}: the rows of a stacked output all have one shape")
    return ShapeError(f"{text}\n{node_context(node)}")


def carries_error(node: Apply, carries: list[int], t: int, want: tuple, got: tuple) -> ShapeError:
    """The error for a step whose carries' shapes ``got`` differ from their initial ``want``
    (one tuple per checked carry, in the order of ``carries``): names the first that differs."""
    k = next(k for k, (w, g) in enumerate(zip(want, got)) if tuple(w) != tuple(g))
    return shape_error(node, "carry", carries[k], t, want[k], got[k])


class LoopSpare:
    """The spare buffer of a loop's carry, for ``take_spare``: the carry of two steps before,
    which the body computes the next carry into when nothing else refers to it any more (never
    the initial value, a shared variable's memory: the variable refers to it)."""

    __slots__ = ("spare",)

    def __init__(self) -> None:
        self.spare: Any = None


def _static(t: Any) -> bool:
    return all(s is not None for s in t.shape)


@dataclass
class _Loop:
    """The names one emitted loop uses (``tag``: the emitter's line count where it begins)."""

    node: Apply
    tag: str
    final_sides: list
    y_vars: list
    y_sides: list
    op: Scan = field(init=False)
    n: str = field(init=False)
    t: str = field(init=False)
    cap: str = field(init=False)
    carries: list[str] = field(default_factory=list)
    traces: dict[int, str] = field(default_factory=dict)
    spared: dict[int, str] = field(default_factory=dict)  # carry -> its LoopSpare, where the body used it
    flags: str | None = None  # the backend's stop-flag reader of a while loop, if it has one
    ins: str = ""  # the node's input values, as the generated code names them

    def __post_init__(self) -> None:
        self.op = self.node.op_as(Scan)
        self.n, self.t = f"_n{self.tag}", f"_t{self.tag}"
        self.cap = f"_cap{self.tag}" if self.op.until else self.n

    @property
    def nexts(self) -> list[str]:
        return [f"{c}_next" for c in self.carries]

    @property
    def ys(self) -> list[str]:
        return [f"_y{self.tag}_{j}" for j in range(self.op.n_ys)]

    @property
    def cond(self) -> list[str]:
        return [f"_stop{self.tag}"] if self.op.until else []


class LoopEmitter:
    """The ``emit_scan`` part of the emitter (mixed into link.Emitter, which defines what is
    declared here for the type checker)."""

    if TYPE_CHECKING:
        b: Any  # the Backend
        ctx: CodeContext
        s: Schedule
        lines: list[str]
        loop_spares: dict[Variable, tuple[str, float]]
        loop_spared: set[Variable]
        line_nodes: dict[int, tuple[Apply, list[str]]]
        converted: dict[tuple[Variable, str], str]
        depth: int

        def emit(self, line: str) -> None: ...
        def arg(self, v: Variable, side: str | None) -> str: ...
        def emit_inner(self, fgraph: FunctionGraph, in_names: list[str], out_names: list[str],
                       out_sides: list[str | None]) -> None: ...

    def emit_loop(self, node: Apply, ins: list[str], outs: list[str]) -> None:
        """A Scan node: the backend's one call running every step when it offers one
        (``Backend.loop_kernel``), with the step-by-step loop (``emit_scan``) for the calls it declines."""
        whole = self.b.loop_kernel(node, ins, self) if outs else None
        if whole is None:
            return self.emit_scan(node, ins, outs)
        result = f"_w{len(self.lines)}"
        self.line_nodes[len(self.lines)] = (node, ins)
        self.emit(f"{result} = {whole:<50}  # {describe(node)}: one kernel for every step")
        self.emit(f"if {result} is not None:")
        self.emit(f"    {', '.join(outs)}, = {result}")
        self.emit("else:")
        saved, self.depth = dict(self.converted), self.depth + 1
        self.emit_scan(node, ins, outs)
        self.converted, self.depth = saved, self.depth - 1
        return None

    def emit_scan(self, node: Apply, ins: list[str], outs: list[str]) -> None:
        """A Python loop running ``node``'s body (see the module doc)."""
        op = node.op_as(Scan)
        y_vars = [tensor_outputs(node)[i] for i in op.output_slots()["ys"]]
        lp = _Loop(node, f"{len(self.lines)}", [self.b.side(o) for o in node.outputs[:op.n_carries]],
                   y_vars, [self.b.side(v) for v in y_vars], ins=", ".join(ins))
        n_steps, seqs, inits, consts = op.split_inputs(list(zip(node.inputs, ins)))
        self._head(lp, ins, n_steps[1], seqs, inits)
        seq_sides, const_sides = [self.b.side(v) for v, _ in seqs], [self.b.side(v) for v, _ in consts]
        fgraph = self.b.inner_fgraph(node, "body", seq_sides + lp.final_sides + const_sides)
        to = self._moves(fgraph, seq_sides, 0) + self._moves(fgraph, const_sides, op.n_seqs + op.n_carries)
        if any(to):  # moved once, before the loop: the body is planned again with them there
            seqs, consts = self._move(seqs, to[:op.n_seqs]), self._move(consts, to[op.n_seqs:])
            seq_sides = [t or s for t, s in zip(to, seq_sides)]
            const_sides = [t or s for t, s in zip(to[op.n_seqs:], const_sides)]
            fgraph = self.b.inner_fgraph(node, "body", seq_sides + lp.final_sides + const_sides)
        const_names = self._loop_constants(lp.tag, consts, const_sides)
        pre = self._preconvert(fgraph, const_names, const_sides, op.n_seqs + op.n_carries)
        self._buffers(lp)
        spares = self._carry_spares(lp, fgraph, inits)
        checks = self._checks(lp, fgraph)
        self.emit(f"for {lp.t} in range({lp.n}):")
        self.depth += 1
        if lp.flags is not None:  # a failing step past the end is not an error: see _speculated
            self.emit("try:")
            self.depth += 1
        rows = [f"_x{lp.tag}_{j}" for j in range(op.n_seqs)]
        for row, (_, sname), side in zip(rows, seqs, seq_sides):
            self.emit(f"{row} = {self.b.loop_row(sname, lp.t, side, self.ctx)}")
        saved = dict(self.converted), self.loop_spares, self.loop_spared
        self.converted.update(pre)
        self.loop_spares, self.loop_spared = spares, set()
        from_host: list[str | None] = ([HOST] if lp.flags is None else [None]) if op.until else []
        self.emit_inner(fgraph, rows + lp.carries + const_names, lp.nexts + [f"{y}_now" for y in lp.ys] + lp.cond,
                        lp.final_sides + lp.y_sides + from_host)
        lp.spared = {j: spares[v][0] for j, v in enumerate(fgraph.outputs[:op.n_carries])
                     if v in self.loop_spared and spares[v][0] == f"_sp{lp.tag}_{j}"}
        self.converted, self.loop_spares, self.loop_spared = saved
        self._step_end(lp, checks)
        self.depth -= 1
        self._results(lp, outs)

    def _head(self, lp: _Loop, ins: list[str], n_steps: str, seqs: list, inits: list) -> None:
        """The step count (checked once) and each carry's initial value, on its side."""
        head = f"{lp.n} = {self.ctx.ref(check_steps, 'check_steps')}({n_steps}, [{', '.join(s for _, s in seqs)}], " \
               f"{self.ctx.ref(lp.node, 'node')})"
        self.line_nodes[len(self.lines)] = (lp.node, ins)
        self.emit(f"{head:<60}  # {describe(lp.node)}")
        for j, ((v, _), side) in enumerate(zip(inits, lp.final_sides)):
            lp.carries.append(f"_c{lp.tag}_{j}")
            self.emit(f"{lp.carries[-1]} = {self.arg(v, side)}")

    def _moves(self, fgraph: Any, sides: list[str], first: int) -> list[str | None]:
        """For each of the body's inputs from ``first`` on (sequences or constants, now on
        ``sides``): the other side when every body node reading it reads it there (a device
        sequence whose rows a host-placed body reads: moved once, before the loop, instead of a
        row per step), else None."""
        slots = fgraph.inputs[first:first + len(sides)]
        wanted = self._read_sides(fgraph, slots)
        return [next(iter(wanted[v])) if len(wanted[v]) == 1 and None not in wanted[v] and side not in wanted[v]
                and v not in fgraph.outputs else None for v, side in zip(slots, sides)]

    def _read_sides(self, fgraph: Any, slots: list) -> dict:
        """For each of ``slots`` (inputs of the body): the sides its readers read it on, in the
        order they first do (None: either)."""
        wanted: dict = {v: {} for v in slots}
        for inner in fgraph.toposort():
            for v, side in zip(inner.inputs, self.b.wanted_sides(inner)):
                if v in wanted:
                    wanted[v][side] = None
        return wanted

    def _move(self, values: list, to: list[str | None]) -> list:
        """``values`` ((variable, name) pairs), those with a side in ``to`` moved there (one transfer each)."""
        moved = []
        for (v, name), side in zip(values, to):
            if side is not None:
                new = f"{name}_{side[0]}{len(self.lines)}"
                self.emit(f"{new} = {self.b.convert(name, side, self.ctx)}  # transfer (once)")
                name = new
            moved.append((v, name))
        return moved

    def _loop_constants(self, tag: str, consts: list, sides: list[str]) -> list[str]:
        """What every step reads, laid out once before the loop as the backend wants it."""
        names = []
        for j, ((_, name), side) in enumerate(zip(consts, sides)):
            expr = self.b.loop_constant(name, side, self.ctx)
            if expr != name:
                self.emit(f"_k{tag}_{j} = {expr}")
                name = f"_k{tag}_{j}"
            names.append(name)
        return names

    def _buffers(self, lp: _Loop) -> None:
        """Each trace's buffer (n_steps rows, or FIRST_ROWS for a while loop); the stacked
        outputs' are made at step 0 (their row shape is known then); a while loop's stop flags."""
        if lp.op.until:
            self.emit(f"{lp.cap} = min({lp.n}, {FIRST_ROWS})")
        for j, (local, side) in enumerate(zip(lp.carries, lp.final_sides)):
            if lp.op.traced[j]:
                lp.traces[j] = f"_tr{lp.tag}_{j}"
                dtype = self._dtype(tensor_outputs(lp.node)[j].dtype)
                self.emit(f"{lp.traces[j]} = {self.b.loop_rows(f'({lp.cap},) + {local}.shape', dtype, side, self.ctx)}")
        for name in lp.ys:
            self.emit(f"{name} = None")
        lp.flags = self.b.loop_stop_flags(self.ctx) if lp.op.until else None
        if lp.flags is not None:
            self.emit(f"_sf{lp.tag}, _hist{lp.tag} = {lp.flags}, []")

    def _carry_spares(self, lp: _Loop, fgraph: Any, inits: list) -> dict[Variable, tuple[str, float]]:
        """Double buffering of the host carries whose size the compiler knows (a static shape, or
        the shared variable that is the initial value): a LoopSpare for each, made before the loop
        (the body's ``spare_for`` may compute the next carry into it; ``_step_end`` hands it the
        carry being replaced). Not in a loop that keeps past steps' carries (``_speculated``)."""
        spares: dict[Variable, tuple[str, float]] = {}
        if lp.flags is not None:
            return spares
        for j, ((v, _), side) in enumerate(zip(inits, lp.final_sides)):
            size, out = self._held(v), fgraph.outputs[j]
            if size and side == HOST and getattr(out.type, "ndim", 0) > 0 and out not in spares:
                spares[out] = (f"_sp{lp.tag}_{j}", size)
                self.emit(f"_sp{lp.tag}_{j} = {self.ctx.ref(LoopSpare, 'LoopSpare')}()")
        return spares

    def _held(self, v: Variable) -> float:
        """How many elements ``v`` holds, where the compiler can tell (its static shape, or the
        shared variable it is: the value held now); 0 where it cannot."""
        shape = getattr(v.type, "shape", None)
        if shape is not None and all(d is not None for d in shape):
            return math.prod(shape)
        for k, shared in enumerate(self.s.shared_inputs):
            if shared is v:
                return held_size(self.s.spec.containers[k])
        return 0

    def _dtype(self, name: str) -> str:
        return self.ctx.ref(np.dtype(name), f"dt_{name}")

    def _step_end(self, lp: _Loop, checks: list[str]) -> None:
        """After the body: a while loop's buffers grown, the checks, the rows stored, the carries
        advanced (and a while loop ended at its stop condition)."""
        if lp.op.until:
            self._grow(lp)
        for line in checks:
            self.emit(line)
        for j, name in lp.traces.items():
            self.emit(self.b.loop_store(name, lp.t, lp.nexts[j], lp.final_sides[j], self.ctx))
        for y, var, side in zip(lp.ys, lp.y_vars, lp.y_sides):
            rows = self.b.loop_rows(f"({lp.cap},) + {y}_now.shape", self._dtype(var.dtype), side, self.ctx)
            self.emit(f"if {y} is None: {y} = {rows}")
            self.emit(self.b.loop_store(y, lp.t, f"{y}_now", side, self.ctx))
        if lp.flags is not None:
            self._speculated(lp)
            return
        for j, holder in lp.spared.items():  # the carry being replaced: the next step's spare
            self.emit(f"{holder}.spare = {lp.carries[j]}")
        if lp.carries:
            self.emit(f"{', '.join(lp.carries)} = {', '.join(lp.nexts)}")
        if lp.op.until:
            self.emit(f"if {lp.cond[0]}: break")

    def _speculated(self, lp: _Loop) -> None:
        """The end of a step of a while loop that reads its condition every few steps: the step's
        carries are kept (references: no copies) until the pending conditions are read; when one
        held, the loop ends at that step with its carries (the later steps' rows are cut off by
        the final resize). A step that fails is an error only if no earlier pending step stopped
        the loop (the plain loop would never have run it)."""
        sf, hist, j, t, carries = f"_sf{lp.tag}", f"_hist{lp.tag}", f"_j{lp.tag}", lp.t, lp.carries
        restore = f"{', '.join(carries)}, = {hist}[{j}]" if carries else "pass"
        self.depth -= 1
        self.emit("except Exception:")
        self.depth += 1
        for line in (f"{j} = {sf}.first()", f"if {j} < 0: raise", restore,
                     f"{t} = {t} - len({hist}) + {j}", "break"):
            self.emit(line)
        self.depth -= 1
        self.emit(f"{hist}.append(({''.join(c + ', ' for c in lp.nexts)}))")
        if carries:
            self.emit(f"{', '.join(carries)} = {', '.join(lp.nexts)}")
        self.emit(f"if {sf}.add({lp.cond[0]}) or {t} + 1 == {lp.n}:")
        self.depth += 1
        self.emit(f"{j} = {sf}.first()")
        self.emit(f"if {j} >= 0:")
        self.depth += 1
        for line in (restore, f"{t} = {t} - len({hist}) + 1 + {j}", "break"):
            self.emit(line)
        self.depth -= 1
        self.emit(f"{hist}.clear()")
        self.depth -= 1

    def _preconvert(self, fgraph: Any, names: list[str], sides: list[str], first: int) -> dict:
        """Constants some body nodes read on the other side, converted once before the loop (not per step)."""
        slots = fgraph.inputs[first:]
        done: dict = {}
        for (v, wanted), name, side_now in zip(self._read_sides(fgraph, slots).items(), names, sides):
            for side in wanted:
                if side is not None and side != side_now:
                    done[(v, side)] = f"{name}_{side[0]}{len(self.lines)}"
                    self.emit(f"{done[(v, side)]} = {self.b.convert(name, side, self.ctx)}  # transfer (once)")
        return done

    def _grow(self, lp: _Loop) -> None:
        """A while loop's buffers double when full (never beyond n_steps rows)."""
        self.emit(f"if {lp.t} == {lp.cap}:")
        self.depth += 1
        self.emit(f"{lp.cap} = min(2 * {lp.cap}, {lp.n})")
        for buf, side in zip(list(lp.traces.values()) + lp.ys, lp.final_sides + lp.y_sides):
            self.emit(f"if {buf} is not None: {buf} = {self.b.loop_resize(buf, lp.cap, side, self.ctx)}")
        self.depth -= 1

    def _checks(self, lp: _Loop, fgraph: Any) -> list[str]:
        """The lines checking, each step, that every carry keeps its shape and that stacked rows
        all have one shape (unless the static types already say so). Two or more carries are
        compared with their initial shapes, taken once before the loop, in one tuple comparison
        (the same test as with the previous step's shapes: each step passed it)."""
        op, t = lp.op, lp.t
        err, node_ref = self.ctx.ref(shape_error, "loop_shape_error"), self.ctx.ref(lp.node, "node")
        checked = [j for j in range(op.n_carries)
                   if not (_static(fgraph.inputs[op.n_seqs + j].type) and fgraph.inputs[op.n_seqs + j].type
                           == fgraph.outputs[j].type)]
        lines = []
        if len(checked) == 1:
            c, nxt = lp.carries[checked[0]], lp.nexts[checked[0]]
            lines.append(f"if {nxt}.shape != {c}.shape: raise {err}({node_ref}, 'carry', {checked[0]}, {t}, "
                         f"{c}.shape, {nxt}.shape)")
        elif checked:
            self.emit(f"_sh{lp.tag} = ({''.join(lp.carries[j] + '.shape, ' for j in checked)})")
            now = f"({''.join(lp.nexts[j] + '.shape, ' for j in checked)})"
            lines.append(f"if {now} != _sh{lp.tag}: raise {self.ctx.ref(carries_error, 'loop_carries_error')}("
                         f"{node_ref}, {checked!r}, {t}, _sh{lp.tag}, {now})")
        for j, y in enumerate(lp.ys):
            if not _static(fgraph.outputs[op.n_carries + j].type):
                lines.append(f"if {y} is not None and {y}_now.shape != {y}.shape[1:]: raise {err}({node_ref}, 'ys', "
                             f"{j}, {t}, {y}.shape[1:], {y}_now.shape)")
        return lines

    def _results(self, lp: _Loop, outs: list[str]) -> None:
        """The node's outputs after the loop: final carries (copied when no step ran: they would be
        the initial values' memory), traces and stacked outputs cut to the steps run."""
        op, n, ctx = lp.op, lp.n, self.ctx
        slots = op.output_slots()
        count = n
        if op.until:
            count = f"_ran{lp.tag}"
            self.emit(f"{count} = {lp.t} + 1 if {n} else 0")
        for j, (c, side) in enumerate(zip(lp.carries, lp.final_sides)):
            self.emit(f"{outs[slots['final'][j]]} = {c} if {n} else {self.b.copy(c, side, ctx)}")
        for j, name in lp.traces.items():
            expr = self.b.loop_resize(name, count, lp.final_sides[j], ctx) if op.until else name
            self.emit(f"{outs[slots['trace'][j]]} = {expr}")
        for j, (y, var, side) in enumerate(zip(lp.ys, lp.y_vars, lp.y_sides)):
            rows = repr((0,) + tuple(var.type.shape[1:])) if None not in var.type.shape[1:] else \
                f"(0, *{ctx.ref(zero_step_rows, 'zero_step_rows')}({ctx.ref(lp.node, 'node')}, ({lp.ins},))[{j}])"
            empty = self.b.loop_rows(rows, self._dtype(var.dtype), side, ctx)
            expr = self.b.loop_resize(y, count, side, ctx) if op.until else y
            self.emit(f"{outs[slots['ys'][j]]} = {empty} if {y} is None else {expr}")


__all__ = ["LoopEmitter", "LoopSpare", "resize_rows", "shape_error", "carries_error"]
