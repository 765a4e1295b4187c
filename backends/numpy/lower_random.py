"""numpy lowering of the shape carrier of random draws: a zero-strided view (no memory, no work).
The elementwise draws themselves are scalar-table rows (lowered like any Elemwise/Composite); the
other random ops run their ``perform``."""
from __future__ import annotations

from symgraph.backends.numpy.lowering import LowerContext, lowers
from symgraph.graph.basic import Apply
from symgraph.tensor.random_ops import Blank


@lowers(Blank)
def _blank(node: Apply, ctx: LowerContext) -> str:
    dims = "".join(f"int({s}), " for s in ctx.ins)
    return f"np.broadcast_to(np.False_, ({dims}))"
