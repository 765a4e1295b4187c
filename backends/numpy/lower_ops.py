"""(being written) numpy lowerings for reductions, shape ops, dot, indexing and nnet ops."""
