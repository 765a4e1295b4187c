"""theano.d3viz: ``d3viz(fct, outfile)`` writes symgraph's graph explorer (sg.printing.to_html,
issue 24) for ``fct`` -- one self-contained HTML page, so ``copy_deps`` has nothing to copy.
Theano's page is a d3.js drawing of the same graph; symgraph's shows the compiled function's
nodes, fused kernels, source lines and (``profile=True``) timings."""
from __future__ import annotations

import os
from typing import Any

from symgraph.printing.explore import to_html

__all__ = ["d3viz"]


def d3viz(fct: Any, outfile: str | os.PathLike, copy_deps: bool = True) -> None:
    """Write the explorer page of ``fct`` (a compiled function or variables) to ``outfile``,
    creating its folder when missing, as Theano's d3viz did."""
    folder = os.path.dirname(os.fspath(outfile))
    if folder:
        os.makedirs(folder, exist_ok=True)
    to_html(fct, outfile)
