"""Helpers shared by the op test files: symbolic inputs for values, a perform-only reference
interpreter, and a full finite-difference gradient check."""
from __future__ import annotations

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph import Variable, toposort


def declare(value: np.ndarray, static: bool) -> Variable:
    """A symbolic input for ``value``: fully static shape, or only its length-1 axes static."""
    shape = value.shape if static else tuple(1 if s == 1 else None for s in value.shape)
    return T.tensor(value.dtype.name, shape)


def perform_eval(inputs: list, out: Variable, values: list):
    """Run the graph of ``out`` node by node through each op's perform (the numpy reference)."""
    env = dict(zip(inputs, values))
    for node in toposort([out]):
        ins = [env[v] if v in env else v.data for v in node.inputs]
        env.update(zip(node.outputs, node.op.perform(node, ins)))
    return env[out] if out in env else out.data


def fd_grad_check(fn, values: list, eps: float = 1e-6, tol: float = 1e-6, seed: int = 0) -> None:
    """sg.grad of sum(fn(*xs) * projection) against central finite differences, in float64."""
    rng = np.random.default_rng(seed)
    values = [np.asarray(v, dtype="float64") for v in values]
    xs = [declare(v, static=False) for v in values]
    out = fn(*xs)
    proj = rng.uniform(0.5, 1.5, size=np.shape(sg.function(xs, out)(*values)))
    cost = (out * proj).sum()
    f_cost = sg.function(xs, cost)
    grads = sg.function(xs, sg.grad(cost, xs), on_unused_input="ignore")(*values)
    for k, (v, g) in enumerate(zip(values, grads)):
        assert g.shape == v.shape
        num = np.zeros_like(v)
        for i in np.ndindex(*v.shape):
            plus, minus = [w.copy() for w in values], [w.copy() for w in values]
            plus[k][i] += eps
            minus[k][i] -= eps
            num[i] = (f_cost(*plus) - f_cost(*minus)) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=tol, atol=tol)
