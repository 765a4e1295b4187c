"""``theano.scan_module``: Theano's path to scan and until (``from theano.scan_module import until``)."""
from __future__ import annotations

from symgraph.scan import Scan, foldl, foldr, map, reduce, scan, until  # noqa: A004 (Theano's names)

__all__ = ["scan", "until", "map", "reduce", "foldl", "foldr", "Scan"]
