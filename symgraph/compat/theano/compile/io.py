"""theano.compile.io: ``In`` and ``Out`` are symgraph's own (``sg.In``, ``sg.Out``)."""
from __future__ import annotations

from symgraph.compile.io import In, Out

__all__ = ["In", "Out"]
