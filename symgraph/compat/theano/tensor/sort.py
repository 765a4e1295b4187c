"""theano.tensor.sort: sort and argsort."""
from symgraph.tensor.sort import ArgSort, Sort, argsort, sort  # noqa: F401

ArgSortOp, SortOp = ArgSort, Sort
