"""Checks for op authors: ``check_infer_shape`` (an op's ``infer_shape`` against the shapes it
really produces) and the per-node check DebugMode runs (``infer_shape_error``)."""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgraph.compile.shape_check import InferShapeError, infer_shape_error
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.graph.evaluate import evaluate


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
