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
from symgraph.tensor.alloc import Alloc, ARange
from symgraph.tensor.composite import Composite
from symgraph.tensor.dims import SpecifyShape
from symgraph.tensor.elemwise import DimShuffle, Elemwise
from symgraph.tensor.fused import Epilogue, ReduceOf
from symgraph.tensor.gradient_ops import BroadcastCheck
from symgraph.tensor.math import Dot, MatMul
from symgraph.tensor.nnet import LogSoftmax, OneHot, Softmax
from symgraph.tensor.random_ops import Blank
from symgraph.tensor.reduction import CAReduce, ReducedSize
from symgraph.tensor.shape import Join, MakeVector, Shape, Shape_i
from symgraph.tensor.subtensor import IncSubtensor, Subtensor
from symgraph.tensor.type import TensorType

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
    if isinstance(op, Subtensor) and not op.advanced:  # a view: its indices known per call, or read at run time
        return "index" if all(map(_index_value, node.inputs[1:])) else None
    if isinstance(op, (Subtensor, IncSubtensor)) and _every_axis_by_array(op, node):  # x[rows, labels]
        return "gather" if isinstance(op, Subtensor) else "scatter"
    if isinstance(op, ARange):  # a constant vector once its bounds are known (T.arange(n) in a gather)
        return "arange" if all(map(_known_int, node.inputs)) else None
    if isinstance(op, Join):
        return "join"
    if isinstance(op, Alloc):  # a value broadcast into a new array of a known shape
        return "alloc" if all(_known_int(p) for p in node.inputs[1:]) else None
    if isinstance(op, IncSubtensor) and not op.advanced:  # a copy, then its indexed part set or increased
        return "incsub" if all(map(_index_value, node.inputs[2:])) else None
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
    if type(op) in (Softmax, LogSoftmax):  # a classifier's loss: three steps (loop_loss.py)
        return "softmax"
    if isinstance(op, OneHot):  # class labels' one-hot rows: a range check and a comparison
        return "onehot"
    return _core_kind(op, node.inputs)


def _every_axis_by_array(op: Any, node: Apply) -> bool:
    """Advanced indexing of every axis by an integer array (``lp[T.arange(n), y]``, and the
    inc_subtensor of its gradient): a gather, or a scatter, in the one-kernel loop."""
    return bool(op.idx_list) and all(e == "a" for e in op.idx_list) and len(op.idx_list) == _ndim(node.inputs[0])


def _ndim(v: Variable) -> int:
    return getattr(v.type, "ndim", -1)


def _index_value(v: Variable) -> bool:
    """An index a view may take: an integer the plan may know, or any integer scalar the loop
    computes (the kernel reads it: loop_index.py; a slice's bounds must then differ by a length
    the plan knows, else the call runs step by step)."""
    return _known_int(v) or _integer_scalar(v)


def _known_int(v: Variable) -> bool:
    """An integer a plan may know: a constant, shape arithmetic of the call's shapes, a body input
    (known when the call passes it from the host: a loop constant such as a length), or integer
    arithmetic of those (the plan computes it, ``LoopPlan.fold``)."""
    if isinstance(v, Constant) or v.owner is None:
        return True
    return node_kind(v.owner) == "meta" or (is_int_arithmetic(v.owner) and all(map(_known_int, v.owner.inputs)))


def is_int_arithmetic(node: Apply) -> bool:
    """An elementwise node whose outputs are integer scalars (the plan may compute it itself)."""
    if not isinstance(node.op, (Elemwise, Composite)) or program_and_inputs(node)[0].reads_index:
        return False
    return all(map(_integer_scalar, node.outputs))


def _integer_scalar(v: Variable) -> bool:
    return isinstance(v.type, TensorType) and v.type.ndim == 0 and np.dtype(v.type.dtype).kind in "iu"


_INDEX_FROM = ((Subtensor, 1), (IncSubtensor, 2), (SpecifyShape, 1), (Alloc, 1), (Blank, 0), (CheckRan, 1))
"""Ops that read integers as indices, lengths or counts, and the input where those begin."""


def _integer_reads(node: Apply) -> list[Variable]:
    if isinstance(node.op, Scan):
        return node.inputs[:1]
    return next((node.inputs[k:] for t, k in _INDEX_FROM if isinstance(node.op, t)), [])


def index_inputs(graph: InnerGraph) -> set[int]:
    """The positions of ``graph``'s integer scalar inputs that feed indices, lengths or step counts
    (the one-kernel loop specialises on their values when a call passes them from the host)."""
    reads = [v for n in graph.nodes for v in _integer_reads(n)]
    found, seen = set(), set()
    while reads:
        v = reads.pop()
        if v in seen:
            continue
        seen.add(v)
        if v.owner is None and v in graph.inputs and _integer_scalar(v):
            found.add(graph.inputs.index(v))
        elif v.owner is not None and is_int_arithmetic(v.owner):
            reads += v.owner.inputs
    return found


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


__all__ = ["REDUCERS", "index_inputs", "is_int_arithmetic", "node_kind", "unsupported"]
