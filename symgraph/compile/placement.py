"""Placement decisions as graph nodes. A device backend that cannot run a node wraps it in a
``HostFallback`` node: visible in ``f.graph`` (and so in debugprint, to_dot and the rewrite
report), announced by a warning, and run on the host with its inputs and outputs moved by
explicit, counted transfers.

``HostPlaced`` is the same kind of node for a choice rather than a need: a device backend that
shares memory with the host runs small nodes there (``concrete_shapes`` gives the sizes it
decides by)."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from symgraph.graph.basic import Apply, Constant, Op, Variable, user_stacklevel
from symgraph.graph.fgraph import FunctionGraph
from symgraph.ifelse import IfElse
from symgraph.scan.op import Scan
from symgraph.tensor.shape import Shape, Shape_i


class HostFallback(Op):
    """Runs ``op`` on the host inside a device function (device -> host -> device transfers)."""

    __props__ = ("op",)

    def __init__(self, op: Op):
        self.op = op
        self.view_map = op.view_map  # its outputs may be views of its inputs here too (the schedule copies them)

    def __str__(self) -> str:
        return f"HostFallback{{{self.op}}}"

    def make_node(self, *inputs: Variable) -> Apply:
        inner = self.op.make_node(*inputs)
        return Apply(self, list(inputs), [o.type.make_variable(o.name) for o in inner.outputs])

    def perform(self, node: Apply, inputs: list) -> list:
        return self.op.perform(self.inner(node), inputs)

    def inner(self, node: Apply) -> Apply:
        """The wrapped op's own node on this node's inputs (fresh, unattached), built at the same
        user line (errors it raises name the line that built the original node)."""
        inner = self.op.make_node(*node.inputs)
        inner.trace = node.trace
        return inner

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return self.op.infer_shape(self.inner(node), input_shapes)

    def expand(self, inputs: list[Variable]) -> list[Variable]:
        out = self.op(*inputs)
        return out if isinstance(out, list) else [out]


def wrap_in_fallback(fgraph: FunctionGraph, node: Apply, backend: str, reason: str, warn: bool = True) -> Apply:
    """Replace ``node`` in ``fgraph`` by a HostFallback node (same inputs and output types), warning
    (unless ``warn`` is False: a variant of a function compiled earlier, whose compile warned)."""
    new = Apply(HostFallback(node.op), list(node.inputs), [o.type.make_variable(o.name) for o in node.outputs],
                trace=node.trace)
    for old, out in zip(node.outputs, new.outputs):
        fgraph.replace(old, out, reason=f"{backend} host fallback")
    if not warn:
        return new
    where = f" (built at {node.trace.filename}:{node.trace.lineno})" if node.trace is not None else ""
    warnings.warn(f"{backend} backend: {node.op}{where} runs on the host: {reason}; its inputs and outputs "
                  "are copied between host and device on every call", RuntimeWarning,
                  stacklevel=user_stacklevel())
    return new


class HostPlaced(HostFallback):
    """Runs ``op`` on the host by choice, not by need: a device backend placed it there because it
    is cheaper there (a small node on a device that shares host memory, where reading and writing
    host memory costs no copy). Like HostFallback it is a graph node, so ``f.graph``, debugprint
    and to_dot show the decision; unlike it, nothing is wrong and no warning is given."""

    def __str__(self) -> str:
        return f"OnHost{{{self.op}}}"


def place_on_host(fgraph: FunctionGraph, node: Apply, backend: str) -> Apply:
    """Replace ``node`` in ``fgraph`` by a HostPlaced node (same inputs and output types)."""
    new = Apply(HostPlaced(node.op), list(node.inputs), [o.type.make_variable(o.name) for o in node.outputs],
                trace=node.trace)
    for old, out in zip(node.outputs, new.outputs):
        fgraph.replace(old, out, reason=f"{backend} placement: on the host")
    return new


class KnownShapes(dict):
    """Variable -> concrete shape, and ``scalars``: the small integer variables whose values those
    shapes fix (a slice's bounds, a loop's step count), so that a branch or a loop body handed
    its inputs' values too (``inner_values``) can size what it slices by them."""

    def __init__(self, shapes: Any = (), scalars: dict[Variable, Any] | None = None):
        super().__init__(shapes)
        self.scalars: dict[Variable, Any] = dict(scalars or {})


def inner_values(pairs: list[tuple[Variable, Variable]], shapes: dict[Variable, tuple]) -> dict[Variable, Any]:
    """For (inner input, outer value) ``pairs``: the inner inputs whose outer value is a small
    integer the outer ``shapes`` fix, with that value."""
    memo = getattr(shapes, "scalars", {})
    found = {}
    for inner, outer in pairs:
        if getattr(outer.type, "ndim", None) == 0:
            value = _value(outer, shapes, memo)
            if value is not None:
                found[inner] = value
    return found


def concrete_shapes(order: list[Apply], known: dict[Variable, tuple]) -> KnownShapes:
    """The shape of every variable that ``known`` (shapes of graph inputs and constants) fixes,
    found by each op's ``infer_shape`` on integer shapes, in the node order ``order``; a shape
    entry that is a small integer computed from known shapes (a slice's bounds, an Alloc's
    lengths) is evaluated (``_value``). An op whose shape depends on other values (a reshape to
    a computed shape) or that cannot say leaves its outputs out, and so everything computed
    from them."""
    shapes = KnownShapes(known, getattr(known, "scalars", None))
    memo = shapes.scalars
    for node in order:
        for v in node.inputs:
            if v not in shapes and isinstance(v, Constant):
                shapes[v] = tuple(np.shape(v.data))
        if any(v not in shapes for v in node.inputs):
            continue
        ins = [shapes[v] for v in node.inputs]
        outs: list | None
        try:
            outs = node.op.infer_shape(node, ins)
        except Exception:  # an op without infer_shape, or one that needs values: unknown
            outs = _loop_shapes(node, ins, shapes, memo)
        if outs is None:
            continue
        for o, s in zip(node.outputs, outs):
            ints = tuple(known_length(d, shapes, memo) for d in s)
            if None not in ints and len(ints) == getattr(o.type, "ndim", -1):
                shapes[o] = ints
    return shapes


def _loop_shapes(node: Apply, ins: list[tuple], shapes: KnownShapes, memo: dict) -> list | None:
    """A for-loop's output shapes when its stacked outputs' rows have no static shape (they come
    from the body, whose shapes the known ones fix: a gradient's reverse loop), else None."""
    op = node.op
    if not isinstance(op, Scan) or op.until:
        return None
    n = known_length(node.inputs[0], shapes, memo)
    body = concrete_shapes(op.body.nodes, inner_input_shapes(node, shapes)["body"])
    rows = [body.get(y) for y in op.body.outputs[op.n_carries:op.n_carries + op.n_ys]]
    if n is None or None in rows:
        return None
    inits = ins[1 + op.n_seqs:1 + op.n_seqs + op.n_carries]
    return (list(inits) + [(n, *s) for s, t in zip(inits, op.traced) if t]
            + [(n, *r) for r in rows if r is not None])


def inner_input_shapes(node: Apply, shapes: dict[Variable, tuple]) -> dict[str, KnownShapes]:
    """For an IfElse or Scan ``node``: the shapes of each inner graph's inputs that the outer
    ``shapes`` fix (a branch reads the node's values; a loop body a sequence's row, the carries'
    first values and the constants), by role."""
    op = node.op
    if isinstance(op, IfElse):
        outer = [shapes.get(v) for v in node.inputs[1:]]
        valued = list(node.inputs[1:])  # a branch reads the values themselves
    elif isinstance(op, Scan):
        _, seqs, inits, consts = op.split_inputs(list(node.inputs))
        outer = [shapes[v][1:] if v in shapes else None for v in seqs] + [shapes.get(v) for v in inits + consts]
        valued = [None] * (len(seqs) + len(inits)) + list(consts)  # a carry's value changes; a constant's not
    else:
        return {}
    return {role: KnownShapes({v: s for v, s in zip(g.inputs, outer) if s is not None},
                              inner_values([(v, o) for v, o in zip(g.inputs, valued) if o is not None], shapes))
            for role, g in op.inner_graphs.items()}


def known_length(d: Any, shapes: dict[Variable, tuple], memo: dict[Variable, Any]) -> int | None:
    """A shape entry (an int, or a symbolic scalar from ``infer_shape``) as an int, from the shapes
    known and the values in ``memo`` (variable -> value: also where values are given); None when
    it depends on a value neither gives."""
    if isinstance(d, (int, np.integer)):
        return int(d)
    value = _value(d, shapes, memo) if isinstance(d, Variable) else None
    return int(value) if value is not None and np.ndim(value) == 0 else None


_DEPTH = 32


def _value(v: Variable, shapes: dict[Variable, tuple], memo: dict[Variable, Any], depth: int = 0) -> Any:
    """The value of a small integer variable from the shapes known: a constant, a Shape or
    Shape_i of a variable of known shape, or a 0-d result of its op's ``perform`` on such values
    (arithmetic on lengths, through 0-d floats where it divides: an arange's length is
    ``ceil((stop - start) / step)``; never an array computed at compile time); None when it
    needs another value."""
    if v in memo:
        return memo[v]
    result = None
    if isinstance(v, Constant):
        result = np.asarray(v.data)
    elif (v.owner is not None and depth < _DEPTH and getattr(v.type, "ndim", 2) <= 1
          and np.dtype(getattr(v.type, "dtype", "O")).kind in ("iubf" if getattr(v.type, "ndim", 1) == 0 else "iub")):
        node, source = v.owner, v.owner.inputs[0] if v.owner.inputs else None
        if isinstance(node.op, Shape_i) and source in shapes:
            result = np.asarray(shapes[source][node.op.i])
        elif isinstance(node.op, Shape) and source in shapes:
            result = np.asarray(shapes[source], dtype=np.int64)
        elif node.inputs and getattr(v.type, "ndim", None) == 0:
            ins = [_value(i, shapes, memo, depth + 1) for i in node.inputs]
            if all(i is not None for i in ins):
                try:
                    result = np.asarray(node.op.perform(node, ins)[node.outputs.index(v)])
                except Exception:  # an op that cannot run on these values: unknown
                    result = None
    memo[v] = result
    return result
