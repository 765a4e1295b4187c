"""Explicit host fallback: a node the device cannot run is wrapped in a HostFallback op, visible
in ``f.graph`` (and so in debugprint/to_dot) and in ``f.kernels``, and the compiler warns. Its
inputs are copied to the host, ``perform`` runs there, and its outputs are copied back."""
from __future__ import annotations

import warnings

from symgraph.graph.basic import Apply, Op
from symgraph.graph.fgraph import FunctionGraph


class HostFallback(Op):
    """Runs ``op`` on the host inside an OpenCL function (device -> host -> device transfers)."""

    __props__ = ("op",)

    def __init__(self, op: Op):
        self.op = op

    def __str__(self) -> str:
        return f"HostFallback{{{self.op}}}"

    def make_node(self, *inputs) -> Apply:
        inner = self.op.make_node(*inputs)
        return Apply(self, list(inputs), [o.type.make_variable(o.name) for o in inner.outputs])

    def perform(self, node: Apply, inputs: list) -> list:
        inner = self.op.make_node(*node.inputs)
        return self.op.perform(inner, inputs)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return self.op.infer_shape(self.op.make_node(*node.inputs), input_shapes)


def wrap_in_fallback(fgraph: FunctionGraph, node: Apply, reason: str) -> Apply:
    """Replace ``node`` in ``fgraph`` by a HostFallback node (same inputs and output types), warning."""
    new = Apply(HostFallback(node.op), list(node.inputs), [o.type.make_variable(o.name) for o in node.outputs],
                trace=node.trace)
    for old, out in zip(node.outputs, new.outputs):
        fgraph.replace(old, out, reason="opencl host fallback")
    where = f" (built at {node.trace.filename}:{node.trace.lineno})" if node.trace is not None else ""
    warnings.warn(f"opencl backend: {node.op}{where} runs on the host: {reason}; its inputs and outputs "
                  "are copied between host and device on every call", RuntimeWarning, stacklevel=4)
    return new


def fallback_source(node: Apply, reason: str) -> str:
    """The ``f.kernels`` entry of a host fallback (a C comment: no device code exists)."""
    ins = ", ".join(str(v.type) for v in node.inputs)
    outs = ", ".join(str(v.type) for v in node.outputs)
    return (f"/* HOST FALLBACK: {node.op.op} runs on the host with numpy ({reason}).\n"
            f"   inputs copied device->host: {ins}\n   outputs copied host->device: {outs} */\n")
