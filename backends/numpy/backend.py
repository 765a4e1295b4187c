"""The numpy backend: the call protocol (symgraph/compile/link.py) around one numpy statement
per node. Every value lives on the host; a node whose op has no lowering calls its ``perform``."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from symgraph.backends.numpy import (  # noqa: F401
    lower_collective,
    lower_composite,
    lower_fused,
    lower_ops,
    lower_random,  # (register lowerings)
)
from symgraph.backends.numpy.lower_collective import BucketSpans
from symgraph.backends.numpy.lowering import expression, perform_call
from symgraph.compile.link import Backend, Emitter, LinkedFunction, link
from symgraph.compile.lowering import CodeContext
from symgraph.graph.basic import Apply, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.tensor.collective import AllReduce
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import Elemwise
from symgraph.tensor.fused import Epilogue
from symgraph.tensor.type import tensor_inputs, tensor_outputs

OPTIONS: tuple[str, ...] = ()
"""The keywords of sg.function this backend takes: none."""


class NumpyBackend(Backend):
    """One straight-line Python function calling numpy (``f.source``)."""

    name = "numpy"

    def __init__(self) -> None:
        self.lent: set[Variable] = set()  # results written into a mutable argument: the caller's memory
        self.spans = BucketSpans()  # gradients computed into the flat buffer of their all-reduce bucket

    def lower(self, node: Apply, ins: list[str], outs: list[str], em: Emitter) -> list[str]:
        lines, spare = self._spare(node, em)
        expr = expression(node, ins, em.ctx, out=self._inplace_target(node, em), spare=spare)
        if expr is None:
            return lines + [f"{', '.join(outs)}, = {perform_call(node, ins, em.ctx)}"]
        return lines + [f"{', '.join(outs)} = {expr}"]

    def loop_constant(self, name: str, side: str, ctx: CodeContext) -> str:
        # a strided matrix (W.T in a gradient's loop) read by every step: one C-ordered copy before
        # the loop (OpenBLAS multiplies by a transposed 128 x 128 operand in 25 us against 15)
        return f"{ctx.ref(c_ordered, 'c_ordered')}({name})"

    def _spare(self, node: Apply, em: Emitter) -> tuple[list[str], str | None]:
        """The memory the node's first output may be computed into, and lines to emit first: a
        shared variable's spare buffer for a fused program computing its new value (double
        buffering, ``Emitter.spare_for``) when it holds ``POOL_MIN_SIZE`` elements or more (below,
        allocating is cheaper than the bookkeeping), else the span of an all-reduce bucket the
        value is reduced in (``BucketSpans``, backends/numpy/lower_collective.py); other ops allocate."""
        if isinstance(node.op, (Composite, Epilogue)):
            spare = em.spare_for(node.outputs[0], min_size=lower_composite.POOL_MIN_SIZE)
            if spare is not None:
                return [], spare
        return self.spans.destination(node, em)

    def _inplace_target(self, node: Apply, em: Emitter) -> str | None:
        """The name of an array a unary Elemwise or an all-reduce can write its result into, if
        any: a dead intermediate, or an argument given with ``sg.In(x, mutable=True)`` that
        nothing reads later. A result written into an argument is the caller's memory: it is
        never written into again when it (or a view of it) is returned or stored."""
        if not (isinstance(node.op, Elemwise) and len(node.inputs) == 1 or isinstance(node.op, AllReduce)):
            return None
        s, (x,), out = em.s, tensor_inputs(node), tensor_outputs(node)[0]
        if x.ndim == 0 or x.dtype != out.dtype or not s.may_overwrite(x, em.step):
            return None
        if x in s.mutable or x in self.lent:
            if s.buffer_end.get(out) == math.inf:
                return None
            self.lent.add(out)
        return em.name(x)


def c_ordered(x: Any) -> Any:
    """``x``, or a C-ordered copy of it when it is a strided array of two or more dimensions."""
    if isinstance(x, np.ndarray) and x.ndim >= 2 and not x.flags.c_contiguous:
        return np.ascontiguousarray(x)
    return x


def compile(fgraph: FunctionGraph, spec: Any) -> LinkedFunction:
    """Lower ``fgraph`` to one Python function and return it (``.source`` is its text)."""
    return link(fgraph, spec, NumpyBackend())
