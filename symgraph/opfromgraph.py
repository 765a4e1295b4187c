"""``OpFromGraph(inputs, outputs)``: a graph packaged as an op (Theano's and PyTensor's name),
applied like any op: ``op = OpFromGraph([x, y], [x * y]); e = op(a, b) + op(b, a)``.

The op holds its graph as an :class:`InnerGraph` (immutable, hashable: two ops made from the same
graph are equal and merge). Printers and the graph explorer show it as one node with its inner
graph. When compiled in a rewriting mode, the ``inline_op_from_graph`` canonicalize rule puts a
copy of the inner graph in the node's place, so fusion and every other rewrite see through it
(Theano's ``inline=True``; symgraph inlines whatever ``inline`` says, because each backend
compiles the inlined graph better than a call into an inner one). Without rewrites
(``mode='none'``) the node runs its ``perform``: the inner graph, node by node.

The gradient is the inner graph's, taken on an inlined copy; ``grad_overrides``,
``lop_overrides`` and ``rop_overrides`` are refused by name (not supported).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError
from symgraph.graph import hooks
from symgraph.graph.basic import Apply, Constant, Op, Variable, user_source_line
from symgraph.graph.inner import InnerGraph
from symgraph.graph.traversal import clone_replace, graph_inputs
from symgraph.tensor.type import TensorType, TensorVariable, as_tensor_variable, is_inexact


def _at() -> str:
    where = user_source_line()
    return f"\nBuilt at (most recent user line):\n  {where}" if where is not None else ""


class OpFromGraph(Op):
    """``outputs`` as a function of ``inputs``, usable as an op (see the module docstring)."""

    __props__ = ("graph", "label")

    def __init__(self, inputs: Sequence[Variable] = (), outputs: Variable | Sequence[Variable] = (),
                 inline: bool = False, name: str | None = None, *, graph: InnerGraph | None = None,
                 label: str | None = None, **kwargs: Any):
        """``OpFromGraph(inputs, outputs)`` as in Theano; ``graph=``/``label=`` rebuild one from its
        ``__props__`` (sg.load, ``with_inner_graphs``)."""
        if kwargs:
            raise TypeError(f"OpFromGraph: {', '.join(sorted(kwargs))} not supported (symgraph takes the "
                            f"gradient of the inner graph itself){_at()}")
        self.graph = graph if graph is not None else _inner_graph(list(inputs), outputs)
        self.label, self.inline = label if label is not None else name, inline

    def __str__(self) -> str:
        return f"OpFromGraph{{{self.label}}}" if self.label else "OpFromGraph"

    @property
    def inner_graphs(self) -> dict[str, InnerGraph]:
        """The inner graph, by role (printers, rewrites and the explorer walk it)."""
        return {"body": self.graph}

    def with_inner_graphs(self, graphs: dict[str, InnerGraph]) -> OpFromGraph:
        """The same op around another (e.g. rewritten) inner graph."""
        return OpFromGraph(inline=self.inline, graph=graphs["body"], label=self.label)

    def make_node(self, *inputs: Any) -> Apply:
        want = [v.type for v in self.graph.inputs]
        if len(inputs) != len(want):
            raise GraphTypeError(f"{self}: takes {len(want)} inputs, got {len(inputs)}{_at()}")
        ins = [as_tensor_variable(v) if isinstance(t, TensorType) else v for v, t in zip(inputs, want)]
        for k, (v, t) in enumerate(zip(ins, want)):
            if not _fits(v.type, t):
                raise GraphTypeError(f"{self}: input {k} is {v} of type {v.type}, where the graph reads {t}{_at()}")
        # the types an inlined copy has (static lengths the actual inputs fix), so inlining keeps them
        return Apply(self, ins, [o.type.make_variable() for o in self.inlined(ins)])

    def perform(self, node: Apply, inputs: list) -> list:
        outs = self.graph.evaluate(inputs)
        return [np.asarray(v, dtype=o.type.dtype) if isinstance(o.type, TensorType) else v
                for v, o in zip(outs, node.outputs)]

    def inlined(self, inputs: Sequence[Variable]) -> list[Variable]:
        """A copy of the inner graph reading ``inputs``: its outputs."""
        outs, _ = clone_replace(list(self.graph.outputs), dict(zip(self.graph.inputs, inputs)))
        return outs

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        """The inner graph's gradient, on an inlined copy reading the node's inputs."""
        outs = self.inlined(inputs)
        known = {o: g for o, g in zip(outs, output_grads) if is_inexact(o) and g is not None}
        wrt = [v for v in inputs if is_inexact(v)]
        if not known or not wrt:
            return [None] * len(inputs)
        grads = iter(hooks.grad(None, wrt, disconnected_inputs="ignore", known_grads=known))
        return [next(grads) if is_inexact(v) else None for v in inputs]

    def infer_shape(self, node: Apply, input_shapes: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The shapes of an inlined copy (symbolic, read from the inputs)."""
        outs = self.inlined(node.inputs)
        return [tuple(o.shape[d] for d in range(o.ndim)) if isinstance(o, TensorVariable) else () for o in outs]


def _inner_graph(ins: list[Variable], outputs: Variable | Sequence[Variable]) -> InnerGraph:
    """The checked inner graph of ``OpFromGraph(ins, outputs)``."""
    outs = [outputs] if isinstance(outputs, Variable) else list(outputs)
    if not all(isinstance(v, Variable) and not isinstance(v, Constant) for v in ins):
        raise GraphTypeError(f"OpFromGraph: the inputs must be symbolic variables, got {ins!r}{_at()}")
    if not outs or not all(isinstance(v, Variable) for v in outs):
        raise GraphTypeError(f"OpFromGraph: the outputs must be symbolic variables, got {outputs!r}{_at()}")
    free = [v for v in graph_inputs(outs, blockers=ins) if not isinstance(v, Constant) and v not in ins]
    if free:
        one = len(free) == 1
        raise GraphTypeError(f"OpFromGraph: the outputs read {', '.join(map(str, free))}, which "
                             f"{'is' if one else 'are'} not among the inputs; pass "
                             f"{'it as an input' if one else 'them as inputs'} (shared variables too){_at()}")
    return InnerGraph(ins, outs)


def _fits(got: Any, want: Any) -> bool:
    """May a value of type ``got`` stand for the inner input of type ``want``?"""
    if not (isinstance(got, TensorType) and isinstance(want, TensorType)):
        return bool(got == want)
    return got.dtype == want.dtype and got.ndim == want.ndim and all(
        w is None or g == w for g, w in zip(got.shape, want.shape))
