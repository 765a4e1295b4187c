"""Ops without a chunked lowering: the node becomes a visible ``HostFallback`` node (with a
warning, never silently); at run time its array inputs are rechunked to one chunk and one task
runs the numpy backend's code for the op on the whole arrays. Its output shapes come from the
op's ``infer_shape`` evaluated on the input shapes (unknown lengths become NaN chunks)."""
from __future__ import annotations

import operator
import warnings
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from symgraph.backends.dask.graph import token_of
from symgraph.backends.dask.kernels import NodeKernel, make_kernel
from symgraph.backends.dask.lowering import Builder, meta
from symgraph.compile.function import function
from symgraph.compile.placement import HostFallback
from symgraph.graph.basic import Apply, Constant, Variable, user_stacklevel
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.traversal import graph_inputs
from symgraph.tensor.type import tensor_outputs


def wrap(fgraph: FunctionGraph, node: Apply, reason: str) -> Apply:
    """Replace ``node`` by a HostFallback node in ``fgraph`` and say so (a RuntimeWarning)."""
    new = Apply(HostFallback(node.op), list(node.inputs), [o.type.make_variable(o.name) for o in node.outputs],
                trace=node.trace)
    for old, out in zip(node.outputs, new.outputs):
        fgraph.replace(old, out, reason="dask host fallback")
    where = f" (built at {node.trace.filename}:{node.trace.lineno})" if node.trace is not None else ""
    warnings.warn(f"dask backend: {node.op}{where} has no chunked lowering ({reason}): its inputs are "
                  "rechunked to one chunk and it runs as one task on the whole arrays", RuntimeWarning,
                  stacklevel=user_stacklevel())
    return new


def output_shapes(node: Apply, values: tuple) -> list[tuple]:
    """Each output's shape for these input values (NaN where it cannot be known beforehand)."""
    static = [o.type.shape for o in tensor_outputs(node)]
    if all(s is not None for shape in static for s in shape):
        return [tuple(shape) for shape in static]
    inner = node.op.inner(node) if isinstance(node.op, HostFallback) else node
    try:
        shapes = inner.op.infer_shape(inner, [tuple(int(n) for n in np.shape(v)) for v in values])
        return [tuple(_evaluate(shape, node, values)) for shape in shapes]
    except Exception:  # no infer_shape, or a shape that depends on the data
        return [tuple(np.nan if s is None else s for s in shape) for shape in static]


def _evaluate(shape: tuple, node: Apply, values: tuple) -> list[int]:
    """The lengths in ``shape`` (ints or symbolic scalars of the node's host inputs)."""
    symbolic = [s for s in shape if isinstance(s, Variable)]
    if not symbolic:
        return [int(s) for s in shape]
    free = [v for v in graph_inputs(symbolic) if not isinstance(v, Constant)]
    given = dict(zip(node.inputs, values))
    if any(isinstance(given.get(v), da.Array) or v not in given for v in free):
        raise ValueError("the shape depends on array data")
    fn = function(free, symbolic, backend="numpy", on_unused_input="ignore")
    lengths = iter(fn(*[np.asarray(given[v]) for v in free]))
    return [int(next(lengths)) if isinstance(s, Variable) else int(s) for s in shape]


def host_fallback(node: Apply) -> Builder:
    """The builder of one task running ``node``'s op (its numpy code) on whole arrays."""
    op = node.op.op if isinstance(node.op, HostFallback) else node.op
    kernel = make_kernel(op, [v.type for v in node.inputs], node.trace)
    label = "".join(c if c.isalnum() else "-" for c in type(op).__name__.lower())

    def build(*values: Any) -> list:
        args = [v.rechunk(-1) if isinstance(v, da.Array) else np.asarray(v) for v in values]
        return one_task(kernel, node, args, output_shapes(node, values), f"sg-host-{label}")
    return build


def one_task(kernel: NodeKernel, node: Apply, args: list, shapes: list[tuple], prefix: str) -> list:
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
