"""The W6 training step (XOR, a 3-4-1 sigmoid net) for the OpenCL start-up tests, in a module of
its own: a fresh process imports it without the test modules' conftest (which opens OpenCL)."""
from __future__ import annotations

import numpy as np

import symgraph as sg
import symgraph.tensor as T

XOR = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], "f"), np.array([[0], [1], [1], [0]], "f")


def xor_step(backend: str, extra: bool = True, **kw):
    """The W6 training step, with (``extra``) one more output: an elementwise program of x alone
    (a kernel once x is large, a numpy call while it is small)."""
    rng = np.random.default_rng(1)
    w0, w1 = sg.shared(rng.standard_normal((3, 4)).astype("f")), sg.shared(rng.standard_normal((4, 1)).astype("f"))
    x, y = T.fmatrix("x"), T.fmatrix("y")
    out = T.sigmoid(T.dot(T.sigmoid(T.dot(x, w0)), w1))
    loss = T.sum((y - out) ** 2)
    updates = sg.updates.sgd(loss, [w0, w1], learning_rate=1.0)
    outs = [loss, T.tanh(x) * 2 + 1] if extra else loss
    return sg.function([x, y], outs, updates=updates, backend=backend, **kw), (w0, w1)


def train(f, shared, x, y, steps=3):
    """``steps`` calls of the step: their results and the weights after them."""
    return [f(x, y) for _ in range(steps)], [w.get_value() for w in shared]
