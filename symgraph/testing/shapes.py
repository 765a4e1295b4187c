"""Checks for op authors: ``check_infer_shape`` (an op's ``infer_shape`` against the shapes it
really produces) and the per-node check DebugMode runs (``infer_shape_error``)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import warnings

import numpy as np

from symgraph.errors import MethodNotDefined
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.graph.evaluate import evaluate
from symgraph.graph.traversal import ancestors
from symgraph.tensor.shape import shape_tuple
from symgraph.tensor.type import TensorType, as_tensor_variable


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
        shapes = node.op.infer_shape(node, [shape_tuple(v) for v in node.inputs])
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


def check_infer_shape(op: Callable, inputs: Sequence[Variable], values: Sequence[Any],
                      op_class: type | None = None, warn: bool = True) -> None:
    """Check ``infer_shape`` of every node that ``op(*inputs)`` builds (of ``op_class`` only, if given)
    against the shapes those nodes compute for ``values``; raise InferShapeError on the first
    mismatch. Like Theano's ``_compile_and_check``, warn when inputs have equal lengths on
    different axes (a transposed shape would go unnoticed)."""
    outputs = op(*inputs)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    if warn:
        for v in values:
            dims = [d for d in np.shape(v) if d > 1]
            if len(dims) != len(set(dims)):
                warnings.warn(f"check_infer_shape: an input of shape {np.shape(v)} repeats a length; use distinct "
                              "lengths so that swapped dimensions are caught", stacklevel=2)
    checked = 0

    def check(i: int, node: Apply, ins: list, outs: list, values: dict) -> None:
        nonlocal checked
        if op_class is not None and not isinstance(node.op, op_class):
            return
        problem = infer_shape_error(node, values, outs)
        if problem:
            raise InferShapeError(problem)
        checked += type(node.op).infer_shape is not Op.infer_shape

    evaluate(outputs, dict(zip(inputs, [np.asarray(v) for v in values])), on_node=check)
    if op_class is not None and not checked:
        raise InferShapeError(f"no node of {op_class.__name__} with an infer_shape in the graph of the outputs")
