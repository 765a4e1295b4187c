"""The backend seam of the call protocol (symgraph/compile/link.py): what a backend supplies to
the one generated function. A backend is a ``LoweringTable`` (Op class -> ``lower(node, ctx)``)
plus a subclass of ``Backend`` answering the few protocol questions that depend on where values
live (host or device) and how they move: placement (``side``, ``wanted_sides``, ``convert``),
reading arguments and shared variables, copies and outputs, staging updates, the call scope, and
the hooks of loops (symgraph/compile/loop.py). The defaults describe the host (numpy) backend."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from symgraph.compile.calls import make_filter
from symgraph.compile.loop import resize_rows
from symgraph.compile.lowering import HOST, CodeContext
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.inner import InnerGraphOp

if TYPE_CHECKING:  # annotations only: symgraph.compile.link imports this module
    from symgraph.compile.link import Emitter


class Backend:
    """What a backend supplies to the protocol. The defaults describe the host (numpy) backend;
    a device backend overrides where values live and how they move."""

    name = "host"

    def prepare(self, fgraph: FunctionGraph, spec: Any) -> None:
        """Edit the graph before scheduling (explicit host fallbacks), decide placement."""

    def prepare_inner(self, fgraph: FunctionGraph, input_sides: list[str]) -> None:
        """Plan an inner graph (an ifelse branch) whose inputs live on ``input_sides``."""

    def inner_fgraph(self, node: Apply, role: str, input_sides: list[str]) -> FunctionGraph:
        """A fresh copy of ``node``'s inner graph ``role``, prepared: what the emitter compiles."""
        fgraph = cast(InnerGraphOp, node.op).inner_graphs[role].fgraph()
        self.prepare_inner(fgraph, input_sides)
        return fgraph

    def side(self, v: Variable) -> str:
        """Where ``v``'s value lives once computed (or read): HOST or DEVICE."""
        return HOST

    def lower(self, node: Apply, ins: list[str], outs: list[str], em: Emitter) -> list[str]:
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
        return f"np.asarray({expr})" if getattr(v.type, "ndim", None) == 0 and v.owner is not None else expr

    def staged(self, cont: str, expr: str, side: str) -> str:
        """The (container, host value, device value) triple committing ``expr``."""
        return f"({cont}, {expr}, None)" if side == HOST else f"({cont}, None, {expr})"

    def contexts(self, ctx: CodeContext) -> list[str]:
        """Context managers wrapping each call (after the locks)."""
        return []

    def before_commit(self, ctx: CodeContext) -> list[str]:
        """Statements run after the last node, before anything is committed."""
        return []

    def materialize(self, values: list[tuple[str, Variable]], ctx: CodeContext) -> list[str]:
        """Statements run after ``before_commit``, before the updates are staged: a backend whose
        values are lazy (dask) computes the outputs and update values ``values`` (local name,
        variable) here, all in one go, and rebinds each name to its result. Nothing has been
        committed yet, so a failure here leaves every shared variable as it was."""
        return []

    def argument_filter(self, t: Any, allow_downcast: bool, what: str) -> Callable:
        """The function an argument that fails the generated fast check (a numpy array of the
        right dtype and shape) goes through: ``t.filter`` by default; a backend that takes
        other array types (dask) accepts them here."""
        return make_filter(t, allow_downcast, what)

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

    # loops (symgraph/compile/loop.py): rows of sequences and of traces, on the side they live on
    def loop_row(self, buf: str, t: str, side: str, ctx: CodeContext) -> str:
        """An expression for row ``t`` of ``buf`` (a view)."""
        return f"{buf}[{t}]"

    def loop_store(self, buf: str, t: str, value: str, side: str, ctx: CodeContext) -> str:
        """A statement writing ``value`` into row ``t`` of ``buf``."""
        return f"{buf}[{t}] = {value}"

    def loop_rows(self, shape: str, dtype: str, side: str, ctx: CodeContext) -> str:
        """An expression for a new, uninitialised buffer of ``shape`` and ``dtype`` (a global's name)."""
        return f"np.empty({shape}, {dtype})"

    def loop_resize(self, buf: str, rows: str, side: str, ctx: CodeContext) -> str:
        """An expression for ``buf`` with ``rows`` rows: its first rows, or grown with the old rows kept."""
        return f"{ctx.ref(resize_rows, 'resize_rows')}({buf}, {rows})"

    def loop_constant(self, name: str, side: str, ctx: CodeContext) -> str:
        """An expression for a value every step of a loop reads (``name`` as it is, by default; a
        device backend may lay a strided view out contiguously once, before the loop)."""
        return name

    def loop_kernel(self, node: Apply, ins: list[str], em: Emitter) -> str | None:
        """None, or an expression running every step of Scan ``node`` at once (a device backend's
        one-kernel loop) that gives the node's outputs, or None for a call it declines (which then
        runs the step-by-step loop; compile/loop.py ``emit_loop``)."""
        return None

    def loop_stop_flags(self, ctx: CodeContext) -> str | None:
        """None: a while loop tests its condition after every step. Else an expression for an
        object with ``add(cond) -> bool`` (True: check now) and ``first() -> int`` (the first
        pending step whose condition held, or -1): the loop then runs a few steps ahead of its
        condition and ends where the first true condition says (compile/loop.py)."""
        return None
