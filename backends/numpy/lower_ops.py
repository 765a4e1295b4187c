"""numpy lowerings for reductions, dot, nnet, shape ops and indexing: each node becomes one
numpy expression in the generated function (``backends/numpy/lowering.py`` explains the seam)."""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from symgraph.backends.numpy.lowering import LowerContext, lowers
from symgraph.compile.placement import HostFallback
from symgraph.graph.basic import Apply
from symgraph.graph.basic import Constant as _Constant
from symgraph.tensor import nnet as _nnet
from symgraph.tensor.alloc import Alloc, ARange
from symgraph.tensor.gradient_ops import BroadcastCheck, check_shape_vectors
from symgraph.tensor.math import Dot, MatMul, TensorDot
from symgraph.tensor.reduction import ArgReduce, BroadcastLike, CAReduce, ReducedSize
from symgraph.tensor.shape import Join, MakeVector, Reshape, Shape, Shape_i, constant_int
from symgraph.tensor.subtensor import AdvancedSubtensor, Subtensor
from symgraph.tensor.type import tensor_inputs, tensor_outputs

# --- reductions, dot, nnet ---

def _axis_kw(axis: tuple, keepdims: bool) -> str:
    kw = f"axis={axis!r}"
    return kw + ", keepdims=True" if keepdims else kw


@lowers(CAReduce)
def _careduce(node: Apply, ctx: LowerContext) -> str:
    op, (x,), out = node.op_as(CAReduce), ctx.ins, tensor_outputs(node)[0]
    kw = _axis_kw(op.axis, op.keepdims)
    if op.scalar_op in ("add", "mul") and out.dtype != tensor_inputs(node)[0].dtype:
        kw += f", dtype=np.{out.dtype}"
    if ctx.spare and op.scalar_op == "add":  # into given memory (a bucket's span) where it fits
        ndim = tensor_inputs(node)[0].ndim
        dims = [("1" if op.keepdims else None) if d in op.axis else f"{x}.shape[{d}]" for d in range(ndim)]
        kept = [d for d in dims if d is not None]
        want = "(" + ", ".join(kept) + ("," if len(kept) == 1 else "") + ")"
        return f"{ctx.ref(sum_into, 'sum_into')}({x}, {want}, {ctx.spare}, {kw})"
    if op.scalar_op in _UFUNC_REDUCE:  # what np.sum & co. call, without their Python wrapper (1-4 us)
        return f"np.{_UFUNC_REDUCE[op.scalar_op]}.reduce({x}, {kw})"
    return f"np.{op.np_fn.__name__}({x}, {kw})"


_UFUNC_REDUCE = {"add": "add", "mul": "multiply", "maximum": "maximum", "minimum": "minimum"}


def sum_into(x: np.ndarray, want: tuple, dest: np.ndarray | None, **kw: Any) -> np.ndarray:
    """``np.sum(x, **kw)`` (``want``: its shape), written into ``dest`` when that has exactly
    that shape (its dtype is the result's), else into a fresh array."""
    if dest is not None and dest.shape == want and x.__class__ is np.ndarray:
        return np.sum(x, out=dest, **kw)
    return np.sum(x, **kw)


@lowers(ArgReduce)
def _argreduce(node: Apply, ctx: LowerContext) -> str:
    op, (x,) = node.op_as(ArgReduce), ctx.ins
    keep = ", keepdims=True" if op.keepdims else ""
    return f"np.{op.np_fn.__name__}({x}, axis={op.axis}{keep})"


@lowers(ReducedSize)
def _reduced_size(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(ReducedSize)
    if len(ctx.ins) > 1:  # the count of a broadcast (a fused elementwise result's)
        return f"{ctx.ref(op.perform, 'reduced_size')}(None, [{', '.join(ctx.ins)}])[0]"
    dims = " * ".join(f"{ctx.ins[0]}.shape[{a}]" for a in op.axis) or "1"
    return f"np.int64({dims})"


@lowers(BroadcastLike)
def _broadcast_like(node: Apply, ctx: LowerContext) -> str:
    return f"np.broadcast_to({ctx.ins[0]}, np.shape({ctx.ins[1]}))"


@lowers(Dot)
def _dot(node: Apply, ctx: LowerContext) -> str:
    if ctx.spare:  # into given memory (a bucket's span) where it fits
        return f"{ctx.ref(dot_into, 'dot_into')}({ctx.ins[0]}, {ctx.ins[1]}, {ctx.spare})"
    return f"np.dot({ctx.ins[0]}, {ctx.ins[1]})"


def dot_into(a: np.ndarray, b: np.ndarray, spare: np.ndarray | None) -> np.ndarray:
    """``np.dot(a, b)``, written into ``spare`` when that has exactly the product's shape, dtype and
    layout (a matrix times a matrix or a vector, or a vector times a matrix, of one dtype)."""
    if spare is not None and a.dtype == b.dtype == spare.dtype and spare.flags.c_contiguous:
        if a.ndim == 2 and b.ndim == 2:
            fits = a.shape[1] == b.shape[0] and spare.shape == (a.shape[0], b.shape[1])
        elif a.ndim + b.ndim == 3:
            fits = a.shape[-1] == b.shape[0] and spare.shape == (a.shape[0] if a.ndim == 2 else b.shape[1],)
        else:
            fits = False
        if fits:
            return np.dot(a, b, out=spare)
    return np.dot(a, b)


@lowers(MatMul)
def _matmul(node: Apply, ctx: LowerContext) -> str:
    a, b = tensor_inputs(node)
    if a.ndim >= 3 and b.ndim == 2:  # a stack of matrices times one matrix (x_t U for every step)
        return f"{ctx.ref(matmul_stacked, 'matmul_stacked')}({ctx.ins[0]}, {ctx.ins[1]})"
    return f"np.matmul({ctx.ins[0]}, {ctx.ins[1]})"


def matmul_stacked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.matmul(a, b)`` for a C-ordered stack ``a`` times a matrix ``b`` as one BLAS product of
    ``a``'s rows viewed as one matrix: np.matmul runs one product per matrix of the stack (100
    32x128 times 128x128 floats: 1.5 ms against 0.7)."""
    if a.flags.c_contiguous and a.dtype == b.dtype and a.shape[-1] == b.shape[0]:
        return np.matmul(a.reshape(math.prod(a.shape[:-1]), a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[1:])
    return np.matmul(a, b)


@lowers(BroadcastCheck)
def _broadcast_check(node: Apply, ctx: LowerContext) -> str:
    """sg.grad's run-time broadcast check (symgraph/tensor/gradient_ops.py) on its shape vectors."""
    op = node.op_as(BroadcastCheck)
    fn = ctx.ref(functools.partial(_checked_one, op, np.ones((), op.dtype)), "broadcast_check")
    return f"{fn}({', '.join(ctx.ins)})"


def _checked_one(op: BroadcastCheck, one: np.ndarray, *shapes: Any) -> np.ndarray:
    """1 (a fresh 0-d array: a reader may write into it), once the shape vectors show no broadcast."""
    check_shape_vectors(op, shapes)
    return one.copy()


@lowers(TensorDot)
def _tensordot(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(TensorDot)
    n = len(op.axes_a)
    if n and tuple(op.axes_a) == tuple(op.axes_b) == tuple(range(n)):  # a sum over leading axes (BPTT's gradients)
        return f"{ctx.ref(contract_leading, 'contract_leading')}({ctx.ins[0]}, {ctx.ins[1]}, {n})"
    return f"np.tensordot({ctx.ins[0]}, {ctx.ins[1]}, axes=({op.axes_a!r}, {op.axes_b!r}))"


def contract_leading(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """``np.tensordot(a, b, axes=(range(n), range(n)))`` as one ``a2.T @ b2`` on the operands viewed
    as (leading elements, the rest). np.tensordot moves the contracted axes of ``a`` last, and
    an ``a`` that is not C-ordered there (a time-reversed sequence: BPTT's sum over steps of
    x_t^T dz_t) is then gathered with a transposition (0.75 ms for 100 x 32 x 128 floats); here
    such an ``a`` is at most copied row by row (0.12 ms), and BLAS reads ``a2.T`` in place."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[:n] != b.shape[:n]:
        return np.tensordot(a, b, axes=(tuple(range(n)), tuple(range(n))))  # its error names the mismatch
    k = math.prod(a.shape[:n])
    rest_a, rest_b = a.shape[n:], b.shape[n:]
    out = np.matmul(a.reshape(k, math.prod(rest_a)).T, b.reshape(k, math.prod(rest_b)))
    return out.reshape(rest_a + rest_b)


def _softmax_family(fn):
    def lower(node: Apply, ctx: LowerContext) -> str | None:
        if tensor_inputs(node)[0].dtype != tensor_outputs(node)[0].dtype:  # integer input: perform casts first
            return None
        return f"{ctx.ref(fn, fn.__name__)}({ctx.ins[0]}, {node.op_as(_nnet._AxisSoftmax).axis})"
    return lower


lowers(_nnet.Softmax)(_softmax_family(_nnet.np_softmax))
lowers(_nnet.LogSoftmax)(_softmax_family(_nnet.np_log_softmax))


@lowers(_nnet.OneHot)
def _one_hot(node: Apply, ctx: LowerContext) -> str:
    return f"{ctx.ref(_nnet.np_one_hot, 'one_hot')}({ctx.ins[0]}, np.shape({ctx.ins[1]})[-1])"


# --- shape ops and indexing ---


def _int_expr(var, name: str) -> str:
    """An integer constant written inline (``x[1:3]``), else the variable's name."""
    k = constant_int(var) if isinstance(var, _Constant) else None
    return name if k is None else str(k)


def _tuple(items: list[str]) -> str:
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


@lowers(Subtensor)
@lowers(AdvancedSubtensor)
def _subtensor(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(Subtensor)
    vals, items = iter(zip(node.inputs[1:], ctx.ins[1:])), []
    for e in op.idx_list:
        if e is None:
            items.append("None")
        elif isinstance(e, tuple):
            parts = [_int_expr(*next(vals)) if f else "" for f in e]
            items.append(":".join(parts) if e[2] else ":".join(parts[:2]))
        else:
            items.append(_int_expr(*next(vals)) if e == "i" else next(vals)[1])
    if tensor_outputs(node)[0].ndim == 0 or not items:  # x[1, 2, ...] is a 0-d view, x[1, 2] a numpy scalar
        items.append("...")
    return f"{ctx.ins[0]}[{', '.join(items)}]"


@lowers(Reshape)
def _reshape(node: Apply, ctx: LowerContext) -> str:
    vec = node.inputs[1]
    if isinstance(vec, _Constant):
        return f"{ctx.ins[0]}.reshape({tuple(int(k) for k in vec.data)!r})"
    return f"{ctx.ins[0]}.reshape({ctx.ins[1]})"


@lowers(Shape)
def _shape_op(node: Apply, ctx: LowerContext) -> str:
    return f"np.array({ctx.ins[0]}.shape, dtype=np.int64)"


@lowers(Shape_i)
def _shape_i(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(Shape_i)
    return f"np.int64({ctx.ins[0]}.shape[{op.i}])"


@lowers(MakeVector)
def _make_vector(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(MakeVector)
    return f"np.array({_tuple([_int_expr(v, n) for v, n in zip(node.inputs, ctx.ins)])}, dtype=np.{op.dtype})"


@lowers(Join)
def _join(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(Join)
    return f"np.concatenate({_tuple(ctx.ins)}, axis={op.axis})"


@lowers(Alloc)
def _alloc(node: Apply, ctx: LowerContext) -> str | None:
    if tensor_inputs(node)[0].ndim:  # a tensor value: perform checks its broadcasting
        return None
    dims = _tuple([_int_expr(v, n) for v, n in zip(node.inputs[1:], ctx.ins[1:])]) if ctx.ins[1:] else "()"
    return f"np.full({dims}, {ctx.ins[0]}, dtype=np.{tensor_outputs(node)[0].dtype})"


@lowers(ARange)
def _arange(node: Apply, ctx: LowerContext) -> str:
    op = node.op_as(ARange)
    args = ", ".join(_int_expr(v, n) for v, n in zip(node.inputs, ctx.ins))
    return f"np.arange({args}, dtype=np.{op.dtype})"


@lowers(HostFallback)
def _host_fallback(node: Apply, ctx: LowerContext) -> str | None:
    """A device backend's host fallback: the wrapped op's own numpy expression (or its perform)."""
    op = node.op_as(HostFallback)
    return ctx.expression(op.inner(node), ctx.ins)
