"""theano.tensor.inplace: ``add_inplace`` & co. symgraph never writes into a variable's value (the
backends reuse buffers on their own), so these build the ordinary ops: every result is the value
Theano documents (``x`` read before the in-place op still means the value before it)."""
from symgraph.tensor.elemwise import ELEMWISE_OPS

globals().update({f"{name}_inplace": op for name, op in ELEMWISE_OPS.items() if not name.startswith("cast_")})
