"""The one-kernel loop's plan (issue 15, build item 6): for the shapes of one call, where every body
value lives inside the kernel and which steps compute them (``LoopPlan``;
backends/opencl/loop_source.py prints it). Which bodies can run that way at all is decided once,
from the body alone (backends/opencl/loop_support.py ``unsupported``).

Every body value gets a ``Slot`` (backends/opencl/loop_slots.py): a C pointer expression with
static shape and element strides (a sequence's row ``row<k>``, a carry's current buffer ``cur<j>``,
a constant ``cst<j>``, a region of a scratch buffer ``s_<ctype>``, or a destination: the carry's
next buffer ``nxt<j>``, a trace row ``trr<j>``, a stacked output's row ``yr<k>``, a while loop's
stop condition ``cnd``), or a literal (shape arithmetic, 0-d constants). Views (DimShuffle, and
basic indexing whose indices the plan knows: a tap's window ``c[1:]``) are slots over their input's
memory with other strides and an offset; a concatenation (Join: a tap's next window) copies each
input into its region of the output; shape reads (ReducedSize, Shape_i) are literals. A value that
is a carry's new value, a trace row or a stacked row is stored straight there by the step computing
it; values that no step computes (inputs, views, literals) are copied there at the end of the step.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_elemwise import program_and_inputs
from symgraph.backends.opencl.kernels_random import random_steps
from symgraph.backends.opencl.loop_index import Affine, affine_of, gather_or_scatter, indexed, program_forms
from symgraph.backends.opencl.loop_loss import one_hot_steps, softmax_steps
from symgraph.backends.opencl.loop_nested import InnerLoop, loop_step
from symgraph.backends.opencl.loop_slots import Decline, Slot, Step, broadcast, c_strides, copy_step, index_view
from symgraph.backends.opencl.loop_support import is_int_arithmetic, node_kind, unsupported
from symgraph.errors import ShapeError
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.ifelse import IfElse
from symgraph.scan.op import CheckRan, Scan
from symgraph.tensor.composite import Composite
from symgraph.tensor.dims import SpecifyShape
from symgraph.tensor.elemwise import DimShuffle
from symgraph.tensor.fused import Epilogue, ReduceOf
from symgraph.tensor.gradient_ops import BroadcastCheck, check_broadcast
from symgraph.tensor.math import Dot, MatMul
from symgraph.tensor.nnet import LogSoftmax, _AxisSoftmax
from symgraph.tensor.reduction import CAReduce, ReducedSize
from symgraph.tensor.shape import Join, MakeVector, Shape, Shape_i
from symgraph.tensor.subtensor import IncSubtensor, Subtensor
from symgraph.tensor.type import TensorType


class LoopPlan:
    """The steps and slots of ``op``'s body for inputs (sequences, initial carries, constants)
    of these shapes; Decline when they do not fit (the call then runs step by step)."""

    def __init__(self, op: Scan, shapes: list[tuple], values: dict[int, int] | None = None):
        self.op, self.values = op, dict(values or {})  # values: body input position -> integer (from the host)
        ns, nc = op.n_seqs, op.n_carries
        self.seq_rows = [tuple(s[1:]) for s in shapes[:ns]]
        self.carry_shapes = [tuple(s) for s in shapes[ns:ns + nc]]
        self.const_shapes = [tuple(s) for s in shapes[ns + nc:]]
        self.dtypes = [np.dtype(_tt(v).dtype) for v in op.body.inputs]
        self.scratch: dict[str, int] = {}  # C type -> elements
        self.body_constants: list[np.ndarray] = []
        self.steps: list[Step] = []
        self.y_rows: list[tuple] = []
        self.slots: dict[Variable, Slot] = {}
        self.known: dict[Variable, Any] = {}  # shape arithmetic's values for this call's shapes
        self.host_checks: list[tuple[BroadcastCheck, list]] = []  # checks run before each launch
        self.checks_indices = False  # an index read at run time: the kernel flags one out of range
        self.affine: dict[Variable, Affine] = {}  # integers the kernel computes, as affine forms (slice lengths)
        self._frame: InnerLoop | None = None  # the nested loop whose body is being planned
        self._bind_inputs()
        self._dests = self._destinations()
        self._made: dict[Variable, list[Slot]] = {}
        for node in op.body.nodes:
            self._node(node)
        self._copies(op.body.outputs)

    # --- inputs and destinations ------------------------------------------------------------------
    def _bind_inputs(self) -> None:
        inputs = self.op.body.inputs
        named = [(f"row{k}", s) for k, s in enumerate(self.seq_rows)]
        named += [(f"cur{j}", s) for j, s in enumerate(self.carry_shapes)]
        named += [(f"cst{j}", s) for j, s in enumerate(self.const_shapes)]
        for v, (ptr, shape), dt in zip(inputs, named, self.dtypes):
            want = _tt(v).shape
            if len(shape) != len(want) or any(w is not None and w != n for w, n in zip(want, shape)):
                raise Decline(f"input {v} has shape {shape}, its type says {v.type}")
            self.slots[v] = Slot(ptr, shape, c_strides(shape), dt, ptr)
        for k, value in self.values.items():
            self.known[inputs[k]] = value

    def _destinations(self) -> dict[Variable, list[tuple[str, int]]]:
        """For each body output variable: where its value goes ('nxt', j), ('trr', j), ('yr', k)."""
        op, outs = self.op, self.op.body.outputs
        dests: dict[Variable, list[tuple[str, int]]] = {}
        for j in range(op.n_carries):
            dests.setdefault(outs[j], []).append(("nxt", j))
            if op.traced[j]:
                dests[outs[j]].append(("trr", j))
        for k in range(op.n_ys):
            dests.setdefault(outs[op.n_carries + k], []).append(("yr", k))
        if op.until:  # the stop condition: read by the kernel after the step (loop_source.py)
            dests.setdefault(outs[-1], []).append(("cnd", 0))
        self.y_rows = [()] * op.n_ys
        return dests

    def _dest_slots(self, v: Variable, shape: tuple) -> list[Slot]:
        dt = np.dtype(_tt(v).dtype)
        if self._frame is not None:  # a nested loop's body
            return [self._frame.dest_slot(kind, j, shape, dt) for kind, j in self._frame.dests.get(v, ())]
        slots = []
        for kind, j in self._dests.get(v, ()):
            if kind == "yr":
                self.y_rows[j] = shape
            elif kind == "cnd":
                slots.append(Slot("cnd", (), (), np.dtype(bool), "cnd"))
                continue
            elif shape != self.carry_shapes[j] or dt != self.dtypes[self.op.n_seqs + j]:
                raise Decline(f"carry {j} changes from {self.carry_shapes[j]} to {shape}")
            slots.append(Slot(f"{kind}{j}", shape, c_strides(shape), dt, f"{kind}{j}"))
        return slots

    def output(self, v: Variable, shape: tuple) -> list[Slot]:
        """Where a computed value is stored: its destinations, else a scratch region."""
        want = _tt(v).shape
        if len(shape) != len(want) or any(w is not None and w != n for w, n in zip(want, shape)):
            raise Decline(f"{v} would have shape {shape}, its type says {v.type}")
        slots = self._dest_slots(v, shape) or [self.scratch_slot(np.dtype(_tt(v).dtype), shape)]
        self.slots[v] = slots[0]
        self._made[v] = slots
        return slots

    def scratch_slot(self, dtype: np.dtype, shape: tuple) -> Slot:
        """A new contiguous region of the scratch buffer of ``dtype``'s C type."""
        ct = ks.ctype(dtype)
        off = self.scratch.get(ct, 0)
        self.scratch[ct] = off + max(1, math.prod(shape))
        ptr = f"(s_{ct.replace(' ', '_')} + {off})"
        return Slot(ptr, shape, c_strides(shape), np.dtype(dtype), ptr)

    def slot(self, v: Variable) -> Slot:
        """The slot of a value read by a step (a 0-d constant becomes a literal)."""
        if v in self.slots:
            return self.slots[v]
        if isinstance(v, Constant):
            data = np.asarray(v.data)
            dt = np.dtype(_tt(v).dtype)
            s = Slot("", (), (), dt, "", ks.literal(data.item(), dt)) if data.ndim == 0 else \
                self.constant_slot(np.asarray(data, dtype=dt))
            self.slots[v] = s
            return s
        raise Decline(f"{v} is read before it is computed")

    def constant_slot(self, data: np.ndarray) -> Slot:
        """A constant array the kernel reads (a kernel argument ``bc<m>``)."""
        m = len(self.body_constants)
        self.body_constants.append(np.ascontiguousarray(data))
        return Slot(f"bc{m}", data.shape, c_strides(data.shape), data.dtype, f"bc{m}")

    # --- body nodes ----------------------------------------------------------------------------
    def _node(self, node: Apply) -> None:
        kind = node_kind(node)
        label = comment(str(node.op))
        if kind == "elemwise" and is_int_arithmetic(node) and all(self.knows(v) for v in node.inputs):
            self._fold(node)
        elif kind == "elemwise":
            prog, bound = program_and_inputs(node)
            self._elemwise(prog, [self.slot(v) for v in bound], node.outputs, label)
            if is_int_arithmetic(node):  # an index the kernel computes: its affine form, for slice lengths
                forms = program_forms(prog, [affine_of(self, v) for v in bound], id(node))
                self.affine.update((v, a) for v, a in zip(node.outputs, forms) if a is not None)
        elif kind == "view":
            self._view(node)
        elif kind == "index":
            self.slots[node.outputs[0]] = indexed(self, self.slot(node.inputs[0]), node.op_as(Subtensor),
                                                  node.inputs[1:])
        elif kind == "join":
            self._join(node, label)
        elif kind == "branch":
            self._branch(node, label)
        elif kind == "loop":
            self._loop(node, label)
        elif kind == "specify":
            src, lengths = self.slot(node.inputs[0]), [self.int_value(v) for v in node.inputs[1:]]
            axes = node.op.axes if isinstance(node.op, SpecifyShape) else ()
            if any(src.shape[d] != n for d, n in zip(axes, lengths)) or (isinstance(node.op, CheckRan) and
                                                                       lengths[0] < 1):
                raise Decline(f"{node.op}: shape {src.shape}")  # the step-by-step loop raises the error
            self.slots[node.outputs[0]] = src
        elif kind == "alloc":
            self._alloc(node, label)
        elif kind == "incsub":
            self._incsub(node, label)
        elif kind == "blank":  # its values (all false) are never read: a literal of its shape
            shape = tuple(self.int_value(v) for v in node.inputs)
            self.slots[node.outputs[0]] = Slot("", shape, (0,) * len(shape), np.dtype(bool), "",
                                               ks.literal(False, np.dtype(bool)))
        elif kind == "meta":
            self._meta(node)
        elif kind == "epilogue":
            op = node.op
            assert isinstance(op, Epilogue)
            core, _ = op.parts(node.inputs)
            others = [self.slot(v) for v in node.inputs[op.n_core:]]
            self._core(core, label, node.outputs, (op.program, op.slot, others))
        elif kind in ("softmax", "onehot", "gather", "scatter", "arange"):
            self._classifier(node, kind, label)
        elif kind in ("reduce", "dot"):
            out = node.outputs[0]
            self._core(node, label, [out], (Composite.identity(_tt(out).dtype), 0, []))
        else:
            raise Decline(f"{node.op} has no one-kernel form")

    def _classifier(self, node: Apply, kind: str, label: str) -> None:
        """A classifier's loss and its gradient (loop_loss.py, loop_index.py): softmax, one-hot
        labels, gathers and scatters by index arrays, ``T.arange`` of known bounds."""
        if kind == "softmax":
            x, op = self.slot(node.inputs[0]), node.op_as(_AxisSoftmax)
            dests = self.output(node.outputs[0], x.shape)
            self.steps += softmax_steps(x, op.axis, isinstance(op, LogSoftmax), dests, self.scratch_slot, label)
        elif kind == "onehot":
            labels, like = self.slot(node.inputs[0]), self.slot(node.inputs[1])
            classes = self.constant_slot(np.arange(like.shape[-1], dtype=np.int64))
            dests = self.output(node.outputs[0], labels.shape + classes.shape)
            self.steps += one_hot_steps(labels, classes, dests, label)
            self.checks_indices = True
        elif kind == "arange":
            values = [self.int_value(v) for v in node.inputs]
            self.slots[node.outputs[0]] = self.constant_slot(np.arange(*values, dtype=_tt(node.outputs[0]).dtype))
        else:
            gather_or_scatter(self, node, label)

    def _elemwise(self, prog: Composite, ins: list[Slot], outputs: list, label: str) -> None:
        """An elementwise program over its inputs broadcast together; an output that reads only
        some inputs has their broadcast shape (stored once per element of it)."""
        shape = broadcast([s.shape for s in ins], label)
        outs = [self.output(v, broadcast([ins[k].shape for k in sorted(deps)], label))
                for v, deps in zip(outputs, prog.output_deps)]
        draws = {j: broadcast([ins[k].shape for k in sorted(prog.step_deps[j])], label)
                 for j in random_steps(prog)}  # a draw's element index is its flat index in its own shape
        self.steps.append(Step("elemwise", label, shape, ins, outs, prog=prog, draws=draws))

    def _view(self, node: Apply) -> None:
        op = node.op
        assert isinstance(op, DimShuffle)
        src = self.slot(node.inputs[0])
        shape, strides = [], []
        for o in op.new_order:
            shape.append(1 if o == "x" else src.shape[o])
            strides.append(0 if o == "x" else src.strides[o])
        self.slots[node.outputs[0]] = replace(src, shape=tuple(shape), strides=tuple(strides))

    def _branch(self, node: Apply, label: str) -> None:
        """An ``sg.ifelse``: each side's nodes planned as steps of their own, their outputs copied
        into the node's outputs (the same slots on both sides); the kernel runs one side."""
        op, outer = node.op_as(IfElse), self.steps
        sides: list[tuple[list[Step], list[Slot]]] = []
        for graph in (op.then_graph, op.else_graph):
            self.steps = []
            for v, src in zip(graph.inputs, node.inputs[1:]):
                self.slots[v] = self.slot(src)
            for inner in graph.nodes:
                self._node(inner)
            sides.append((self.steps, [self.slot(v) for v in graph.outputs]))
        self.steps = outer
        for a, b in zip(sides[0][1], sides[1][1]):
            if a.shape != b.shape:
                raise Decline(f"{label}: the sides give shapes {a.shape} and {b.shape}")
        dests = [self.output(v, s.shape) for v, s in zip(node.outputs, sides[0][1])]
        for steps, results in sides:
            steps += [copy_step(s, d) for s, d in zip(results, dests)]
        cond = self.slot(node.inputs[0])
        self.steps.append(Step("branch", label, (), [cond], [], branches=(sides[0][0], sides[1][0])))

    def _loop(self, node: Apply, label: str) -> None:
        """A nested scan: its body planned as steps of their own, run ``n`` times in the step."""
        outer_frame, outer_steps = self._frame, self.steps
        depth = 0 if outer_frame is None else int(outer_frame.var[1:]) + 1
        frame = InnerLoop(self, node, depth)
        self._frame, self.steps = frame, []
        for inner in frame.op.body.nodes:
            self._node(inner)
        self._copies(frame.op.body.outputs)
        inner_steps = self.steps
        self._frame, self.steps = outer_frame, outer_steps
        self.steps += frame.before() + [loop_step(frame, inner_steps, label)]
        for v, s in zip(node.outputs, frame.outputs()):
            self.slots[v] = s

    def knows(self, v: Variable) -> bool:
        """Whether the plan knows ``v``'s integer value (a 0-d constant, shape arithmetic, a host value)."""
        return v in self.known or (isinstance(v, Constant) and np.ndim(v.data) == 0)

    def _fold(self, node: Apply) -> None:
        """Integer arithmetic of values the plan knows, computed now: literals, no step."""
        values = [np.asarray(self.known[v]) if v in self.known else np.asarray(cast(Constant, v).data)
                  for v in node.inputs]
        for v, value in zip(node.outputs, node.op.perform(node, values)):
            dt = np.dtype(_tt(v).dtype)
            self.known[v] = int(value)
            self.slots[v] = Slot("", (), (), dt, "", ks.literal(int(value), dt))

    def _alloc(self, node: Apply, label: str) -> None:
        """A value broadcast into a new array of a known shape."""
        value, shape = self.slot(node.inputs[0]), tuple(self.int_value(v) for v in node.inputs[1:])
        if broadcast([value.shape, shape], label) != shape:
            raise Decline(f"{label}: a value of shape {value.shape} does not fill {shape}")
        dests = self.output(node.outputs[0], shape)
        self.steps.append(copy_step(value, dests, label, shape))

    def _incsub(self, node: Apply, label: str) -> None:
        """``x`` copied, then its indexed part (a view) set to, or increased by, ``y``."""
        op = node.op_as(IncSubtensor)
        x, y = self.slot(node.inputs[0]), self.slot(node.inputs[1])
        dests = self.output(node.outputs[0], x.shape)
        self.steps.append(copy_step(x, dests))
        parts = [indexed(self, d, op, node.inputs[2:]) for d in dests]
        if broadcast([y.shape, parts[0].shape], label) != parts[0].shape:
            raise Decline(f"{label}: a value of shape {y.shape} for a part of shape {parts[0].shape}")
        dt = x.dtype.name
        prog = Composite.identity(dt) if op.set_instead_of_inc else \
            Composite([dt, dt], [("add", (("i", 0), ("i", 1)))], [("s", 0)])
        ins = [y] if op.set_instead_of_inc else [parts[0], y]
        self.steps.append(Step("elemwise", label, parts[0].shape, ins, [parts], prog=prog))

    def int_value(self, v: Variable) -> int:
        """An integer the plan knows for this call: a constant, shape arithmetic, or a value the call
        passed from the host (``values``), or integer arithmetic of those."""
        if isinstance(v, Constant):
            return int(np.asarray(v.data))
        if v in self.known:
            return int(self.known[v])
        raise Decline(f"an index reads {v}, not a value this plan knows")

    def _join(self, node: Apply, label: str) -> None:
        """Concatenation: each input copied into its region of the output (a view along the axis)."""
        axis = node.op_as(Join).axis
        srcs = [self.slot(v) for v in node.inputs]
        if len({s.shape[:axis] + s.shape[axis + 1:] for s in srcs}) != 1:
            raise Decline(f"{label}: shapes {[s.shape for s in srcs]} do not concatenate")
        shape = srcs[0].shape[:axis] + (sum(s.shape[axis] for s in srcs),) + srcs[0].shape[axis + 1:]
        dests, start = self.output(node.outputs[0], shape), 0
        for s in srcs:
            part = (slice(None),) * axis + (slice(start, start + s.shape[axis]),)
            self.steps.append(copy_step(s, [index_view(d, part) for d in dests], label))
            start += s.shape[axis]

    def _meta(self, node: Apply) -> None:
        """Shape arithmetic, decided by this call's shapes: a 0-d result becomes a literal; a
        shape vector (Shape, MakeVector) is kept as a tuple for the BroadcastCheck reading it."""
        op, out = node.op, node.outputs[0]
        if isinstance(op, Shape):
            self.known[out] = self.slot(node.inputs[0]).shape
            return
        if isinstance(op, MakeVector):
            if any(v not in self.known for v in node.inputs):
                raise Decline(f"{op} reads a value, not a shape this plan computes")
            self.known[out] = tuple(int(self.known[v]) for v in node.inputs)
            return
        if isinstance(op, BroadcastCheck):
            self._broadcast_check(op, node.inputs)
            value = 1
        elif isinstance(op, Shape_i):
            value = self.slot(node.inputs[0]).shape[op.i]
        else:
            assert isinstance(op, ReducedSize)
            full = np.broadcast_shapes(*[self.slot(v).shape for v in node.inputs])
            value = math.prod(full[a] for a in op.axis)
        dt = np.dtype(_tt(out).dtype)
        self.known[out] = value
        self.slots[out] = Slot("", (), (), dt, "", ks.literal(value, dt))

    def _broadcast_check(self, op: BroadcastCheck, inputs: list) -> None:
        """sg.grad's broadcast check: decided now from the shapes this plan knows, or, where it
        reads a shape vector passed in as a constant (hoisted out of the body), at each call
        before the launch (``host_checks``: ('known', shape) or ('const', index) per input)."""
        ns_nc = self.op.n_seqs + self.op.n_carries
        sources: list[tuple[str, Any]] = []
        for v in inputs:
            if v in self.known:
                sources.append(("known", tuple(self.known[v])))
            elif isinstance(v, Constant):  # a shape folded at compile time (a scalar's: [])
                sources.append(("known", tuple(int(n) for n in np.asarray(v.data).reshape(-1))))
            elif v in self.op.body.inputs[ns_nc:]:
                sources.append(("const", self.op.body.inputs.index(v) - ns_nc))
            else:
                raise Decline(f"{op} reads {v}, not a shape this plan computes")
        if any(kind == "const" for kind, _ in sources):
            self.host_checks.append((op, sources))
            return
        try:
            check_broadcast(op, [shape for _, shape in sources])
        except ShapeError as e:  # the step-by-step loop raises it, with the call's context
            raise Decline(str(e)) from None

    def _core(self, core: Apply, label: str, outputs: list, epi: tuple) -> None:
        """A reduction or product with its elementwise program ``epi`` = (program, slot, others)."""
        prog, epi_slot, others = epi
        result = core.outputs[0]
        acc = np.dtype(_tt(result).dtype)
        if isinstance(core.op, (Dot, MatMul)):
            step = self._product(core, label, acc)
        else:
            if isinstance(core.op, ReduceOf):
                value, red = core.op.program, core.op.reduce
                ins = [self.slot(v) for v in core.inputs]
            else:
                red = core.op_as(CAReduce)
                value, ins = Composite.identity(_tt(core.inputs[0]).dtype), [self.slot(core.inputs[0])]
            xshape = broadcast([s.shape for s in ins], label)
            axes = tuple(sorted(red.axis))
            if red.scalar_op in ("maximum", "minimum") and any(xshape[a] == 0 for a in axes):
                raise Decline("a maximum or minimum over no elements")
            step = Step("reduce", label, _reduced(xshape, axes, red.keepdims), ins, [], prog=value,
                        op=red.scalar_op, axes=axes, keepdims=red.keepdims, xshape=xshape, acc=acc)
        shape = step.shape
        step.acc_slot = self.scratch_slot(acc, shape)
        for s in others:
            if broadcast([s.shape, shape], label) != shape:
                raise Decline(f"{label}: an epilogue input of shape {s.shape} broadcasts the result {shape}")
        step.epi, step.epi_slot, step.others = prog, epi_slot, others
        step.outs = [self.output(v, shape) for v in outputs]
        self.steps.append(step)

    def _product(self, core: Apply, label: str, acc: np.dtype) -> Step:
        """``a @ b`` as the sum over k of ``a[.., k] * b[k, ..]``: a reduction over the middle axis
        of the space (a's leading axes, k, b's trailing axes), a and b viewed there."""
        a, b = (self.slot(v) for v in core.inputs)
        if a.shape[-1] != b.shape[0]:
            raise Decline(f"{label}: shapes {a.shape} and {b.shape} are not aligned")
        lead, trail = a.shape[:-1], b.shape[1:]
        xshape = lead + (a.shape[-1],) + trail
        av = replace(a, shape=a.shape + (1,) * len(trail), strides=a.strides + (0,) * len(trail))
        bv = replace(b, shape=(1,) * len(lead) + b.shape, strides=(0,) * len(lead) + b.strides)
        mul = Composite([a.dtype.name, b.dtype.name], [("mul", (("i", 0), ("i", 1)))], [("s", 0)])
        return Step("reduce", label, lead + trail, [av, bv], [], prog=mul, op="add", axes=(len(lead),),
                    xshape=xshape, acc=acc)

    def _copies(self, outputs: Sequence[Variable]) -> None:
        """Body outputs that no step stored where they go (inputs, views, literals, constants):
        copied there, after everything else."""
        for v in dict.fromkeys(outputs):
            if v in self._made:
                continue
            src = self.slot(v)
            dests = self._dest_slots(v, src.shape)
            if src.dtype != np.dtype(_tt(v).dtype):
                raise Decline(f"{v} changes dtype")
            self.steps.append(copy_step(src, dests))

    # --- sizes ---------------------------------------------------------------------------------
    def work(self) -> int:
        """Element operations of one step."""
        return sum(s.work() for s in self.steps)

    def arguments(self) -> int:
        """The kernel's arguments (loop_source.Source.params)."""
        op = self.op
        return (2 + 2 * op.until + self.checks_indices + 2 * op.n_seqs + 4 * op.n_carries + 2 * op.n_consts
                + len(self.body_constants) + sum(op.traced) + op.n_ys + len(self.scratch))

    def state_bytes(self) -> int:
        """Bytes one step touches: carries (twice), rows, constants, scratch."""
        def nbytes(shapes: list, dtypes: list) -> int:
            return sum(math.prod(s) * d.itemsize for s, d in zip(shapes, dtypes))
        ns, nc = self.op.n_seqs, self.op.n_carries
        total = nbytes(self.seq_rows, self.dtypes[:ns]) + 2 * nbytes(self.carry_shapes, self.dtypes[ns:ns + nc])
        total += nbytes(self.const_shapes, self.dtypes[ns + nc:])
        return total + sum(n * 8 for n in self.scratch.values())


def _tt(v: Variable) -> TensorType:
    """A body value's tensor type (sg.scan checks that every value a loop reads or writes is a tensor)."""
    return cast(TensorType, v.type)


def comment(text: str) -> str:
    """``text`` fit for a C comment: printable ASCII, no comment delimiters, at most 100 characters."""
    text = text.replace("\u2192", "->")
    text = "".join(c if " " <= c <= "~" else "?" for c in text).replace("*/", "* /").replace("/*", "/ *")
    return text if len(text) <= 100 else text[:97] + "..."


def _reduced(xshape: tuple, axes: tuple, keepdims: bool) -> tuple:
    if keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(xshape))
    return tuple(n for d, n in enumerate(xshape) if d not in axes)


__all__ = ["Decline", "LoopPlan", "Slot", "Step", "node_kind", "unsupported"]
