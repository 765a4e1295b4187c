"""Draw symgraph graphs with Graphviz: ``z = x + y`` in both styles (the 'structure' one is the
course's "Understanding Theano" figure) and a compiled MLP training step, whose fused
elementwise kernels show as clusters. Writes SVG and PNG files, and ``mlp_step.html``: the
interactive explorer of the training step (compiled with ``history=True`` and ``profile=True``,
called a few times; open it in a browser), and prints what it wrote.

    .venv/bin/python examples/render_graphs.py [--out examples/out] [--backend numpy|opencl] [--docs]

``--docs`` also refreshes docs/img/z_structure.svg, the picture in the README.
Needs Graphviz's ``dot`` program (apt-get install graphviz / brew install graphviz).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Sequence

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.printing import debugprint, pprint, pydotprint, to_html

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS_IMG = os.path.join(os.path.dirname(HERE), "docs", "img")


def z_graph():
    """The course's first graph: z = x + y on two float64 matrices."""
    x, y = T.dmatrix("x"), T.dmatrix("y")
    z = x + y
    z.name = "z"
    return z


def mlp_training_step(backend: str, **options) -> sg.Function:
    """One SGD step of a 2-layer sigmoid MLP on a squared loss, compiled with all rewrites
    (``options`` go to sg.function: ``history=True``, ``profile=True``)."""
    rng = np.random.default_rng(0)
    x, t = T.dmatrix("x"), T.dvector("t")
    W = sg.shared(rng.normal(size=(3, 4)), name="W")
    b = sg.shared(np.zeros(4), name="b")
    v = sg.shared(rng.normal(size=4), name="v")
    h = T.sigmoid(T.dot(x, W) + b)
    y = T.sigmoid(T.dot(h, v))
    loss = ((y - t) ** 2).mean()
    loss.name = "loss"
    params = [W, b, v]
    grads = sg.grad(loss, params)
    return sg.function([x, t], loss, updates=[(p, p - 0.5 * g) for p, g in zip(params, grads)],
                       backend=backend, name="train_step", **options)


def explorer_page(backend: str, path: str) -> str:
    """Write the explorer page of a profiled, history-recording training step after 20 calls
    (the first call, which builds OpenCL kernels, is left out of the profile)."""
    step = mlp_training_step(backend, history=True, profile=True)
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(64, 3)), (rng.random(64) > 0.5).astype(float)
    step(x, t)
    step.profile.reset()
    for _ in range(20):
        step(x, t)
    to_html(step, path)
    return path


def main(argv: Sequence[str] | None = None) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="output folder (default examples/out)")
    p.add_argument("--backend", default="numpy", help="backend for the compiled MLP (numpy or opencl)")
    p.add_argument("--docs", action="store_true", help="also write docs/img/z_structure.svg")
    args = p.parse_args(argv)
    if shutil.which("dot") is None:
        sys.exit("render_graphs: Graphviz's `dot` is not installed (apt-get install graphviz / "
                 "brew install graphviz)")
    os.makedirs(args.out, exist_ok=True)
    z = z_graph()
    train = mlp_training_step(args.backend)
    jobs = [("z_structure", z, "structure"), ("z_compact", z, "compact"), ("mlp_train_step", train, "compact")]
    written = []
    for name, obj, style in jobs:
        for ext in ("svg", "png"):
            written.append(pydotprint(obj, os.path.join(args.out, f"{name}.{ext}"), style=style))
    written.append(explorer_page(args.backend, os.path.join(args.out, "mlp_step.html")))
    if args.docs:
        os.makedirs(DOCS_IMG, exist_ok=True)
        written.append(pydotprint(z, os.path.join(DOCS_IMG, "z_structure.svg"), style="structure"))
    fused = sum(type(n.op).__name__ == "Composite" for n in train.graph.toposort())
    print(f"pprint(z) = {pprint(z)}")
    print(f"compiled training step: {len(train.graph.toposort())} nodes, {fused} fused Composite kernel(s)")
    debugprint(train, print_type=False)
    for path in written:
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")
    return written


if __name__ == "__main__":
    main()
