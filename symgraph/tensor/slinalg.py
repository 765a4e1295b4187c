"""Theano's ``tensor.slinalg`` names (scipy-based linear algebra) over ``T.linalg``."""
from __future__ import annotations

from symgraph.tensor.linalg import (
                                    Cholesky,
                                    CholeskySolve,
                                    Solve,
                                    SolveTriangular,
                                    cho_solve,
                                    cholesky,
                                    solve,
                                    solve_triangular,
)

__all__ = ["cholesky", "solve", "solve_triangular", "cho_solve", "Cholesky", "Solve",
           "SolveTriangular", "CholeskySolve"]
