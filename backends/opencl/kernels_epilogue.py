"""The Epilogue node (symgraph/tensor/fused.py) on the device, by the kind of its core: a matrix
product runs the program in its kernel's store (kernels_matmul), a reduction likewise
(kernels_reduce), a convolution right after its products (kernels_conv). One rule for the values
it reads (``epilogue_store``): host scalars are passed to the kernel by value, never uploaded; any
larger host value makes the node run unfused."""
from __future__ import annotations

from symgraph.backends.opencl.kernels_conv import lower_conv_epilogue
from symgraph.backends.opencl.kernels_matmul import MatmulKernel
from symgraph.backends.opencl.kernels_reduce import epilogue_store, lower_reduce_epilogue
from symgraph.backends.opencl.lowering import EXPAND, LowerContext, Lowered, lowers
from symgraph.graph.basic import Apply
from symgraph.tensor.convolution import Conv
from symgraph.tensor.fused import Epilogue
from symgraph.tensor.math import Dot, MatMul


@lowers(Epilogue)
def lower_epilogue(node: Apply, ctx: LowerContext) -> Lowered | str:
    """A product, convolution or reduction with the elementwise program that alone reads its
    result, as one step."""
    op = node.op_as(Epilogue)
    store = epilogue_store(node, ctx)
    if store is None:
        return EXPAND
    if isinstance(op.core, Conv):
        return lower_conv_epilogue(node, ctx, store)
    if not isinstance(op.core, (Dot, MatMul)):
        return lower_reduce_epilogue(node, ctx, store)
    product, _ = op.parts(node.inputs)
    kind = "dot" if isinstance(op.core, Dot) else "matmul"
    return MatmulKernel(node, ctx, kind, product, store).lowered()
