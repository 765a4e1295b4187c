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


def concrete_shapes(order: list[Apply], known: dict[Variable, tuple]) -> dict[Variable, tuple]:
    """The shape of every variable that ``known`` (shapes of graph inputs and constants) fixes,
    found by each op's ``infer_shape`` on integer shapes, in the node order ``order``. An op
    whose shape depends on values (a reshape to a computed shape) or that cannot say leaves its
    outputs out, and so everything computed from them."""
    shapes = dict(known)
    for node in order:
        for v in node.inputs:
            if v not in shapes and isinstance(v, Constant):
                shapes[v] = tuple(np.shape(v.data))
        if any(v not in shapes for v in node.inputs):
            continue
        ins = [shapes[v] for v in node.inputs]
        try:
            outs = node.op.infer_shape(node, ins)
        except Exception:  # an op without infer_shape, or one that needs values: unknown
            continue
        for o, s in zip(node.outputs, outs):
            ints = tuple(_as_int(d) for d in s)
            if None not in ints and len(ints) == getattr(o.type, "ndim", -1):
                shapes[o] = ints
    return shapes


def _as_int(d: Any) -> int | None:
    """A shape entry as an int, or None when it is symbolic."""
    if isinstance(d, (int, np.integer)):
        return int(d)
    if isinstance(d, Constant) and np.ndim(d.data) == 0:
        return int(d.data)
    return None
