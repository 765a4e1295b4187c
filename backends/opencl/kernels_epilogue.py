"""The Epilogue node (symgraph/tensor/fused.py) on the device, by the kind of its core: a matrix
product runs the program in its kernel's store (kernels_matmul), a reduction likewise
(kernels_reduce), a convolution right after its products (kernels_conv)."""
from __future__ import annotations

from symgraph.backends.opencl.kernels_conv import lower_conv_epilogue
from symgraph.backends.opencl.kernels_matmul import MatmulKernel
from symgraph.backends.opencl.kernels_reduce import Store, lower_reduce_epilogue
from symgraph.backends.opencl.lowering import EXPAND, LowerContext, Lowered, lowers
from symgraph.graph.basic import Apply
from symgraph.tensor.convolution import Conv
from symgraph.tensor.fused import Epilogue
from symgraph.tensor.math import Dot, MatMul


@lowers(Epilogue)
def lower_epilogue(node: Apply, ctx: LowerContext) -> Lowered | str:
    """A product, convolution or reduction with the elementwise program that alone reads its
    result, as one step (the product's epilogue reads device arrays: a host scalar is uploaded for
    it, any larger host value makes it run unfused)."""
    op = node.op_as(Epilogue)
    if isinstance(op.core, Conv):
        return lower_conv_epilogue(node, ctx)
    if not isinstance(op.core, (Dot, MatMul)):
        return lower_reduce_epilogue(node, ctx)
    others = list(node.inputs[op.n_core:])
    if any(v in ctx.host and getattr(v.type, "ndim", None) != 0 for v in others):
        return EXPAND
    product, _ = op.parts(node.inputs)
    kind = "dot" if isinstance(op.core, Dot) else "matmul"
    return MatmulKernel(node, ctx, kind, product, Store(op.program, op.slot, others)).lowered()
