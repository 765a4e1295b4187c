"""The numpy backend: the call protocol (symgraph/compile/link.py) around one numpy statement
per node. Every value lives on the host; a node whose op has no lowering calls its ``perform``."""
from __future__ import annotations

from typing import Any

from symgraph.backends.numpy import (  # noqa: F401
    lower_collective,
    lower_composite,
    lower_fused,
    lower_ops,
    lower_random,  # (register lowerings)
)
from symgraph.backends.numpy.lowering import expression, perform_call
from symgraph.compile.link import Backend, Emitter, LinkedFunction, link
from symgraph.graph.basic import Apply, Constant
from symgraph.graph.fgraph import FunctionGraph
from symgraph.tensor.elemwise import Elemwise
from symgraph.tensor.type import tensor_inputs, tensor_outputs


class NumpyBackend(Backend):
    """One straight-line Python function calling numpy (``f.source``)."""

    name = "numpy"

    def lower(self, node: Apply, ins: list[str], outs: list[str], em: Emitter) -> list[str]:
        expr = expression(node, ins, em.ctx, out=_inplace_target(node, em))
        if expr is None:
            return [f"{', '.join(outs)}, = {perform_call(node, ins, em.ctx)}"]
        return [f"{', '.join(outs)} = {expr}"]


def _inplace_target(node: Apply, em: Emitter) -> str | None:
    """The name of a dead intermediate buffer a unary Elemwise can write into, if any."""
    if not isinstance(node.op, Elemwise) or len(node.inputs) != 1:
        return None
    s, (x,), out = em.s, tensor_inputs(node), tensor_outputs(node)[0]
    if x.owner is None or x.ndim == 0 or x.dtype != out.dtype or x in s.protected or s.last_use.get(x) != em.step:
        return None
    root = s.root(x)
    if root in s.external or isinstance(root, Constant) or root is not x:
        return None
    return em.name(x)


def compile(fgraph: FunctionGraph, spec: Any) -> LinkedFunction:
    """Lower ``fgraph`` to one Python function and return it (``.source`` is its text)."""
    return link(fgraph, spec, NumpyBackend())
