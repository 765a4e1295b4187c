"""Loops: ``sg.scan`` (Theano's API), ``sg.until`` for while loops, and the helpers ``sg.map``,
``sg.reduce``, ``sg.foldl``, ``sg.foldr``, ``sg.scan_updates`` (a training loop in one call).
See docs/scan.md."""
from symgraph.scan import grad  # noqa: F401  (registers Scan's gradient)
from symgraph.scan.build import Until, scan, until
from symgraph.scan.helpers import foldl, foldr, map, reduce, scan_updates  # noqa: A004 (Theano's names)
from symgraph.scan.op import Scan

__all__ = ["Scan", "scan", "until", "Until", "map", "reduce", "foldl", "foldr", "scan_updates"]
