"""theano.tensor.tests.test_basic: ``makeTester`` builds a TestCase class for an op from example
inputs: ``good`` ones must match ``expected`` (and every function in ``checks``), ``bad_build`` ones
must fail when the node is built, ``bad_runtime`` ones when it runs, and ``grad`` ones must pass
verify_grad."""
from __future__ import annotations

import unittest
from collections.abc import Callable
from typing import Any

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.testing import verify_grad


def _inputs(values: tuple) -> list:
    return [T.tensor(np.asarray(v).dtype.name, shape=tuple(1 if s == 1 else None for s in np.shape(v)))
            for v in values]


def makeTester(name: str, op: Callable, expected: Callable, checks: dict | None = None, good: dict | None = None,
               bad_build: dict | None = None, bad_runtime: dict | None = None, grad: dict | None = None,
               mode: Any = None, grad_rtol: float | None = None, eps: float = 1e-10, skip: bool = False,
               **kwargs: Any) -> type:
    """A unittest.TestCase subclass called ``name`` testing ``op`` on the given example inputs."""
    # (new names: the methods below close over them, where a narrowed parameter would not stay narrowed)
    check_fns: dict = checks or {}
    good_cases: dict = good or {}
    bad_build_cases: dict = bad_build or {}
    bad_runtime_cases: dict = bad_runtime or {}
    grad_cases: dict = grad or {}

    class Tester(unittest.TestCase):
        def test_good(self) -> None:
            for case, values in good_cases.items():
                xs = _inputs(values)
                out = sg.function(xs, op(*xs), mode=mode or "default")(*values)
                np.testing.assert_allclose(out, expected(*values), rtol=1e-5, atol=1e-8, err_msg=case)
                for check_name, check in check_fns.items():
                    self.assertTrue(check(values, [out]), f"{case}: check {check_name} failed")

        def test_bad_build(self) -> None:
            for case, values in bad_build_cases.items():
                # Theano's contract: a bad input fails with any error, whichever the op raises
                with self.assertRaises(Exception, msg=case):  # noqa: B017
                    op(*_inputs(values))

        def test_bad_runtime(self) -> None:
            for case, values in bad_runtime_cases.items():
                xs = _inputs(values)
                f = sg.function(xs, op(*xs), mode=mode or "default")
                with self.assertRaises(Exception, msg=case):  # noqa: B017  (any error, as above)
                    f(*values)

        def test_grad(self) -> None:
            for values in grad_cases.values():
                verify_grad(op, list(values), rel_tol=grad_rtol)

    Tester.__name__ = Tester.__qualname__ = name
    return unittest.skip(str(skip))(Tester) if skip else Tester
