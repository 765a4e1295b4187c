"""The numpy backend: emits one straight-line Python function per compiled graph.

Each node becomes one line calling numpy directly (``f.source`` shows it); ops without a
dedicated lowering call their own ``perform``. Updates are committed only after every node
ran, so a call that raises leaves shared variables untouched.
"""
from __future__ import annotations

from symgraph.backends.numpy.backend import OPTIONS, NumpyBackend, compile

__all__ = ["OPTIONS", "NumpyBackend", "compile"]
