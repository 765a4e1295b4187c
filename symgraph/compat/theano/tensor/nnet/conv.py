"""theano.tensor.nnet.conv: Theano's old ``conv2d`` interface (deprecated in Theano 0.8, still in
the classic tutorials: ``conv2d(X, w, border_mode='full')``), over symgraph's ``conv2d``: the same
convolution (filters flipped), ``image_shape`` as the shape hint; border modes 'valid' and 'full'."""
from typing import Any

from symgraph.tensor.abstract_conv import conv2d as _conv2d
from symgraph.tensor.type import TensorVariable

# ConvOp's tuning arguments: how Theano's C code unrolled its loops; nothing to tune here
_TUNING = {"unroll_batch", "unroll_kern", "unroll_patch", "openmp", "verbose", "version", "direction_hint",
           "imshp_logical", "kshp_logical", "kshp_logical_top_aligned"}


def conv2d(input: Any, filters: Any, image_shape: Any = None, filter_shape: Any = None,
           border_mode: str = "valid", subsample: Any = (1, 1), **kargs: Any) -> TensorVariable:
    """Theano's ``theano.tensor.nnet.conv.conv2d``: (batch, channels, rows, columns) images with
    (filters, channels, rows, columns) filters, ``border_mode`` 'valid' or 'full'."""
    unknown = set(kargs) - _TUNING
    if unknown:
        raise TypeError(f"conv2d: unexpected arguments {sorted(unknown)}")
    if border_mode not in ("valid", "full"):
        raise ValueError(f"theano.tensor.nnet.conv.conv2d: border_mode must be 'valid' or 'full', got "
                         f"{border_mode!r} (theano.tensor.nnet.conv2d takes the others)")
    return _conv2d(input, filters, input_shape=image_shape, filter_shape=filter_shape, border_mode=border_mode,
                   subsample=subsample)
