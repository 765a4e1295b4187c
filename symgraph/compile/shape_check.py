"""Checking an op's ``infer_shape`` against the shapes its ``perform`` computes (DebugMode runs it
on every node; ``sg.testing.check_infer_shape`` for op authors)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.errors import MethodNotDefined
from symgraph.graph.basic import Apply, Op
from symgraph.graph.evaluate import evaluate
from symgraph.graph.traversal import ancestors
from symgraph.tensor.shape import shape_tuple
from symgraph.tensor.type import TensorType, as_tensor_variable, tensor_inputs


class InferShapeError(AssertionError):
    """An op's ``infer_shape`` disagrees with the shape of what it computes (or reads its own output)."""


def infer_shape_error(node: Apply, values: dict, output_values: Sequence[Any]) -> str | None:
    """None when ``node.op.infer_shape`` (if defined) gives the shapes of ``output_values``, else what
    is wrong. The symbolic shapes are evaluated from ``values`` (the value of every variable computed
    before the node: infer_shape may read through its inputs, e.g. to the entries of a shape vector)."""
    if type(node.op).infer_shape is Op.infer_shape or not all(isinstance(v.type, TensorType)
                                                                for v in node.inputs + node.outputs):
        return None
    try:
        shapes = node.op.infer_shape(node, [shape_tuple(v) for v in tensor_inputs(node)])
    except MethodNotDefined:
        return None
    entries = [as_tensor_variable(e) for shp in shapes for e in shp]
    own = set(node.outputs)
    if any(a in own for a in ancestors(entries, blockers=node.inputs)):
        return f"{node.op}.infer_shape reads the op's own output: the shape would need the op to run"
    values = evaluate(entries, values)
    k = 0
    for out, shp, value in zip(node.outputs, shapes, output_values):
        inferred = tuple(int(values[entries[k + d]]) for d in range(len(shp)))
        k += len(shp)
        if inferred != np.shape(value):
            return (f"{node.op}.infer_shape gives {inferred} for output {out.index}, but the op computed "
                    f"shape {np.shape(value)}")
    return None
