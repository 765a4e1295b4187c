"""Ops that only change an array's metadata (shape, strides, offset): no kernel, no copy."""
from __future__ import annotations

from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray
from symgraph.graph.basic import Apply
from symgraph.scan.op import CheckRan
from symgraph.tensor.elemwise import DimShuffle
from symgraph.tensor.gradient_ops import DisconnectedGrad, ZeroGrad


def dimshuffle_view(x: DeviceArray, drop: tuple, new_order: tuple) -> DeviceArray:
    """DimShuffle as a view: drop length-1 axes, permute, insert broadcastable axes (stride 0)."""
    for d in drop:
        if x.shape[d] != 1:
            raise ValueError(f"DimShuffle drops axis {d} of an array of shape {x.shape}")
    shape, strides = [], []
    for o in new_order:
        if o == "x":
            shape.append(1)
            strides.append(0)
        else:
            shape.append(x.shape[o])
            strides.append(x.strides[o])
    return x.view(shape, strides, x.offset)


@lowers(DimShuffle)
def lower_dimshuffle(node: Apply, ctx: LowerContext) -> Lowered:
    """DimShuffle: a strided view of its input."""
    op = node.op_as(DimShuffle)

    def run(ins: list) -> list:
        return [dimshuffle_view(ins[0], op.drop, op.new_order)]
    return Lowered(run, kind="view")


@lowers(ZeroGrad, DisconnectedGrad)
def lower_gradient_cut(node: Apply, ctx: LowerContext) -> Lowered:
    """zero_grad / disconnected_grad: the identity in the forward pass (they only change the
    gradient graph; rewrites drop them, but mode=None keeps them)."""
    return Lowered(lambda ins: [ins[0]], kind="view")


@lowers(CheckRan)
def lower_check_ran(node: Apply, ctx: LowerContext) -> Lowered:
    """A loop's final carry where ``trace[-1]`` was read: the value itself, after a host check of the
    step count."""
    def run(ins: list) -> list:
        return node.op.perform(node, ins)
    return Lowered(run, kind="view", host_inputs=frozenset({1}))
