"""The OpenCL backend: the compiled graph runs as generated kernels on an OpenCL device (a GPU
where there is one, else the CPU through pocl); shared variables stay in device buffers.

``compile(fgraph, spec)`` returns a callable with ``kernels`` (name -> OpenCL C source) and
``source`` (the generated Python that schedules them); ``prepare(options)`` starts, before the
graph is rewritten, what that compile can get ready in the background.
"""
from __future__ import annotations

from symgraph.backends.opencl import (elemwise_kernel, kernels_collective, kernels_conv, kernels_elemwise,  # noqa: F401
                                      kernels_epilogue, kernels_index,
                                      kernels_linalg, kernels_lines, kernels_matmul, kernels_pool, kernels_random,
                                      kernels_reduce, kernels_shape, views)
from symgraph.backends.opencl.backend import OPTIONS, OpenCLBackend, OpenCLFunction, compile, prepare
from symgraph.backends.opencl.runtime import TRANSFERS, DeviceArray, get_runtime, list_devices

__all__ = ["OPTIONS", "OpenCLBackend", "OpenCLFunction", "compile", "prepare", "TRANSFERS", "DeviceArray",
           "get_runtime", "list_devices"]
