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

A backend (``Backend`` below) supplies the lowering of each node and the few protocol steps that
depend on where values live (host or device). Placement decisions are explicit: a value the next
step needs on the other side is converted by a visible line of the source.
"""
from __future__ import annotations

import builtins
import itertools
import threading
from typing import Any, Callable

import numpy as np

from symgraph.compile.lowering import CodeContext, python_name
from symgraph.compile.schedule import Schedule
from symgraph.errors import InputError, NanGuardError, SymgraphError, node_context
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph

HOST, DEVICE = "host", "device"
FILENAME_PREFIX = "<symgraph "

# --- locks ---------------------------------------------------------------------------------------

STRIPES = tuple(threading.RLock() for _ in range(16))
"""Calls that update shared variables lock the stripes of those variables' containers, always in
stripe order (no deadlock), with a ``with`` statement (no interrupt can leave one held): two calls
updating the same shared variable never interleave, so no update is lost. Re-entrant, so an op
may call another compiled function."""
_SERIALS = itertools.count()


def new_serial() -> int:
    """A container's place in the global lock order."""
    return next(_SERIALS)


def stripes_of(containers: list) -> list[threading.RLock]:
    """The locks a call updating ``containers`` takes, in the global order."""
    return [STRIPES[k] for k in sorted({c.serial % len(STRIPES) for c in containers})]


# --- run-time helpers the generated code calls ----------------------------------------------------

def commit(staged: tuple) -> None:
    """Store every update, all or nothing: ``staged`` holds (container, host value, device value)
    triples prepared before any is stored; an interrupt half-way restores the old values."""
    old = [(c, c.value, c.device) for c, _, _ in staged]
    try:
        for c, value, device in staged:
            c.value, c.device = value, device
    except BaseException:
        for c, value, device in old:
            c.value, c.device = value, device
        raise


def bad_update(name: str, node: Apply | None, shape: tuple, required: tuple) -> InputError:
    """The error for an update whose value breaks its shared variable's static shape."""
    want = ", ".join(f"dimension {d} of length {n}" for d, n in required)
    where = "\n" + node_context(node) if node is not None else ""
    return InputError(f"the update of shared variable {name} gives a value of shape {tuple(shape)}, but {name} "
                      f"is declared with {want}; no shared variable was changed{where}")


def nan_guard_check(value: np.ndarray, node: Apply, inputs: list) -> None:
    """Raise NanGuardError when ``value`` (a node's output, on the host) holds NaN or Inf."""
    if np.isfinite(value).all():
        return
    ranges = []
    for v in inputs:
        a = np.asarray(v)
        if a.size and a.dtype.kind in "fiub":
            with np.errstate(all="ignore"):
                ranges.append(f"{a.dtype}{list(a.shape)} in [{float(np.nanmin(a))}, {float(np.nanmax(a))}]"
                              f"{' with NaN' if a.dtype.kind == 'f' and np.isnan(a).any() else ''}")
        else:
            ranges.append(f"{a.dtype}{list(a.shape)}")
    bad = "NaN" if np.isnan(value).any() else "Inf"
    raise NanGuardError(f"nan_guard: {node.op} produced {bad}\nInput ranges: {'; '.join(ranges)}\n"
                        + node_context(node))


def rewrap(e: Exception, node: Apply, values: list) -> Exception:
    """The same kind of exception, its message extended with the node and the user's line."""
    context = node_context(node, values)
    try:
        return type(e)(f"{e}\n{context}")
    except Exception:  # exception types with unusual constructors keep their own message
        e.add_note(context)
        return e


def _error_handler(line_of: dict, filename: str, before: Callable[[], None] | None) -> Callable:
    """The generated code's except clause: the same exception, extended with the failing node
    and the user line that built it (symgraph's own errors pass through unchanged). ``before``
    runs first (OpenCL: a bad index seen earlier in the call is the first error)."""
    def reraise_with_context(e: Exception) -> Exception:
        if before is not None:
            before()
        if isinstance(e, SymgraphError):
            return e
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != filename:
            tb = tb.tb_next
        if tb is None or tb.tb_lineno not in line_of:
            return e
        node, in_names = line_of[tb.tb_lineno]
        scope = {**tb.tb_frame.f_globals, **tb.tb_frame.f_locals}
        new = rewrap(e, node, [scope.get(n) for n in in_names])
        if new is not e:
            new.__cause__ = e
        return new
    return reraise_with_context


# --- the backend seam -----------------------------------------------------------------------------

class Backend:
    """What a backend supplies to the protocol. The defaults describe the host (numpy) backend;
    a device backend overrides where values live and how they move."""

    name = "host"

    def prepare(self, fgraph: FunctionGraph, spec: Any) -> None:
        """Edit the graph before scheduling (explicit host fallbacks), decide placement."""

    def side(self, v: Variable) -> str:
        """Where ``v``'s value lives once computed (or read): HOST or DEVICE."""
        return HOST

    def lower(self, node: Apply, ins: list[str], outs: list[str], em: "Emitter") -> list[str]:
        """Statements computing ``node``'s outputs (named ``outs``) from ``ins``."""
        raise NotImplementedError

    def wanted_sides(self, node: Apply) -> list[str | None]:
        """For each input of ``node``: the side its lowering reads it on (None: either)."""
        return [HOST] * len(node.inputs)

    def constant(self, c: Constant, side: str, ctx: CodeContext) -> str:
        """The name of a constant's value on ``side`` in the generated code."""
        data = c.data[()] if isinstance(c.data, np.ndarray) and c.data.ndim == 0 else c.data
        return ctx.ref(data, f"k{len(ctx.globals)}")

    def convert(self, name: str, to: str, ctx: CodeContext) -> str:
        """An expression with ``name``'s value moved to side ``to`` (a counted transfer)."""
        raise NotImplementedError(f"the {self.name} backend keeps every value on the host")

    def read_input(self, name: str, v: Variable, ctx: CodeContext) -> list[str]:
        """Statements placing an argument (already checked and converted) where it is read."""
        return []

    def read_shared(self, name: str, v: Variable, cont: str, ctx: CodeContext) -> list[str]:
        """Statements reading a shared variable's current value into ``name``."""
        return [f"{name} = {cont}.value", f"if {name} is None: {name} = {cont}.to_host()"]

    def copy(self, expr: str, side: str, ctx: CodeContext) -> str:
        """A copy of ``expr``'s value that owns its memory, on the same side."""
        return f"{expr}.copy()"

    def output(self, expr: str, v: Variable, side: str, copy: bool, ctx: CodeContext) -> str:
        """The host array a caller receives for output ``v``."""
        if copy:
            return f"{expr}.copy()"
        return f"np.asarray({expr})" if v.ndim == 0 and v.owner is not None else expr

    def staged(self, cont: str, expr: str, side: str) -> str:
        """The (container, host value, device value) triple committing ``expr``."""
        return f"({cont}, {expr}, None)" if side == HOST else f"({cont}, None, {expr})"

    def contexts(self, ctx: CodeContext) -> list[str]:
        """Context managers wrapping each call (after the locks)."""
        return []

    def before_commit(self, ctx: CodeContext) -> list[str]:
        """Statements run after the last node, before anything is committed."""
        return []

    def on_error(self) -> Callable[[], None] | None:
        """Called first when a call fails (before the error is re-raised with context)."""
        return None

    def host_value(self, x: Any) -> np.ndarray:
        """``x`` as a host array (nan_guard reads values on the host)."""
        return np.asarray(x)

    def profile_timer(self) -> Any:
        """Profiled functions only: an object that waits for and times each node's device work
        (``begin()``/``end() -> {key: seconds}`` around a call, ``start()``/``stop(key)`` around a
        node, ``counters()``; see symgraph/compile/profile.py), or None on the host."""
        return None

    def kernel_names(self, node: Apply) -> list[str]:
        """The names (keys of ``f.kernels``) of the device code ``node`` runs; none on the host."""
        return []


# --- the emitter ----------------------------------------------------------------------------------

class Emitter:
    """Writes the generated function for one schedule on one backend."""

    def __init__(self, schedule: Schedule, backend: Backend):
        self.s, self.b = schedule, backend
        self.ctx = CodeContext()
        self.names: dict[Variable, str] = {}
        self.lines: list[str] = []
        self.line_nodes: dict[int, tuple[Apply, list[str]]] = {}
        self.converted: dict[tuple[Variable, str], str] = {}
        self.taken: set[str] = set()
        self.step = -1  # the index in schedule.order of the node being lowered
        self.prof = getattr(schedule.spec, "profile", None)  # a Profile: timing lines (else none at all)
        if self.prof is not None:
            self.prof.backend, self.prof.timer = backend.name, backend.profile_timer()
            self.prof.kernel_names = backend.kernel_names
            self.prof.reset()
            self.prof_refs = {what: f"_prof_{what}" for what in ("start", "node", "transfer")}  # see _bind_profile

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
            reader = self.s.order[self.step] if self.step >= 0 else None
            self.lines += self._timed_transfer([line], self.converted[key], f"{name} for {reader.op if reader else '?'}",
                                               side, v, reader)
        return self.converted[key]

    # sections
    def emit_arguments(self) -> list[str]:
        spec, params = self.s.spec, []
        for k, v in enumerate(self.s.user_inputs):
            pname = spec.input_names[k]
            self.names[v] = pname
            self.taken.add(pname)
            params.append(pname)
            t = v.type
            cond = [f"{pname}.__class__ is not ndarray", f"{pname}.dtype is not {self.ctx.ref(t.numpy_dtype, 'dt_' + t.dtype)}",
                    f"{pname}.ndim != {t.ndim}"]
            cond += [f"{pname}.shape[{d}] != {s}" for d, s in enumerate(t.shape) if s is not None]
            filt = self.ctx.ref(_make_filter(t, spec.allow_downcast, f"argument {k} ({pname}) of {spec.name}"),
                                f"filter_{pname}")
            self.lines.append(f"if {' or '.join(cond)}: {pname} = {filt}({pname})")
            self.lines += self._timed_transfer(self.b.read_input(pname, v, self.ctx), pname, f"argument {pname}",
                                               self.b.side(v), v, None)
        for k, v in enumerate(self.s.shared_inputs):
            name = python_name(v.name, f"shared{k}", self.taken)
            self.names[v] = name
            self.lines += self.b.read_shared(name, v, self.ctx.ref(spec.containers[k], f"c_{name}"), self.ctx)
        return params

    def emit_nodes(self) -> None:
        for step, node in enumerate(self.s.order):
            self.step = step
            wanted = self.b.wanted_sides(node)
            ins = [self.arg(v, w) for v, w in zip(node.inputs, wanted)]
            outs = [self.name(o) for o in node.outputs]
            code = self.b.lower(node, ins, outs, self)
            if self.prof is not None:
                self.lines.append(f"_pt = {self.prof_refs['start']}()")
            for k in range(len(code)):
                self.line_nodes[len(self.lines) + k] = (node, ins)
            self.lines += code[:-1] + [f"{code[-1]:<60}  # {describe(node)}"]
            if self.prof is not None:
                self.lines.append(f"{self.prof_refs['node']}({self.prof.add_node(node)}, _pt, {', '.join(outs)})")
            if self.s.spec.nan_guard:
                self._guard(node, outs, ins)
            freed = self.s.frees(step, node)
            dead = [self.name(v) for v in freed]
            dead += [c for (v, _), c in self.converted.items() if v in freed]
            if dead:
                self.lines.append(f"del {', '.join(dict.fromkeys(dead))}")

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
            if np.dtype(o.type.dtype).kind in "fc":
                self.lines.append(f"{guard}({host}({oname}), {node_ref}, [{', '.join(f'{host}({i})' for i in ins)}])")

    def emit_results(self) -> str:
        """Stage the updates, commit them, and return the outputs."""
        s, spec, fg = self.s, self.s.spec, self.s.fgraph
        self.lines += self.b.before_commit(self.ctx)
        staged = []
        for u in s.updates:
            v = fg.outputs[u.output]
            name = f"_new{u.container}"
            expr = self.arg(v, None)
            side = self.b.side(v) if not isinstance(v, Constant) else HOST
            self.lines.append(f"{name} = {self.b.copy(expr, side, self.ctx) if s.copies[u.output] else expr}")
            if u.required:
                cond = " or ".join(f"{name}.shape[{d}] != {n}" for d, n in u.required)
                err = self.ctx.ref(bad_update, "bad_update")
                cont = spec.containers[u.container]
                self.lines.append(f"if {cond}: raise {err}({cont.name or 'shared'!r}, "
                                  f"{self.ctx.ref(v.owner, 'update_node')}, {name}.shape, {u.required!r})")
            staged.append(self.b.staged(self.ctx.ref(spec.containers[u.container], f"c_{self.names[s.shared_inputs[u.container]]}"),
                                        name, side))
        if staged:
            self.lines.append(f"{self.ctx.ref(commit, 'commit')}(({', '.join(staged)},))")
        outs = []
        for k, v in enumerate(fg.outputs[:spec.n_outputs]):
            expr = self.arg(v, None)
            side = HOST if isinstance(v, Constant) else self.b.side(v)
            out = self.b.output(expr, v, side, s.copies[k] or isinstance(v, Constant), self.ctx)
            if self.prof is not None and side != HOST:  # a profiled read-back: into a local, timed
                self.lines += self._timed_transfer([f"_out{k} = {out}"], f"_out{k}", f"output {k}", HOST, v, None)
                out = f"_out{k}"
            outs.append(out)
        return f"[{', '.join(outs)}]" if spec.return_list else outs[0]

    def function_source(self, fname: str, params: list[str], ret: str, filename: str) -> tuple[str, dict]:
        """The whole source (the protocol around the lines), and the line numbers of the nodes."""
        withs = [self.ctx.ref(lock, f"lock{k}") for k, lock in
                 enumerate(stripes_of([self.s.spec.containers[u.container] for u in self.s.updates]))]
        withs += self.b.contexts(self.ctx)
        if self.prof is not None:
            withs.append("_profile")
        head = [f"def {fname}({', '.join(params)}):"]
        if withs:
            head.append(f"    with {', '.join(withs)}:")
        pad = "    " * len(head)
        head.append(f"{pad}try:")
        line_of = {ln + len(head) + 1: entry for ln, entry in self.line_nodes.items()}  # 1-based line numbers
        on_error = self.ctx.ref(_error_handler(line_of, filename, self.b.on_error()), "reraise_with_context")
        if self.prof is not None:
            self._bind_profile()
        body = "\n".join(f"{pad}    {ln}" for ln in self.lines + [f"return {ret}"])
        return "\n".join(head) + f"\n{body}\n{pad}except Exception as e:\n{pad}    raise {on_error}(e)\n", line_of


class LinkedFunction:
    """A compiled function: ``__call__`` is the generated function itself (stored on the
    instance, so a call costs no extra Python frame), ``source`` its text."""

    def __init__(self, source: str, fn: Callable, line_nodes: dict, backend: Backend, fgraph: FunctionGraph):
        self.source, self.__call__, self._line_nodes = source, fn, line_nodes
        self.backend, self.fgraph = backend, fgraph


def link(fgraph: FunctionGraph, spec: Any, backend: Backend, cls: type[LinkedFunction] = LinkedFunction) -> Any:
    """Compile ``fgraph`` (rewritten) for ``backend`` under the call protocol; returns a ``cls``."""
    backend.prepare(fgraph, spec)
    em = Emitter(Schedule(fgraph, spec), backend)
    params = em.emit_arguments()
    em.emit_nodes()
    ret = em.emit_results()
    fname = python_name(spec.name, "f", set())
    filename = f"{FILENAME_PREFIX}{backend.name} {fname} {id(em):x}>"
    source, line_of = em.function_source(fname, params, ret, filename)
    namespace = dict(em.ctx.globals)
    exec(builtins.compile(source, filename, "exec"), namespace)
    return cls(source, namespace[fname], line_of, backend, fgraph)


def _make_filter(t: Any, allow_downcast: bool, what: str) -> Callable:
    def filt(value: Any) -> Any:
        return t.filter(value, allow_downcast=allow_downcast, what=what)
    return filt


def describe(node: Apply) -> str:
    """The comment after a node's line: its op and where the user built it (file name and line
    number only, made safe: nothing from a trace can end the comment)."""
    where = ""
    if node.trace is not None:
        where = f"  ({_comment_safe(node.trace.filename.rsplit('/', 1)[-1])}:{int(node.trace.lineno)})"
    return _comment_safe(f"{node.op}") + where


def _comment_safe(text: str) -> str:
    """``text`` with every character that could end a Python comment (line breaks of any kind,
    other control characters) replaced: text in a comment can never become code."""
    return "".join(c if c.isprintable() else "?" for c in str(text))
