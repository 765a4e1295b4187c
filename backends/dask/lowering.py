"""How each op becomes dask arrays: ``TABLE`` maps Op classes to ``lower(node, ctx)``, which
returns a *builder* ``build(*values) -> [dask arrays]`` (values are dask arrays, or numpy values
for inputs known before the computation: constants and shapes), or None when the op has no
chunked lowering (the backend then runs its host code on one chunk, with a warning).

- fused elementwise nodes (Elemwise, Composite): one ``blockwise`` task per chunk running the
  numpy backend's code for the node (``kernels.Kernel``);
- reductions (CAReduce, and ReduceOf, a reduction of a fused program): ``da.reduction``, its
  chunk function the node's own numpy code with ``keepdims``, its combine and aggregate the
  reduction's numpy function; arg-reductions through dask's;
- Epilogue: its core (a product or a reduction), then its program blockwise;
- dot, matmul, tensordot, shape ops and indexing: dask's own;
- softmax and log-softmax: the softmax axis rechunked to one chunk, then blockwise.
"""
from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from symgraph.backends.dask.kernels import Kernel, chunk_type, make_kernel
from symgraph.compile.lowering import LoweringTable
from symgraph.graph.basic import Apply, Op
from symgraph.rng.draws import rows_of
from symgraph.tensor.alloc import Alloc, ARange
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import DimShuffle, Elemwise
from symgraph.tensor.fused import Epilogue, ReduceOf
from symgraph.tensor.gradient_ops import BroadcastCheck, check_shape_vectors
from symgraph.tensor.math import Dot, MatMul, TensorDot
from symgraph.tensor.nnet import LogSoftmax, Softmax, _AxisSoftmax
from symgraph.tensor.reduction import ArgReduce, BroadcastLike, CAReduce
from symgraph.tensor.shape import Join, Reshape
from symgraph.tensor.subtensor import AdvancedSubtensor, Subtensor
from symgraph.tensor.type import tensor_inputs, tensor_outputs

TABLE = LoweringTable("dask")
lowers = TABLE.register
Builder = Callable[..., list]


@dataclass
class DaskLowerContext:
    """What a dask lowering sees: which inputs are host values known before the computation."""
    eager: list[bool]

    def lower(self, node: Apply) -> Builder | None:
        """The builder of another (fresh) node, e.g. the core of an Epilogue."""
        fn = TABLE.lookup(node.op)
        return None if fn is None else fn(node, DaskLowerContext([False] * len(node.inputs)))


def meta(ndim: int, dtype: Any) -> np.ndarray:
    return np.empty((0,) * ndim, dtype=np.dtype(dtype))


def as_dask(value: Any) -> da.Array:
    """A dask array for ``value``: itself, or a host value as one chunk (named by its content)."""
    if isinstance(value, da.Array):
        return value
    a = np.asarray(value)
    return da.from_array(a, chunks=-1, name=f"sg-const-{tokenize(a.dtype.str, a.shape, a.tobytes())}")


def kernel_for(node: Apply, input_types: list | None = None) -> Kernel:
    """The numpy code of ``node``'s op on chunk-typed inputs (or ``input_types``)."""
    types = input_types if input_types is not None else [chunk_type(v.type) for v in node.inputs]
    return make_kernel(node.op, types, node.trace)


def _token(op: Op) -> str:
    """A readable prefix for the keys of ``op``'s tasks (``sg-composite``, ``sg-sum``)."""
    name = type(op).__name__.lower() if not isinstance(op, CAReduce) else op.fname
    return f"sg-{''.join(c if c.isalnum() else '-' for c in name)}"


# --- elementwise -------------------------------------------------------------------------------

def blockwise(kernel: Callable[..., Any], node: Apply, values: tuple, token: str) -> list:
    """One task per chunk running ``kernel`` on aligned blocks of ``values`` (broadcasting along
    length-1 axes, 0-d host values passed whole), one dask array per output of ``node``."""
    nd = max(o.ndim for o in tensor_outputs(node))
    args = _aligned(values, nd)
    outs = tensor_outputs(node)
    if len(outs) == 1:
        return [da.blockwise(kernel, tuple(range(nd)), *args, token=token, dtype=outs[0].dtype,
                             meta=meta(nd, outs[0].dtype))]
    both = da.blockwise(kernel, tuple(range(nd)), *args, token=token, meta=meta(nd, object))
    return [da.map_blocks(operator.getitem, both, k, token=f"{token}-out{k}", dtype=o.dtype,
                          meta=meta(o.ndim, o.dtype)) for k, o in enumerate(outs)]


@lowers(Elemwise, Composite)
def _elementwise(node: Apply, ctx: DaskLowerContext) -> Builder:
    kernel, token = kernel_for(node), _token(node.op)
    nd = max(o.ndim for o in tensor_outputs(node))  # blockwise's output axes
    if nd and isinstance(node.op, (Elemwise, Composite)) and Composite.of_node(node)[0].reads_index:
        # random draws: chunks of whole rows, each told its place
        rows = RowsKernel(kernel, nd)
        return lambda *values: blockwise(rows, node, split_by_rows(values, nd), f"{token}-rows")
    return lambda *values: blockwise(kernel, node, values, token)


class RowsKernel:
    """A kernel whose first argument is the chunk's row indices (an (n, 1, ...) block): it runs
    ``kernel`` on the rest within ``rows_of``, so a random draw computes its chunk's elements of
    the whole draw (the numbers do not depend on chunking)."""

    __slots__ = ("kernel", "ndim")

    def __init__(self, kernel: Kernel, ndim: int):
        self.kernel, self.ndim = kernel, ndim

    def __reduce__(self) -> tuple:
        return RowsKernel, (self.kernel, self.ndim)

    def __dask_tokenize__(self) -> tuple:
        return ("symgraph-rows", self.kernel.__dask_tokenize__(), self.ndim)

    def __call__(self, rows: np.ndarray, *chunks: Any) -> Any:
        with rows_of(int(rows.flat[0]) if rows.size else 0, rows.shape[0], self.ndim):
            return self.kernel(*chunks)


def split_by_rows(values: tuple, nd: int) -> tuple:
    """``values`` chunked along the first of ``nd`` output axes only (every other axis one chunk;
    no chunk of one row unless there is one row, so that a draw can tell a chunk of one row from a
    broadcast axis), preceded by the (n, 1, ...) array of row indices chunked alike."""
    n = max((v.shape[0] for v in values if np.ndim(v) == nd), default=1)
    lazy = next((v for v in values if isinstance(v, da.Array) and v.ndim == nd and v.shape[0] == n), None)
    sizes = list(lazy.chunks[0]) if lazy is not None else [n]
    while len(sizes) > 1 and min(sizes) < 2:  # merge a one-row chunk into its neighbour
        k = sizes.index(min(sizes))
        j = k - 1 if k else k + 1
        sizes[min(j, k)] = sizes[j] + sizes[k]
        del sizes[max(j, k)]
    out = []
    for v in values:
        if isinstance(v, da.Array) and v.ndim:
            full = v.ndim == nd and v.shape[0] == n and n > 1
            v = v.rechunk({d: (tuple(sizes) if d == 0 and full else -1) for d in range(v.ndim)})
        out.append(v)
    rows = da.arange(n, chunks=(tuple(sizes),), dtype=np.int64)[(slice(None),) + (None,) * (nd - 1)]
    return (rows, *out)


@lowers(DimShuffle)
def _dimshuffle(node: Apply, ctx: DaskLowerContext) -> Builder:
    op = node.op_as(DimShuffle)

    def build(x: Any) -> list:
        x = as_dask(x)
        if op.drop:
            x = x[tuple(0 if d in op.drop else slice(None) for d in range(op.input_ndim))]
            remaining = [d for d in range(op.input_ndim) if d not in op.drop]
            perm = [remaining.index(d) for d in op.shuffle]
        else:
            perm = list(op.shuffle)
        if perm != sorted(perm):
            x = x.transpose(perm)
        if "x" in op.new_order:
            x = x[tuple(None if o == "x" else slice(None) for o in op.new_order)]
        return [x]
    return build


# --- reductions ------------------------------------------------------------------------------

def _reduce(fn_name: str, out_dtype: str, x: np.ndarray, axis: Any = None, keepdims: bool = False,
            **_: Any) -> np.ndarray:
    """The combine/aggregate step of a reduction: numpy's ``fn_name`` over the partial results."""
    kw = {"dtype": out_dtype} if fn_name in ("sum", "prod") else {}
    return np.asarray(getattr(np, fn_name)(x, axis=axis, keepdims=keepdims, **kw), dtype=out_dtype)


def _chunk(kernel: Kernel, x: np.ndarray, axis: Any = None, keepdims: bool = True, **_: Any) -> np.ndarray:
    """The chunk step of a reduction: the node's numpy code (reducing with keepdims) on one block."""
    return kernel(x)


def _already_reduced(x: np.ndarray, axis: Any = None, keepdims: bool = True, **_: Any) -> np.ndarray:
    return x


def _keepdims_reduce(red: CAReduce, out_dtype: str) -> CAReduce:
    return CAReduce(red.scalar_op, red.axis, keepdims=True, dtype=out_dtype)


@lowers(CAReduce, ReduceOf)
def _reduction(node: Apply, ctx: DaskLowerContext) -> Builder:
    op, out = node.op, tensor_outputs(node)[0]
    red = op.reduce if isinstance(op, ReduceOf) else node.op_as(CAReduce)
    if not red.axis:
        return _elementwise(node, ctx)
    part = _keepdims_reduce(red, out.dtype)
    chunk_op = ReduceOf(part, op.program) if isinstance(op, ReduceOf) else part
    kernel = make_kernel(chunk_op, [chunk_type(v.type) for v in tensor_inputs(node)], node.trace, str(op))
    agg = partial(_reduce, red.np_fn.__name__, out.dtype)
    token, nd = _token(red), max(v.ndim for v in tensor_inputs(node))  # the reduced program's axes

    def build(*values: Any) -> list:
        lazy = [v for v in values if isinstance(v, da.Array)]
        chunk: Callable[..., np.ndarray]
        if len(values) == 1 and lazy:
            x, chunk = lazy[0], partial(_chunk, kernel)
        else:  # several inputs: the partial results blockwise, then the same tree of combines
            adjust = {a: (lambda n: 1) for a in red.axis}
            x = da.blockwise(kernel, tuple(range(nd)), *_aligned(values, nd), token=f"{token}-part",
                             adjust_chunks=adjust, dtype=out.dtype, meta=meta(nd, out.dtype))
            chunk = _already_reduced
        return [da.reduction(x, chunk=chunk, combine=partial(_reduce, red.np_fn.__name__, out.dtype),
                             aggregate=agg, axis=red.axis, keepdims=red.keepdims, dtype=out.dtype,
                             name=f"{token}-{tokenize(kernel, x.name)}", meta=meta(out.ndim, out.dtype),
                             concatenate=True)]
    return build


def _aligned(values: tuple, nd: int) -> list:
    """``da.blockwise``'s (array, index) argument pairs for ``values`` aligned to ``nd`` output axes
    (trailing axes match; 0-d host values are passed whole, with no index)."""
    args: list = []
    for v in values:
        if not isinstance(v, da.Array) and np.ndim(v) == 0:
            args += [np.asarray(v), None]
        else:
            a = as_dask(v)
            args += [a, tuple(range(nd - a.ndim, nd))]
    return args


@lowers(ArgReduce)
def _argreduce(node: Apply, ctx: DaskLowerContext) -> Builder:
    op = node.op_as(ArgReduce)
    fn = getattr(da, op.np_fn.__name__)
    return lambda x: [fn(as_dask(x), axis=op.axis, keepdims=op.keepdims).astype(tensor_outputs(node)[0].dtype)]


@lowers(Epilogue)
def _epilogue(node: Apply, ctx: DaskLowerContext) -> Builder | None:
    op = node.op_as(Epilogue)
    core, prog = op.parts(node.inputs)
    core.trace = prog.trace = node.trace
    core_build, prog_build = ctx.lower(core), _elementwise(prog, ctx)
    if core_build is None:
        return None

    def build(*values: Any) -> list:
        core_vals, prog_vals = op.split(list(values))
        prog_vals[op.slot] = core_build(*core_vals)[0]
        return prog_build(*prog_vals)
    return build


# --- products, softmax ----------------------------------------------------------------------------

@lowers(Dot)
def _dot(node: Apply, ctx: DaskLowerContext) -> Builder:
    return lambda a, b: [da.dot(as_dask(a), as_dask(b)).astype(tensor_outputs(node)[0].dtype, copy=False)]


@lowers(MatMul)
def _matmul(node: Apply, ctx: DaskLowerContext) -> Builder:
    return lambda a, b: [da.matmul(as_dask(a), as_dask(b)).astype(tensor_outputs(node)[0].dtype, copy=False)]


@lowers(TensorDot)
def _tensordot(node: Apply, ctx: DaskLowerContext) -> Builder:
    op = node.op_as(TensorDot)
    axes = (op.axes_a, op.axes_b)
    dtype = tensor_outputs(node)[0].dtype
    return lambda a, b: [da.tensordot(as_dask(a), as_dask(b), axes=axes).astype(dtype, copy=False)]


@lowers(Softmax, LogSoftmax)
def _softmax(node: Apply, ctx: DaskLowerContext) -> Builder:
    """The softmax axis must be whole in each block: rechunk it to one chunk, then blockwise."""
    kernel, axis, token = kernel_for(node), node.op_as(_AxisSoftmax).axis, _token(node.op)

    def build(x: Any) -> list:
        x = as_dask(x)
        return blockwise(kernel, node, (x.rechunk({axis % x.ndim: -1}),), token)
    return build


# --- shape ops and indexing ---------------------------------------------------------------------

@lowers(Subtensor, AdvancedSubtensor)
def _subtensor(node: Apply, ctx: DaskLowerContext) -> Builder | None:
    """Basic indexing, and one index array (dask indexes with one array at a time; an index array
    computed from the data must be a vector of integers)."""
    op, parts = node.op_as(Subtensor), tensor_inputs(node)[1:]
    arrays = [e for e in op.idx_list if e in ("a", "b")]
    lazy = [p for p, eager in zip(parts, ctx.eager[1:]) if not eager]
    if len(arrays) > 1 or len(lazy) > 1 or (lazy and (lazy[0].ndim != 1 or lazy[0].dtype[0] not in "iu")):
        return None
    return lambda x, *values: [as_dask(x)[op.np_index([v if isinstance(v, da.Array) else np.asarray(v)
                                                      for v in values])]]


def reshape(x: da.Array, shape: tuple) -> da.Array:
    """``x.reshape(shape)``; where dask cannot split or merge the chunks as they are, the axes the
    reshape changes are rechunked to one chunk first (the leading axes it keeps stay chunked)."""
    try:
        return x.reshape(shape, merge_chunks=True)
    except (ValueError, NotImplementedError):
        lead = 0
        while lead < min(x.ndim, len(shape)) and x.shape[lead] == shape[lead]:
            lead += 1
        return x.rechunk(dict.fromkeys(range(lead, x.ndim), -1)).reshape(shape, merge_chunks=True)


@lowers(Reshape)
def _reshape(node: Apply, ctx: DaskLowerContext) -> Builder | None:
    if not ctx.eager[1]:
        return None
    return lambda x, shape: [reshape(as_dask(x), tuple(int(s) for s in np.asarray(shape)))]


@lowers(Join)
def _join(node: Apply, ctx: DaskLowerContext) -> Builder:
    op = node.op_as(Join)
    axis = op.axis
    return lambda *xs: [da.concatenate([as_dask(x) for x in xs], axis=axis)]


@lowers(Alloc)
def _alloc(node: Apply, ctx: DaskLowerContext) -> Builder | None:
    if not all(ctx.eager[1:]):
        return None
    dtype = tensor_outputs(node)[0].dtype

    def build(value: Any, *dims: Any) -> list:
        shape = tuple(int(d) for d in dims)
        if not isinstance(value, da.Array) and np.ndim(value) == 0:
            return [da.full(shape, np.asarray(value, dtype), dtype=dtype)]
        return [da.broadcast_to(as_dask(value).astype(dtype, copy=False), shape)]
    return build


@lowers(ARange)
def _arange(node: Apply, ctx: DaskLowerContext) -> Builder | None:
    op = node.op_as(ARange)
    if not all(ctx.eager):
        return None
    dtype = op.dtype
    return lambda *args: [da.arange(*(np.asarray(a).item() for a in args), dtype=dtype)]


@lowers(BroadcastCheck)
def _broadcast_check(node: Apply, ctx: DaskLowerContext) -> Builder:
    op = node.op_as(BroadcastCheck)

    def build(*xs: Any) -> list:
        check_shape_vectors(op, xs)
        return [np.ones((), op.dtype)]
    return build


@lowers(BroadcastLike)
def _broadcast_like(node: Apply, ctx: DaskLowerContext) -> Builder:
    return lambda x, like: [da.broadcast_to(as_dask(x), np.shape(like))]
