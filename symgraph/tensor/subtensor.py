"""(being written) symgraph.tensor.subtensor"""
__all__: list = []
