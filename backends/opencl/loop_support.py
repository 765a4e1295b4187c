"""Which loop bodies the one-kernel loop can run (issue 15, build item 6), decided from the body
alone at compile time: ``node_kind`` names how a node runs in the kernel (None: it cannot), and
``unsupported`` says why a Scan's body cannot run that way (None: it can, when its shapes, and
the values its indices read, are known and small enough at a call: backends/opencl/loop_plan.py)."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_elemwise import program_and_inputs, program_dtypes
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.inner import InnerGraph
from symgraph.ifelse import IfElse
from symgraph.scan.op import CheckRan, Scan
from symgraph.tensor.composite import Composite
from symgraph.tensor.dims import SpecifyShape
from symgraph.tensor.elemwise import DimShuffle, Elemwise
from symgraph.tensor.fused import Epilogue, ReduceOf
from symgraph.tensor.gradient_ops import BroadcastCheck
from symgraph.tensor.math import Dot, MatMul
from symgraph.tensor.random_ops import Blank
from symgraph.tensor.reduction import CAReduce, ReducedSize
from symgraph.tensor.shape import Join, MakeVector, Shape, Shape_i
from symgraph.tensor.subtensor import Subtensor

REDUCERS = ("add", "mul", "maximum", "minimum", "and", "or")


def _core_kind(op: Any, inputs: list) -> str | None:
    if isinstance(op, CAReduce):
        return "reduce" if op.scalar_op in REDUCERS else None
    if isinstance(op, ReduceOf):
        return "reduce" if op.reduce.scalar_op in REDUCERS and not op.program.reads_index else None
    if isinstance(op, (Dot, MatMul)):
        ok = all(v.type.ndim in (1, 2) and v.type.dtype != "bool" for v in inputs)
        return "dot" if ok else None
    return None


def node_kind(node: Apply) -> str | None:
    """How the one-kernel loop runs ``node`` ('elemwise', 'reduce', 'dot', 'epilogue', 'view',
    'meta'), or None when it cannot."""
    op = node.op
    if isinstance(op, (Elemwise, Composite)):
        return "elemwise"  # random steps too: their element index is the step's (Step.draws)
    if isinstance(op, Epilogue):
        core = op.core.make_node(*node.inputs[:op.n_core])
        return "epilogue" if _core_kind(op.core, core.inputs) and not op.program.reads_index else None
    if isinstance(op, DimShuffle):
        return "view"
    if isinstance(op, Subtensor) and not op.advanced:  # a view where every index is known per call
        return "index" if all(_known_int(p) for p in node.inputs[1:]) else None
    if isinstance(op, Join):
        return "join"
    if isinstance(op, SpecifyShape):  # its input, once its lengths are checked for the call's shapes
        return "specify" if all(_known_int(p) for p in node.inputs[1:]) else None
    if isinstance(op, CheckRan):  # a nested loop's final carry, once its count is checked (h[-1])
        return "specify" if _known_int(node.inputs[1]) else None
    if isinstance(op, Blank):  # a random draw's size: a shape, no memory
        return "blank" if all(_known_int(p) for p in node.inputs) else None
    if isinstance(op, Scan):  # a nested loop: its steps run in a for loop inside the step (loop_nested.py)
        return "loop" if not op.until and all(node_kind(n) for n in op.body.nodes) else None
    if isinstance(op, IfElse):  # both sides' nodes run in the kernel too
        return "branch" if all(node_kind(n) for g in op.inner_graphs.values() for n in g.nodes) else None
    if isinstance(op, (ReducedSize, Shape_i, Shape, MakeVector, BroadcastCheck)):
        return "meta"
    return _core_kind(op, node.inputs)


def _known_int(v: Variable) -> bool:
    """An index a plan knows: a constant, or shape arithmetic of this call's shapes."""
    return isinstance(v, Constant) or (v.owner is not None and node_kind(v.owner) == "meta")


def _values(graph: InnerGraph) -> list[Variable]:
    """Every value of ``graph``, those of its branches' sides included."""
    out = list(graph.inputs)
    for n in graph.nodes:
        out += n.inputs + n.outputs
        if isinstance(n.op, (IfElse, Scan)):
            out += [v for g in n.op.inner_graphs.values() for v in _values(g)]
    return out


def unsupported(op: Scan, fp64: bool) -> str | None:
    """Why ``op``'s body cannot run as one kernel (None: it can, when its shapes are small enough)."""
    for v in _values(op.body):
        dtype = getattr(v.type, "dtype", None)
        if dtype is None or not ks.supported_dtype(dtype) or (dtype == "float64" and not fp64):
            return f"a value of type {v.type}"
    for node in op.body.nodes:
        if node_kind(node) is None:
            return f"{node.op} has no one-kernel form"
        if not fp64 and isinstance(node.op, (Elemwise, Composite)) \
                and np.dtype(np.float64) in program_dtypes(program_and_inputs(node)[0]):
            return f"{node.op} computes in float64, which the device lacks"
    return None


__all__ = ["REDUCERS", "node_kind", "unsupported"]
