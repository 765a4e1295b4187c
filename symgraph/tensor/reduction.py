"""(being written) symgraph.tensor.reduction"""
__all__: list = []
