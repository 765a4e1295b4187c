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


def to_dot(obj: Any, style: str = "compact", max_nodes: int | None = DEFAULT_MAX_NODES,
           **options: Any) -> graphviz.Digraph:
    """The graph of ``obj`` as a ``graphviz.Digraph`` in ``style`` 'compact' (data flow, the
    default) or 'structure' (Python objects and references, Theano's figure). At most
    ``max_nodes`` Apply nodes are drawn (None: all); the rest collapse into one node. The compact
    style takes ``every_variable`` and ``simple_names`` (see ``compact_dot``)."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {list(STYLES)}")
    if options and style != "compact":
        raise ValueError(f"options {sorted(options)} apply to the compact style only")
    return STYLES[style](collect(obj), max_nodes, **options)


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


# Theano's pydotprint options that symgraph does not implement, with the value that means "off":
# passing that value is accepted, anything else is an error naming the option.
_THEANO_DEFAULTS = {"with_ids": False, "high_contrast": True, "colorCodes": None, "cond_highlight": None,
                    "scan_graphs": False, "max_label_size": 70}


def pydotprint(obj: Any, outfile: str | os.PathLike | None = None, format: str | None = None,
               style: str = "compact", max_nodes: int | None = DEFAULT_MAX_NODES, timeout: float | None = 120,
               *, compact: bool = True, var_with_name_simple: bool = False, print_output_file: bool = False,
               return_image: bool = False, **theano_options: Any) -> str | bytes:
    """Write the picture of ``obj`` to ``outfile`` as svg, png, pdf or dot source (``format``
    defaults to the file's suffix, else png); returns the path written.

    Theano's keyword arguments: ``compact=False`` draws every intermediate variable as a box,
    ``var_with_name_simple`` labels named variables by name only, ``print_output_file`` prints
    where the file went, and ``return_image`` returns the image bytes instead of writing a file.
    Its other options (``with_ids``, ``high_contrast``, ...) are accepted at their Theano default
    and rejected, by name, otherwise."""
    for key, value in theano_options.items():
        if key not in _THEANO_DEFAULTS:
            raise TypeError(f"pydotprint() got an unexpected keyword argument {key!r}")
        if value != _THEANO_DEFAULTS[key]:
            raise ValueError(f"pydotprint: Theano's option {key}={value!r} is not supported by symgraph "
                             f"(only {key}={_THEANO_DEFAULTS[key]!r}); drop it")
    if format is None and outfile is not None:
        suffix = os.path.splitext(os.fspath(outfile))[1].lstrip(".").lower()
        format = _SUFFIXES.get(suffix) or (None if suffix else "png")
        if format is None:
            raise ValueError(f"cannot tell the format from {os.fspath(outfile)!r}; pass format= or use a "
                             f"suffix from {['.' + s for s in _SUFFIXES]}")
    format = format or "png"
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {list(FORMATS)}")
    options = {"every_variable": not compact, "simple_names": var_with_name_simple} if style == "compact" else {}
    if not compact and style != "compact" or var_with_name_simple and style != "compact":
        raise ValueError("compact= and var_with_name_simple= apply to the compact style only")
    data = render(to_dot(obj, style, max_nodes, **options), format, timeout)
    if return_image:
        return data
    path = os.fspath(outfile) if outfile is not None else f"symgraph.pydotprint.{format}"
    with open(path, "wb") as fh:
        fh.write(data)
    if print_output_file:
        print("The output file is available at", path)
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
