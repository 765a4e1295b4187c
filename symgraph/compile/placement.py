"""Placement decisions as graph nodes. A device backend that cannot run a node wraps it in a
``HostFallback`` node: visible in ``f.graph`` (and so in debugprint, to_dot and the rewrite
report), announced by a warning, and run on the host with its inputs and outputs moved by
explicit, counted transfers."""
from __future__ import annotations

import warnings

from symgraph.graph.basic import Apply, Op, Variable, user_stacklevel
from symgraph.graph.fgraph import FunctionGraph


class HostFallback(Op):
    """Runs ``op`` on the host inside a device function (device -> host -> device transfers)."""

    __props__ = ("op",)

    def __init__(self, op: Op):
        self.op = op

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


def wrap_in_fallback(fgraph: FunctionGraph, node: Apply, backend: str, reason: str) -> Apply:
    """Replace ``node`` in ``fgraph`` by a HostFallback node (same inputs and output types), warning."""
    new = Apply(HostFallback(node.op), list(node.inputs), [o.type.make_variable(o.name) for o in node.outputs],
                trace=node.trace)
    for old, out in zip(node.outputs, new.outputs):
        fgraph.replace(old, out, reason=f"{backend} host fallback")
    where = f" (built at {node.trace.filename}:{node.trace.lineno})" if node.trace is not None else ""
    warnings.warn(f"{backend} backend: {node.op}{where} runs on the host: {reason}; its inputs and outputs "
                  "are copied between host and device on every call", RuntimeWarning,
                  stacklevel=user_stacklevel())
    return new
