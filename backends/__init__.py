"""Backends: each takes a rewritten FunctionGraph and a CompileSpec and returns a callable.

Imported lazily by ``sg.function`` so that ``import symgraph`` never loads a backend.
"""
from __future__ import annotations

import importlib

BACKENDS = ("numpy", "opencl", "dask")


def get_backend(name: str):
    """The backend module called ``name`` (it has ``compile(fgraph, spec)``, and may have
    ``prepare(options)``, which ``sg.function`` calls before it rewrites the graph)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
    return importlib.import_module(f"symgraph.backends.{name}")
