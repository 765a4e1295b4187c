"""(being written) symgraph.tensor.nnet"""
__all__: list = []
