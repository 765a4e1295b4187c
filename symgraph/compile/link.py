"""The call protocol, written once: every backend's compiled function is one generated Python
function (``f.source``) with this shape::

    def f(x, y):
        with <the locks of the shared variables it updates>, <the backend's call scope>:
            try:
                <check and convert each argument; read each shared variable>
                <one statement per node, as the backend lowers it; dead arrays dropped>
                <stage the updates: copies where memory would be shared, static shapes checked>
                <commit every update together>
                return <the outputs, each owning its memory>
            except Exception as e:
                raise <e, naming the node that failed, its inputs and the user line that built it>

A backend (``Backend``, symgraph/compile/backend.py) supplies the lowering of each node and the
few protocol steps that depend on where values live (host or device). Placement decisions are
explicit: a value the next step needs on the other side is converted by a visible line of the
source. This module is the emitter writing that function (loops: symgraph/compile/loop.py) and
``link``, which compiles it; what the function calls at run time is in symgraph/compile/calls.py.
"""
from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from symgraph.compile.backend import Backend as Backend  # (backends import it from here)
from symgraph.compile.calls import NOT_GIVEN as NOT_GIVEN  # (public here too, as the names below)
from symgraph.compile.calls import STRIPES as STRIPES
from symgraph.compile.calls import (
    bad_update,
    commit,
    error_handler,
    make_filter,
    nan_guard_check,
    stripes_of,
    take_spare,
    type_filter,
)
from symgraph.compile.calls import bind_arguments as bind_arguments
from symgraph.compile.calls import missing_input as missing_input
from symgraph.compile.calls import new_serial as new_serial
from symgraph.compile.calls import rewrap as rewrap
from symgraph.compile.loop import LoopEmitter
from symgraph.compile.lowering import DEVICE, HOST, CodeContext, describe, python_name  # noqa: F401 (DEVICE: backends import it from here)
from symgraph.compile.schedule import ArgSpec, Schedule
from symgraph.compile.shared import held_size
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.ifelse import IfElse
from symgraph.scan.op import Scan
from symgraph.tensor.type import TensorType

FILENAME_PREFIX = "<symgraph "

# --- the emitter ----------------------------------------------------------------------------------

class Emitter(LoopEmitter):
    """Writes the generated function for one schedule on one backend (loops: ``emit_scan``,
    symgraph/compile/loop.py)."""

    def __init__(self, schedule: Schedule, backend: Backend):
        self.s, self.b = schedule, backend
        self.ctx = CodeContext()
        self.names: dict[Variable, str] = {}
        self.lines: list[str] = []
        self.line_nodes: dict[int, tuple[Apply, list[str]]] = {}
        self.converted: dict[tuple[Variable, str], str] = {}
        self.taken: set[str] = set()
        self.check_lines: list[int] = []  # indices in ``lines`` of the argument checks (trust_input drops them)
        self.step = -1  # the index in the current schedule's order of the node being lowered
        self.node: Apply | None = None  # the node being lowered
        self.depth = 0  # block nesting (ifelse branches)
        self.nan_guard = bool(schedule.spec.nan_guard)
        self.spared: list[int] = []  # updates (container indices) computed into their spare buffer
        self.loop_spares: dict[Variable, tuple[str, float]] = {}  # a loop body's next carries (loop.py)
        self.loop_spared: set[Variable] = set()  # those computed into their spare
        self.prof = getattr(schedule.spec, "profile", None)  # a Profile: timing lines (else none at all)
        if self.prof is not None:
            self.prof.backend, self.prof.timer = backend.name, backend.profile_timer()
            self.prof.kernel_names = backend.kernel_names
            self.prof.reset()
            self.prof_refs = {what: f"_prof_{what}" for what in ("start", "node", "transfer")}  # see _bind_profile

    def emit(self, line: str) -> None:
        """Append a line of the function body at the current block depth."""
        self.lines.append("    " * self.depth + line)

    # names
    def name(self, v: Variable) -> str:
        """The local name of a computed variable (``v12``) or of an argument/shared value."""
        if v not in self.names:
            self.names[v] = f"v{len(self.names)}"
        return self.names[v]

    def arg(self, v: Variable, side: str | None) -> str:
        """How a node reads ``v`` on ``side``: a constant's global, or the local (converted first)."""
        if isinstance(v, Constant):
            return self.b.constant(v, side or self.b.side(v), self.ctx)
        name = self.name(v)
        if side is None or side == self.b.side(v):
            return name
        key = (v, side)
        if key not in self.converted:
            self.converted[key] = f"{name}_{side[0]}"
            line = f"{self.converted[key]} = {self.b.convert(name, side, self.ctx)}  # transfer"
            reader = self.node
            for timed in self._timed_transfer([line], self.converted[key],
                                              f"{name} for {reader.op if reader else '?'}", side, v, reader):
                self.emit(timed)
        return self.converted[key]

    def spare_for(self, v: Variable, min_size: int = 0) -> str | None:
        """An expression for the spare buffer (or None at run time) that ``v`` may be computed
        into, when ``v`` is stored uncopied as the new value of a shared variable (double
        buffering: the commit keeps the replaced value as the next call's spare; ``take_spare``
        hands out only memory nothing else refers to). None when ``v`` is no such value, or
        when that variable holds fewer than ``min_size`` elements (its static shape, else the
        value it holds now: a backend's threshold below which bookkeeping costs more). In a loop's
        body, a next carry's spare is the carry of two steps before (``LoopEmitter``)."""
        if v in self.loop_spares:
            holder, size = self.loop_spares[v]
            if size < max(min_size, 1):
                return None
            self.loop_spared.add(v)
            return f"{self.ctx.ref(take_spare, 'take_spare')}({holder})"
        s = self.s
        for u in s.updates:
            if s.fgraph.outputs[u.output] is v and not s.copies[u.output] and getattr(v.type, "ndim", 0) > 0:
                if min_size and held_size(s.spec.containers[u.container]) < min_size:
                    return None
                if u.container not in self.spared:
                    self.spared.append(u.container)
                cont = self.ctx.ref(s.spec.containers[u.container], f"c_{self.names[s.shared_inputs[u.container]]}")
                return f"{self.ctx.ref(take_spare, 'take_spare')}({cont})"
        return None

    # sections
    def emit_arguments(self) -> list[str]:
        """The parameters (``x`` or, for an input that may be left out, ``x=NOT_GIVEN``), then for
        each argument: its stored value when left out, its check and conversion, its placement;
        then each shared variable's value."""
        spec, params = self.s.spec, []
        optional = False  # parameters after one that may be left out need a default too
        for k, (v, a) in enumerate(zip(self.s.user_inputs, self.s.args)):
            pname = spec.input_names[k]
            self.names[v] = pname
            self.taken.add(pname)
            optional = optional or a.container is not None
            params.append(f"{pname}={self.ctx.ref(NOT_GIVEN, 'not_given')}" if optional else pname)
            if a.container is not None:
                value = f"{self.ctx.ref(a.container, f'c_{pname}')}.value"
                mutable_copy = ".copy()" if a.mutable and isinstance(v.type, TensorType) else ""
                self.emit(f"if {pname} is {self.ctx.ref(NOT_GIVEN, 'not_given')}: {pname} = {value}{mutable_copy}")
            elif optional:
                missing = self.ctx.ref(missing_input, "missing_input")
                self.emit(f"if {pname} is {self.ctx.ref(NOT_GIVEN, 'not_given')}: "
                          f"raise {missing}({spec.name!r}, {a.keyword or pname!r})")
            self.check_lines.append(len(self.lines))
            self.emit(self._argument_check(k, v, a, pname))
            for line in self._timed_transfer(self.b.read_input(pname, v, self.ctx), pname, f"argument {pname}",
                                             self.b.side(v), v, None):
                self.emit(line)
        for k, v in enumerate(self.s.shared_inputs):
            name = python_name(v.name, f"shared{k}", self.taken)
            self.names[v] = name
            for line in self.b.read_shared(name, v, self.ctx.ref(spec.containers[k], f"c_{name}"), self.ctx):
                self.emit(line)
        return params

    def _argument_check(self, k: int, v: Variable, a: ArgSpec, pname: str) -> str:
        """The line checking and converting argument ``k`` (left out under ``trust_input``): a fast
        test for an ndarray of the right dtype and shape, else the type's filter."""
        spec, t = self.s.spec, v.type
        what = f"argument {k} ({a.keyword or pname}) of {spec.name}"
        downcast = spec.allow_downcast if a.allow_downcast is None else a.allow_downcast
        if not isinstance(t, TensorType):  # a user-defined Type (Theano's Double): its own filter converts
            return f"{pname} = {self.ctx.ref(type_filter(t, a.strict, downcast, what), f'filter_{pname}')}({pname})"
        dtype = self.ctx.ref(t.numpy_dtype, "dt_" + t.dtype)
        cond = [f"{pname}.__class__ is not ndarray", f"{pname}.dtype is not {dtype}", f"{pname}.ndim != {t.ndim}"]
        cond += [f"{pname}.shape[{d}] != {s}" for d, s in enumerate(t.shape) if s is not None]
        filt = make_filter(t, downcast, what, strict=True) if a.strict else self.b.argument_filter(t, downcast, what)
        return f"if {' or '.join(cond)}: {pname} = {self.ctx.ref(filt, f'filter_{pname}')}({pname})"

    def emit_nodes(self, schedule: Schedule) -> None:
        """One statement (or block) per node of ``schedule``, dead arrays dropped after their last use."""
        for step, node in enumerate(schedule.order):
            self.step, self.node = step, node
            wanted = self.b.wanted_sides(node)
            ins = [self.arg(v, w) for v, w in zip(node.inputs, wanted)]
            outs = [self.name(o) for o in node.outputs]
            if isinstance(node.op, IfElse):
                self.emit_ifelse(node, ins, outs)
            elif isinstance(node.op, Scan):
                self.emit_loop(node, ins, outs)
            else:
                self.emit_node(node, ins, outs)
            freed = schedule.frees(step, node)
            dead = [self.name(v) for v in freed]
            dead += [c for (v, _), c in self.converted.items() if v in freed]
            if dead:
                self.emit(f"del {', '.join(dict.fromkeys(dead))}")

    def emit_node(self, node: Apply, ins: list[str], outs: list[str]) -> None:
        """The backend's statements for one node (timed when profiling; checked under nan_guard)."""
        code = self.b.lower(node, ins, outs, self)
        if self.prof is not None:
            self.emit(f"_pt = {self.prof_refs['start']}()")
        for k in range(len(code)):
            self.line_nodes[len(self.lines) + k] = (node, ins)
        for line in code[:-1] + [f"{code[-1]:<60}  # {describe(node)}"]:
            self.emit(line)
        if self.prof is not None:
            self.emit(f"{self.prof_refs['node']}({self.prof.add_node(node)}, _pt, {', '.join(outs)})")
        if self.nan_guard:
            self._guard(node, outs, ins)

    def emit_ifelse(self, node: Apply, ins: list[str], outs: list[str]) -> None:
        """``if cond:`` then-branch ``else:`` else-branch, each branch's inner graph compiled here
        (inline, through this same protocol) and assigning the node's outputs."""
        input_sides = [self.b.side(v) for v in node.inputs[1:]]
        out_sides = [self.b.side(o) for o in node.outputs]
        for role, head in (("then", f"if {ins[0]}:"), ("else", "else:")):
            self.line_nodes[len(self.lines)] = (node, ins)
            self.emit(f"{head:<60}  # {describe(node)} ({role})" if role == "then" else head)
            fgraph = self.b.inner_fgraph(node, role, input_sides)
            self.depth += 1
            self.emit_inner(fgraph, ins[1:], outs, out_sides)
            self.depth -= 1

    def emit_inner(self, fgraph: FunctionGraph, in_names: list[str], out_names: list[str],
                   out_sides: list[str | None]) -> None:
        """An inner graph's statements, its inputs bound to ``in_names``, its results assigned to
        ``out_names`` on ``out_sides`` (None: where each already is; copied where they would share
        an input's or a constant's memory)."""
        schedule = Schedule(fgraph, _InnerSpec(len(fgraph.inputs)))
        outer_converted, outer_step, outer_node = self.converted, self.step, self.node
        self.converted = dict(outer_converted)  # a conversion made inside a branch exists only there
        for v, n in zip(fgraph.inputs, in_names):
            self.names[v] = n
        self.emit_nodes(schedule)
        for k, (v, side) in enumerate(zip(fgraph.outputs, out_sides)):
            side = side if side is not None else self.b.side(v)  # None: where the value already is
            expr = self.arg(v, side)
            if schedule.copies[k] and (v, side) not in self.converted:
                expr = self.b.copy(expr, side, self.ctx)
            self.emit(f"{out_names[k]} = {expr}")
        if not fgraph.outputs:
            self.emit("pass")
        self.converted, self.step, self.node = outer_converted, outer_step, outer_node

    def _timed_transfer(self, code: list[str], result: str, label: str, to: str, v: Variable | None,
                        reader: Apply | None) -> list[str]:
        """``code`` (statements moving a value; ``result`` names it after) as is, or, in a profiled
        function, between a clock read and the record of transfer site ``label``."""
        if self.prof is None or not code:
            return code
        k = self.prof.add_transfer(label, to, v, reader)
        return [f"_pt = {self.prof_refs['start']}()", *code, f"{self.prof_refs['transfer']}({k}, _pt, {result})"]

    def _bind_profile(self) -> None:
        """Name the Profile and its recorders in the generated code's globals after everything
        else, so that every other name is the one the unprofiled source has."""
        objects = {"_profile": self.prof, **{n: getattr(self.prof, w) for w, n in self.prof_refs.items()}}
        for name, obj in objects.items():
            if self.ctx.ref(obj, name[1:]) != name:
                raise AssertionError(f"generated name {name} is taken")

    def _guard(self, node: Apply, outs: list[str], ins: list[str]) -> None:
        guard = self.ctx.ref(nan_guard_check, "nan_guard")
        host = self.ctx.ref(self.b.host_value, "host_value")
        node_ref = self.ctx.ref(node, "node")
        for o, oname in zip(node.outputs, outs):
            if np.dtype(getattr(o.type, "dtype", "O")).kind in "fc":
                self.emit(f"{guard}({host}({oname}), {node_ref}, [{', '.join(f'{host}({i})' for i in ins)}])")

    def emit_results(self) -> str:
        """Stage the updates, commit them, and return the outputs."""
        s, spec, fg = self.s, self.s.spec, self.s.fgraph
        for line in self.b.before_commit(self.ctx):
            self.emit(line)
        results = [fg.outputs[u.output] for u in s.updates + s.input_updates] + list(fg.outputs[:spec.n_outputs])
        pending = {self.arg(v, None): v for v in results if not isinstance(v, Constant)}
        for line in self.b.materialize(list(pending.items()), self.ctx):
            self.emit(line)
        staged = []
        for u in s.updates:
            v = fg.outputs[u.output]
            name = f"_new{u.container}"
            expr = self.arg(v, None)
            side = self.b.side(v) if not isinstance(v, Constant) else HOST
            self.emit(f"{name} = {self.b.copy(expr, side, self.ctx) if s.copies[u.output] else expr}")
            if u.required:
                cond = " or ".join(f"{name}.shape[{d}] != {n}" for d, n in u.required)
                err = self.ctx.ref(bad_update, "bad_update")
                cont = spec.containers[u.container]
                self.emit(f"if {cond}: raise {err}({cont.name or 'shared'!r}, "
                          f"{self.ctx.ref(v.owner, 'update_node')}, {name}.shape, {u.required!r})")
            cname = f"c_{self.names[s.shared_inputs[u.container]]}"
            staged.append(self.b.staged(self.ctx.ref(spec.containers[u.container], cname), name, side))
        staged += self._stage_input_updates()
        if staged:
            spares = "".join(f"{self.ctx.ref(spec.containers[k], f'c_{self.names[s.shared_inputs[k]]}')}, "
                             for k in self.spared)
            keep = f", ({spares})" if spares else ""
            self.emit(f"{self.ctx.ref(commit, 'commit')}(({', '.join(staged)},){keep})")
        outs = []
        for k, v in enumerate(fg.outputs[:spec.n_outputs]):
            expr = self.arg(v, None)
            side = HOST if isinstance(v, Constant) else self.b.side(v)
            out = self.b.output(expr, v, side, s.copies[k] or isinstance(v, Constant), self.ctx)
            if self.prof is not None and side != HOST:  # a profiled read-back: into a local, timed
                for line in self._timed_transfer([f"_out{k} = {out}"], f"_out{k}", f"output {k}", HOST, v, None):
                    self.emit(line)
                out = f"_out{k}"
            outs.append(out)
        return f"[{', '.join(outs)}]" if spec.return_list else outs[0]

    def _stage_input_updates(self) -> list[str]:
        """Stage the new stored values of the inputs given with ``sg.In(x, update=...)``: kept on
        the host, each owning its memory, static shapes checked (see emit_results)."""
        s, staged = self.s, []
        for u in s.input_updates:
            v, a = s.fgraph.outputs[u.output], s.args[u.container]
            pname, name = s.spec.input_names[u.container], f"_state{u.container}"
            if isinstance(v, Constant):
                expr = f"{self.ctx.ref(np.array, 'array')}({self.b.constant(v, HOST, self.ctx)})"
            else:
                expr = self.arg(v, HOST)
                if s.copies[u.output] and (v, HOST) not in self.converted:
                    expr = self.b.copy(expr, HOST, self.ctx)
            self.emit(f"{name} = {expr}")
            if u.required:
                cond = " or ".join(f"{name}.shape[{d}] != {n}" for d, n in u.required)
                self.emit(f"if {cond}: raise {self.ctx.ref(bad_update, 'bad_update')}({a.keyword or pname!r}, "
                          f"{self.ctx.ref(v.owner, 'update_node')}, {name}.shape, {u.required!r})")
            staged.append(self.b.staged(self.ctx.ref(a.container, f"c_{pname}"), name, HOST))
        return staged

    def locked_containers(self) -> list:
        """The containers a call stores into: the updated shared variables' and inputs' states."""
        s = self.s
        return ([s.spec.containers[u.container] for u in s.updates]
                + [s.args[u.container].container for u in s.input_updates])

    def function_source(self, fname: str, params: list[str], ret: str, filename: str) -> tuple[str, dict]:
        """The whole source (the protocol around the lines), and the line numbers of the nodes."""
        withs = [self.ctx.ref(lock, f"lock{k}") for k, lock in enumerate(stripes_of(self.locked_containers()))]
        withs += self.b.contexts(self.ctx)
        if self.prof is not None:
            withs.append("_profile")
        head = [f"def {fname}({', '.join(params)}):"]
        if withs:
            head.append(f"    with {', '.join(withs)}:")
        pad = "    " * len(head)
        head.append(f"{pad}try:")
        line_of = {ln + len(head) + 1: entry for ln, entry in self.line_nodes.items()}  # 1-based line numbers
        on_error = self.ctx.ref(error_handler(line_of, filename, self.b.on_error()), "reraise_with_context")
        if self.prof is not None:
            self._bind_profile()
        body = "\n".join(f"{pad}    {ln}" for ln in self.lines + [f"return {ret}"])
        self.body_start = len(head)  # the source line (0-based) of self.lines[0]
        return "\n".join(head) + f"\n{body}\n{pad}except Exception as e:\n{pad}    raise {on_error}(e)\n", line_of

    def trusted_source(self, source: str) -> str:
        """``source`` with each argument check replaced by a comment (``f.trust_input = True``):
        the same lines, so the line numbers that name failing nodes still hold."""
        lines = source.split("\n")
        for i in self.check_lines:
            line = lines[self.body_start + i]
            lines[self.body_start + i] = line[:len(line) - len(line.lstrip())] + "# trust_input: argument not checked"
        return "\n".join(lines)


class _InnerSpec:
    """What a Schedule needs to know of an inner graph: all its inputs are bound, nothing updates."""

    def __init__(self, n_inputs: int):
        self.n_inputs, self.nan_guard = n_inputs, False
        self.updates: list[Any] = []


class LinkedFunction:
    """A compiled function: ``__call__`` is the generated function itself (stored on the
    instance, so a call costs no extra Python frame), ``source`` its text, ``trusted_source``
    the same without the argument checks (``trusted()`` compiles it on first use)."""

    def __init__(self, source: str, fn: Callable, line_nodes: dict, backend: Backend, fgraph: FunctionGraph):
        self.source, self.__call__, self._line_nodes = source, fn, line_nodes
        self.backend, self.fgraph = backend, fgraph
        self.trusted_source = source
        self._compile_env: tuple[dict, str, str] | None = None  # (globals, function name, file name)
        self._trusted: Callable | None = None

    def trusted(self) -> Callable:
        """The generated function without its argument checks (``f.trust_input = True``)."""
        if self._trusted is None:
            if self._compile_env is None:
                return self.__call__
            globals_, fname, filename = self._compile_env
            namespace = dict(globals_)
            exec(builtins.compile(self.trusted_source, filename, "exec"), namespace)
            self._trusted = namespace[fname]
        return self._trusted


def link(fgraph: FunctionGraph, spec: Any, backend: Backend, cls: type[LinkedFunction] = LinkedFunction) -> Any:
    """Compile ``fgraph`` (rewritten) for ``backend`` under the call protocol; returns a ``cls``."""
    backend.prepare(fgraph, spec)
    em = Emitter(Schedule(fgraph, spec), backend)
    params = em.emit_arguments()
    em.emit_nodes(em.s)
    ret = em.emit_results()
    fname = python_name(spec.name, "f", set())
    filename = f"{FILENAME_PREFIX}{backend.name} {fname} {id(em):x}>"
    source, line_of = em.function_source(fname, params, ret, filename)
    namespace = dict(em.ctx.globals)
    exec(builtins.compile(source, filename, "exec"), namespace)
    linked = cls(source, namespace[fname], line_of, backend, fgraph)
    linked.trusted_source = em.trusted_source(source)
    linked._compile_env = (dict(em.ctx.globals), fname, filename)
    return linked


