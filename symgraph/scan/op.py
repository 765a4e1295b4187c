"""The Scan op: a loop whose step is an inner graph (``body``), run ``n_steps`` times (or until the
step's condition says stop).

Node inputs: ``n_steps`` (an int64 scalar), the sequences (each step reads row t of each), the
initial carries, and the constants (read unchanged by every step). The body reads
``(row t of each sequence, the carries, the constants)`` and returns ``(the new carries, the
stacked outputs' rows, [the stop condition])``. Node outputs: the final carries, the trace of
each traced carry (its value after every step, ``n × carry``), then each stacked output
(``n × row``). Taps (Theano's ``taps=[-2, -1]``) are window carries built by ``sg.scan``; the
op itself knows only single carries.

A loop that runs no step returns the initial carries and traces of length 0; a stacked output
of such a loop also has length 0, and its other dimensions are their static lengths (0 where
unknown: the step that would fix them never ran).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from symgraph.errors import GraphTypeError, MethodNotDefined, ShapeError, node_context
from symgraph.graph.basic import Apply, Constant, Op, Variable
from symgraph.graph.inner import InnerGraph
from symgraph.scan.types import compatible, stacked
from symgraph.tensor import elemwise
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, is_integer


class Scan(Op):
    """A loop over ``body`` (see the module doc). ``traced[k]``: whether carry k's trace is an
    output. ``until``: the body's last output is a 0-d bool that stops the loop after the step
    that computed it. ``truncate_gradient`` and ``checkpoint`` shape the gradient (BPTT)."""

    __props__ = ("body", "n_seqs", "n_carries", "traced", "until", "truncate_gradient", "checkpoint", "name")
    name: str | None = None  # type: ignore[assignment]  # shadows Op.name (a property falling back to str(op))

    def __init__(self, body: InnerGraph, n_seqs: int, n_carries: int, traced: Sequence[bool] | None = None,
                 until: bool = False, truncate_gradient: int = -1, checkpoint: int | None = None,
                 name: str | None = None):
        self.body, self.n_seqs, self.n_carries = body, int(n_seqs), int(n_carries)
        self.traced = tuple(bool(t) for t in traced) if traced is not None else (True,) * self.n_carries
        self.until, self.name = bool(until), name
        self.truncate_gradient = int(truncate_gradient)
        self.checkpoint = None if checkpoint is None else int(checkpoint)
        self.n_consts = len(body.inputs) - self.n_seqs - self.n_carries
        self.n_ys = len(body.outputs) - self.n_carries - self.until
        if self.n_consts < 0 or self.n_ys < 0 or len(self.traced) != self.n_carries:
            raise GraphTypeError(f"Scan: a body of {len(body.inputs)} inputs and {len(body.outputs)} outputs does "
                                 f"not fit {n_seqs} sequences, {n_carries} carries and until={until}")
        for k, (i, o) in enumerate(zip(self.carry_inputs, self.body_outputs)):
            if not compatible(i.type, o.type):
                raise GraphTypeError(f"Scan: carry {k} enters the step as {i.type} but the step returns {o.type}")
        if self.until:
            cond = self.body_outputs[-1].type
            if cond.ndim != 0 or cond.dtype != "bool":
                raise GraphTypeError(f"Scan: the stop condition must be a 0-d bool, got {cond}")
        if self.checkpoint is not None and self.checkpoint < 1:
            raise GraphTypeError(f"Scan: checkpoint must be a positive number of steps, got {checkpoint}")

    def __str__(self) -> str:
        kind = "while" if self.until else "for"
        return f"Scan{{{self.name or kind}}}" if self.name else f"Scan{{{kind}}}"

    # --- the parts of the body ------------------------------------------------------------------
    @property
    def carry_inputs(self) -> tuple[TensorVariable, ...]:
        return self.body_inputs[self.n_seqs:self.n_seqs + self.n_carries]

    @property
    def body_inputs(self) -> tuple[TensorVariable, ...]:
        """The body's inputs, typed: every value a loop reads or writes is a tensor (make_node and
        sg.scan check it), which a type checker cannot follow through InnerGraph."""
        return cast("tuple[TensorVariable, ...]", self.body.inputs)

    @property
    def body_outputs(self) -> tuple[TensorVariable, ...]:
        """The body's outputs, typed (see ``body_inputs``)."""
        return cast("tuple[TensorVariable, ...]", self.body.outputs)

    @property
    def inner_inputs(self) -> tuple[Variable, ...]:
        """The body's inputs, one per node input (n_steps has no body input: a placeholder no body
        node reads stands for it): drawings show the body as a cluster wired to the node's inputs."""
        if "_steps_slot" not in self.__dict__:
            self.__dict__["_steps_slot"] = TensorType("int64", ()).make_variable("n_steps")
        return (self.__dict__["_steps_slot"],) + self.body.inputs

    @property
    def inner_outputs(self) -> tuple[Variable, ...]:
        """The body output behind each node output (a carry's final value and its trace both come
        from the carry's new value)."""
        nc, outs = self.n_carries, self.body.outputs
        return (outs[:nc] + tuple(outs[k] for k in range(nc) if self.traced[k])
                + outs[nc:nc + self.n_ys])

    @property
    def inner_graphs(self) -> dict[str, InnerGraph]:
        """The inner graphs this op holds, by role (printers, rewrites and compilers walk them)."""
        return {"body": self.body}

    def with_inner_graphs(self, graphs: dict[str, InnerGraph]) -> Scan:
        """The same loop with its body replaced (e.g. by a rewritten one)."""
        return self.clone(body=graphs["body"])

    def clone(self, **changes: Any) -> Scan:
        """This op with some of its parameters changed."""
        props = {p: getattr(self, p) for p in self.__props__}
        props.update(changes)
        return type(self)(**props)

    def output_slots(self) -> dict[str, list[int]]:
        """Node output indices by kind: 'final' (one per carry), 'trace' (one per carry, -1 when not
        traced) and 'ys'."""
        nc = self.n_carries
        trace, k = [], nc
        for t in self.traced:
            trace.append(k if t else -1)
            k += t
        return {"final": list(range(nc)), "trace": trace, "ys": list(range(k, k + self.n_ys))}

    def split_inputs(self, inputs: Sequence[Any]) -> tuple[Any, list, list, list]:
        """(n_steps, sequences, initial carries, constants) of a node's inputs (or their values)."""
        s, c = 1 + self.n_seqs, 1 + self.n_seqs + self.n_carries
        return inputs[0], list(inputs[1:s]), list(inputs[s:c]), list(inputs[c:])

    # --- building -------------------------------------------------------------------------------
    def make_node(self, n_steps: Any, *inputs: Any) -> Apply:
        n_steps = as_tensor_variable(n_steps)
        if n_steps.ndim != 0 or not is_integer(n_steps):
            raise GraphTypeError(f"Scan: n_steps must be an integer scalar, got {n_steps} ({n_steps.type})")
        if n_steps.dtype != "int64":
            n_steps = elemwise.cast(n_steps, "int64")
        first_const = self.n_seqs + self.n_carries  # constants may be any variables (typed lists)
        values = [v if k >= first_const and isinstance(v, Variable) and not isinstance(v.type, TensorType)
                  else as_tensor_variable(v) for k, v in enumerate(inputs)]
        if len(values) != len(self.body.inputs):
            raise GraphTypeError(f"Scan: {len(values)} inputs for a body of {len(self.body.inputs)}")
        _, seqs, inits, consts = self.split_inputs([n_steps, *values])
        body_in = self.body_inputs
        for k, (s, slot) in enumerate(zip(seqs, body_in)):
            if s.ndim != slot.ndim + 1 or not compatible(TensorType(s.dtype, s.type.shape[1:]), slot.type):
                raise GraphTypeError(f"Scan: sequence {k} ({s.type}) does not give rows of type {slot.type}")
        for k, (v, slot) in enumerate(zip(inits + consts, body_in[self.n_seqs:])):
            if not isinstance(v.type, TensorType) or not isinstance(slot.type, TensorType):
                if v.type != slot.type:
                    raise GraphTypeError(f"Scan: constant {k - self.n_carries} is {v.type} where the step reads "
                                         f"{slot.type}")
            elif not compatible(v.type, slot.type):
                what = f"initial carry {k}" if k < self.n_carries else f"constant {k - self.n_carries}"
                raise GraphTypeError(f"Scan: {what} is {v.type} where the step reads {slot.type}")
        return Apply(self, [n_steps, *values], [t.make_variable() for t in self.output_types()])

    def output_types(self) -> list[TensorType]:
        carries = [v.type for v in self.carry_inputs]
        ys = self.body_outputs[self.n_carries:self.n_carries + self.n_ys]
        return (carries + [stacked(t) for t, traced in zip(carries, self.traced) if traced]
                + [stacked(y.type) for y in ys])

    # --- running (the reference interpreter) ------------------------------------------------------
    def perform(self, node: Apply, inputs: list) -> list:
        n, seqs, carries, consts = self.split_inputs(inputs)
        n = check_steps(n, seqs, node)
        nodes = self.body.nodes
        traces: list[list] = [[] for _ in range(self.n_carries)]
        ys: list[list] = [[] for _ in range(self.n_ys)]
        carries = [np.asarray(c) for c in carries]
        for t in range(n):
            outs = _evaluate(self.body, nodes, [s[t] for s in seqs] + carries + list(consts))
            new = [np.asarray(v, dtype=c.dtype) for v, c in zip(outs, carries)]
            for k, (a, b) in enumerate(zip(new, carries)):
                if a.shape != b.shape:
                    raise ShapeError(carry_shape_message(k, t, b.shape, a.shape, self) + "\n" + node_context(node))
            carries = new
            for k, v in enumerate(new):
                traces[k].append(v)
            for k, v in enumerate(outs[self.n_carries:self.n_carries + self.n_ys]):
                ys[k].append(np.asarray(v))
            if self.until and bool(outs[-1]):
                break
        out = [np.array(c) for c in carries]
        out += [_stack(tr, c.shape, c.dtype) for tr, c, traced in zip(traces, carries, self.traced) if traced]
        ys_types = [o.type for o in cast("list[TensorVariable]", node.outputs)[len(out):]]
        rows = [tuple(s or 0 for s in t.shape[1:]) for t in ys_types]
        if ys and not ys[0] and _ROW_SHAPES:  # no step ran: rows of the shapes the body would give
            rows = _ROW_SHAPES[0](node, inputs)
        out += [_stack(y, row, t.dtype) for y, row, t in zip(ys, rows, ys_types)]
        return out

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        if self.until:
            raise MethodNotDefined("a while loop's length is known only once it has run")
        n, _, inits, _ = self.split_inputs(list(node.inputs))
        _, _, init_shapes, _ = self.split_inputs(input_shapes)
        ys = cast("list[TensorVariable]", node.outputs)[self.n_carries + sum(self.traced):]
        if any(s is None for y in ys for s in y.type.shape[1:]):
            raise MethodNotDefined("the shape of a stacked output is known only once a step has run")
        return ([tuple(s) for s in init_shapes] + [(n, *s) for s, t in zip(init_shapes, self.traced) if t]
                + [(n, *y.type.shape[1:]) for y in ys])

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        """Backpropagation through time: a reverse scan (see symgraph/scan/grad.py, which registers it)."""
        return _GRADIENT[0](self, inputs, outputs, output_grads)


class CheckRan(Op):
    """``value`` (a loop's final carry, a view) when ``n`` (the loop's step count) is at least 1,
    else the IndexError ``trace[-1]`` raises for an empty trace: what ``trace[-1]`` becomes when
    the rewrite that reads the final carry instead cannot prove that a step runs."""

    view_map = {0: 0}

    def make_node(self, value: Any, n: Any) -> Apply:
        value, n = as_tensor_variable(value), as_tensor_variable(n)
        return Apply(self, [value, n], [value.type.make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        if int(inputs[1]) < 1:
            raise IndexError("index -1 is out of bounds for axis 0 with size 0 (the loop ran no step)\n"
                             + node_context(node))
        return [inputs[0]]

    def grad(self, inputs: list, output_grads: list) -> list:
        return [output_grads[0], None]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [input_shapes[0]]


_GRADIENT: list[Callable] = []
_ROW_SHAPES: list[Callable] = []


def register_row_shapes(fn: Callable) -> None:
    """Install ``fn(node, values) -> row shapes`` giving a loop of no step the row shapes of its
    stacked outputs (symgraph/compile/loop_rows.py infers them from the body, above this module)."""
    _ROW_SHAPES[:] = [fn]


def register_grad(fn: Callable) -> None:
    """Install the gradient of Scan (symgraph/scan/grad.py builds reverse scans with ``sg.scan``,
    which sits above this module)."""
    _GRADIENT[:] = [fn]


def _evaluate(body: InnerGraph, nodes: list[Apply], values: list) -> list:
    env: dict[Variable, Any] = dict(zip(body.inputs, values))
    for node in nodes:
        ins = [v.data if isinstance(v, Constant) else env[v] for v in node.inputs]
        env.update(zip(node.outputs, node.op.perform(node, ins)))
    return [v.data if isinstance(v, Constant) else env[v] for v in body.outputs]


def _stack(rows: list, shape: tuple, dtype: Any) -> np.ndarray:
    return np.stack(rows) if rows else np.empty((0,) + tuple(shape), dtype)


def carry_shape_message(k: int, t: int, want: tuple, got: tuple, op: Any = None) -> str:
    """The error for a step that changed the shape of a carry (``op``: the loop's Scan, whose
    name says whether it is a gradient's reverse loop, where the cause lies in the forward body)."""
    head = f"scan: step {t} returned carry {k} of shape {tuple(got)}, but the carry has shape {tuple(want)}: "
    name = str(getattr(op, "name", None) or "")
    if name in ("grad", "checkpointed_grad") or name.startswith("grad_"):  # scan/grad.py's reverse loops
        return head + (
            "this is a gradient's reverse loop, whose carries are the gradients of the forward loop's carries "
            "and non-sequences, each the shape of its value. One growing means the forward step broadcast that "
            "value along an axis its type leaves unknown (a length-1 axis of a shared variable or input): declare "
            "the axis broadcastable (e.g. sg.shared(v, shape=(1, None)), T.row) so that its gradient is summed")
    return head + "a carry keeps its shape from step to step (compare the initial value in outputs_info)"


def check_steps(n: Any, seqs: list, node: Apply | None) -> int:
    """``n`` as a Python int, checked: not negative, and every sequence at least that long (a
    ShapeError, a ValueError, naming the node and its user line)."""
    n = int(n)
    if n < 0:
        raise ShapeError(f"scan: n_steps is {n}; it must not be negative{_where(node)}")
    for k, s in enumerate(seqs):
        if s.shape[0] < n:
            raise ShapeError(f"scan: sequence {k} has {s.shape[0]} rows, fewer than the {n} steps to run{_where(node)}")
    return n


def _where(node: Apply | None) -> str:
    """The line that built ``node``, for an error message (written only when one is raised)."""
    return "\n" + node_context(node) if node is not None else ""


__all__ = ["Scan", "CheckRan", "check_steps", "register_grad"]
