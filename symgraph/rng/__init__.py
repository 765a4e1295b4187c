"""The counter-based generator below the graph layer: Philox4x64-10 in numpy (``philox``) and the
distributions every backend computes from its blocks (``draws``). Nothing here imports the graph:
the scalar table's random rows (symgraph/scalar.py) use these functions as their numpy versions,
and the OpenCL backend prints the same arithmetic in C (backends/opencl/kernels_random.py)."""
