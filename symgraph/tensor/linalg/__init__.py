"""Linear algebra with gradients (``T.linalg``): numpy.linalg and scipy.linalg names, batched
over leading axes like numpy's, each op's ``perform`` a LAPACK call through numpy or scipy and
each gradient written with these same ops (so second derivatives work).

- solves: ``solve(a, b, assume_a='gen'|'sym'|'pos')``, ``solve_triangular``, ``cho_solve``, ``inv``
- decompositions: ``cholesky``, ``eigh``, ``eigvalsh``, ``qr``, ``svd``
- determinants: ``det``, ``slogdet`` (and ``logdet``, ``adjugate``)
- composed: ``lstsq``, ``pinv``, ``matrix_power``, ``norm``, ``trace``, ``diagonal``,
  ``matrix_transpose``, ``eye``, ``tril``, ``triu``

Conventions, documented where they apply: cholesky, eigh, eigvalsh, solve(assume_a='sym'/'pos')
and cho_solve give symmetric gradients (decomp.py says why); eigh and svd vector gradients assume
distinct eigen/singular values. A matrix an op cannot handle raises
:class:`symgraph.errors.LinAlgError` naming the op, the matrix of the batch, the shapes and the
user line; ``on_error='nan'`` gives NaN for that matrix instead. Theano's module names are
``T.nlinalg`` and ``T.slinalg``.
"""
from __future__ import annotations

from symgraph.errors import LinAlgError
from symgraph.tensor.linalg.composed import lstsq, matrix_power, norm
from symgraph.tensor.linalg.decomp import Cholesky, Eigh, Eigvalsh, cholesky, eigh, eigvalsh
from symgraph.tensor.linalg.det import Adjugate, Det, SLogDet, adjugate, det, logdet, slogdet
from symgraph.tensor.linalg.lu import LUFactor, LUInverse, LUSolve  # noqa: F401  (built by a rewrite)
from symgraph.tensor.linalg.orthogonal import QR, SVD, Pinv, pinv, qr, svd
from symgraph.tensor.linalg.solve import (CholeskySolve, MatrixInverse, Solve, SolveTriangular, cho_solve, inv,
                                          solve, solve_triangular)
from symgraph.tensor.linalg.structure import diagonal, eye, matrix_transpose, trace, tril, triu

__all__ = ["solve", "solve_triangular", "cho_solve", "inv", "cholesky", "eigh", "eigvalsh", "qr", "svd",
           "det", "slogdet", "logdet", "adjugate", "lstsq", "pinv", "matrix_power", "norm", "trace", "diagonal",
           "matrix_transpose", "eye", "tril", "triu", "LinAlgError",
           "Solve", "SolveTriangular", "CholeskySolve", "MatrixInverse", "Cholesky", "Eigh", "Eigvalsh", "QR",
           "SVD", "Pinv", "Det", "SLogDet", "Adjugate"]
