"""theano.tests.unittest_tools: verify_grad, assert_allclose, seeds, and InferShapeTester."""
from __future__ import annotations

import unittest
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.testing import check_infer_shape, verify_grad  # noqa: F401

_SEED = 1234


def fetch_seed(pseed: Any = None) -> int:
    """The seed to use: ``pseed`` if given, else the default test seed."""
    return int(pseed) if pseed is not None else _SEED


def seed_rng(pseed: Any = None) -> int:
    """Seed numpy's global random generator (as Theano's test cases did) and return the seed."""
    seed = fetch_seed(pseed)
    np.random.seed(seed)
    return seed


def assert_allclose(expected: Any, value: Any, rtol: float | None = None, atol: float | None = None) -> None:
    """numpy.testing.assert_allclose with tolerances for the dtypes involved."""
    loose = np.asarray(value).dtype.itemsize <= 4
    np.testing.assert_allclose(value, expected, rtol=rtol or (1e-3 if loose else 1e-5), atol=atol or 1e-8)


class InferShapeTester(unittest.TestCase):
    """A TestCase with ``_compile_and_check(inputs, outputs, values, cls)``: checks ``infer_shape`` of
    the ``cls`` nodes of the outputs' graph against the shapes they compute."""

    def setUp(self) -> None:
        seed_rng()

    def _compile_and_check(self, inputs: Sequence[Any], outputs: Sequence[Any], numeric_inputs: Sequence[Any],
                           cls: type, excluding: Any = None, warn: bool = True, check_topo: bool = True) -> None:
        outs = list(outputs)
        check_infer_shape(lambda *xs: outs, inputs, numeric_inputs, op_class=cls, warn=warn)
