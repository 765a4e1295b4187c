"""numpy lowering of fused Composite nodes: one helper function per program, printed from the
Composite's buffer plan. It allocates each full-size buffer once (``np.empty`` with the
broadcast shape and each step's dtype), runs every step as one numpy call with ``out=``
(warning on overflow exactly as the unfused numpy calls would; the first output goes into
``out`` when one of its shape and dtype is given: a dead input or a shared variable's spare buffer),
reuses buffers whose values are dead, and computes steps over broadcast inputs only at
their own smaller shape. When run-time lengths break the static broadcasting assumptions,
it falls back to the op's reference ``perform``. Buffers holding only intermediate values are
kept for the next call of the same helper (``take_scratch``/``give_back``) when they hold at least
``POOL_MIN_SIZE`` elements; smaller ones are plain ``np.empty`` (cheaper than the bookkeeping)."""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from symgraph.backends.numpy.lowering import LowerContext, lowers, ufunc_name
from symgraph.compile.lowering import CodeContext
from symgraph.graph.basic import Apply
from symgraph.scalar import SCALAR_OPS
from symgraph.tensor.composite import Composite, Plan
from symgraph.tensor.elemwise import broadcast_static_shape

_fill = SCALAR_OPS["second"].np_fn


def helper_source(op: Composite, input_types: tuple, fname: str = "composite",
                  pool_min: int = 0) -> tuple[str, dict]:
    """Python source of the helper computing ``op``'s outputs, and the globals it needs; its
    intermediate-only buffers are pooled across calls when they hold ``pool_min`` elements or more."""
    p = op.plan(input_types)
    ctx = CodeContext()  # names numpy's own ufuncs np.<name>, other functions as globals
    glb = ctx.globals
    args = [f"i{k}" for k in range(op.nin)]
    names = dict(enumerate(args + [f"k{c}" for c in range(len(p.consts))]))  # value index -> its name
    for c, value in enumerate(p.consts):
        glb[f"k{c}"] = value
    lines = [f"def {fname}({', '.join([*args, 'out=None'])}):"]  # no argument: a program of constants
    pooled = "True"
    if p.slot_dtypes:
        lines += _shape_lines(op, p, input_types, args, glb)
        pooled = _pooled(p, input_types, pool_min, lines, glb)
    steps, scratch = _step_lines(p, op.nin, names, ctx, pooled, _elided_fills(p, op.nin, input_types))
    lines += steps
    outs = []
    for idx, odt in zip(p.out_index, p.out_dtypes):
        name = names[idx]
        if name.startswith("b"):
            outs.append(name)
        else:
            glb.setdefault(f"odt_{odt}", np.dtype(odt))
            outs.append(f"np.asarray({name}, odt_{odt})")
    if scratch:
        glb["_give_back"] = give_back
        indent = "    " if pooled == "True" else "        "
        lines += [] if pooled == "True" else ["    if pooled:"]
        lines += [f"{indent}_give_back(_pool{slot}, b{slot})" for slot in scratch]
    lines.append(f"    return {', '.join(outs)}" + ("," if len(outs) > 1 else ""))
    return "\n".join(lines) + "\n", glb


def _shape_lines(op: Composite, p: Plan, input_types: tuple, args: list[str], glb: dict) -> list[str]:
    """The helper's first lines: the broadcast ``shape``, and the run-time length checks that send
    unexpected shapes to the reference evaluation. An input whose static shape is the full
    broadcast shape gives it for free (the guards check the other inputs against it); else numpy
    computes it (slower, in Python)."""
    full = broadcast_static_shape([t.shape for t in input_types])
    exact = [k for k, t in enumerate(input_types) if t.shape == full]
    lines = [f"    shape = i{exact[0]}.shape" if exact else
             f"    shape = np.broadcast_shapes({', '.join(a + '.shape' for a in args)})"]
    guards = [(k, d, fd) for k, d, fd in p.guards if not exact or k != exact[0]]
    if guards:
        cond = " or ".join(_guard_terms(guards, input_types))
        glb["_op"], glb["_plan"], glb["_reference"] = op, p, _reference
        lines.append(f"    if {cond}: return _reference(_op, _plan, ({', '.join(args)},))")
    return lines


def _pooled(p: Plan, input_types: tuple, pool_min: int, lines: list[str], glb: dict) -> str:
    """Whether the helper's intermediate buffers come from its pools: "True" or "False" where the
    static shape (or a zero threshold, or no intermediate buffer) decides, else "pooled", a local
    that a line appended to ``lines`` sets from the element count."""
    out_slots = {slot for _, _, slot, dest in p.instrs if dest in p.out_index}
    if pool_min <= 0 or all(slot is None or slot in out_slots for _, _, slot, _ in p.instrs):
        return "True"
    full = broadcast_static_shape([t.shape for t in input_types])
    if all(d is not None for d in full):
        return str(math.prod(full) >= pool_min)
    exact = [k for k, t in enumerate(input_types) if t.shape == full]
    glb["_prod"] = math.prod
    lines.append(f"    pooled = {f'i{exact[0]}.size' if exact else '_prod(shape)'} >= {pool_min}")
    return "pooled"


def _elided_fills(p: Plan, nin: int, input_types: tuple) -> dict[int, int]:
    """Full-size ``second(like, value)`` steps (Theano's fill: the gradient of a sum) that need not
    be materialised: every step reading one writes a full-size buffer with ``out=``, which
    broadcasts ``value`` exactly as the filled array would, and it is no output. Maps each such
    step's value index to its ``value``'s (of the step's own dtype, so no promotion changes)."""
    base = nin + len(p.consts)
    readers: dict[int, list] = {}
    for ins in p.instrs:
        for a in ins[1]:
            readers.setdefault(a, []).append(ins)

    def dtype(idx: int) -> np.dtype | None:
        if idx < nin:
            return np.dtype(input_types[idx].dtype)
        if idx < base:
            return np.asarray(p.consts[idx - nin]).dtype
        slot = p.instrs[idx - base][2]
        return None if slot is None else p.slot_dtypes[slot]
    elided: dict[int, int] = {}
    for fn, args, slot, dest in p.instrs:
        if (fn is _fill and slot is not None and dest not in p.out_index and readers.get(dest)
                and all(r[2] is not None for r in readers[dest]) and dtype(args[1]) == p.slot_dtypes[slot]):
            elided[dest] = elided.get(args[1], args[1])
    return elided


def _step_lines(p: Plan, nin: int, names: dict[int, str], ctx: CodeContext,
                pooled: str = "True", elided: dict[int, int] | None = None) -> tuple[list[str], list[int]]:
    """One numpy call per step of plan ``p``, each into its slot's buffer (allocated at its first
    use: the first output into ``out`` when it fits, other outputs fresh, intermediate buffers from
    the helper's pools where ``pooled`` says so, see ``_pooled``), or as a small value when the step
    has no slot. Fills ``names`` (value index -> its local name); returns the lines and the pooled
    (scratch) slots."""
    glb, lines = ctx.globals, []
    dt_name = {dt: f"dt{d}" for d, dt in enumerate(dict.fromkeys(p.slot_dtypes))}
    for dt, dtn in dt_name.items():
        glb[dtn] = dt
    allocated: set[int] = set()
    base = nin + len(p.consts)
    out_slot = next((slot for _, _, slot, dest in p.instrs if dest == p.out_index[0]), None) if p.out_index else None
    out_slots = {slot for _, _, slot, dest in p.instrs if dest in p.out_index}
    scratch: list[int] = []  # slots holding only intermediate values: pooled across calls
    for fn, arg_idx, slot, dest in p.instrs:
        if elided and dest in elided:  # readers broadcast the fill's value themselves
            names[dest] = names[elided[dest]]
            continue
        call = f"{ufunc_name(fn, ctx)}({', '.join(names[a] for a in arg_idx)}"
        if slot is None:
            names[dest] = f"s{dest - base}"
            lines.append(f"    {names[dest]} = {call})")
            continue
        buf = f"b{slot}"
        if slot not in allocated:
            allocated.add(slot)
            dtn = dt_name[p.slot_dtypes[slot]]
            fresh = f"np.empty(shape, {dtn})"
            if slot == out_slot:
                lines.append(f"    {buf} = out if out is not None and out.shape == shape and out.dtype is {dtn} "
                             f"else {fresh}")
            elif slot in out_slots or pooled == "False":
                lines.append(f"    {buf} = {fresh}")
            else:
                scratch.append(slot)
                glb[f"_pool{slot}"], glb["_take_scratch"] = [], take_scratch
                take = f"_take_scratch(_pool{slot}, shape, {dtn})"
                lines.append(f"    {buf} = {take}" + ("" if pooled == "True" else f" if pooled else {fresh}"))
        names[dest] = buf
        lines.append(f"    {call}, out={buf})")
    return lines, scratch


POOL_MIN_SIZE = 1 << 15
"""Arrays with fewer elements are allocated plainly: a pooled intermediate buffer or a shared
variable's spare (double buffering) pays off only where fresh memory costs page faults (glibc
serves blocks under 128 KiB from its heap without any); below, the bookkeeping costs more than
the ``np.empty`` it saves (measured: XOR's step, W6, 0.76-0.80x; W3's large updates keep both)."""

SCRATCH_MAX_BYTES = 1 << 26
"""Intermediate buffers up to this size are kept for the next call of the same program; larger
ones are freed as soon as the call ends."""


def take_scratch(pool: list, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A buffer for a program's intermediate values: one that an earlier call of the same helper
    gave back (fresh memory costs page faults on every call), else a new one. ``pop`` is atomic,
    so two threads running the helper never share one; no value outside the helper ever refers
    to these buffers (they hold no output)."""
    try:
        buf = pool.pop()
    except IndexError:
        return np.empty(shape, dtype)
    return buf if buf.shape == shape and buf.dtype == dtype else np.empty(shape, dtype)


def give_back(pool: list, buf: np.ndarray) -> None:
    """Keep an intermediate buffer for the next call (at most two per slot, each bounded in size)."""
    if len(pool) < 2 and buf.nbytes <= SCRATCH_MAX_BYTES:
        pool.append(buf)


def _guard_terms(guards: list, input_types: tuple) -> list[str]:
    """Run-time length checks, one whole-shape comparison where every dimension is checked."""
    by_input: dict[int, list] = {}
    for k, d, fd in guards:
        by_input.setdefault(k, []).append((d, fd))
    terms = []
    for k, dims in by_input.items():
        ndim = len(input_types[k].shape)
        if len(dims) == ndim and all(d == fd for d, fd in dims):
            terms.append(f"i{k}.shape != shape")
        else:
            terms += [f"i{k}.shape[{d}] != shape[{fd}]" for d, fd in dims]
    return terms


def _reference(op: Composite, p, inputs: tuple):
    """The unbuffered evaluation (numpy's own broadcasting) for unexpected run-time shapes."""
    outs = op.run(p, list(inputs), buffered=False)
    return outs[0] if len(outs) == 1 else tuple(outs)


def compile_helper(op: Composite, input_types: tuple) -> Callable:
    """The helper function for ``op`` on inputs of ``input_types``, pooling its intermediate
    buffers from ``POOL_MIN_SIZE`` elements on (read now: a test may lower it)."""
    return _compiled_helper(op, input_types, POOL_MIN_SIZE)


@lru_cache(maxsize=512)
def _compiled_helper(op: Composite, input_types: tuple, pool_min: int) -> Callable:
    """The helper (the most recent 512 are kept: equal programs in many functions share one
    helper, and memory stays bounded)."""
    src, glb = helper_source(op, input_types, pool_min=pool_min)
    exec(compile(src, f"<symgraph composite {len(op.steps)} steps>", "exec"), glb)
    fn = glb["composite"]
    fn.source = src
    return fn


@lowers(Composite)
def _composite(node: Apply, ctx: LowerContext) -> str:
    fn = compile_helper(node.op_as(Composite), tuple(i.type for i in node.inputs))
    out = [f"out={ctx.spare}"] if ctx.spare else []
    return f"{ctx.ref(fn, 'composite')}({', '.join([*ctx.ins, *out])})"
