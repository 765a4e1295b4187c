"""Ops without a chunked lowering: the node becomes a visible ``HostFallback`` node (with a
warning, never silently); at run time its array inputs are rechunked to one chunk and one task
runs the numpy backend's code for the op on the whole arrays. Its output shapes come from the
op's ``infer_shape`` evaluated on the input shapes (unknown lengths become NaN chunks, and a
chunked node reading one runs as one task too: ``unless_lengths_unknown``)."""
from __future__ import annotations

import math
import operator
import warnings
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from symgraph.backends.dask.graph import token_of
from symgraph.backends.dask.kernels import Kernel, make_kernel
from symgraph.backends.dask.lowering import Builder, meta
from symgraph.compile.placement import HostFallback, KnownShapes, concrete_shapes
from symgraph.graph.basic import Apply, user_stacklevel
from symgraph.graph.fgraph import FunctionGraph
from symgraph.tensor.type import tensor_outputs

ONE_TASK = "its inputs are rechunked to one chunk and it runs as one task on the whole arrays"


def wrap(fgraph: FunctionGraph, node: Apply, reason: str, how: str = ONE_TASK) -> Apply:
    """Replace ``node`` by a HostFallback node in ``fgraph`` and say so (a RuntimeWarning that
    gives the ``reason`` and ``how`` it runs)."""
    new = Apply(HostFallback(node.op), list(node.inputs), [o.type.make_variable(o.name) for o in node.outputs],
                trace=node.trace)
    for old, out in zip(node.outputs, new.outputs):
        fgraph.replace(old, out, reason="dask host fallback")
    where = f" (built at {node.trace.filename}:{node.trace.lineno})" if node.trace is not None else ""
    warnings.warn(f"dask backend: {node.op}{where} has no chunked lowering ({reason}): {how}", RuntimeWarning,
                  stacklevel=user_stacklevel())
    return new


def output_shapes(node: Apply, values: tuple) -> list[tuple]:
    """Each output's shape for these input values (NaN where it cannot be known beforehand), by
    placement's ``concrete_shapes``: the op's ``infer_shape`` on the dask inputs' shapes and the
    host inputs' values, never the arrays' data (a pool's output reads its padding vector; a
    loop's trace, its step count and its body's shapes)."""
    outs = tensor_outputs(node)
    static = [o.type.shape for o in outs]
    if all(s is not None for shape in static for s in shape):
        return [tuple(shape) for shape in static]
    inner = node.op.inner(node) if isinstance(node.op, HostFallback) else node
    known = KnownShapes({v: tuple(int(n) for n in np.shape(x)) for v, x in zip(inner.inputs, values)
                         if not any(math.isnan(n) for n in np.shape(x))},
                        {v: np.asarray(x) for v, x in zip(inner.inputs, values) if not isinstance(x, da.Array)})
    found = concrete_shapes([inner], known)
    return [found.get(o) or tuple(np.nan if s is None else s for s in shape) for o, shape in zip(inner.outputs, static)]


def host_fallback(node: Apply) -> Builder:
    """The builder of one task running ``node``'s op (its numpy code) on whole arrays."""
    op = node.op.op if isinstance(node.op, HostFallback) else node.op
    kernel = make_kernel(op, [v.type for v in node.inputs], node.trace)
    label = "".join(c if c.isalnum() else "-" for c in type(op).__name__.lower())

    def build(*values: Any) -> list:
        args = [_whole(v) if isinstance(v, da.Array) else np.asarray(v) for v in values]
        return one_task(kernel, node, args, output_shapes(node, values), f"sg-host-{label}")
    return build


def unless_lengths_unknown(build: Builder, node: Apply) -> Builder:
    """``build`` (a chunked lowering), except when a dask input's length is unknown until it runs
    (a host fallback's result whose shape its op cannot say beforehand: a loop's trace): dask's
    chunked operations need known lengths, so then the node runs as one task on whole arrays too
    (the fallback that made the unknown length has warned)."""
    whole: list[Builder] = []

    def either(*values: Any) -> list:
        if any(isinstance(v, da.Array) and any(math.isnan(n) for n in v.shape) for v in values):
            whole[:] = whole or [host_fallback(node)]
            return whole[0](*values)
        return build(*values)
    return either


def _whole(a: da.Array) -> da.Array:
    """``a`` as one chunk: as it is when it already is one (another fallback's result, whose
    length may be unknown until it runs: dask cannot rechunk unknown lengths), else rechunked."""
    return a if all(len(c) == 1 for c in a.chunks) else a.rechunk(-1)


def one_task(kernel: Kernel, node: Apply, args: list, shapes: list[tuple], prefix: str) -> list:
    """Dask arrays of one chunk each, computed by one task calling ``kernel`` on ``args``."""
    name = f"{prefix}-{tokenize(kernel, *[token_of(a) for a in args])}"
    refs = tuple((a.name, *(0,) * a.ndim) if isinstance(a, da.Array) else a for a in args)
    deps = [a for a in args if isinstance(a, da.Array)]
    base = HighLevelGraph.merge(*[a.__dask_graph__() for a in deps]) if deps else HighLevelGraph({}, {})
    layers, dependencies = dict(base.layers), dict(base.dependencies)
    dep_names = {a.name for a in deps}
    outs = tensor_outputs(node)
    names = [name] if len(outs) == 1 else [f"{name}-out{k}" for k in range(len(outs))]
    if len(outs) == 1:
        layers[name] = MaterializedLayer({(name, *(0,) * outs[0].ndim): (kernel, *refs)})
        dependencies[name] = dep_names
    else:
        layers[name] = MaterializedLayer({(name,): (kernel, *refs)})
        dependencies[name] = dep_names
        for k, (n, o) in enumerate(zip(names, outs)):
            layers[n] = MaterializedLayer({(n, *(0,) * o.ndim): (operator.getitem, (name,), k)})
            dependencies[n] = {name}
    hlg = HighLevelGraph(layers, dependencies)
    return [da.Array(hlg, n, tuple((s,) for s in shape), meta=meta(o.ndim, o.dtype))
            for n, o, shape in zip(names, outs, shapes)]
