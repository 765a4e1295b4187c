"""Lazy conditionals: ``ifelse(condition, then_branch, else_branch)`` computes only the branch
taken, on every backend and in every mode (``T.switch`` is elementwise and computes both).

An ``IfElse`` node holds each branch as an inner graph over the same inputs (the values the
branches read). As built, the branches are thin -- they return the variables the user gave --
and at compile time a pass (symgraph/rewrite/branches.py) moves every node that only one branch
needs into that branch's inner graph, so nothing an untaken branch needs ever runs. The gradient
is again an ifelse, so it is lazy too.

    from symgraph.ifelse import ifelse        # or sg.ifelse
    z = ifelse(T.lt(a, b), T.mean(x), T.mean(y))
"""
from __future__ import annotations

from typing import Any

import numpy as np

import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph import hooks
from symgraph.graph.basic import Apply, Op, Variable, user_source_line
from symgraph.graph.inner import InnerGraph
from symgraph.tensor.type import TensorType, as_tensor_variable, is_inexact, tensor_outputs


def _tensor_type(v: Variable) -> TensorType:
    """A branch output's type (the constructor checked that both branches give tensors)."""
    if not isinstance(v.type, TensorType):
        raise GraphTypeError(f"IfElse: a branch gives {v} of type {v.type}, not a tensor")
    return v.type


def _merged(a: TensorType, b: TensorType) -> TensorType:
    """The type of a value that is either ``a`` or ``b`` (static lengths kept where they agree)."""
    return TensorType(a.dtype, tuple(x if x == y else None for x, y in zip(a.shape, b.shape)))


class IfElse(Op):
    """``then_graph(*inputs[1:])`` if ``inputs[0]`` (a 0-d condition) is true, else
    ``else_graph(*inputs[1:])``: only the taken branch runs."""

    __props__ = ("then_graph", "else_graph", "name")

    def __init__(self, then_graph: InnerGraph, else_graph: InnerGraph, name: str | None = None):
        t_in, e_in = [v.type for v in then_graph.inputs], [v.type for v in else_graph.inputs]
        if t_in != e_in or len(then_graph.outputs) != len(else_graph.outputs):
            raise GraphTypeError("IfElse: both branches must read the same inputs and give as many outputs")
        for t, e in zip(then_graph.outputs, else_graph.outputs):
            if not (isinstance(t.type, TensorType) and isinstance(e.type, TensorType)):
                raise GraphTypeError(f"IfElse: the branches must give tensors, got {t.type} and {e.type}")
            if t.type.dtype != e.type.dtype or t.type.ndim != e.type.ndim:
                raise GraphTypeError(f"IfElse: the branches give values of different types: {t.type} and {e.type}")
        self.then_graph, self.else_graph = then_graph, else_graph
        if name is not None and name != "IfElse":  # "IfElse" is the name of an unnamed one (op.name)
            self.name = name

    def __str__(self) -> str:
        # the given name only: ``name`` of an unnamed op is derived from this string
        return f"IfElse{{{self.given_name}}}" if self.given_name else "IfElse"

    @property
    def inner_graphs(self) -> dict[str, InnerGraph]:
        """The inner graphs this op holds, by role (printers, rewrites and compilers walk them)."""
        return {"then": self.then_graph, "else": self.else_graph}

    def with_inner_graphs(self, graphs: dict[str, InnerGraph]) -> IfElse:
        """The same op with its inner graphs replaced (e.g. by rewritten ones)."""
        return IfElse(graphs["then"], graphs["else"], self.given_name)

    def output_types(self) -> list[TensorType]:
        return [_merged(_tensor_type(t), _tensor_type(e))
                for t, e in zip(self.then_graph.outputs, self.else_graph.outputs)]

    def make_node(self, cond: Any, *args: Any) -> Apply:
        cond = as_tensor_variable(cond)
        if cond.ndim != 0:
            raise ShapeError(f"IfElse: the condition must be a scalar (0-d), got {cond} of type {cond.type}")
        inputs = [as_tensor_variable(v) for v in args]
        want = [v.type for v in self.then_graph.inputs]
        if [v.type for v in inputs] != want:
            raise GraphTypeError(f"IfElse: inputs of types {[str(v.type) for v in inputs]} where the branches "
                                 f"read {[str(t) for t in want]}")
        return Apply(self, [cond, *inputs], [t.make_variable() for t in self.output_types()])

    def perform(self, node: Apply, inputs: list) -> list:
        graph = self.then_graph if bool(inputs[0]) else self.else_graph
        return [np.asarray(v, dtype=o.dtype) for v, o in zip(graph.evaluate(inputs[1:]), tensor_outputs(node))]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        """Each branch differentiated once (``sg.grad(None, wrt=its inputs, known_grads=...)``), and
        the two gradients chosen by the same condition: an IfElse again, so only the taken
        branch's gradient runs. None for the condition and for inputs that carry no gradient."""
        cond, values = inputs[0], inputs[1:]
        wanted = [k for k, v in enumerate(values) if is_inexact(v)]
        if not wanted:
            return [None] * len(inputs)
        grads = [g.type.make_variable() for g in output_grads]
        branches = []
        for graph in (self.then_graph, self.else_graph):
            g = _branch_grad(graph, grads)
            branches.append(InnerGraph(list(graph.inputs) + grads, [g[k] for k in wanted]))
        then_g, else_g = branches
        given = self.given_name
        out = IfElse(then_g, else_g, name=f"grad_{given}" if given else None)(cond, *values, *output_grads)
        result: list = [None] * len(inputs)
        for k, g in zip(wanted, out if isinstance(out, list) else [out]):
            result[1 + k] = g
        return result


def _branch_grad(graph: InnerGraph, grads: list[Variable]) -> list[Variable]:
    """d(sum of outputs * grads)/d(inputs) of one branch, in terms of its own input variables."""
    known = {o: g for o, g in zip(graph.outputs, grads) if is_inexact(o)}
    wrt = list(graph.inputs)
    if not known:
        return [T.zeros_like(v) for v in wrt]
    return hooks.grad(None, wrt, disconnected_inputs="ignore", known_grads=known)


def ifelse(condition: Any, then_branch: Any, else_branch: Any, name: str | None = None) -> Any:
    """``then_branch`` if ``condition`` (a scalar: bool or number) is true, else ``else_branch``;
    each a variable or a list of variables of matching types. Only the branch taken is computed."""
    single = not isinstance(then_branch, (list, tuple))
    thens = [then_branch] if single else list(then_branch)
    elses = [else_branch] if not isinstance(else_branch, (list, tuple)) else list(else_branch)
    where = user_source_line()
    at = f"\nBuilt at (most recent user line):\n  {where}" if where is not None else ""
    if len(thens) != len(elses):
        raise GraphTypeError(f"ifelse: the then branch has {len(thens)} values and the else branch {len(elses)}{at}")
    thens, elses = [as_tensor_variable(v) for v in thens], [as_tensor_variable(v) for v in elses]
    for k, (t, e) in enumerate(zip(thens, elses)):
        if t.dtype != e.dtype or t.ndim != e.ndim:
            raise GraphTypeError(f"ifelse: value {k} of the branches differs in type: then {t} is {t.type}, else {e} "
                                 f"is {e.type} (cast one, e.g. T.cast(x, '{t.dtype}')){at}")
    cond = as_tensor_variable(condition)
    if cond.ndim != 0:
        raise ShapeError(f"ifelse: the condition must be a scalar (0-d), got {cond} of type {cond.type}{at}")
    if cond.dtype != "bool":
        cond = T.neq(cond, 0)
    values = list(dict.fromkeys(thens + elses))  # what the branches read, each once
    op = IfElse(InnerGraph(values, thens), InnerGraph(values, elses), name)
    out = op(cond, *values)
    outs = out if isinstance(out, list) else [out]
    for k, o in enumerate(outs):
        o.name = f"{name}.{k}" if name and len(outs) > 1 else name
    return outs[0] if single else outs


__all__ = ["IfElse", "ifelse"]
