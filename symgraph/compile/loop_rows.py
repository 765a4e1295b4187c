"""The row shapes of a loop's stacked outputs when it ran no step (an empty sequence,
``n_steps=0``): where the graph does not fix a row's length statically, the loop body's shapes
are inferred from its inputs' shapes and small integer values (``placement.concrete_shapes``,
each op's ``infer_shape``), as JAX's tracing would give them: ``map`` of an empty (0, 3) matrix
is (0, 3). A length that depends on values the inputs do not give stays 0. ``Scan.perform``
reaches this through ``register_row_shapes`` (the scan op sits below the compiler)."""
from __future__ import annotations

from typing import Any, cast

import numpy as np

from symgraph.compile.placement import KnownShapes, concrete_shapes, inner_input_shapes
from symgraph.graph.basic import Apply
from symgraph.scan.op import Scan, register_row_shapes
from symgraph.tensor.type import TensorVariable


def _host(value: Any) -> Any:
    return value.to_host() if hasattr(value, "to_host") else value


def zero_step_rows(node: Apply, values: list | tuple) -> list[tuple[int, ...]]:
    """For a Scan ``node`` run on ``values`` (its inputs' values, host or device arrays): the
    row shape of each stacked output, static where the graph fixes it, else inferred."""
    op = node.op_as(Scan)
    ys = [cast(TensorVariable, y) for y in op.body.outputs[op.n_carries:op.n_carries + op.n_ys]]
    if all(None not in y.type.shape for y in ys):
        return [tuple(cast(int, s) for s in y.type.shape) for y in ys]
    shapes = {v: tuple(x.shape) if hasattr(x, "shape") else np.shape(x) for v, x in zip(node.inputs, values)}
    scalars = {v: int(np.asarray(_host(x))) for v, x in zip(node.inputs, values)
               if getattr(v.type, "ndim", None) == 0 and np.dtype(getattr(v.type, "dtype", "O")).kind in "iu"}
    body = concrete_shapes(op.body.nodes, inner_input_shapes(node, KnownShapes(shapes, scalars))["body"])
    return [body.get(y) or tuple(s or 0 for s in y.type.shape) for y in ys]


register_row_shapes(zero_step_rows)
