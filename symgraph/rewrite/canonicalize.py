"""Canonicalize: algebraic simplifications that never change a result beyond rounding.

Documented deviations for special values: ``x + 0 -> x`` keeps the sign of ``-0.0`` (numpy
would give ``+0.0``); ``x - x`` and ``x * 0`` become zeros only for integer and bool dtypes
(for floats NaN and Inf make them NaN, so they are left alone); reassociating a chain of
adds or multiplies to collect constants, and ``x / c -> x * (1/c)``, can change the last bit.
"""
from __future__ import annotations

import numpy as np

from symgraph.rewrite.core import rule
from symgraph.rewrite.patterns import (
    E,
    const_value,
    elem,
    fit,
    is_const,
    is_float,
    other_operand,
    scalar_const,
    single_client,
    zeros_like,
)
from symgraph.scalar import CAST_DTYPES
from symgraph.tensor.elemwise import DimShuffle, cast
from symgraph.tensor.gradient_ops import DependsOn, DisconnectedGrad, ZeroGrad
from symgraph.tensor.reduction import BroadcastLike, CAReduce, ReducedSize, reduced_size
from symgraph.tensor.shape import Reshape, Shape, Shape_i

C = "canonicalize"


@rule(C, "mul")
def mul_one(fgraph, node):
    """x * 1 -> x"""
    for i, v in enumerate(node.inputs):
        if is_const(v, 1):
            return fit(other_operand(node, i), node.out)


@rule(C, "add", "sub")
def add_zero(fgraph, node):
    """x + 0 -> x, x - 0 -> x"""
    for i, v in enumerate(node.inputs):
        if is_const(v, 0) and (i == 1 or node.op.scalar_op.name == "add"):
            return fit(other_operand(node, i), node.out)


@rule(C, "sub")
def sub_self(fgraph, node):
    """x - x -> zeros (integer and bool dtypes only: for floats NaN - NaN is NaN)"""
    a, b = node.inputs
    if a is b and not is_float(node.out):
        return fit(zeros_like(a), node.out)


@rule(C, "mul")
def mul_zero(fgraph, node):
    """x * 0 -> zeros (integer and bool dtypes only: for floats NaN * 0 and Inf * 0 are NaN)"""
    if is_float(node.out):
        return None
    for i, v in enumerate(node.inputs):
        x = other_operand(node, i)
        if is_const(v, 0) and x.type.shape == node.out.type.shape:
            return fit(zeros_like(x), node.out)


@rule(C, "neg")
def neg_neg(fgraph, node):
    """--x -> x"""
    inner = elem(node.inputs[0], "neg")
    if inner is not None:
        return fit(inner.inputs[0], node.out)


@rule(C, "add", "sub")
def add_neg(fgraph, node):
    """x + -y -> x - y, -y + x -> x - y, x - -y -> x + y (negation is exact)"""
    a, b = node.inputs
    name = node.op.scalar_op.name
    if elem(b, "neg") is not None:
        return fit(E["sub" if name == "add" else "add"](a, b.owner.inputs[0]), node.out)
    if name == "add" and elem(a, "neg") is not None:
        return fit(E["sub"](b, a.owner.inputs[0]), node.out)


@rule(C, "true_div")
def div_by_constant(fgraph, node):
    """x / c -> x * (1/c) for float results (may differ in the last bit unless c is a power of 2)"""
    x, c = node.inputs
    value = _scalar(c)
    if value is None or not is_float(node.out) or value == 0:
        return None
    with np.errstate(all="ignore"):
        inv = np.asarray(1, node.out.dtype) / np.asarray(value, node.out.dtype)
    return fit(E["mul"](x, scalar_const(inv, node.out.dtype)), node.out)


@rule(C, "pow")
def pow_one(fgraph, node):
    """x ** 1 -> x"""
    if is_const(node.inputs[1], 1):
        return fit(node.inputs[0], node.out)


@rule(C, "identity", ZeroGrad, DisconnectedGrad, DependsOn)
def remove_identity(fgraph, node):
    """identity(x), zero_grad(x), disconnected_grad(x), Rop's depends_on(x, ...) -> x: all are the
    identity once gradients are built (the backend still copies outputs that would alias an input)"""
    return fit(node.inputs[0], node.out)


@rule(C, *[f"cast_{d}" for d in CAST_DTYPES])
def useless_cast(fgraph, node):
    """cast(x, x.dtype) -> x; cast(cast(x, wider), x.dtype) -> x"""
    x = node.inputs[0]
    if x.dtype == node.out.dtype:
        return fit(x, node.out)
    inner = elem(x)
    if inner is not None and inner.op.scalar_op.name.startswith("cast_"):
        src = inner.inputs[0]
        if src.dtype == node.out.dtype and np.can_cast(src.dtype, x.dtype, "safe"):
            return fit(src, node.out)


@rule(C, DimShuffle)
def dimshuffle_merge(fgraph, node):
    """DimShuffle(DimShuffle(x)) -> one DimShuffle (or x when the two cancel); identity -> x"""
    op, x = node.op, node.inputs[0]
    if op.new_order == tuple(range(op.input_ndim)):
        return fit(x, node.out)
    inner = x.owner
    if inner is None or type(inner.op) is not DimShuffle:
        return None
    src = inner.inputs[0]
    order = tuple(o if o == "x" else inner.op.new_order[o] for o in op.new_order)
    if order == tuple(range(src.ndim)):
        return fit(src, node.out)
    return fit(DimShuffle(src.ndim, order)(src), node.out)


def _scalar(var):
    """The value of a constant with all dimensions of length 1 (a broadcast scalar), else None."""
    if not all(s == 1 for s in var.type.shape) or getattr(var, "data", None) is None:
        return None
    return const_value(var)


def _collect(fgraph, node, name):
    """The leaves of the tree of ``name`` nodes rooted at ``node`` (inner nodes read only by
    the tree, of the same dtype), left to right."""
    leaves, stack = [], list(reversed(node.inputs))
    while stack:
        v = stack.pop()
        inner = elem(v, name)
        if inner is not None and v.dtype == node.out.dtype and single_client(fgraph, v):
            stack.extend(reversed(inner.inputs))
        else:
            leaves.append(v)
    return leaves


@rule(C, "add", "mul")
def collect_constants(fgraph, node):
    """Flatten nested adds (or muls) and fold their scalar constants into one:
    (x + 1) + (y + 2) -> (x + y) + 3. Reassociation may change the last bit."""
    name = node.op.scalar_op.name
    if not any(elem(v, name) is not None for v in node.inputs):
        return None  # no nesting: at most the two operands, which constant folding handles
    parent = fgraph.clients.get(node.out, ())
    if len(parent) == 1 and parent[0][0] != "output" and type(parent[0][0].op) is type(node.op) \
            and parent[0][0].op == node.op and parent[0][0].out.dtype == node.out.dtype:
        return None  # not the root of the tree: the root collects for the whole tree (linear time)
    leaves = _collect(fgraph, node, name)
    consts = [v for v in leaves if _scalar(v) is not None]
    if len(consts) < 2:
        return None
    rest = [v for v in leaves if _scalar(v) is None]
    dtype = node.out.dtype
    ufunc = np.add if name == "add" else np.multiply
    with np.errstate(all="ignore"):
        total = ufunc.reduce([np.asarray(_scalar(c), dtype) for c in consts])
    if not rest:
        return None  # constant folding handles all-constant trees
    acc = rest[0]
    for v in rest[1:]:
        acc = E[name](acc, v)
    acc = E[name](acc, scalar_const(total, dtype))
    return fit(acc, node.out)


def _shape_source(like):
    """An earlier variable with exactly ``like``'s shape: walk up through elementwise nodes
    whose other operands are broadcast scalars (so the shape cannot come from them)."""
    while True:
        node = elem(like)
        if node is None:
            return like
        main = next((v for v in node.inputs if v.type.shape == like.type.shape), None)
        if main is None or not all(v is main or (v.ndim <= like.ndim and all(s == 1 for s in v.type.shape))
                                   for v in node.inputs):
            return like
        like = main


@rule(C, BroadcastLike, ReducedSize, Shape, Shape_i)
def shape_of_elemwise(fgraph, node):
    """Ops that read only the shape of an elementwise result read it from its input instead,
    so the result need not be computed first (this lets a gradient fuse with its forward pass)."""
    like = node.inputs[-1]
    src = _shape_source(like)
    if src is like:
        return None
    return fit(node.op.make_node(*node.inputs[:-1], src).outputs[0], node.out)


@rule(C, ReducedSize, Shape_i)
def shape_of_reduction(fgraph, node):
    """An element count (mean's divisor) or a length of a reduction's result, read from the
    reduction's input instead, so the reduction need not run for it: when other rewrites have
    replaced a reduction's value (a cross-entropy's picked probabilities by its log-softmax form),
    the count alone kept it, with the softmax it summed, computed at every call."""
    red = node.inputs[0].owner
    if len(node.inputs) != 1 or red is None or type(red.op) is not CAReduce:
        return None
    x, op = red.inputs[0], red.op
    kept = list(range(x.ndim)) if op.keepdims else [d for d in range(x.ndim) if d not in op.axis]
    if isinstance(node.op, Shape_i):
        d = kept[node.op.i]
        return None if op.keepdims and d in op.axis else fit(Shape_i(d)(x), node.out)
    axes = tuple(kept[a] for a in node.op.axis if not (op.keepdims and kept[a] in op.axis))
    return fit(ReducedSize(axes)(x) if axes else np.int64(1), node.out)


@rule(C, BroadcastLike)
def broadcast_like_as_fill(fgraph, node):
    """broadcast_like(g, x) -> second(x, g): the same values as an elementwise op, so the
    gradient of a sum fuses with the elementwise work around it instead of materialising."""
    g, like = node.inputs
    if any(c != "output" and type(c.op) is CAReduce for c, _ in fgraph.clients.get(node.out, ())):
        return None  # sum_of_broadcast folds that pair instead
    return fit(E["second"](like, g), node.out)


@rule(C, CAReduce)
def sum_of_broadcast(fgraph, node):
    """sum(broadcast(c, x)) over all axes -> c * size(x) (c a scalar)"""
    op, src = node.op, node.inputs[0]
    if op.scalar_op != "add" or src.owner is None or type(src.owner.op) is not BroadcastLike:
        return None
    g, like = src.owner.inputs
    if g.ndim != 0 or len(op.axis) != src.ndim or op.keepdims:
        return None
    count = reduced_size(like, tuple(range(like.ndim)))
    dtype = node.out.dtype
    n = scalar_const(count, dtype) if isinstance(count, int) else cast(count, dtype)
    total = E["mul"](cast(g, dtype), n)
    return fit(total, node.out)


@rule(C, Reshape)
def reshape_reshape(fgraph, node):
    """reshape(reshape(x, s1), s2) -> reshape(x, s2)"""
    inner = node.inputs[0].owner
    if inner is not None and type(inner.op) is Reshape:
        return fit(node.op(inner.inputs[0], node.inputs[1]), node.out)
