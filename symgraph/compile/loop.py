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

from typing import TYPE_CHECKING, Any

import numpy as np

from symgraph.compile.lowering import HOST, describe
from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply, Variable
from symgraph.scan.op import Scan, carry_shape_message, check_steps
from symgraph.tensor.type import TensorVariable, tensor_outputs

if TYPE_CHECKING:
    from symgraph.compile.lowering import CodeContext
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
        text = carry_shape_message(k, t, want, got)
    else:
        text = (f"scan: step {t} returned stacked output {k} of shape {tuple(got)}, but earlier steps gave shape "
                f"{tuple(want)}: the rows of a stacked output all have one shape")
    return ShapeError(f"{text}\n{node_context(node)}")


def _static(t: Any) -> bool:
    return all(s is not None for s in t.shape)


class LoopEmitter:
    """The ``emit_scan`` part of the emitter (mixed into link.Emitter, which defines what is
    declared here for the type checker)."""

    if TYPE_CHECKING:
        b: Any  # the Backend
        ctx: CodeContext
        lines: list[str]
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
        k = len(self.lines)
        tag = f"{k}"
        n_name, seqs, inits, consts = op.split_inputs(list(zip(node.inputs, ins)))
        final_sides = [self.b.side(o) for o in node.outputs[:op.n_carries]]
        slots = op.output_slots()
        ctx, node_ref = self.ctx, self.ctx.ref(node, "node")
        n = f"_n{tag}"
        self.line_nodes[len(self.lines)] = (node, ins)
        seq_names = ", ".join(s for _, s in seqs)
        head = f"{n} = {ctx.ref(check_steps, 'check_steps')}({n_name[1]}, [{seq_names}], {node_ref})"
        self.emit(f"{head:<60}  # {describe(node)}")
        carries = []
        for j, ((v, _), side) in enumerate(zip(inits, final_sides)):
            local = f"_c{tag}_{j}"
            self.emit(f"{local} = {self.arg(v, side)}")
            carries.append(local)
        seq_sides = [self.b.side(v) for v, _ in seqs]
        body_sides = seq_sides + final_sides + [self.b.side(v) for v, _ in consts]
        fgraph = self.b.inner_fgraph(node, "body", body_sides)
        rows = [f"_x{tag}_{j}" for j in range(op.n_seqs)]
        const_names = []
        for j, (v, name) in enumerate(consts):  # each step reads them: laid out once, before the loop
            expr = self.b.loop_constant(name, self.b.side(v), ctx)
            if expr != name:
                self.emit(f"_k{tag}_{j} = {expr}")
                name = f"_k{tag}_{j}"
            const_names.append(name)
        pre = self._preconvert(fgraph, const_names, op.n_seqs + op.n_carries)
        cap = n if not op.until else f"_cap{tag}"
        if op.until:
            self.emit(f"{cap} = min({n}, {FIRST_ROWS})")
        traces = {}
        for j, (local, side) in enumerate(zip(carries, final_sides)):
            if op.traced[j]:
                traces[j] = f"_tr{tag}_{j}"
                dtype_name = tensor_outputs(node)[j].dtype
                dtype = ctx.ref(np.dtype(dtype_name), f"dt_{dtype_name}")
                self.emit(f"{traces[j]} = {self.b.loop_rows(f'({cap},) + {local}.shape', dtype, side, ctx)}")
        ys = [f"_y{tag}_{j}" for j in range(op.n_ys)]
        y_vars = [tensor_outputs(node)[i] for i in slots["ys"]]
        y_sides = [self.b.side(v) for v in y_vars]
        for name in ys:
            self.emit(f"{name} = None")
        t = f"_t{tag}"
        flags = self.b.loop_stop_flags(ctx) if op.until else None
        if flags is not None:
            self.emit(f"_sf{tag}, _hist{tag} = {flags}, []")
        self.emit(f"for {t} in range({n}):")
        self.depth += 1
        if flags is not None:  # a failing step past the end is not an error: see _speculated
            self.emit("try:")
            self.depth += 1
        for row, (_, sname), side in zip(rows, seqs, seq_sides):
            self.emit(f"{row} = {self.b.loop_row(sname, t, side, ctx)}")
        nexts = [f"{c}_next" for c in carries]
        y_now = [f"{y}_now" for y in ys]
        cond = [f"_stop{tag}"] if op.until else []
        from_host: list[str | None] = ([HOST] if flags is None else [None]) if op.until else []
        saved = dict(self.converted)
        self.converted.update(pre)
        self.emit_inner(fgraph, rows + carries + const_names, nexts + y_now + cond,
                        final_sides + y_sides + from_host)
        self.converted = saved
        if op.until:
            self._grow(cap, n, t, list(traces.values()) + ys, final_sides + y_sides)
        self._checks(node, fgraph, t, carries, nexts, ys, y_now)
        for j, name in traces.items():
            self.emit(self.b.loop_store(name, t, nexts[j], final_sides[j], ctx))
        for y, now, var, side in zip(ys, y_now, y_vars, y_sides):
            dtype = ctx.ref(np.dtype(var.dtype), f"dt_{var.dtype}")
            self.emit(f"if {y} is None: {y} = {self.b.loop_rows(f'({cap},) + {now}.shape', dtype, side, ctx)}")
            self.emit(self.b.loop_store(y, t, now, side, ctx))
        if flags is not None:
            self._speculated(tag, t, n, carries, nexts, cond[0])
        else:
            if carries:
                self.emit(f"{', '.join(carries)} = {', '.join(nexts)}")
            if op.until:
                self.emit(f"if {cond[0]}: break")
        self.depth -= 1
        self._results(node, tag, n, t, carries, traces, ys, y_vars, y_sides, final_sides, outs)

    def _speculated(self, tag: str, t: str, n: str, carries: list[str], nexts: list[str], cond: str) -> None:
        """The end of a step of a while loop that reads its condition every few steps: the step's
        carries are kept (references: no copies) until the pending conditions are read; when one
        held, the loop ends at that step with its carries (the later steps' rows are cut off by
        the final resize). A step that fails is an error only if no earlier pending step stopped
        the loop (the plain loop would never have run it)."""
        sf, hist, j = f"_sf{tag}", f"_hist{tag}", f"_j{tag}"
        restore = f"{', '.join(carries)}, = {hist}[{j}]" if carries else "pass"
        self.depth -= 1
        self.emit("except Exception:")
        self.depth += 1
        for line in (f"{j} = {sf}.first()", f"if {j} < 0: raise", restore,
                     f"{t} = {t} - len({hist}) + {j}", "break"):
            self.emit(line)
        self.depth -= 1
        self.emit(f"{hist}.append(({''.join(c + ', ' for c in nexts)}))")
        if carries:
            self.emit(f"{', '.join(carries)} = {', '.join(nexts)}")
        self.emit(f"if {sf}.add({cond}) or {t} + 1 == {n}:")
        self.depth += 1
        self.emit(f"{j} = {sf}.first()")
        self.emit(f"if {j} >= 0:")
        self.depth += 1
        for line in (restore, f"{t} = {t} - len({hist}) + 1 + {j}", "break"):
            self.emit(line)
        self.depth -= 1
        self.emit(f"{hist}.clear()")
        self.depth -= 1

    def _preconvert(self, fgraph: Any, names: list[str], first: int) -> dict:
        """Constants the body reads on the other side, converted once before the loop (not per step)."""
        slots = fgraph.inputs[first:]
        index = {v: j for j, v in enumerate(slots)}
        done: dict = {}
        for inner in fgraph.toposort():
            for v, side in zip(inner.inputs, self.b.wanted_sides(inner)):
                if v in index and side is not None and side != self.b.side(v) and (v, side) not in done:
                    name = f"{names[index[v]]}_{side[0]}{len(self.lines)}"
                    self.emit(f"{name} = {self.b.convert(names[index[v]], side, self.ctx)}  # transfer (once)")
                    done[(v, side)] = name
        return done

    def _grow(self, cap: str, n: str, t: str, bufs: list[str], sides: list[str]) -> None:
        """A while loop's buffers double when full (never beyond n_steps rows)."""
        self.emit(f"if {t} == {cap}:")
        self.depth += 1
        self.emit(f"{cap} = min(2 * {cap}, {n})")
        for buf, side in zip(bufs, sides):
            self.emit(f"if {buf} is not None: {buf} = {self.b.loop_resize(buf, cap, side, self.ctx)}")
        self.depth -= 1

    def _checks(self, node: Apply, fgraph: Any, t: str, carries: list[str], nexts: list[str],
                ys: list[str], y_now: list[str]) -> None:
        """Each step keeps every carry's shape and gives stacked rows of one shape (unless the
        static types already say so)."""
        op = node.op_as(Scan)
        err, node_ref = self.ctx.ref(shape_error, "loop_shape_error"), self.ctx.ref(node, "node")
        for j, (c, nxt) in enumerate(zip(carries, nexts)):
            inner_in, inner_out = fgraph.inputs[op.n_seqs + j], fgraph.outputs[j]
            if not (_static(inner_in.type) and inner_in.type == inner_out.type):
                self.emit(f"if {nxt}.shape != {c}.shape: raise {err}({node_ref}, 'carry', {j}, {t}, {c}.shape, "
                          f"{nxt}.shape)")
        for j, (y, now) in enumerate(zip(ys, y_now)):
            if not _static(fgraph.outputs[op.n_carries + j].type):
                self.emit(f"if {y} is not None and {now}.shape != {y}.shape[1:]: raise {err}({node_ref}, 'ys', {j}, "
                          f"{t}, {y}.shape[1:], {now}.shape)")

    def _results(self, node: Apply, tag: str, n: str, t: str, carries: list[str], traces: dict,
                 ys: list[str], y_vars: list[TensorVariable], y_sides: list[str], final_sides: list[str],
                 outs: list[str]) -> None:
        """The node's outputs after the loop: final carries (copied when no step ran: they would be
        the initial values' memory), traces and stacked outputs cut to the steps run."""
        op = node.op_as(Scan)
        slots = op.output_slots()
        ctx = self.ctx
        count = n
        if op.until:
            count = f"_ran{tag}"
            self.emit(f"{count} = {t} + 1 if {n} else 0")
        for j, (c, side) in enumerate(zip(carries, final_sides)):
            self.emit(f"{outs[slots['final'][j]]} = {c} if {n} else {self.b.copy(c, side, ctx)}")
        for j, name in traces.items():
            expr = self.b.loop_resize(name, count, final_sides[j], ctx) if op.until else name
            self.emit(f"{outs[slots['trace'][j]]} = {expr}")
        for j, (y, var, side) in enumerate(zip(ys, y_vars, y_sides)):
            dtype = ctx.ref(np.dtype(var.dtype), f"dt_{var.dtype}")
            empty = self.b.loop_rows(repr((0,) + tuple(s or 0 for s in var.type.shape[1:])), dtype, side, ctx)
            expr = self.b.loop_resize(y, count, side, ctx) if op.until else y
            self.emit(f"{outs[slots['ys'][j]]} = {empty} if {y} is None else {expr}")


__all__ = ["LoopEmitter", "resize_rows", "shape_error"]
