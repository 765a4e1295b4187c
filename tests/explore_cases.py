"""Shared by the explorer, profiling and rewrite-history tests: a compiled MLP training step (two
layers, sigmoid, squared loss, SGD updates) on either backend, the data to call it with, and the
lines of this file that built its nodes (the explorer's panels name them)."""
from __future__ import annotations

import inspect
import json
import re

import numpy as np

import symgraph as sg
import symgraph.tensor as T


def mlp_step(backend: str, **options) -> sg.Function:
    """One SGD step; ``options`` go to sg.function (profile=True, history=True ...)."""
    rng = np.random.default_rng(0)
    dtype = "float32" if backend == "opencl" else "float64"
    x, t = T.matrix("x", dtype=dtype), T.vector("t", dtype=dtype)
    W = sg.shared(rng.normal(size=(3, 4)).astype(dtype), name="W")
    b = sg.shared(np.zeros(4, dtype), name="b")
    v = sg.shared(rng.normal(size=4).astype(dtype), name="v")
    hidden = T.sigmoid(T.dot(x, W) + b)  # HIDDEN LINE
    y = T.sigmoid(T.dot(hidden, v))
    loss = ((y - t) ** 2).mean()
    loss.name = "loss"
    params = [W, b, v]
    grads = sg.grad(loss, params)
    lr = np.asarray(0.5, dtype)
    return sg.function([x, t], loss, updates=[(p, p - lr * g) for p, g in zip(params, grads)],
                       backend=backend, name="train_step", **options)


def batch(f: sg.Function, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Arguments for ``mlp_step``'s function (dtype of its inputs)."""
    rng = np.random.default_rng(1)
    dtype = f.inputs[0].dtype
    return rng.normal(size=(n, 3)).astype(dtype), rng.normal(size=n).astype(dtype)


HIDDEN_LINE = next(k + 1 for k, line in enumerate(inspect.getsource(inspect.getmodule(mlp_step)).splitlines())
                   if "# HIDDEN LINE" in line and "next(" not in line)


def hidden_node(f: sg.Function):
    """The compiled node computing ``sigmoid(dot(x, W) + b)`` (the product with its epilogue)."""
    nodes = [n for n in f.graph.toposort() if n.trace is not None and n.trace.lineno == HIDDEN_LINE
             and "Dot" in str(n.op)]
    assert len(nodes) == 1, [str(n.op) for n in f.graph.toposort()]
    return nodes[0]


def page_data(page: str) -> dict:
    """The JSON data embedded in an explorer page."""
    m = re.search(r'<script type="application/json" id="sg-data">(.*?)</script>', page, re.S)
    assert m, "no data element in the page"
    return json.loads(m.group(1))
