"""Graphviz output: ``to_dot`` (a ``graphviz.Digraph``, pure Python, no ``dot`` needed),
``pydotprint`` (svg/png/pdf through the system ``dot``) and ``repr_svg`` for notebooks."""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import graphviz

from symgraph.errors import SymgraphError
from symgraph.printing.collect import collect
from symgraph.printing.dot_compact import compact_dot
from symgraph.printing.dot_structure import structure_dot

STYLES = {"compact": compact_dot, "structure": structure_dot}
FORMATS = ("svg", "png", "pdf", "dot")
_SUFFIXES = {"svg": "svg", "png": "png", "pdf": "pdf", "dot": "dot", "gv": "dot"}
DEFAULT_MAX_NODES = 500
NOTEBOOK_MAX_NODES = 200

INSTALL_HINT = ("Install Graphviz: `sudo apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` "
                "(macOS), `conda install graphviz`, or see https://graphviz.org/download/. "
                "to_dot(obj).source and format='dot' work without it.")


class GraphvizError(SymgraphError, RuntimeError):
    """Rendering through Graphviz's ``dot`` failed: not installed, timed out, or rejected the graph."""


def to_dot(obj: Any, style: str = "compact", max_nodes: int | None = DEFAULT_MAX_NODES) -> graphviz.Digraph:
    """The graph of ``obj`` as a ``graphviz.Digraph`` in ``style`` 'compact' (data flow, the
    default) or 'structure' (Python objects and references, Theano's figure). At most
    ``max_nodes`` Apply nodes are drawn (None: all); the rest collapse into one node."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {list(STYLES)}")
    return STYLES[style](collect(obj), max_nodes)


def dot_binary() -> str | None:
    """Path of Graphviz's ``dot`` program, or None when it is not installed."""
    return shutil.which("dot")


def render(graph: graphviz.Digraph, format: str, timeout: float | None = 120) -> bytes:
    """Run ``dot -T<format>`` on ``graph``; GraphvizError says how to install it when missing."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {list(FORMATS)}")
    if format == "dot":
        return graph.source.encode()
    exe = dot_binary()
    if exe is None:
        raise GraphvizError(f"cannot render {format}: Graphviz's `dot` program is not on PATH. {INSTALL_HINT}")
    try:
        proc = subprocess.run([exe, f"-T{format}"], input=graph.source.encode(), capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GraphvizError(f"dot took more than {timeout} s to lay out the graph; pass a smaller "
                            "max_nodes to draw less of it") from None
    if proc.returncode != 0:
        raise GraphvizError(f"dot -T{format} failed (exit {proc.returncode}): "
                            f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def pydotprint(obj: Any, outfile: str | os.PathLike, format: str | None = None, style: str = "compact",
               max_nodes: int | None = DEFAULT_MAX_NODES, timeout: float | None = 120) -> str:
    """Write the picture of ``obj`` to ``outfile`` as svg, png, pdf or dot source (``format``
    defaults to the file's suffix); returns the path written."""
    path = os.fspath(outfile)
    if format is None:
        suffix = os.path.splitext(path)[1].lstrip(".").lower()
        if suffix not in _SUFFIXES:
            raise ValueError(f"cannot tell the format from {path!r}; pass format= or use a suffix from "
                             f"{['.' + s for s in _SUFFIXES]}")
        format = _SUFFIXES[suffix]
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {list(FORMATS)}")
    data = render(to_dot(obj, style, max_nodes), format, timeout)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def repr_svg(obj: Any, max_nodes: int = NOTEBOOK_MAX_NODES) -> str | None:
    """SVG text of ``obj``'s compact graph for Jupyter's ``_repr_svg_``; None (Jupyter then shows
    the text repr) when ``dot`` is missing or fails."""
    if dot_binary() is None:
        return None
    try:
        return render(to_dot(obj, "compact", max_nodes), "svg", timeout=30).decode()
    except (GraphvizError, TypeError):
        return None
