"""What every linear-algebra op shares: input checks and dtypes, numpy-style batching over leading
axes, and the error policy.

Batching: an op works on the last two axes of its matrix inputs (the last one or two of a
right-hand side ``b``); leading axes are a batch and broadcast like numpy's. numpy's linalg
functions are gufuncs that batch by themselves (``gufunc = True``); scipy's are called once per
matrix of the batch.

Errors: a matrix the op cannot handle (not positive definite, singular, no convergence) raises
:class:`symgraph.errors.LinAlgError` naming the op, the failing matrix of the batch, the input
shapes and the user line that built the node. With ``on_error='nan'`` the outputs of that matrix
are NaN instead and the other matrices of the batch are unaffected.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError, LinAlgError, ShapeError, node_context
from symgraph.graph.basic import Apply, Op
from symgraph.tensor.elemwise import _fmt, broadcast_shapes, broadcast_static_shape, cast
from symgraph.tensor.type import TensorVariable, as_tensor_variable, tensor_inputs, tensor_outputs

ON_ERROR = ("raise", "nan")


def linalg_dtype(*dtypes: str) -> str:
    """The float dtype an op computes in: numpy's result type, integers and bools as float64 (as
    numpy.linalg does), float16 as float32 (LAPACK has no half precision)."""
    for d in dtypes:
        if d.startswith("complex"):
            raise GraphTypeError(f"linalg: complex matrices are not supported (got {d})")
    dt = np.result_type(*dtypes)
    if dt.kind in "biu":
        return "float64"
    return "float32" if dt == np.float16 else dt.name


def as_matrices(*xs: Any) -> list[TensorVariable]:
    """``xs`` as tensors of one linalg dtype, each with at least two dimensions."""
    xs_t = [as_tensor_variable(x) for x in xs]
    dtype = linalg_dtype(*[x.dtype for x in xs_t])
    out = []
    for x in xs_t:
        out.append(x if x.dtype == dtype else cast(x, dtype))
    return out


def check_matrix(x: TensorVariable, what: str, square: bool = True) -> None:
    """A GraphTypeError unless ``x`` is a float (stack of) matrix; ShapeError when it is certainly not square."""
    if x.ndim < 2:
        raise GraphTypeError(f"{what}: expected a matrix or a stack of matrices (at least 2 dimensions), "
                             f"got {x} of type {x.type}")
    if x.dtype not in ("float32", "float64"):
        raise GraphTypeError(f"{what}: expected float32 or float64 matrices, got {x.type} "
                             f"(the T.linalg functions convert other dtypes)")
    n, m = x.type.shape[-2:]
    if square and n is not None and m is not None and n != m:
        raise ShapeError(f"{what}: expected square matrices, got shape {_fmt(x.type.shape)}")


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'nan', got {on_error!r}")
    return on_error


def b_core_ndim(b: TensorVariable, b_ndim: int | None) -> int:
    """How many trailing axes of a right-hand side are one problem: numpy's rule (a 1-d ``b`` is a
    vector, anything else a stack of matrices) unless ``b_ndim`` says (1 for stacks of vectors)."""
    if b_ndim is None:
        return 1 if b.ndim == 1 else 2
    if b_ndim not in (1, 2) or b.ndim < b_ndim:
        raise GraphTypeError(f"b_ndim must be 1 (vectors) or 2 (matrices) and at most b's {b.ndim} "
                             f"dimensions, got {b_ndim}")
    return int(b_ndim)


class LinalgOp(Op):
    """Base of the linalg ops. Subclasses define ``core(*arrays) -> tuple of outputs`` for one
    problem (or a whole stack when ``gufunc``), ``core_ndims(node)`` (trailing axes per input that
    form one problem) and ``out_core_shapes(node, item_shapes)``; ``failure`` words what went wrong."""

    gufunc = False
    failure = "cannot be handled"
    on_error = "raise"
    square_inputs: tuple[int, ...] = (0,)  # inputs that must be square matrices
    rhs_input = False  # input 1 is a right-hand side whose length must match input 0's

    def __str__(self) -> str:
        shown = [f"{p}={getattr(self, p)}" for p in self.__props__ if p != "on_error"]
        if self.on_error != "raise":
            shown.append(f"on_error={self.on_error}")
        return f"{type(self).__name__}{{{', '.join(shown)}}}" if shown else type(self).__name__

    __repr__ = __str__

    def core_ndims(self, node: Apply) -> tuple[int, ...]:
        return tuple(2 for _ in node.inputs)

    def out_core_shapes(self, node: Apply, item_shapes: list[tuple]) -> list[tuple]:
        raise NotImplementedError

    # (each op's core takes its own arrays: ``core(self, x)``, ``core(self, a, b)`` ...; the gradual
    # signature lets the subclasses name them)
    def core(self, *arrays: Any, **kwargs: Any) -> tuple:
        raise NotImplementedError

    def perform(self, node: Apply, inputs: list) -> list:
        dtype = tensor_inputs(node)[0].dtype
        inputs = [np.asarray(x, dtype=dtype) for x in inputs]
        check_runtime_shapes(self, node, inputs)
        try:
            outs = self.core(*inputs) if self.gufunc else self._each(node, inputs, catch=False)
        except np.linalg.LinAlgError:
            outs = self._each(node, inputs, catch=True)
        return [np.asarray(o, dtype=v.dtype) for o, v in zip(outs, tensor_outputs(node))]

    def _each(self, node: Apply, inputs: list, catch: bool) -> list:
        """Call ``core`` once per matrix of the batch; with ``catch``, a failing matrix raises
        LinAlgError naming it (or gets NaN outputs with on_error='nan')."""
        nds = self.core_ndims(node)
        batch = np.broadcast_shapes(*(x.shape[:x.ndim - k] for x, k in zip(inputs, nds)))
        items = [np.broadcast_to(x, batch + x.shape[x.ndim - k:]) for x, k in zip(inputs, nds)]
        shapes = self.out_core_shapes(node, [x.shape[x.ndim - k:] for x, k in zip(inputs, nds)])
        outs = [np.empty(batch + tuple(s), dtype=v.dtype) for s, v in zip(shapes, tensor_outputs(node))]
        for idx in np.ndindex(*batch):
            try:
                res = self.core(*(x[idx] for x in items))
            except np.linalg.LinAlgError as e:
                if not catch:
                    raise
                if self.on_error == "nan":
                    res = tuple(np.full(s, np.nan) for s in shapes)
                else:
                    raise linalg_error(self, node, inputs, idx, str(e)) from None
            for o, r in zip(outs, res):
                o[idx] = r
        return outs


def linalg_error(op: LinalgOp, node: Apply, inputs: list, idx: tuple, why: str) -> LinAlgError:
    """The error of a failed matrix: which one of the batch, what LAPACK said, and the node."""
    where = f"matrix {', '.join(map(str, idx))} of the batch" if idx else "the matrix"
    hint = "; pass on_error='nan' to get NaN for such matrices instead" if "on_error" in op.__props__ else ""
    return LinAlgError(f"{op}: {where} {op.failure} ({why.strip().rstrip('.')}){hint}\n"
                       f"{node_context(node, inputs)}")


def check_runtime_shapes(op: LinalgOp, node: Apply, inputs: list) -> None:
    """ShapeError (naming the node) for non-square matrices, right-hand sides whose length differs
    from the matrix's, and batch axes that do not broadcast."""
    nds = op.core_ndims(node)
    for i in op.square_inputs:
        if inputs[i].shape[-1] != inputs[i].shape[-2]:
            raise ShapeError(f"{op}: expected square matrices, got shape {inputs[i].shape}\n"
                             f"{node_context(node, inputs)}")
    if len(inputs) > 1:
        try:
            np.broadcast_shapes(*(x.shape[:x.ndim - k] for x, k in zip(inputs, nds)))
        except ValueError:
            raise ShapeError(f"{op}: the batch axes of the inputs do not broadcast: shapes "
                             f"{[x.shape for x in inputs]}\n{node_context(node, inputs)}") from None
        a, b = inputs[0], inputs[1]
        if op.rhs_input and b.shape[b.ndim - nds[1]] != a.shape[-1]:
            raise ShapeError(f"{op}: the right-hand side has {b.shape[b.ndim - nds[1]]} rows but the matrix is "
                             f"{a.shape[-2]}x{a.shape[-1]}: shapes {a.shape} and {b.shape}\n"
                             f"{node_context(node, inputs)}")


def batch_shape(xs: Sequence[TensorVariable], nds: Sequence[int], what: str) -> tuple:
    """The static broadcast of the inputs' batch axes (ShapeError when they certainly disagree)."""
    return broadcast_static_shape([x.type.shape[:x.ndim - k] for x, k in zip(xs, nds)],
                                  f"the batch axes of {what}")


def symbolic_batch(input_shapes: list, nds: Sequence[int], static_batch: tuple) -> tuple:
    """Symbolic batch shape for infer_shape (numpy broadcasting of the leading axes)."""
    return broadcast_shapes([tuple(s)[:len(s) - k] for s, k in zip(input_shapes, nds)], static_batch)


__all__ = ["LinalgOp", "linalg_dtype", "as_matrices", "check_matrix", "check_on_error", "b_core_ndim",
           "linalg_error", "batch_shape", "symbolic_batch"]
