"""Symbolic differentiation: ``grad`` (reverse mode, one sweep for many ``wrt``), ``jacobian``,
``hessian``, ``Lop``, ``Rop`` (forward mode by the double-Lop construction), and the
``zero_grad`` / ``disconnected_grad`` ops that cut gradients.

The gradient is more graph: each op's ``L_op`` (or ``grad``) builds the derivative of its
inputs from the derivative of its outputs, so the result can be printed, rewritten and
compiled like any other variable.
"""
from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np

import symgraph.tensor as T
from symgraph.config import config
from symgraph.errors import DisconnectedInputError, GradientError, node_context
from symgraph.graph import hooks
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.graph.traversal import ancestors, clone_replace, toposort
from symgraph.rewrite.for_grad import stabilized_cost
from symgraph.scan import scan
from symgraph.tensor.gradient_ops import (
    BROADCAST_CHECKS,
    BroadcastCheck,
    DependsOn,
    DisconnectedGrad,
    ZeroGrad,
    broadcast_checks,
    disconnected_grad,
    zero_grad,
)
from symgraph.tensor.reduction import sum_to
from symgraph.tensor.type import TensorVariable, as_tensor_variable, constant, is_inexact, tensor_inputs, tensor_outputs

__all__ = ["grad", "jacobian", "hessian", "Lop", "Rop", "zero_grad", "disconnected_grad",
           "ZeroGrad", "DisconnectedGrad", "DependsOn"]


# --- helpers ------------------------------------------------------------------------------------

def _is_float(v: Variable) -> TypeGuard[TensorVariable]:
    """A tensor of a float or complex dtype: a variable that carries a gradient."""
    return hasattr(v, "dtype") and is_inexact(v)


def _zeros_like(x: TensorVariable, dtype: str | None = None) -> TensorVariable:
    return T.zeros_like(x, dtype=dtype or x.dtype)


def _as_list(x: Any) -> tuple[list, Any]:
    """(list of items, how to give the answer back: 'single', list or tuple)."""
    if isinstance(x, (list, tuple)):
        return list(x), type(x)
    return [x], "single"


def _give_back(items: list, kind: Any) -> Any:
    return items[0] if kind == "single" else kind(items)


def _add_all(terms: list[TensorVariable]) -> TensorVariable:
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _check_cost(cost: Any) -> TensorVariable:
    if not isinstance(cost, Variable):
        raise GradientError(f"grad: cost must be a symbolic variable, got {type(cost).__name__} {cost!r}")
    if not isinstance(cost, TensorVariable) or cost.ndim != 0:
        raise GradientError(f"grad: cost must be a scalar (0-d) tensor, got {cost} of type {cost.type}; "
                            f"reduce it first (e.g. cost.sum() or cost.mean()), or use sg.jacobian / "
                            f"known_grads for non-scalar outputs")
    if not _is_float(cost):
        raise GradientError(f"grad: cost must have a float dtype, got {cost} of type {cost.type}; "
                            f"cast it (cost.astype('float64')) if it is meant to be differentiable")
    return cost


def _seed(var: Any, g: Any) -> tuple[Variable, Variable]:
    if not isinstance(var, Variable):
        raise GradientError(f"known_grads: keys must be symbolic variables, got {type(var).__name__}")
    if not isinstance(var, TensorVariable):
        raise GradientError(f"known_grads: keys must be tensor variables, got {var} of type {var.type}")
    g = as_tensor_variable(g)
    if g.ndim != var.ndim:
        raise GradientError(f"known_grads: the gradient given for {var} ({var.type}) has {g.ndim} "
                            f"dimensions ({g.type}); it needs {var.ndim}")
    if _is_float(var) and g.dtype != var.dtype:
        g = T.cast(g, var.dtype)
    if _is_float(var):
        g = sum_to(g, var)  # a seed keeps its variable's broadcast pattern, as every gradient does
    return var, g


# --- reverse mode ---------------------------------------------------------------------------------

def grad(cost: TensorVariable | None, wrt: Variable | Sequence[Variable], consider_constant: Sequence | None = None,
         disconnected_inputs: str = "raise", known_grads: dict | None = None,
         return_disconnected: str = "zero") -> Any:
    """Symbolic gradient of the scalar ``cost`` with respect to ``wrt`` (a variable or a list;
    the answer has the same form), by one reverse sweep over the graph.

    The cost is differentiated in its stable form (the ``stabilize`` rewrites, applied to a copy:
    ``log(softmax)`` as ``log_softmax``, hand-written ``1/(1+exp(-x))`` as ``sigmoid`` ...), so
    the gradient is finite wherever the math is, even before the function is rewritten.

    ``consider_constant``: variables treated as constants (no gradient flows through them).
    ``disconnected_inputs``: 'raise' | 'warn' | 'ignore' when the cost does not depend on a wrt.
    ``known_grads``: {variable: its gradient} seeds, added to (or, with cost=None, instead of) the cost.
    ``return_disconnected``: 'zero' (zeros_like) or 'none' (None) for disconnected wrt.
    """
    if disconnected_inputs not in ("raise", "warn", "ignore"):
        raise ValueError(f"disconnected_inputs must be 'raise', 'warn' or 'ignore', got {disconnected_inputs!r}")
    if return_disconnected not in ("zero", "none"):
        raise ValueError(f"return_disconnected must be 'zero' or 'none', got {return_disconnected!r}")
    wrt_list, kind = _as_list(wrt)
    for w in wrt_list:
        if not isinstance(w, Variable):
            raise GradientError(f"grad: wrt must be symbolic variables, got {type(w).__name__} {w!r}")
    seeds: dict[Variable, list[Variable]] = {}
    if cost is not None:  # differentiated in its stable form (see symgraph.rewrite.for_grad)
        cost = stabilized_cost(_check_cost(cost), [*wrt_list, *(consider_constant or ()), *(known_grads or {})])
        seeds[cost] = [constant(np.ones((), dtype=cost.dtype))]
    for var, g in (known_grads or {}).items():
        var, g = _seed(var, g)
        seeds.setdefault(var, []).append(g)
    if not seeds:
        raise GradientError("grad: give a cost, or known_grads when cost is None")
    terms, reached = _backprop(seeds, wrt_list, consider_constant or ())
    out = []
    for w in wrt_list:
        if id(w) not in reached:
            out.append(_disconnected(w, disconnected_inputs, return_disconnected))
        elif not _is_float(w):  # integer / bool inputs: the gradient is zero by convention
            out.append(_zeros_like(w, config.floatX))
        elif terms.get(w):
            out.append(_add_all(terms[w]))
        else:  # connected, but every path carries no gradient (argmax, comparisons, zero_grad ...)
            out.append(_zeros_like(w))
    return _give_back(out, kind)


def _backprop(seeds: dict, wrt: list, consider_constant: Sequence) -> tuple[dict, set]:
    """The reverse sweep: gradient terms for every variable on a path from ``wrt`` to a seed.

    Returns ({variable: list of gradient terms}, ids of variables reached by some path). Only the
    nodes between the seeds and ``wrt`` are visited; a node all of whose output gradients are
    absent (None) is skipped, since its input gradients are then zero too.
    """
    order = toposort(list(seeds), blockers=consider_constant)
    # forward: which variables depend on some wrt (through gradient-carrying nodes)
    depends = {id(w) for w in wrt}
    for node in order:
        if not isinstance(node.op, DisconnectedGrad) and any(id(i) in depends for i in node.inputs):
            depends.update(id(o) for o in node.outputs)
    terms: dict[Variable, list] = {v: list(g) for v, g in seeds.items() if id(v) in depends}
    reached = {id(v) for v in terms}
    for node in reversed(order):
        if not any(id(o) in reached for o in node.outputs):
            continue
        wanted = [id(i) in depends for i in node.inputs]
        if isinstance(node.op, DisconnectedGrad) or not any(wanted):
            continue
        reached.update(id(i) for i, w in zip(node.inputs, wanted) if w)
        out_grads = [_add_all(terms[o]) if terms.get(o) else None for o in node.outputs]
        if all(g is None for g in out_grads):
            continue
        in_grads = _node_grads(node, out_grads)
        for inp, w, g in zip(node.inputs, wanted, in_grads):
            if w and g is not None and _is_float(inp):
                terms.setdefault(inp, []).append(g)
    return terms, reached


def _node_grads(node: Apply, out_grads: list) -> list:
    """Call the op's L_op / grad with a gradient for every output, and check what comes back."""
    out_grads = [g if g is not None else _zeros_like(o, o.dtype if _is_float(o) else config.floatX)
                 for o, g in zip(tensor_outputs(node), out_grads)]
    out_grads = _checked_broadcast(node, out_grads)
    op = node.op
    try:
        in_grads = _op_grads(node, out_grads)
    except GradientError as e:
        raise type(e)(f"{e}\n{node_context(node)}") from None
    in_grads = list(in_grads)
    if len(in_grads) != len(node.inputs):
        raise GradientError(f"{op}.grad returned {len(in_grads)} gradients for {len(node.inputs)} inputs "
                            f"(a bug in the op)\n{node_context(node)}")
    checked = []
    for k, (inp, g) in enumerate(zip(tensor_inputs(node), in_grads)):
        if g is not None and _is_float(inp):
            g = as_tensor_variable(g)
            if g.ndim < inp.ndim:
                raise GradientError(f"{op}.grad returned a {g.ndim}-d gradient ({g.type}) for its {inp.ndim}-d "
                                    f"input {k} ({inp.type}) (a bug in the op)\n{node_context(node)}")
            g = sum_to(g, inp)  # gradients broadcast to an output's shape (Elemwise's) sum back
            if g.dtype != inp.dtype:
                g = T.cast(g, inp.dtype)
        checked.append(g)
    return checked


def _checked_broadcast(node: Apply, out_grads: list) -> list:
    """An elementwise node whose inputs may broadcast at run time along axes their types leave of
    unknown length: its output gradient times a ``BroadcastCheck`` of its inputs (1, or the call
    raises: the sums back to each input's shape cover only axes declared broadcastable)."""
    if not isinstance(node.op, T.Elemwise) or len(node.inputs) < 2 or not _is_float(node.outputs[0]) \
            or not BROADCAST_CHECKS.get():
        return out_grads
    checks = broadcast_checks(node)
    if not checks:
        return out_grads
    g = out_grads[0]
    where = f"{node.op}" + ("\nBuilt at (most recent user line):\n  " + str(node.trace).replace("\n", "\n  ")
                            if node.trace is not None else "")
    shapes = [T.shape(v) for v in node.inputs]  # shapes only: the check never keeps a value from fusing
    return [g * BroadcastCheck(checks, g.dtype, where)(*shapes)] + list(out_grads[1:])


def _op_grads(node: Apply, out_grads: list) -> list:
    """The op's own gradient, or for an op that stands for a subgraph (``op.expand``) and has
    none, the gradient of that subgraph."""
    op = node.op
    own = type(op).L_op is not Op.L_op or type(op).grad is not Op.grad
    expanded = None if own else op.expand(list(node.inputs))
    if expanded is None:
        return op.L_op(node.inputs, node.outputs, out_grads)
    known = dict(_seed(o, g) for o, g in zip(expanded, out_grads) if _is_float(o))
    return grad(None, list(node.inputs), disconnected_inputs="ignore", known_grads=known, return_disconnected="none")


def _disconnected(w: TensorVariable, mode: str, give: str) -> Variable | None:
    msg = (f"grad: the cost does not depend on {w} ({w.type}), or only through disconnected_grad / "
           f"consider_constant; pass disconnected_inputs='ignore' (or 'warn') to get zeros instead")
    if mode == "raise":
        raise DisconnectedInputError(msg)
    if mode == "warn":
        warnings.warn(msg, stacklevel=3)
    return None if give == "none" else _zeros_like(w, w.dtype if _is_float(w) else config.floatX)


# --- Jacobians, Hessians, Lop and Rop ---------------------------------------------------------------

def jacobian(expression: Variable, wrt: Variable | Sequence[Variable], consider_constant: Sequence | None = None,
             disconnected_inputs: str = "raise") -> Any:
    """d expression / d wrt, of shape ``expression.shape + wrt.shape``: one reverse sweep per element
    of ``expression`` -- unrolled when its shape is static (a 0-d expression gives ``grad``), else
    a scan over the flattened expression (as Theano builds it)."""
    expression = as_tensor_variable(expression)
    if expression.ndim and any(s is None for s in expression.type.shape):
        return _scan_jacobian(expression, wrt, consider_constant, disconnected_inputs)
    return _jacobian(expression, expression.type.shape, wrt, consider_constant, disconnected_inputs)


def _scan_jacobian(expression: TensorVariable, wrt: Any, consider_constant: Any, disconnected_inputs: str) -> Any:
    """The Jacobian of an expression of dynamic shape: row i (a scan step) is grad(flat[i], wrt)."""
    wrt_list, kind = _as_list(wrt)
    flat = T.flatten(expression)

    def row(i: Variable) -> list:
        return grad(flat[i], wrt_list, consider_constant, disconnected_inputs)
    rows, _ = scan(row, sequences=[T.arange(T.shape_i(flat, 0))], return_list=True)
    shape = [T.shape_i(expression, d) for d in range(expression.ndim)]
    out = [T.reshape(r, shape + [T.shape_i(w, d) for d in range(w.ndim)]) for r, w in zip(rows, wrt_list)]
    return _give_back(out, kind)


def _jacobian(expression: TensorVariable, shape: tuple, wrt: Any, consider_constant: Any,
              disconnected_inputs: str) -> Any:
    if expression.ndim == 0:
        return grad(expression, wrt, consider_constant, disconnected_inputs)
    wrt_list, kind = _as_list(wrt)
    columns: list[list] = [[] for _ in wrt_list]
    for index in itertools.product(*(range(s) for s in shape)):
        gs = grad(expression[index], wrt_list, consider_constant, disconnected_inputs)
        for col, g in zip(columns, gs):
            col.append(g)
    out = []
    for items, w in zip(columns, wrt_list):
        if not items:  # an empty expression: its Jacobian has no elements
            out.append(T.zeros(tuple(shape) + tuple(w.shape[d] for d in range(w.ndim)), dtype=w.dtype))
            continue
        for s in reversed(shape):  # regroup the flat (C-order) list into nested stacks
            items = [T.stack(items[i:i + s]) for i in range(0, len(items), s)]
        out.append(items[0])
    return _give_back(out, kind)


def hessian(cost: TensorVariable, wrt: Variable | Sequence[Variable], consider_constant: Sequence | None = None,
            disconnected_inputs: str = "raise") -> Any:
    """Second derivatives of the scalar ``cost``: for each ``wrt``, the Jacobian of its gradient
    (shape ``wrt.shape + wrt.shape``; a scan over the gradient's elements when wrt's shape is dynamic)."""
    wrt_list, kind = _as_list(wrt)
    out = []
    for w in wrt_list:
        g = grad(cost, w, consider_constant, disconnected_inputs)
        out.append(jacobian(g, w, consider_constant, disconnected_inputs="ignore"))
    return _give_back(out, kind)


def Lop(f: Variable | Sequence[Variable], wrt: Variable | Sequence[Variable], eval_points: Any,
        consider_constant: Sequence | None = None, disconnected_inputs: str = "raise") -> Any:
    """Vector-Jacobian product ``v^T (df/dwrt)`` with ``v`` = ``eval_points`` (one per ``f``):
    reverse mode seeded with ``known_grads={f: v}``."""
    fs, _ = _as_list(f)
    vs, _ = _as_list(eval_points)
    if len(fs) != len(vs):
        raise GradientError(f"Lop: {len(fs)} outputs but {len(vs)} eval_points")
    known = dict(_seed(fi, v) for fi, v in zip(fs, vs))
    return grad(None, wrt, consider_constant, disconnected_inputs, known_grads=known)


def Rop(f: Variable | Sequence[Variable], wrt: Variable | Sequence[Variable], eval_points: Any,
        disconnected_outputs: str = "raise") -> Any:
    """Jacobian-vector product ``(df/dwrt) v`` with ``v`` = ``eval_points`` (one per ``wrt``), by
    the double-Lop trick: ``g(u) = J^T u`` is linear in a dummy ``u``, so ``d<g, v>/du = J v``."""
    fs, fkind = _as_list(f)
    ws, _ = _as_list(wrt)
    vs, _ = _as_list(eval_points)
    if len(ws) != len(vs):
        raise GradientError(f"Rop: {len(ws)} wrt but {len(vs)} eval_points")
    us = [fi.type.make_variable(f"u_{fi}") for fi in fs]
    gs = Lop(fs, ws, us, disconnected_inputs="ignore")
    u_ids = {id(u) for u in us}
    known = dict(_seed(g, v) for g, v in zip(gs, vs) if any(id(a) in u_ids for a in ancestors([g])))
    rs = (grad(None, us, disconnected_inputs="ignore", known_grads=known, return_disconnected="none")
          if known else [None] * len(us))
    out = []
    for fi, r in zip(fs, rs):
        if r is None:
            if disconnected_outputs == "raise":
                raise DisconnectedInputError(f"Rop: {fi} does not depend on any of {ws}; pass "
                                             f"disconnected_outputs='ignore' to get zeros")
            r = _zeros_like(fi)
        out.append(r)
    # J v does not depend on u (g is linear in u): put zeros wherever u is still in the graph
    out, _ = clone_replace(out, {u: _zeros_like(fi) for fi, u in zip(fs, us)})
    # J v of a function linear in some wrt does not read them; keep them as (free) inputs anyway
    out = [r if all(w in set(ancestors([r])) for w in ws) else DependsOn()(r, *ws) for r in out]
    return _give_back(out, fkind)


hooks.register(grad=grad)  # ops holding inner graphs (IfElse) differentiate them through this
