"""Theano's ``tensor.nlinalg`` names (numpy-based linear algebra) over ``T.linalg``."""
from __future__ import annotations

from symgraph.tensor.linalg import (
                                    QR,
                                    SVD,
                                    Det,
                                    Eigh,
                                    MatrixInverse,
                                    Pinv,
                                    SLogDet,
                                    det,
                                    eigh,
                                    eigvalsh,
                                    lstsq,
                                    matrix_power,
                                    norm,
                                    pinv,
                                    qr,
                                    slogdet,
                                    svd,
                                    trace,
)
from symgraph.tensor.linalg import inv as matrix_inverse
from symgraph.tensor.linalg.structure import diag_embed as alloc_diag
from symgraph.tensor.linalg.structure import diagonal as extract_diag

__all__ = ["matrix_inverse", "det", "slogdet", "eigh", "eigvalsh", "qr", "svd", "pinv", "lstsq", "matrix_power",
           "norm", "trace", "extract_diag", "alloc_diag", "MatrixInverse", "Det", "SLogDet", "Eigh", "QR", "SVD",
           "Pinv"]
