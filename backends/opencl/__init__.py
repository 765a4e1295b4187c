"""The OpenCL backend: the compiled graph runs as generated kernels on an OpenCL device (a GPU
where there is one, else the CPU through pocl); shared variables stay in device buffers.

``compile(fgraph, spec)`` returns a callable with ``kernels`` (name -> OpenCL C source).
"""
from __future__ import annotations

from symgraph.backends.opencl import (kernels_conv, kernels_elemwise, kernels_index, kernels_linalg,  # noqa: F401
                                      kernels_matmul, kernels_pool, kernels_reduce, kernels_shape, views)
from symgraph.backends.opencl.function import OpenCLFunction, compile
from symgraph.backends.opencl.runtime import TRANSFERS, DeviceArray, get_runtime, list_devices

__all__ = ["OpenCLFunction", "compile", "TRANSFERS", "DeviceArray", "get_runtime", "list_devices"]
