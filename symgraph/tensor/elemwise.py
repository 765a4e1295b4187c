"""Elemwise (any row of the scalar table, broadcast over tensors) and DimShuffle (transpose,
add broadcastable axes, drop length-1 axes), plus the T.add/T.exp/... functions and the
elementwise conveniences that take parameters (cast, switch/where, clip)."""
from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from symgraph import scalar
from symgraph.config import config
from symgraph.errors import GradientError, GraphTypeError, ShapeError
from symgraph.graph.basic import Apply, Op
from symgraph.scalar import ZERO, ScalarOp, dtype_name
from symgraph.tensor.type import (
    TensorConstant,
    TensorType,
    TensorVariable,
    as_tensor_variable,
    constant,
    is_inexact,
    tensor_outputs,
)


def broadcast_static_shape(shapes: Sequence[tuple], what: str = "operands") -> tuple:
    """numpy broadcasting on static shapes; raises ShapeError when a mismatch is certain."""
    ndim = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for d in range(ndim):
        dims = [s[d] for s in padded]
        known = {k for k in dims if k is not None and k != 1}
        if len(known) > 1:
            raise ShapeError(f"{what} cannot broadcast: shapes {[_fmt(s) for s in shapes]} "
                             f"disagree in dimension {d} (lengths {sorted(known)})")
        out.append(known.pop() if known else (1 if all(k == 1 for k in dims) else None))
    return tuple(out)


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Elemwise(Op):
    """Apply one scalar-table op to every element, with numpy broadcasting."""

    __props__ = ("scalar_op",)

    def __init__(self, scalar_op: ScalarOp):
        self.scalar_op = scalar_op

    def __str__(self) -> str:
        return self.scalar_op.name

    def make_node(self, *args: Any) -> Apply:
        sop = self.scalar_op
        if len(args) != sop.nin:
            raise GraphTypeError(f"{sop.name} takes {sop.nin} inputs, got {len(args)}")
        inputs = _unify_weak([as_tensor_variable(i) for i in args], sop)
        try:
            dtype = sop.out_dtype(*(i.dtype for i in inputs))
        except TypeError as e:
            raise GraphTypeError(str(e)) from None
        shape = broadcast_static_shape([i.type.shape for i in inputs], f"the inputs of {sop.name}")
        return Apply(self, inputs, [TensorType(dtype, shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        with np.errstate(all="ignore"):
            out = self.scalar_op.np_fn(*inputs)
        return [np.asarray(out, dtype=tensor_outputs(node)[0].dtype)]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        rule = self.scalar_op.grad
        if rule == ZERO:
            return [None] * len(inputs)
        if rule is None:
            raise GradientError(f"{self.scalar_op.name} has no gradient")
        grads = rule(RULE_NAMESPACE, inputs, outputs[0], output_grads[0])  # output-shaped: sg.grad sums them
        return [None if g is None or not is_inexact(x) or isinstance(x, TensorConstant) else g
                for g, x in zip(grads, inputs)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [broadcast_shapes(input_shapes, tensor_outputs(node)[0].type.shape)]


def broadcast_shapes(input_shapes: Sequence[tuple], static_out_shape: Sequence[int | None]) -> tuple:
    """Symbolic output shape of numpy broadcasting (shapes are tuples of ints and 0-d int
    variables; the static output shape decides the dimensions it knows)."""
    ndim = len(static_out_shape)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in input_shapes]
    out = []
    for d, static in enumerate(static_out_shape):
        if static is not None:
            out.append(static)
            continue
        cands = list({id(s[d]): s[d] for s in padded if not (isinstance(s[d], int) and s[d] == 1)}.values())
        ints = [c for c in cands if isinstance(c, int)]
        if ints or not cands:
            out.append(ints[0] if ints else 1)
            continue
        r = cands[0]
        for c in cands[1:]:  # a length-1 dim takes the other's length
            r = switch(ELEMWISE_OPS["eq"](r, 1), c, r)
        out.append(r)
    return tuple(out)


def _unify_weak(inputs: list, sop: ScalarOp) -> list:
    """Give Python-number constants the dtype numpy would compute in (NEP 50 weak scalars)."""
    weak = [isinstance(i, TensorConstant) and i.weak for i in inputs]
    if not any(weak) or all(weak):
        return inputs
    strong = [np.dtype(i.dtype) for i, w in zip(inputs, weak) if not w]
    pyvals = [i.data.item() for i, w in zip(inputs, weak) if w]
    if sop.name == "switch":  # the condition does not take part in the branches' dtype
        strong = [np.dtype(i.dtype) for k, (i, w) in enumerate(zip(inputs, weak)) if not w and k > 0]
        pyvals = [i.data.item() for k, (i, w) in enumerate(zip(inputs, weak)) if w and k > 0]
    try:
        dtype = np.result_type(*strong, *pyvals) if strong else None
    except (OverflowError, TypeError) as e:
        raise GraphTypeError(f"{sop.name}: a Python number does not fit the tensor's dtype ({e})") from None
    out = []
    for k, (i, w) in enumerate(zip(inputs, weak)):
        if w and dtype is not None and not (sop.name == "switch" and k == 0):
            try:
                i = constant(np.asarray(i.data.item(), dtype=dtype))
            except OverflowError as e:
                raise GraphTypeError(f"{sop.name}: the Python number {i.data.item()} does not fit "
                                     f"dtype {dtype} ({e})") from None
        out.append(i)
    return out


class DimShuffle(Op):
    """Reorder axes, insert broadcastable ones ('x') and drop length-1 ones: a view, no copy.

    ``new_order`` lists, for each output axis, the input axis it comes from or 'x'.
    """

    __props__ = ("input_ndim", "new_order")
    view_map = {0: 0}

    def __init__(self, input_ndim: int, new_order: Sequence):
        self.input_ndim = int(input_ndim)
        self.new_order = tuple(o if o == "x" else int(o) for o in new_order)
        kept = [o for o in self.new_order if o != "x"]
        if len(set(kept)) != len(kept) or any(not 0 <= o < self.input_ndim for o in kept):
            raise ValueError(f"bad dimshuffle pattern {self.new_order} for a {input_ndim}-d input")
        self.drop = tuple(d for d in range(self.input_ndim) if d not in kept)
        self.shuffle = tuple(kept)

    def __str__(self) -> str:
        return "DimShuffle{" + ",".join(map(str, self.new_order)) + "}"

    def make_node(self, x: Any) -> Apply:
        x = as_tensor_variable(x)
        if x.ndim != self.input_ndim:
            raise GraphTypeError(f"{self} expects a {self.input_ndim}-d input, got {x.type}")
        for d in self.drop:
            if x.type.shape[d] != 1:
                raise ShapeError(f"{self} drops dimension {d} of {x} ({x.type}), which is not known to "
                                 f"have length 1; declare it with shape 1 or use T.squeeze after reshape")
        shape = tuple(1 if o == "x" else x.type.shape[o] for o in self.new_order)
        return Apply(self, [x], [TensorType(x.dtype, shape).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        (x,) = inputs
        if self.drop:
            x = x[tuple(0 if d in self.drop else slice(None) for d in range(self.input_ndim))]
            remaining = [d for d in range(self.input_ndim) if d not in self.drop]
            perm = [remaining.index(d) for d in self.shuffle]
        else:
            perm = list(self.shuffle)
        if perm != sorted(perm):
            x = x.transpose(perm)
        return [x[tuple(None if o == "x" else slice(None) for o in self.new_order)]]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,), (g,) = inputs, output_grads
        if not is_inexact(x):
            return [None]
        # the axes this op inserted have length 1 in g (sg.grad keeps gradients in their
        # variable's broadcast pattern): dropping them is their sum. Then g's axes are
        # self.shuffle: put them back in input order, re-adding the dropped length-1 axes.
        kept = [k for k, o in enumerate(self.new_order) if o != "x"]
        g = DimShuffle(len(self.new_order), kept)(g) if len(kept) < len(self.new_order) else g
        inv = ["x" if d in self.drop else self.shuffle.index(d) for d in range(self.input_ndim)]
        return [DimShuffle(len(self.shuffle), inv)(g)]

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        (s,) = input_shapes
        return [tuple(1 if o == "x" else s[o] for o in self.new_order)]


def dimshuffle(x: Any, pattern: Sequence) -> TensorVariable:
    """``x.dimshuffle(pattern)``: e.g. (1, 0) transposes, ('x', 0) makes a row."""
    x = as_tensor_variable(x)
    return DimShuffle(x.ndim, pattern)(x)


def transpose(x: Any, axes: Sequence[int] | None = None) -> TensorVariable:
    """Reverse the axes (or permute them as ``axes`` says), like numpy.transpose."""
    x = as_tensor_variable(x)
    if axes is None:
        axes = tuple(range(x.ndim))[::-1]
    axes = tuple(a % x.ndim if x.ndim else a for a in axes)
    return DimShuffle(x.ndim, axes)(x)


ELEMWISE_OPS: dict[str, Elemwise] = {name: Elemwise(sop) for name, sop in scalar.SCALAR_OPS.items()}
for _name, _op in ELEMWISE_OPS.items():
    _op.__name__ = _op.__qualname__ = _name  # type: ignore[attr-defined]
# T.add, T.exp, ... are the Elemwise ops themselves, as in Theano and PyTensor: call one to build a
# node, and compare a node's op with it in a rewrite (``node.op == T.true_div``).
FUNCTIONS: dict[str, Any] = {name: op for name, op in ELEMWISE_OPS.items()
                             if not name.startswith("cast_") and not op.scalar_op.is_random}


def cast(x: Any, dtype: str) -> TensorVariable:
    """``x`` converted to ``dtype`` (no-op when it already has it); 'floatX' means config.floatX."""
    x = as_tensor_variable(x)
    dtype = config.floatX if dtype == "floatX" else dtype_name(dtype)
    if x.dtype == dtype:
        return x
    return ELEMWISE_OPS[f"cast_{dtype}"](x)


def switch(cond: Any, if_true: Any, if_false: Any) -> TensorVariable:
    """Elementwise ``if_true`` where ``cond`` holds, else ``if_false`` (numpy.where)."""
    cond = as_tensor_variable(cond)
    if cond.dtype != "bool":
        cond = ELEMWISE_OPS["neq"](cond, 0)
    return ELEMWISE_OPS["switch"](cond, if_true, if_false)


def clip(x: Any, lo: Any, hi: Any) -> TensorVariable:
    """Limit ``x`` to [lo, hi] elementwise."""
    return ELEMWISE_OPS["clip"](x, lo, hi)


def round(x: Any, mode: str | None = None) -> TensorVariable:
    """Round elementwise to the nearest integer: ``mode='half_to_even'`` (numpy's rint, the default)
    or ``'half_away_from_zero'`` (C's round, Theano's old default)."""
    if mode in (None, "half_to_even"):
        return ELEMWISE_OPS["round"](x)
    if mode == "half_away_from_zero":
        return ELEMWISE_OPS["round_half_away_from_zero"](x)
    raise ValueError(f"round: mode must be 'half_to_even' or 'half_away_from_zero', got {mode!r}")


RULE_NAMESPACE = SimpleNamespace(**{**FUNCTIONS, "cast": cast, "switch": switch, "clip": clip})
"""What the scalar table's gradient rules receive as ``T``: every elementwise function."""
