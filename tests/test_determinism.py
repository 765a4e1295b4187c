"""Determinism: compiling the same graph twice, here or in a fresh process, gives identical
generated code (numpy ``f.source``, OpenCL ``f.kernels``) and identical results."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

import symgraph as sg
import symgraph.tensor as T


SCRIPT = r"""
import json, sys, numpy as np, symgraph as sg, symgraph.tensor as T
sys.path.insert(0, {here!r})
from test_determinism import build
f = build({backend!r})
out = f(*[np.linspace(-1, 1, 12).reshape(4, 3), np.arange(3.0)])
print(json.dumps({{"code": f.source or f.kernels, "out": [o.tolist() for o in out]}}))
"""


def build(backend: str):
    """An MLP step with fusion candidates, reductions, views, constants and two updates."""
    x, y = T.dmatrix("x"), T.dvector("y")
    W = sg.shared(np.linspace(-0.5, 0.5, 9).reshape(3, 3), "W")
    b = sg.shared(np.zeros(3), "b")
    h = T.tanh(x @ W + b)
    p = T.nnet.softmax(h * 2.0 - 1)
    loss = ((p - y) ** 2).mean() + 0.01 * (W ** 2).sum() + T.log1p(T.exp(h)).max()
    gW, gb = sg.grad(loss, [W, b])
    return sg.function([x, y], [loss, p.argmax(axis=1)], updates=[(W, W - 0.1 * gW), (b, b - 0.1 * gb)],
                       backend=backend)


def _code(f):
    return f.source or f.kernels


def test_same_graph_twice_same_code_and_numbers(backend):
    f, g = build(backend), build(backend)
    assert _code(f) and _code(f) == _code(g)
    args = np.linspace(-1, 1, 12).reshape(4, 3), np.arange(3.0)
    for _ in range(3):
        for a, c in zip(f(*args), g(*args)):
            np.testing.assert_array_equal(a, c)


def test_fresh_processes_generate_identical_code(backend):
    """Hash seeds, ids and set orders differ between processes; the generated code must not."""
    here = os.path.dirname(os.path.abspath(__file__))
    runs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONWARNINGS="ignore")
        proc = subprocess.run([sys.executable, "-c", SCRIPT.format(here=here, backend=backend)],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert runs[0]["code"] == runs[1]["code"]
    assert runs[0]["out"] == runs[1]["out"]
    here_f = build(backend)
    here_out = here_f(np.linspace(-1, 1, 12).reshape(4, 3), np.arange(3.0))
    assert [o.tolist() for o in here_out] == runs[0]["out"]
