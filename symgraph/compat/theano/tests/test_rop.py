"""theano.tests.test_rop: ``RopLop_checker`` (symgraph.testing.check_rop_lop)."""
from __future__ import annotations

import unittest
from typing import Any

import numpy as np

import symgraph.tensor as T
from symgraph.compat.theano.tests.unittest_tools import seed_rng
from symgraph.graph.traversal import clone_replace
from symgraph.testing import check_rop_lop


class RopLop_checker(unittest.TestCase):
    """Theano's Rop/Lop test base: ``self.x`` is a vector of ``self.in_shape``, ``self.mx`` a matrix
    of ``self.mat_in_shape``; ``check_rop_lop(y, out_shape)`` checks Rop and Lop of ``y`` in x."""

    def setUp(self) -> None:
        seed_rng()
        self.x, self.in_shape = T.vector("x"), (5 + np.random.randint(3),)
        self.mx, self.mat_in_shape = T.matrix("mx"), (5 + np.random.randint(3), 5 + np.random.randint(3))

    def _check(self, y: Any, x: Any, shape: tuple) -> None:
        check_rop_lop(lambda v: clone_replace([y], {x: v})[0][0], [np.random.rand(*shape)])

    def check_rop_lop(self, y: Any, out_shape: Any) -> None:
        self._check(y, self.x, self.in_shape)

    def check_mat_rop_lop(self, y: Any, out_shape: Any) -> None:
        self._check(y, self.mx, self.mat_in_shape)
