"""(being written) symgraph.tensor.shape"""
__all__: list = []
