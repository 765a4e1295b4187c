"""Indexing: ``x[1:n, ::2]`` (basic, a view), ``x[idx_vector]`` / ``x[mask]`` (advanced, a copy),
and ``set_subtensor`` / ``inc_subtensor`` (a new tensor with the indexed part replaced/increased).

An index is stored in the op as ``idx_list``, one entry per index item: None (newaxis), "i" (an
integer scalar), "a" (an integer array), "b" (a boolean mask) or a slice written as three flags
(start, stop, step present). Every value (constants included) is an input of the node, in order.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Apply, Constant, Op, Variable
from symgraph.tensor.alloc import zeros_like
from symgraph.tensor.elemwise import FUNCTIONS, _fmt, broadcast_shapes, broadcast_static_shape, cast, switch
from symgraph.tensor.reduction import sum as tsum
from symgraph.tensor.reduction import sum_to
from symgraph.tensor.shape import MakeVector, Shape, as_int_entry, constant_int, entry_var, sfold, shape_i
from symgraph.tensor.type import (
    TensorConstant,
    TensorType,
    TensorVariable,
    as_tensor_variable,
    constant,
    is_inexact,
    tensor_inputs,
)

__all__ = ["subtensor", "set_subtensor", "inc_subtensor", "Subtensor", "AdvancedSubtensor", "IncSubtensor"]

FULL = (False, False, False)  # the slice ``:``


def _n_parts(e: Any) -> int:
    return sum(e) if isinstance(e, tuple) else 0 if e is None else 1


def _entry_str(e: Any) -> str:
    if isinstance(e, tuple):
        s = ":".join("?" if f else "" for f in e)
        return s[:-1] if s.endswith(":") and not e[2] else s
    return {None: "newaxis", "i": "?", "a": "[?]", "b": "[mask]"}[e]


# ---------------------------------------------------------------- output shapes
def slice_length(n: Any, start: Any, stop: Any, step: Any) -> Any:
    """len(range(n)[start:stop:step]) for int or symbolic n/start/stop/step (None = absent)."""
    parts = (n, start, stop, step)
    if all(p is None or isinstance(p, int) for p in parts) and n is not None:
        return len(range(*slice(start, stop, step).indices(n)))
    if start is None and stop is None and step in (None, 1):
        return n
    step = 1 if step is None else step

    def wrap(i, lo, hi):  # Python's rule: negative counts from the end, then clip to [lo, hi]
        w = i if isinstance(i, int) and i >= 0 else sfold("add", i, n) if isinstance(i, int) \
            else switch(FUNCTIONS["lt"](i, 0), i + n, i)
        return sfold("minimum", sfold("maximum", w, lo), hi)

    def forward():
        a = 0 if start is None else wrap(start, 0, n)
        b = n if stop is None else wrap(stop, 0, n)
        return sfold("maximum", 0, sfold("int_div", sfold("add", sfold("sub", b, a), sfold("sub", step, 1)), step))

    def backward():
        last = sfold("sub", n, 1)
        a = last if start is None else wrap(start, -1, last)
        b = -1 if stop is None else wrap(stop, -1, last)
        return sfold("maximum", 0, sfold("int_div", sfold("sub", sfold("sub", sfold("sub", a, b), step), 1),
                                         sfold("neg", step)))
    if isinstance(step, int):
        return forward() if step > 0 else backward()
    return switch(FUNCTIONS["gt"](step, 0), forward(), backward())


def _static_slice_length(n, start, stop, step):
    if any(isinstance(p, Variable) for p in (start, stop, step)):
        return n if start is None and stop is None and step is None else None
    return None if n is None else slice_length(n, start, stop, step)


def _known(p: Variable) -> Any:
    k = constant_int(p)
    return p if k is None else k


def index_shape(idx_list: tuple, xshape: Sequence, parts: Sequence[TensorVariable], slice_len: Callable,
                adv_shape: Callable, bcast: Callable) -> tuple:
    """Output shape of ``x[index]`` under numpy's rules, static or symbolic by the callbacks."""
    it = iter(parts)
    has_adv = any(e in ("a", "b") for e in idx_list)
    out: list = []
    adv: list = []
    adv_k: list[int] = []
    first, dim = 0, 0
    for k, e in enumerate(idx_list):
        if e is None:
            out.append(1)
        elif isinstance(e, tuple):
            vals = [_known(next(it)) if f else None for f in e]
            out.append(slice_len(xshape[dim], *vals))
            dim += 1
        elif e == "i" and not has_adv:
            next(it)
            dim += 1
        else:  # advanced: arrays, masks, and integers mixed with them (numpy treats those as 0-d arrays)
            p = next(it)
            if not adv_k:
                first = len(out)
            adv_k.append(k)
            adv.append(adv_shape(e, p))
            dim += p.ndim if e == "b" else 1
    out += list(xshape[dim:])
    if adv:
        b = list(bcast(adv))
        out = out[:first] + b + out[first:] if adv_k == list(range(adv_k[0], adv_k[-1] + 1)) else b + out
    return tuple(out)


def _static_adv_shape(kind: str, p: TensorVariable) -> tuple:
    if kind == "b":
        return (int(np.count_nonzero(p.data)) if isinstance(p, Constant) else None,)
    return p.type.shape


def _consumed(idx_list: tuple, parts: Sequence[TensorVariable]) -> int:
    it = iter(parts)
    n = 0
    for e in idx_list:
        ps = [next(it) for _ in range(_n_parts(e))]
        n += 0 if e is None else ps[0].ndim if e == "b" else 1
    return n


_KIND_NAMES = {"s": "slice bound (0-d integer)", "i": "integer index (0-d integer)",
               "a": "integer index array", "b": "boolean mask"}


def _check_parts(op: _IndexOp, x: TensorVariable, parts: Sequence[Any]) -> list[TensorVariable]:
    """Validate the index inputs of an indexing node against its idx_list."""
    parts = [as_tensor_variable(p) for p in parts]
    kinds = [k for e in op.idx_list for k in ((["s"] * sum(e)) if isinstance(e, tuple) else [] if e is None else [e])]
    if len(kinds) != len(parts):
        raise GraphTypeError(f"{op} takes {len(kinds)} index inputs, got {len(parts)}")
    for kind, p in zip(kinds, parts):
        integer, ok = p.type.numpy_dtype.kind in "iu", {"s": p.ndim == 0, "i": p.ndim == 0, "a": p.ndim >= 1}
        if not (p.dtype == "bool" and p.ndim >= 1 if kind == "b" else integer and ok[kind]):
            raise GraphTypeError(f"{op}: index input {p} ({p.type}) is not a valid {_KIND_NAMES[kind]}")
    if _consumed(op.idx_list, parts) > x.ndim:
        raise IndexError(f"too many indices for {x} ({x.type}): it has {x.ndim} dimensions, the index "
                         f"uses {_consumed(op.idx_list, parts)}")
    return parts


# ---------------------------------------------------------------- ops
class _IndexOp(Op):
    """Shared parts of the indexing ops: the index structure and its numpy form."""

    __props__: tuple[str, ...] = ("idx_list",)

    def __init__(self, idx_list: Sequence):
        self.idx_list = tuple(tuple(bool(f) for f in e) if isinstance(e, (tuple, list)) else e for e in idx_list)
        self.advanced = any(e in ("a", "b") for e in self.idx_list)

    def __str__(self) -> str:
        return f"{type(self).__name__}{{{', '.join(map(_entry_str, self.idx_list))}}}"

    def np_index(self, values: Sequence) -> tuple:
        """The numpy index tuple for these index input values."""
        it = iter(values)
        idx: list[Any] = []
        for e in self.idx_list:
            if isinstance(e, tuple):
                idx.append(slice(*(int(next(it)) if f else None for f in e)))
            elif e is None:
                idx.append(None)
            else:
                v = next(it)
                idx.append(int(v) if e == "i" else v)
        return tuple(idx)

    def out_static_shape(self, x: TensorVariable, parts: Sequence[TensorVariable]) -> tuple:
        return index_shape(self.idx_list, x.type.shape, parts, _static_slice_length, _static_adv_shape,
                           lambda shapes: broadcast_static_shape(shapes, "index arrays"))

    def out_symbolic_shape(self, node: Apply, input_shapes: list, parts_at: int) -> tuple:
        parts = tensor_inputs(node)[parts_at:]
        shapes = dict(zip(map(id, parts), input_shapes[parts_at:]))

        def adv_shape(kind, p):
            if kind != "b":
                return shapes[id(p)]
            k = _static_adv_shape(kind, p)[0]
            return (k if k is not None else cast(tsum(p), "int64"),)

        def bcast(adv):
            static = broadcast_static_shape([_static_adv_shape(e, p) for e, p in self._adv_parts(parts)])
            return broadcast_shapes(adv, static)
        return index_shape(self.idx_list, input_shapes[0], parts, slice_length, adv_shape, bcast)

    def _adv_parts(self, parts: list) -> list:
        it, out = iter(parts), []
        for e in self.idx_list:
            ps = [next(it) for _ in range(_n_parts(e))]
            if e in ("a", "b") or (e == "i" and self.advanced):
                out.append((e, ps[0]))
        return out


class Subtensor(_IndexOp):
    """Basic indexing (integers, slices, newaxis): a view of the input."""

    view_map = {0: 0}

    def make_node(self, x: Any, *parts: Any) -> Apply:
        x = as_tensor_variable(x)
        if self.advanced:
            raise GraphTypeError(f"{self} holds array indices; use AdvancedSubtensor")
        checked = _check_parts(self, x, parts)
        return Apply(self, [x, *checked], [TensorType(x.dtype, self.out_static_shape(x, checked)).make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [np.asarray(inputs[0][self.np_index(inputs[1:])])]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        x, parts = inputs[0], inputs[1:]
        gx = IncSubtensor(self.idx_list)(zeros_like(x), output_grads[0], *parts) if is_inexact(x) else None
        return [gx] + [None] * len(parts)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [self.out_symbolic_shape(node, input_shapes, 1)]


class AdvancedSubtensor(Subtensor):
    """Indexing with integer arrays and/or boolean masks (numpy semantics): a copy."""

    view_map = {}

    def make_node(self, x: Any, *parts: Any) -> Apply:
        x = as_tensor_variable(x)
        checked = _check_parts(self, x, parts)
        return Apply(self, [x, *checked], [TensorType(x.dtype, self.out_static_shape(x, checked)).make_variable()])


class IncSubtensor(_IndexOp):
    """``x`` with ``x[index]`` increased by ``y`` (repeated array indices accumulate), or set to ``y``."""

    __props__ = ("idx_list", "set_instead_of_inc")

    def __init__(self, idx_list: Sequence, set_instead_of_inc: bool = False):
        super().__init__(idx_list)
        self.set_instead_of_inc = bool(set_instead_of_inc)

    def __str__(self) -> str:  # SetSubtensor{...} or IncSubtensor{...}, as PyTensor prints them
        entries = super().__str__()[len(type(self).__name__):]
        return ("Set" if self.set_instead_of_inc else "Inc") + "Subtensor" + entries

    def make_node(self, x: Any, y: Any, *parts: Any) -> Apply:
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        checked = _check_parts(self, x, parts)
        what = "set_subtensor" if self.set_instead_of_inc else "inc_subtensor"
        if y.dtype != x.dtype:
            if not ((isinstance(y, TensorConstant) and y.weak) or np.can_cast(y.dtype, x.dtype, "safe")):
                raise GraphTypeError(f"{what}: the value {y} ({y.type}) cannot be safely cast to the dtype of "
                                     f"{x} ({x.type}); cast it first")
            y = constant(np.asarray(y.data, dtype=x.dtype)) if isinstance(y, TensorConstant) else cast(y, x.dtype)
        sub = self.out_static_shape(x, checked)
        padded = (None,) * (len(sub) - y.ndim) + y.type.shape
        bad = y.ndim > len(sub) or any(ys not in (None, 1) and ss is not None and ss != ys
                                       for ys, ss in zip(padded, sub))
        if bad:
            raise ShapeError(f"{what}: a value of shape {_fmt(y.type.shape)} cannot be broadcast to the "
                             f"indexed part of {x}, of shape {_fmt(sub)}")
        return Apply(self, [x, y, *checked], [x.type.make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        x, y, idx = inputs[0], inputs[1], self.np_index(inputs[2:])
        out = np.array(x)  # a copy (also of a numpy scalar)
        if self.set_instead_of_inc:
            out[idx] = y
        elif self.advanced:
            np.add.at(out, idx, y)
        else:
            out[idx] += y
        return [out]

    def L_op(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x, y, *parts), (g,) = inputs, output_grads
        sub = _index_op(self.idx_list)
        if self.set_instead_of_inc:
            gx = IncSubtensor(self.idx_list, True)(g, constant(np.zeros((), g.dtype)), *parts)
        else:
            gx = g
        gy = sum_to(sub(g, *parts), y)
        return [gx if is_inexact(x) else None, gy if is_inexact(y) else None] + [None] * len(parts)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        return [input_shapes[0]]


def _index_op(idx_list: tuple) -> _IndexOp:
    return (AdvancedSubtensor if any(e in ("a", "b") for e in idx_list) else Subtensor)(idx_list)


# ---------------------------------------------------------------- user functions
def _classify(item: Any, what: str) -> tuple:
    """One user index item as (idx_list entry, [index input variables])."""
    if item is None:
        return None, []
    if isinstance(item, slice):
        comps = (item.start, item.stop, item.step)
        if constant_int(item.step) == 0:
            raise ValueError(f"{what}: slice step cannot be zero")
        return tuple(c is not None for c in comps), [entry_var(as_int_entry(c, what)) for c in comps if c is not None]
    if isinstance(item, (bool, np.bool_)):
        raise IndexError(f"{what}: a boolean scalar is not a supported index; use a boolean array mask")
    if constant_int(item) is not None:
        return "i", [entry_var(constant_int(item))]
    if isinstance(item, Variable):
        v = as_tensor_variable(item)
    else:
        arr = np.asarray(item)
        v = constant(arr.astype("int64") if arr.size == 0 and arr.dtype.kind == "f" else arr)
    kind = v.type.numpy_dtype.kind
    if v.ndim == 0 and kind in "iu":
        return "i", [cast(v, "int64") if v.dtype != "int64" else v]
    if v.ndim >= 1 and kind in "iub":
        return ("b" if kind == "b" else "a"), [v]
    raise IndexError(f"{what}: indices must be integers, slices, None, Ellipsis, integer arrays or boolean "
                     f"masks, got {v} ({v.type})")


def _normalize(x: TensorVariable, index: Any) -> tuple[tuple, list]:
    """Turn a user index into (idx_list, parts), expanding Ellipsis and checking static bounds."""
    what = f"indexing {x} ({x.type})"
    items = index if isinstance(index, tuple) else (index,)
    if sum(i is Ellipsis for i in items) > 1:
        raise IndexError(f"{what}: an index can only have a single Ellipsis")
    classified = [None if i is Ellipsis else _classify(i, what) for i in items]
    used = sum(0 if c is None or c[0] is None else c[1][0].ndim if c[0] == "b" else 1 for c in classified)
    if used > x.ndim:
        raise IndexError(f"too many indices for {x} ({x.type}): it has {x.ndim} dimensions, the index uses {used}")
    idx_list, parts, dim = [], [], 0
    for c in classified:
        entries = [(FULL, [])] * (x.ndim - used) if c is None else [c]
        for e, ps in entries:
            _check_static_bounds(x, e, ps, dim, what)
            idx_list.append(e)
            parts += ps
            dim += 0 if e is None else ps[0].ndim if e == "b" else 1
    return tuple(idx_list), parts


def _check_static_bounds(x: TensorVariable, e: Any, ps: list, dim: int, what: str) -> None:
    if e not in ("i", "a", "b") or not isinstance(ps[0], TensorConstant):
        return
    if e == "b":
        mshape, xs = ps[0].type.shape, x.type.shape[dim:dim + ps[0].ndim]
        if any(s is not None and s != m for m, s in zip(mshape, xs)):
            raise IndexError(f"{what}: boolean mask of shape {_fmt(mshape)} does not match dimensions "
                             f"{dim}..{dim + len(mshape) - 1} of shape {_fmt(x.type.shape)}")
        return
    n, data = x.type.shape[dim], np.asarray(ps[0].data)
    if n is not None and data.size and (data.min() < -n or data.max() >= n):
        bad = data[(data < -n) | (data >= n)].flat[0]
        raise IndexError(f"{what}: index {bad} is out of bounds for axis {dim} with size {n}")


def subtensor(x: Any, index: Any) -> TensorVariable:
    """``x[index]`` with numpy semantics (used by TensorVariable.__getitem__)."""
    x = as_tensor_variable(x)
    idx_list, parts = _normalize(x, index)
    if idx_list == ("i",) and isinstance(parts[0], Constant) and x.owner is not None:
        k = constant_int(parts[0])  # (an "i" index is a 0-d integer: known here)
        if k is not None and isinstance(x.owner.op, Shape):  # x.shape[k] -> shape_i
            return shape_i(x.owner.inputs[0], k)
        if k is not None and isinstance(x.owner.op, MakeVector):
            return tensor_inputs(x.owner)[k]
    if isinstance(x, TensorConstant) and x.ndim == 1 and x.dtype == "int64" and idx_list == ("i",) \
            and isinstance(parts[0], Constant):  # an entry of a constant shape: fold it now
        return constant(np.asarray(x.data[constant_int(parts[0])]))
    return _index_op(idx_list)(x, *parts)


def _owner_index(x_sub: Any, what: str) -> tuple[Variable, tuple, list]:
    node = getattr(x_sub, "owner", None)
    if node is None or not isinstance(node.op, Subtensor):
        raise TypeError(f"{what}: the first argument must be an indexed tensor such as x[1:3] or x[idx], "
                        f"got {x_sub}")
    return node.inputs[0], node.op.idx_list, node.inputs[1:]


def set_subtensor(x_sub: Any, y: Any) -> TensorVariable:
    """A copy of ``x`` with ``x[idx]`` set to ``y``, called as ``set_subtensor(x[idx], y)``."""
    x, idx_list, parts = _owner_index(x_sub, "set_subtensor")
    return IncSubtensor(idx_list, True)(x, y, *parts)


def inc_subtensor(x_sub: Any, y: Any, set_instead_of_inc: bool = False) -> TensorVariable:
    """A copy of ``x`` with ``y`` added to ``x[idx]`` (repeats accumulate), called as ``inc_subtensor(x[idx], y)``."""
    x, idx_list, parts = _owner_index(x_sub, "inc_subtensor")
    return IncSubtensor(idx_list, set_instead_of_inc)(x, y, *parts)
