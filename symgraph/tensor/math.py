"""(being written) symgraph.tensor.math"""
__all__: list = []
