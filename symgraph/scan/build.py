"""``sg.scan``: Theano's loop API, building one ``Scan`` node.

    outputs, updates = sg.scan(fn, sequences=None, outputs_info=None, non_sequences=None,
                               n_steps=None, truncate_gradient=-1, go_backwards=False, name=None,
                               strict=False, checkpoint=None, return_updates=True)

``fn`` is called once, on placeholders, with (each sequence's taps, each fed-back output's taps,
the non-sequences) and returns the step's outputs, optionally with ``sg.until(condition)``.
What the step reads from outside (shared variables, other variables it closes over) becomes a
constant input of the loop; whatever the step computes from those alone is computed once,
before the loop (loop-invariant), except work only a lazy ``ifelse`` branch needs.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import symgraph.tensor as T
from symgraph.errors import GraphTypeError, MissingInputError
from symgraph.graph.basic import Constant, Variable, user_source_line
from symgraph.graph.inner import InnerGraph
from symgraph.graph.traversal import ancestors, toposort
from symgraph.ifelse import IfElse
from symgraph.scan.draws import redraw_per_step
from symgraph.scan.op import Scan
from symgraph.scan.shared_updates import carry_updates, checked_updates
from symgraph.scan.types import compatible
from symgraph.tensor.random_ops import current_loop_step, loop_step
from symgraph.tensor.type import (
    TensorConstant,
    TensorType,
    TensorVariable,
    as_tensor_variable,
    is_integer,
    tensor_outputs,
)

UNBOUNDED = np.iinfo(np.int64).max  # the step bound of a while loop given no n_steps


class Until:
    """What ``sg.until(condition)`` returns: the step function returns it with its outputs, and the
    loop stops after the first step whose condition is true."""

    def __init__(self, condition: Any):
        self.condition = as_tensor_variable(condition)


def until(condition: Any) -> Until:
    """Stop the loop after the step where ``condition`` (a scalar) is true (Theano's ``scan_module.until``)."""
    return Until(condition)


@dataclass
class _Output:
    """One entry of outputs_info: its initial value (None: a stacked output, not fed back), taps."""
    initial: TensorVariable | None
    taps: list[int] = field(default_factory=list)

    @property
    def window(self) -> int:
        return -min(self.taps) if self.taps else 0


def _at(where: Any) -> str:
    return f"\nBuilt at (most recent user line):\n  {where}" if where is not None else ""


def _as_list(x: Any) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _taps(value: Any, what: str, at: str) -> list[int]:
    taps = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not taps or any(not isinstance(k, (int, np.integer)) for k in taps) or len(set(taps)) != len(taps):
        raise GraphTypeError(f"scan: the taps of {what} must be distinct integers, got {value!r}{at}")
    return [int(k) for k in taps]


def _sequences(sequences: Any, at: str) -> list[tuple[TensorVariable, list[int]]]:
    out = []
    for k, s in enumerate(_as_list(sequences)):
        taps = [0]
        if isinstance(s, dict):
            unknown = set(s) - {"input", "taps"}
            if "input" not in s or unknown:
                raise GraphTypeError(f"scan: sequence {k} is a dict; it needs 'input' and may have 'taps' "
                                     f"(got keys {sorted(s)}){at}")
            taps = _taps(s["taps"], f"sequence {k}", at) if s.get("taps") is not None else [0]
            s = s["input"]
        s = as_tensor_variable(s)
        if s.ndim == 0:
            raise GraphTypeError(f"scan: sequence {k} ({s}, {s.type}) is a scalar; a sequence needs a first axis "
                                 f"to loop over{at}")
        out.append((s, taps))
    return out


def _outputs_info(outputs_info: Any, at: str) -> list[_Output]:
    out = []
    for k, o in enumerate(_as_list(outputs_info)):
        if o is None:
            out.append(_Output(None))
            continue
        if not isinstance(o, dict):
            out.append(_Output(as_tensor_variable(o), [-1]))
            continue
        unknown = set(o) - {"initial", "taps", "inplace", "return_steps"}
        if unknown:
            raise GraphTypeError(f"scan: outputs_info[{k}] has unknown keys {sorted(unknown)} (use 'initial' "
                                 f"and 'taps'){at}")
        init, taps = o.get("initial"), o.get("taps", [-1] if o.get("initial") is not None else None)
        if init is None:
            if taps:
                raise GraphTypeError(f"scan: outputs_info[{k}] has taps {taps} but no initial value: taps read "
                                     f"earlier values of the output, so give them as 'initial'{at}")
            out.append(_Output(None))
            continue
        taps = _taps(taps if taps is not None else [-1], f"outputs_info[{k}]", at)
        if any(t >= 0 for t in taps):
            raise GraphTypeError(f"scan: outputs_info[{k}] has taps {taps}; an output's taps must be negative "
                                 f"(-1 is the previous step){at}")
        init = as_tensor_variable(init)
        w = -min(taps)
        if taps != [-1]:
            if init.ndim == 0:
                raise GraphTypeError(f"scan: outputs_info[{k}] with taps {taps} needs an initial value with a first "
                                     f"axis holding the {w} earliest values, got a scalar{at}")
            if init.type.shape[0] is not None and init.type.shape[0] < w:
                raise GraphTypeError(f"scan: outputs_info[{k}] with taps {taps} needs {w} initial values, but its "
                                     f"initial value has {init.type.shape[0]}{at}")
        out.append(_Output(init, taps))
    return out


def _row_type(x: TensorVariable) -> TensorType:
    return TensorType(x.dtype, x.type.shape[1:])


def _tap_name(base: str | None, k: int) -> str | None:
    return None if base is None else f"{base}[t{k:+d}]" if k else f"{base}[t]"


def _n_steps(n_steps: Any, at: str) -> tuple[TensorVariable | None, bool]:
    """(the step count as a variable or None, whether a negative constant asked for reversal)."""
    if n_steps is None:
        return None, False
    if isinstance(n_steps, (int, np.integer)) and not isinstance(n_steps, bool):
        return T.constant(np.int64(abs(int(n_steps)))), int(n_steps) < 0
    n = as_tensor_variable(n_steps)
    if n.ndim != 0 or not is_integer(n):
        raise GraphTypeError(f"scan: n_steps must be an integer scalar, got {n} ({n.type}){at}")
    return n, False


class _Step:
    """The placeholders ``fn`` is called on, and how they become the loop's inputs."""

    def __init__(self, seqs: list, outs: list[_Output], go_backwards: bool, n: TensorVariable | None, at: str):
        self.seq_outer, self.seq_slots, self.args = [], [], []
        for x, taps in seqs:
            lo, hi = -min(min(taps), 0), max(max(taps), 0)
            for k in taps:
                part = x[k + lo:(k - hi) or None] if (k + lo, k - hi) != (0, 0) else x
                self.seq_outer.append(part[::-1] if go_backwards else part)
                slot = _row_type(x).make_variable(_tap_name(x.name, k))
                self.seq_slots.append(slot)
                self.args.append(slot)
        if n is None and self.seq_outer:
            n = T.shape_i(self.seq_outer[0], 0)
            for s in self.seq_outer[1:]:
                n = T.minimum(n, T.shape_i(s, 0))
        self.n: TensorVariable | None = n
        self.carry_outer, self.carry_slots = [], []
        for o in outs:
            if o.initial is None:
                continue
            init = o.initial
            if o.taps == [-1]:
                slot = init.type.make_variable(None if init.name is None else f"{init.name}[t-1]")
                self.args.append(slot)
            else:
                w = o.window
                init = T.specify_shape(init[:w], (w,) + (None,) * (init.ndim - 1))
                slot = init.type.make_variable(init.name)
                self.args += [slot[w + k] for k in o.taps]
            self.carry_outer.append(init)
            self.carry_slots.append(slot)


def _parse(result: Any, at: str) -> tuple[list, TensorVariable | None, list]:
    """(the step's outputs, its stop condition, the (shared variable, new value) pairs it returned)."""
    items = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(items) in (2, 3) and isinstance(items[0], (list, tuple)) and all(
            isinstance(i, (Until, dict)) or _is_update_list(i) for i in items[1:]):
        items = list(items[0]) + list(items[1:])
    outputs: list[Any] = []
    pairs: list[Any] = []
    cond = None
    for item in items:
        if isinstance(item, Until):
            cond = item.condition
        elif isinstance(item, dict) or _is_update_list(item):
            pairs += list(item.items()) if isinstance(item, dict) else [tuple(p) for p in item]
        else:
            outputs.append(item)
    if cond is not None:
        if cond.ndim != 0:
            raise GraphTypeError(f"scan: the condition of until must be a scalar, got {cond} ({cond.type}){at}")
        cond = cond if cond.dtype == "bool" else T.neq(cond, 0)
    # a stream's call counter given its own default update (Theano's srng.updates()): the
    # function applies it anyway, and the draws of every step differ by the step's number
    pairs = [(v, u) for v, u in pairs if u is not getattr(v, "default_update", None)]
    return outputs, cond, checked_updates(pairs, at)


def _is_update_list(item: Any) -> bool:
    return (isinstance(item, (list, tuple)) and len(item) > 0 and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and getattr(p[0], "is_shared", False) for p in item))


def _check_carry(k: int, init: TensorVariable, out: TensorVariable, at: str) -> None:
    if out.dtype != init.dtype:
        raise GraphTypeError(
            f"scan: output {k} of the step has dtype {out.dtype}, but its initial value in outputs_info is "
            f"{init.dtype} ({init.type}); a carried value keeps one dtype: cast the initial value "
            f"(T.cast(initial, '{out.dtype}')) or the step's result (T.cast(result, '{init.dtype}')){at}")
    if out.ndim != init.ndim or not compatible(out.type, init.type):
        raise GraphTypeError(
            f"scan: output {k} of the step is {out.type}, but its initial value in outputs_info is {init.type}; "
            f"a carried value keeps its shape from step to step{at}")


def loop_invariants(outputs: Sequence[Variable], slots: Sequence[Variable],
                    keep_constant_work: bool = False) -> list[Variable]:
    """What the step reads from outside: the outermost variables that do not depend on a
    placeholder (computed once, before the loop), except that work read only by a lazy ifelse's
    branches stays in the step (the branch computes it only when taken). ``keep_constant_work``:
    work on constants alone stays in the step too (``sg.scan`` building a body: the body's rewrites
    then see ``x ** (2 - 1)`` as ``x ** 1`` and fold it, where an input would hide the constant;
    what the rewrites leave is hoisted later)."""
    slot_ids = {id(v) for v in slots}
    depends: set[int] = set(slot_ids)
    constant: set[int] = set()
    for node in toposort(outputs, blockers=slots):
        if any(id(i) in depends for i in node.inputs):
            depends.update(id(o) for o in node.outputs)
        elif keep_constant_work and all(isinstance(i, Constant) or id(i) in constant for i in node.inputs):
            constant.update(id(o) for o in node.outputs)
    found: dict[int, Variable] = {}
    seen: set[tuple[int, bool]] = set()
    stack = [(o, True) for o in reversed(outputs)]
    while stack:
        v, eager = stack.pop()
        if id(v) in slot_ids or isinstance(v, Constant) or id(v) in constant or (id(v), eager) in seen:
            continue
        seen.add((id(v), eager))
        if (eager and id(v) not in depends) or v.owner is None:
            found.setdefault(id(v), v)
            continue
        node = v.owner
        lazy = isinstance(node.op, IfElse)
        stack += [(i, eager and (not lazy or k == 0)) for k, i in reversed(list(enumerate(node.inputs)))]
    return list(found.values())


def _from_listed(v: Variable, consts: list) -> bool:
    """For ``strict``: whether ``v`` is computed from the listed non_sequences (``W.T`` of a listed
    ``W``), constants and random-stream state alone (keys and call counters, shared variables kept
    on the host: the stream's business, as Theano's RNG states were)."""
    listed = {id(c) for c in consts}
    roots = [a for a in ancestors([v], blockers=consts) if a.owner is None or id(a) in listed]
    return all(id(a) in listed or isinstance(a, Constant) or getattr(a, "host_resident", False) for a in roots)


def _trace(fn: Callable, step: _Step, consts: list, outs: list[_Output], at: str) -> tuple[list, Variable | None, list]:
    """Call ``fn`` on the placeholders; the step's outputs (as tensors), its stop condition and
    the shared variables it updates (with their new values)."""
    result = fn(*step.args, *consts)
    outputs, cond, pairs = _parse(result, at)
    outputs = [as_tensor_variable(o) for o in outputs]
    if outs and len(outputs) != len(outs):
        raise GraphTypeError(f"scan: the step returns {len(outputs)} output(s), but outputs_info has {len(outs)} "
                             f"entries (use None in outputs_info for an output that is not fed back){at}")
    return outputs, cond, pairs


_PROBE = {"i": "int8", "u": "int8", "f": "float16"}


def _weak_probe(outs: list[_Output]) -> dict[int, TensorConstant]:
    """Initial values given as Python numbers (weak constants) take the dtype the step computes
    for them: the step is first traced with each such carry in the smallest dtype of its kind
    (a probe that any other operand's dtype wins over). Returns the original constants by position."""
    weak = {}
    for k, o in enumerate(outs):
        init = o.initial
        if isinstance(init, TensorConstant) and init.weak and np.dtype(init.dtype).kind in _PROBE:
            weak[k] = init
            o.initial = T.constant(np.asarray(init.data, dtype=_PROBE[np.dtype(init.dtype).kind]))
    return weak


def _weak_settle(outs: list[_Output], outputs: list[TensorVariable], weak: dict[int, TensorConstant]) -> None:
    """After the probe: each weak initial value takes the dtype the step gave it, or its own
    (Python's int64 / floatX) when nothing else decided it."""
    for k, init in weak.items():
        y = outputs[k] if k < len(outputs) else None
        probe = _PROBE[np.dtype(init.dtype).kind]
        dtype = y.dtype if y is not None and y.dtype != probe and np.can_cast(init.dtype, y.dtype, "same_kind") \
            else init.dtype
        outs[k].initial = T.constant(np.asarray(init.data, dtype=dtype))


def _count_steps(step: _Step, word: TensorVariable, outer: Variable | None, new_carries: list) -> None:
    """The body draws random numbers: a last carry counts the steps (``word``, counter word c3 of
    its draws). In a nested loop it starts at the outer step times 2**32, so draws differ across
    the outer loop's steps too (inner loops below 2**32 steps)."""
    start = T.constant(np.uint64(0)) if outer is None else T.mul(outer, T.constant(np.uint64(1 << 32)))
    step.carry_slots.append(word)
    step.carry_outer.append(start)
    new_carries.append(T.add(word, T.constant(np.uint64(1))))


def scan(fn: Callable, sequences: Any = None, outputs_info: Any = None, non_sequences: Any = None,
         n_steps: Any = None, truncate_gradient: int = -1, go_backwards: bool = False, mode: Any = None,
         name: str | None = None, profile: Any = False, allow_gc: Any = None, strict: bool = False,
         return_list: bool = False, checkpoint: int | None = None, return_updates: bool = True) -> Any:
    """Loop ``fn`` over ``sequences`` (Theano's scan; see the module doc and docs/scan.md).

    Returns ``(outputs, updates)`` -- ``updates`` maps each shared variable the step updates
    (returning ``{var: new value}`` or ``(outputs, updates)``, as in Theano) to its value after the
    last step (each step reads the value the previous one left): give them to
    ``sg.function(..., updates=...)`` -- or only the outputs with ``return_updates=False``.
    The outputs are one per entry of ``outputs_info`` (all of the step's outputs when it is not
    given): for a fed-back output its value after every step (not the initial value), for a
    ``None`` entry the stacked step outputs. ``truncate_gradient=k`` backpropagates through the
    last k steps only; ``checkpoint=k`` keeps every k-th carry for the gradient and recomputes
    the steps in between. ``mode``, ``profile`` and ``allow_gc`` are accepted for Theano code and
    change nothing (the function compiling the loop decides those)."""
    results, _, updates = build_scan(fn, sequences, outputs_info, non_sequences, n_steps, truncate_gradient,
                                     go_backwards, name, strict, checkpoint)
    out = results[0] if len(results) == 1 and not return_list else results
    if updates and not return_updates:
        raise GraphTypeError("scan(return_updates=False): the step updates the shared variable(s) "
                             f"{', '.join(map(str, updates))}; take the updates (return_updates=True) and give them "
                             f"to sg.function(..., updates=...){_at(user_source_line())}")
    return (out, updates) if return_updates else out


def build_scan(fn: Callable, sequences: Any, outputs_info: Any, non_sequences: Any, n_steps: Any,
               truncate_gradient: int, go_backwards: bool, name: str | None, strict: bool,
               checkpoint: int | None) -> tuple[list[TensorVariable], list[TensorVariable], OrderedDict]:
    """The Scan node for ``scan``'s arguments: (the user's outputs, the last value of each: the final
    carry of a fed-back output -- its initial value when no step ran -- or a stacked output's last
    row, the updates of the shared variables the step updates: each one's value after the last step)."""
    at = _at(user_source_line())
    if checkpoint is not None and truncate_gradient >= 0:
        raise GraphTypeError("scan: give truncate_gradient or checkpoint, not both (a truncated gradient already "
                             f"keeps only the last {truncate_gradient} steps){at}")
    seqs = _sequences(sequences, at)
    outs = _outputs_info(outputs_info, at)
    consts = [v if isinstance(v, Variable) else as_tensor_variable(v) for v in _as_list(non_sequences)]
    n, flip = _n_steps(n_steps, at)
    outer_step = current_loop_step()
    step, step_word, outputs, cond, pairs = _traced_step(fn, seqs, outs, consts, n, go_backwards != flip, at)
    new_carries, ys, user = _body_outputs(outs, outputs, step, at)
    stop = [cond] if cond is not None else []
    first_update = len(new_carries)
    updated = carry_updates(pairs, step.carry_slots, step.carry_outer, [new_carries, ys, stop]) if pairs else []
    redraw_per_step([new_carries, ys, stop], step.seq_slots + step.carry_slots + consts, step_word)
    cond = stop[0] if stop else None
    if any(v is step_word for v in ancestors(new_carries + ys + stop)):
        _count_steps(step, step_word, outer_step, new_carries)
    body_out = new_carries + ys + stop
    slots = step.seq_slots + step.carry_slots
    free = _loop_inputs(body_out, slots, consts, strict, at)
    op = Scan(InnerGraph(slots + free, body_out), len(step.seq_slots), len(new_carries), until=cond is not None,
              truncate_gradient=truncate_gradient, checkpoint=checkpoint, name=name)
    node = op.make_node(step.n, *step.seq_outer, *step.carry_outer, *free)
    finals = [tensor_outputs(node)[k] for k in op.output_slots()["final"]]
    updates = OrderedDict((var, finals[first_update + k]) for k, var in enumerate(updated))
    return (*_user_outputs(tensor_outputs(node), op, user, name), updates)


def _traced_step(fn: Callable, seqs: list, outs: list[_Output], consts: list, n: TensorVariable | None,
                 backwards: bool, at: str) -> tuple[_Step, TensorVariable, list[TensorVariable], Variable | None, list]:
    """Trace ``fn`` on the step's placeholders, inside ``loop_step`` (its draws read the step-counter
    word): (the step, that word, the step's outputs, its stop condition, its updates). Traced twice when an
    initial value is a weak constant (``_weak_probe``). A while loop given neither sequences nor
    n_steps runs up to UNBOUNDED steps."""
    weak = _weak_probe(outs)
    for attempt in range(2):
        step = _Step(seqs, outs, backwards, n, at)
        step_word = TensorType("uint64", ()).make_variable("step")
        with loop_step(step_word):
            outputs, cond, pairs = _trace(fn, step, consts, outs, at)
        if attempt or not weak:
            break
        _weak_settle(outs, outputs, weak)
    if step.n is None:
        if cond is None:
            raise GraphTypeError("scan: give sequences or n_steps: nothing says how many steps to run" + at)
        step.n = T.constant(np.int64(UNBOUNDED))  # a while loop bounded only by its condition
    return step, step_word, outputs, cond, pairs


def _body_outputs(outs: list[_Output], outputs: list[TensorVariable], step: _Step,
                  at: str) -> tuple[list[TensorVariable], list[TensorVariable], list[tuple[str, int, int | None]]]:
    """The body's new carries and stacked outputs from the step's outputs (a carry with several
    taps is a window: its new value shifts in the step's output, which is also stacked), and for
    each user output where it is: ('trace' or 'ys', its index there, its carry's index or None)."""
    new_carries: list[TensorVariable] = []
    ys: list[TensorVariable] = []
    user: list[tuple[str, int, int | None]] = []
    for k, (o, y) in enumerate(zip(outs or [_Output(None)] * len(outputs), outputs)):
        if o.initial is None:
            user.append(("ys", len(ys), None))
            ys.append(y)
            continue
        _check_carry(k, o.initial if o.taps == [-1] else o.initial[0], y, at)
        if o.taps == [-1]:
            user.append(("trace", len(new_carries), len(new_carries)))
            new_carries.append(y)
        else:
            slot = step.carry_slots[len(new_carries)]
            user.append(("ys", len(ys), len(new_carries)))
            new_carries.append(T.concatenate([slot[1:], T.shape_padleft(y)]))
            ys.append(y)
    return new_carries, ys, user


def _loop_inputs(body_out: list, slots: list, consts: list, strict: bool, at: str) -> list[Variable]:
    """What the body reads from outside its slots (the loop's constant inputs), the listed
    non_sequences first; with ``strict`` every one must be listed."""
    free = loop_invariants(body_out, slots, keep_constant_work=True)
    if strict:
        extra = [v for v in free if not _from_listed(v, consts)]
        if extra:
            raise MissingInputError(f"scan(strict=True): the step reads {', '.join(map(str, extra))}, which "
                                    f"non_sequences does not list{at}")
    given = [c for c in consts if any(c is v for v in free)]
    return given + [v for v in free if not any(v is c for c in given)]


def _user_outputs(outputs: list[TensorVariable], op: Scan, user: list[tuple[str, int, int | None]],
                  name: str | None) -> tuple[list[TensorVariable], list[TensorVariable]]:
    """The Scan node's ``outputs`` the user asked for (named after ``name``), and the last value of each."""
    where_out = op.output_slots()
    results, last = [], []
    for kind, k, carry in user:
        results.append(outputs[where_out[kind][k]])
        if carry is None:
            last.append(results[-1][-1])
        else:
            final = outputs[where_out["final"][carry]]
            last.append(final if kind == "trace" else final[-1])
    for k, r in enumerate(results):
        r.name = f"{name}[{k}]" if name and len(results) > 1 else name
    return results, last
