"""Composite: several elementwise ops fused into one node that runs an inner scalar program.

This is THE program format for elementwise code: fusion writes it, the numpy backend prints it
as a Python helper, the OpenCL backend as kernel statements, and fused reductions and products
carry it as their prologue or epilogue. ``steps`` is a tuple of ``(scalar_op_name, args)`` and
``outputs`` a tuple of refs, where a ref is ``("i", k)`` (input k), ``("s", j)`` (the result of
step j) or ``("c", dtype, value)`` (an inlined scalar constant). Each step's dtype is the scalar
op's ``out_dtype`` of its arguments' dtypes and its shape the broadcast of its arguments',
exactly as the Elemwise nodes it replaces computed them.

``plan(input_types)`` turns the program into a schedule over reusable full-size buffers
(the numpy backend's lowering prints it as source; ``perform`` interprets it).

A step may be a random row of the scalar table (``reads_index``): its value at an element is a
function of the element's flat index in the step's own output shape (argument 0 gives the
shape), so the program gives the same numbers fused or not, in any chunking. Backends compute
that index where they run the program's elements (numpy: the whole step at once).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np

from symgraph import scalar
from symgraph.errors import GraphTypeError
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.elemwise import ELEMWISE_OPS, Elemwise, broadcast_shapes, broadcast_static_shape
from symgraph.tensor.type import (
    TensorConstant,
    TensorType,
    TensorVariable,
    as_tensor_variable,
    constant,
    tensor_inputs,
    tensor_outputs,
)

Ref = tuple


class Composite(Op):
    """A fused elementwise program over ``len(in_dtypes)`` inputs with one or more outputs."""

    __props__ = ("in_dtypes", "steps", "outputs")

    def __init__(self, in_dtypes: Sequence[str], steps: Sequence[tuple], outputs: Sequence[Ref]):
        self.in_dtypes = tuple(np.dtype(d).name for d in in_dtypes)
        self.steps = tuple((name, tuple(args)) for name, args in steps)
        self.outputs = tuple(outputs)
        self.nin = len(self.in_dtypes)
        self._hash = hash((Composite, self.in_dtypes, self.steps, self.outputs))
        self._plans: dict = {}
        self._str: str | None = None
        _check_program(self.nin, self.steps, self.outputs)
        dtypes: list[str] = []
        for name, args in self.steps:
            sop = scalar.get(name)
            if len(args) != sop.nin:
                raise GraphTypeError(f"Composite: step {name} takes {sop.nin} arguments, got {len(args)}")
            dtypes.append(scalar._out_dtype(sop, tuple(self._ref_dtype(a, dtypes) for a in args)))
        self.step_dtypes = tuple(dtypes)
        self.out_dtypes = tuple(self._ref_dtype(r, dtypes) for r in self.outputs)
        self._deps: tuple | None = None

    # --- building programs ------------------------------------------------------------------
    @staticmethod
    def of_node(node: Apply) -> tuple[Composite, list[TensorVariable]]:
        """The program of an Elemwise or Composite node, and the variables bound to its inputs
        (a lone Elemwise's scalar constants are inlined, so only its other inputs are bound)."""
        if isinstance(node.op, Composite):
            return node.op, list(tensor_inputs(node))
        if not isinstance(node.op, Elemwise):
            raise TypeError(f"{node.op} is not elementwise")
        bound: list[TensorVariable] = []
        args: list[Ref] = []
        for v in tensor_inputs(node):
            if is_inlinable(v):
                args.append(("c", v.dtype, v.data.item()))
                continue
            if v not in bound:
                bound.append(v)
            args.append(("i", bound.index(v)))
        return Composite([v.dtype for v in bound], [(node.op.scalar_op.name, args)], [("s", 0)]), bound

    @staticmethod
    def identity(dtype: str) -> Composite:
        """The program that returns its one input unchanged (no steps)."""
        return Composite([dtype], [], [("i", 0)])

    def restrict(self, j: int) -> tuple[Composite, list[int]]:
        """The program computing only output ``j`` (its steps and inputs alone), and the indices of
        the original inputs it keeps, in order."""
        keep_in = sorted(self.output_deps[j])
        need: set[int] = set()
        stack = [self.outputs[j]]
        while stack:
            ref = stack.pop()
            if ref[0] == "s" and ref[1] not in need:
                need.add(ref[1])
                stack += self.steps[ref[1]][1]
        steps = sorted(need)

        def renumber(ref: Ref) -> Ref:
            return ("i", keep_in.index(ref[1])) if ref[0] == "i" else ("s", steps.index(ref[1])) \
                if ref[0] == "s" else ref
        prog = Composite([self.in_dtypes[k] for k in keep_in],
                         [(self.steps[i][0], [renumber(a) for a in self.steps[i][1]]) for i in steps],
                         [renumber(self.outputs[j])])
        return prog, keep_in

    # --- what the program reads ---------------------------------------------------------------
    @property
    def step_deps(self) -> tuple:
        """For each step, the set of input indices it depends on."""
        if self._deps is None:
            deps: list[frozenset] = []
            for _, args in self.steps:
                deps.append(frozenset().union(*(self._ref_deps(a, deps) for a in args)))
            self._deps = tuple(deps)
        return self._deps

    @property
    def reads_index(self) -> bool:
        """True when a step is a random row (it reads the element's flat index)."""
        return any(scalar.get(name).is_random for name, _ in self.steps)

    @property
    def output_deps(self) -> list[frozenset]:
        """For each output, the set of input indices it depends on."""
        return [self._ref_deps(r, self.step_deps) for r in self.outputs]

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return type(other) is Composite and other._hash == self._hash and other._props() == self._props()

    def _ref_dtype(self, ref: Ref, step_dtypes: Sequence[str]) -> str:
        kind = ref[0]
        return self.in_dtypes[ref[1]] if kind == "i" else step_dtypes[ref[1]] if kind == "s" else ref[1]

    def _ref_deps(self, ref: Ref, deps: Sequence[frozenset]) -> frozenset:
        return frozenset((ref[1],)) if ref[0] == "i" else deps[ref[1]] if ref[0] == "s" else frozenset()

    # --- the Op interface ---------------------------------------------------------------
    def make_node(self, *args: Any) -> Apply:
        inputs = [as_tensor_variable(i) for i in args]
        if len(inputs) != self.nin:
            raise GraphTypeError(f"{self} takes {self.nin} inputs, got {len(inputs)}")
        for k, (v, dt) in enumerate(zip(inputs, self.in_dtypes)):
            if v.dtype != dt:
                raise GraphTypeError(f"Composite input {k} must have dtype {dt}, got {v.type}")
        in_shapes = [v.type.shape for v in inputs]
        shapes = _step_shapes(self.steps, in_shapes)
        outs = [TensorType(dt, shapes[r[1]] if r[0] == "s" else in_shapes[r[1]] if r[0] == "i" else ()).make_variable()
                for r, dt in zip(self.outputs, self.out_dtypes)]
        return Apply(self, inputs, outs)

    def perform(self, node: Apply, inputs: list) -> list:
        return self.run(self.plan(tuple(i.type for i in node.inputs)), inputs)

    def run(self, p: Plan, inputs: list, buffered: bool = True, out: list | None = None) -> list:
        """Evaluate the program with schedule ``p`` (unbuffered when the run-time lengths do
        not match the static broadcasting the plan assumes, or when ``buffered`` is False).
        ``out``: arrays to hold the outputs; the steps that compute them write there directly
        when the plan gives them a full-size buffer of their own (outputs' buffers are never reused)."""
        with np.errstate(all="ignore"):
            shape = np.broadcast_shapes(*(np.shape(x) for x in inputs)) if inputs else ()
            fits = buffered and all(inputs[k].shape[d] == shape[fd] for k, d, fd in p.guards)
            bufs = [np.empty(shape, dt) for dt in p.slot_dtypes] if fits else None
            if bufs is not None and out is not None:
                slot_of = {dest: slot for _, _, slot, dest in p.instrs if slot is not None}
                for o, idx in zip(out, p.out_index):
                    if idx in slot_of and o.shape == shape and o.dtype == p.slot_dtypes[slot_of[idx]]:
                        bufs[slot_of[idx]] = o
            vals = list(inputs) + list(p.consts) + [None] * len(self.steps)
            for fn, args, slot, dest in p.instrs:
                if slot is not None and bufs is not None:
                    vals[dest] = fn(*[vals[a] for a in args], out=bufs[slot])
                else:
                    vals[dest] = fn(*[vals[a] for a in args])
            results = [np.asarray(vals[i], dtype=dt) for i, dt in zip(p.out_index, self.out_dtypes)]
            for o, r in zip(out or (), results):
                if r is not o:
                    np.copyto(o, r)
        return results if out is None else out

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        result = []
        for deps, out in zip(self.output_deps, tensor_outputs(node)):
            result.append(broadcast_shapes([input_shapes[k] for k in sorted(deps)], out.type.shape))
        return result

    def expand(self, inputs: Sequence[Any]) -> list:
        """The program rebuilt as ordinary Elemwise nodes on ``inputs`` (one variable per output)."""
        vals: list = []

        def get(ref: Ref) -> Any:
            if ref[0] == "i":
                return inputs[ref[1]]
            return vals[ref[1]] if ref[0] == "s" else constant(np.asarray(ref[2], dtype=ref[1]))
        for name, args in self.steps:
            vals.append(ELEMWISE_OPS[name](*[get(a) for a in args]))
        return [get(r) for r in self.outputs]

    # --- printing -------------------------------------------------------------------------
    def __str__(self) -> str:
        if self._str is None:
            self._str = self._render()
        return self._str

    def _render(self) -> str:
        uses = [0] * len(self.steps)
        for _, args in self.steps:
            for a in args:
                if a[0] == "s":
                    uses[a[1]] += 1
        for r in self.outputs:
            if r[0] == "s":
                uses[r[1]] += 1
        text: list[str] = []
        defs: list[str] = []

        def show(ref: Ref) -> str:
            if ref[0] == "i":
                return f"i{ref[1]}"
            return text[ref[1]] if ref[0] == "s" else repr(ref[2])
        for j, (name, args) in enumerate(self.steps):
            sop = scalar.get(name)
            a = [show(r) for r in args]
            if sop.infix and len(a) == 2:
                s = f"({a[0]} {sop.infix} {a[1]})"
            elif sop.infix and len(a) == 1:
                s = f"{sop.infix}{a[0]}"
            else:
                s = f"{name}({', '.join(a)})"
            if (uses[j] > 1 and len(s) > 16 or len(s) > 80) and ("s", j) not in self.outputs:
                defs.append(f"t{j}={_strip(s)}")
                s = f"t{j}"
                if sum(map(len, defs)) > 300:  # long programs: show the start only
                    return f"Composite{{{len(self.steps)} steps: {'; '.join(defs)[:240]}...}}"
            text.append(s)
        body = ", ".join([_strip(show(r)) for r in self.outputs])
        body = "; ".join(defs + [body])
        if len(body) > 300:
            body = f"{len(self.steps)} steps: {body[:240]}..."
        return f"Composite{{{body}}}"

    __repr__ = __str__

    # --- the buffer schedule ----------------------------------------------------------------
    def plan(self, input_types: tuple) -> Plan:
        """The schedule for inputs of these types (cached): see :class:`Plan`."""
        p = self._plans.get(input_types)
        if p is None:
            p = self._plans[input_types] = Plan(self, input_types)
        return p


def _check_program(nin: int, steps: tuple, outputs: tuple) -> None:
    """Refuse a malformed program (say, one read from a damaged file): every ref must name an
    input, an earlier step or a numeric constant, and every output a step or an input."""
    def check(ref: Any, before: int, where: str) -> None:
        ok = isinstance(ref, tuple) and len(ref) == (3 if ref[:1] == ("c",) else 2)
        if ok and ref[0] in ("i", "s"):
            limit = nin if ref[0] == "i" else before
            ok = type(ref[1]) is int and 0 <= ref[1] < limit
        elif ok and ref[0] == "c":
            ok = isinstance(ref[1], str) and ref[1] in scalar.CAST_DTYPES and \
                isinstance(ref[2], (bool, int, float, complex, np.number, np.bool_))
        else:
            ok = False
        if not ok:
            raise GraphTypeError(f"Composite: {where} has a malformed reference {ref!r}")
    for j, step in enumerate(steps):
        if not (isinstance(step[0], str) and isinstance(step[1], tuple)):
            raise GraphTypeError(f"Composite: step {j} is malformed: {step!r}")
        for ref in step[1]:
            check(ref, j, f"step {j}")
    for ref in outputs:
        check(ref, len(steps), "an output")
        if ref[0] not in ("s", "i"):
            raise GraphTypeError(f"Composite: an output must be a step or an input, got {ref!r}")


def _step_shapes(steps: tuple, input_shapes: list) -> list[tuple]:
    """Static shape of every step: the broadcast of its arguments' (as Elemwise computes it)."""
    shapes: list[tuple] = []
    for name, args in steps:
        arg_shapes = [input_shapes[a[1]] if a[0] == "i" else shapes[a[1]] if a[0] == "s" else () for a in args]
        first = arg_shapes[0]
        same = all(s == first for s in arg_shapes) or len(arg_shapes) == 2 and arg_shapes[1] == ()
        if same and 1 not in first:
            shapes.append(first)
        else:
            shapes.append(broadcast_static_shape(arg_shapes, f"the inputs of fused {name}"))
    return shapes


def _strip(s: str) -> str:
    return s[1:-1] if s.startswith("(") and s.endswith(")") and _balanced(s[1:-1]) else s


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def is_inlinable(v: Variable) -> TypeGuard[TensorConstant]:
    """A 0-d constant, written into a program as a literal instead of being one of its inputs."""
    return isinstance(v, TensorConstant) and v.ndim == 0 and isinstance(v.data, np.ndarray)


class Plan:
    """A Composite's program scheduled for given input types.

    Steps whose shape is the full broadcast shape write with ``out=`` into one of
    ``slot_dtypes`` buffers (a buffer is reused once the step that last read it has run);
    steps over broadcast inputs only compute at their own, smaller shape. ``guards`` lists
    ``(input, dim, full_dim)`` lengths that must agree at run time for the schedule to hold
    (else everything is computed unbuffered, as numpy would). Values live in one flat list:
    the inputs, then ``consts``, then the steps; ``instrs`` are ``(fn, arg_indices, slot or
    None, dest_index)`` and ``out_index`` says where the outputs are.
    """

    def __init__(self, op: Composite, input_types: tuple):
        nin, nconst = op.nin, 0
        shapes = [t.shape for t in input_types]
        full = broadcast_static_shape(shapes) if shapes else ()
        pattern = tuple(s == 1 for s in full)
        consts: list = []
        const_index: dict = {}
        self.input_full = [len(s) == len(full) and tuple(x == 1 for x in s) == pattern for s in shapes]
        self.guards = [(k, d, d + len(full) - len(s)) for k, s in enumerate(shapes)
                       for d, x in enumerate(s) if x is None and not pattern[d + len(full) - len(s)]]
        step_shapes = _step_shapes(op.steps, shapes)
        for _, args in op.steps:
            for a in args:
                if a[0] == "c" and a not in const_index:
                    const_index[a] = len(consts)
                    consts.append(np.asarray(a[2], dtype=a[1])[()])
        nconst = len(consts)
        self.consts = tuple(consts)
        self.step_full = [len(s) == len(full) and tuple(x == 1 for x in s) == pattern and len(full) > 0
                          for s in step_shapes]
        outputs = {r[1] for r in op.outputs if r[0] == "s"}
        last_use: dict[int, int] = {}
        for j, (_, args) in enumerate(op.steps):
            for a in args:
                if a[0] == "s":
                    last_use[a[1]] = j
        base = nin + nconst

        def index(ref: Ref) -> int:
            return ref[1] if ref[0] == "i" else base + ref[1] if ref[0] == "s" else nin + const_index[ref]
        self.slot_dtypes: list[np.dtype] = []
        free: dict[str, list[int]] = {}
        slot_of: dict[int, int] = {}
        self.instrs: list[tuple] = []
        for j, (name, args) in enumerate(op.steps):
            sop = scalar.get(name)
            fn = sop.np_fn
            dying = [a[1] for a in dict.fromkeys(args) if a[0] == "s" and last_use.get(a[1]) == j
                     and a[1] not in outputs and a[1] in slot_of]
            early = sop.inplace  # may write into a buffer that is also one of its arguments
            if early:
                for s in dying:
                    free.setdefault(op.step_dtypes[s], []).append(slot_of[s])
            slot = None
            if self.step_full[j]:
                pool = free.get(op.step_dtypes[j])
                if pool:
                    slot = pool.pop()
                else:
                    slot = len(self.slot_dtypes)
                    self.slot_dtypes.append(np.dtype(op.step_dtypes[j]))
                slot_of[j] = slot
            if not early:
                for s in dying:
                    free.setdefault(op.step_dtypes[s], []).append(slot_of[s])
            self.instrs.append((fn, tuple(index(a) for a in args), slot, base + j))
        self.out_index = [index(r) for r in op.outputs]
        self.out_dtypes = list(op.out_dtypes)
