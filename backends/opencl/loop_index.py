"""Indices the one-kernel loop reads at run time (backends/opencl/loop_plan.py plans the rest):
``data[i]`` where ``i`` is a carry, an element of a sequence or a value the step computes, and
windows ``X[a:a + k]`` whose start moves with the loop. Such a view is planned at index 0 and its
pointer moved along the axis by the value the kernel reads when it reaches an element, checked
(``INDEX_CHECK``): out of range, a flag sends the call step by step, where numpy raises, wraps
or shortens as it does. A window's length must not depend on the run: integer values of the body
are tracked as affine forms of the values read at run time, so in ``X[i * bs:(i + 1) * bs]``
(a minibatch of a training loop in one launch) the length is ``bs`` though neither bound is known."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from symgraph.backends.opencl.loop_slots import Decline, Slot, Step, broadcast, copy_step, index_view
from symgraph.graph.basic import Apply, Variable
from symgraph.tensor.composite import Composite
from symgraph.tensor.subtensor import IncSubtensor, Subtensor

if TYPE_CHECKING:
    from symgraph.backends.opencl.loop_plan import LoopPlan

_LIMIT = 1 << 62  # beyond it int64 arithmetic may wrap where Python's does not: no form


@dataclass(frozen=True)
class Affine:
    """``const + sum(coeff * atom)``: atoms are values read at run time, by key (a variable's
    ``('v', id)``, or a program step's ``('s', node id, step)``)."""
    const: int
    terms: tuple[tuple[tuple, int], ...] = ()

    @staticmethod
    def atom(key: tuple) -> Affine:
        return Affine(0, ((key, 1),))

    def plus(self, other: Affine, sign: int = 1) -> Affine | None:
        coeffs = dict(self.terms)
        for key, c in other.terms:
            coeffs[key] = coeffs.get(key, 0) + sign * c
        return _checked(self.const + sign * other.const, coeffs)

    def times(self, k: int) -> Affine | None:
        return _checked(self.const * k, {key: c * k for key, c in self.terms})


def _checked(const: int, coeffs: dict[tuple, int]) -> Affine | None:
    terms = tuple(sorted((key, c) for key, c in coeffs.items() if c))
    if abs(const) >= _LIMIT or any(abs(c) >= _LIMIT for _, c in terms):
        return None
    return Affine(const, terms)


def _product(a: Affine, b: Affine) -> Affine | None:
    if not a.terms:
        return b.times(a.const)
    return a.times(b.const) if not b.terms else None


_RULES: dict[str, Callable[..., Affine | None]] = {
    "add": lambda a, b: a.plus(b),
    "sub": lambda a, b: a.plus(b, -1),
    "mul": _product,
    "neg": lambda a: a.times(-1),
    "identity": lambda a: a,
    "cast_int64": lambda a: a,
}
"""Scalar ops whose result is affine in affine arguments (others: no form)."""


def _dtype(prog: Composite, ref: tuple) -> np.dtype:
    """The dtype of a program's operand (an input, a step, a constant)."""
    return np.dtype(prog.in_dtypes[ref[1]] if ref[0] == "i" else prog.step_dtypes[ref[1]] if ref[0] == "s" else ref[1])


def program_forms(prog: Composite, inputs: Sequence[Affine | None], key: int) -> list[Affine | None]:
    """The affine form of each output of an integer program ``prog`` whose inputs have the forms
    ``inputs``. A step of integer values that is not affine in its arguments (a modulo, a cast
    from a float) is an atom of its own (``key``: the node's, with the step's number), so that
    the outputs computed from it keep their differences: ``k`` and ``k + 1`` differ by 1 whatever
    ``k`` is. Steps of other values have no form (None)."""
    steps: list[Affine | None] = []

    def ref(r: tuple) -> Affine | None:
        if r[0] == "i":
            return inputs[r[1]]
        if r[0] == "s":
            return steps[r[1]]
        value = r[2]
        return Affine(int(value)) if float(value).is_integer() else None

    for j, (name, args) in enumerate(prog.steps):
        rule, values = _RULES.get(name), [ref(a) for a in args]
        integer = np.dtype(prog.step_dtypes[j]).kind in "iu"
        cast_of_float = name.startswith("cast_") and _dtype(prog, args[0]).kind not in "iu"
        form = rule(*values) if rule is not None and not cast_of_float and all(v is not None for v in values) else None
        steps.append(form if form is not None or not integer else Affine.atom(("s", key, j)))
    return [ref(r) for r in prog.outputs]


INDEX_CHECK = """long sg_index(const long v, const long n, __global int *bad)
{   /* a run-time index into an axis of length n: numpy's wrap of negative values; out of range,
       the flag for the host (which runs the call step by step, raising numpy's IndexError) */
    if (v < -n || v >= n) { bad[0] = 1; return 0; }
    return v < 0 ? v + n : v;
}
long sg_start(const long a, const long span, const long n, __global int *bad)
{   /* the start of a window a:a+span of an axis of length n; a negative start (numpy wraps it)
       or a window past the end (numpy shortens it) flags the host, which runs the call step by step */
    if (a < 0 || a + span > n) { bad[0] = 1; return 0; }
    return a;
}
"""
"""The kernel's helpers for ``index_at_run_time`` (their flag is the kernel argument ``bad``)."""


def index_at_run_time(view: Slot, stride: int, length: int, index: Slot, span: int = 0) -> Slot:
    """``view`` (the indexed slot at index 0 along an axis of ``length`` elements and element
    ``stride``) moved to the index the loop computes, read from the 0-d slot ``index`` when an
    element is reached (checked: ``INDEX_CHECK``); ``span`` > 0: ``index`` starts a window of
    ``span`` (a slice ``a:a+span``), else it is an integer index."""
    if index.shape != () or not index.ptr or index.dtype.kind not in "iu":
        raise Decline(f"an index reads {index.dtype}{list(index.shape)}, not one integer")
    at = f"sg_start({index.ptr}[0], {span}, {length}, bad)" if span else f"sg_index({index.ptr}[0], {length}, bad)"
    return replace(view, ptr=f"({view.ptr} + {stride} * {at})", deps=view.deps + index.deps + (index.key,))


def indexed(plan: LoopPlan, src: Slot, op: Subtensor | IncSubtensor, inputs: Sequence[Variable]) -> Slot:
    """``src`` indexed by ``op`` (basic indexing: a view). An integer index the plan does not know
    (a carry, a sequence's element, a value the step computes), or the start of a window of known
    length, is read by the kernel: the view is planned at 0, then moved along that axis at run time."""
    values: list[Any] = []
    moves, axis, it = [], 0, iter(inputs)
    for e in op.idx_list:
        if e is None:
            continue
        if isinstance(e, tuple):
            bounds = [next(it) if f else None for f in e]
            start = bounds[0]
            if all(b is None or plan.knows(b) for b in bounds) or start is None or axis >= len(src.shape):
                values += [plan.int_value(b) for b in bounds if b is not None]
            else:  # a window that moves: its start read at run time, its length known
                span, step = _span(plan, start, bounds[1], bounds[2])
                moves.append((src.strides[axis], src.shape[axis], plan.slot(start), span))
                values += [0, span] + ([step] if bounds[2] is not None else [])
        else:
            v = next(it)
            if e == "i" and not plan.knows(v) and axis < len(src.shape):
                moves.append((src.strides[axis], src.shape[axis], plan.slot(v), 0))
                values.append(0)
            else:
                values.append(plan.int_value(v))
        axis += 1
    view = index_view(src, op.np_index(values))
    for stride, length, index, span in moves:
        view = index_at_run_time(view, stride, length, index, span)
        plan.checks_indices = True
    return view


def _span(plan: LoopPlan, start: Variable, stop: Variable | None, step: Variable | None) -> tuple[int, int]:
    """``stop - start`` and the step of a window whose start the kernel reads: the stop given,
    its difference to the start known (affine forms), a positive step the plan knows."""
    a, b = affine_of(plan, start), None if stop is None else affine_of(plan, stop)
    span = b.plus(a, -1) if a is not None and b is not None else None
    stride = 1 if step is None else plan.int_value(step) if plan.knows(step) else 0
    if span is None or span.terms or span.const <= 0 or stride <= 0:
        raise Decline(f"a slice {start}:{stop}:{step} whose length the plan does not know")
    return span.const, stride


def affine_of(plan: LoopPlan, v: Variable) -> Affine | None:
    """``v``'s affine form: a number the plan knows, a form computed from others, else an atom (an
    integer scalar read at run time), else None."""
    if plan.knows(v):
        return Affine(plan.int_value(v))
    if v in plan.affine:
        return plan.affine[v]
    tt: Any = v.type
    return Affine.atom(("v", id(v))) if getattr(tt, "ndim", None) == 0 and np.dtype(tt.dtype).kind in "iu" else None


def gather_or_scatter(plan: LoopPlan, node: Apply, label: str) -> None:
    """``x[i0, .., ik]`` with an integer array for every axis (``log(p)[T.arange(n), y]``) as a
    'gather' step, or ``inc_subtensor`` / ``set_subtensor`` of it (its gradient) as a copy of
    ``x`` and a 'scatter' step; each index checked and wrapped as numpy does (``sg_index``: out of
    range, the call runs step by step, where numpy raises). The index arrays broadcast together;
    a scatter runs on one work-item in order, so repeated indices accumulate (set: the last wins)."""
    scatter = isinstance(node.op, IncSubtensor)
    x = plan.slot(node.inputs[0])
    if not x.ptr or (scatter and x.dtype.kind == "b"):
        raise Decline(f"{label}: indexing {x.dtype.name} {'a literal' if not x.ptr else 'flags'}")
    value = plan.slot(node.inputs[1]) if scatter else None
    idx = [plan.slot(v) for v in node.inputs[2 if scatter else 1:]]
    shape = broadcast([s.shape for s in idx], label)
    if value is not None and broadcast([value.shape, shape], label) != shape:
        raise Decline(f"{label}: a value of shape {value.shape} for {shape} indexed elements")
    dests = plan.output(node.outputs[0], x.shape if scatter else shape)
    if scatter:
        plan.steps.append(copy_step(x, dests))
        op = "set" if node.op_as(IncSubtensor).set_instead_of_inc else "add"
        plan.steps.append(Step("scatter", label, shape, [value, *idx], [dests], op=op, xshape=x.shape))
    else:
        plan.steps.append(Step("gather", label, shape, [x, *idx], [dests], xshape=x.shape))
    plan.checks_indices = True


__all__ = ["Affine", "program_forms", "indexed", "affine_of", "index_at_run_time", "INDEX_CHECK", "gather_or_scatter"]
