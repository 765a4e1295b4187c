"""Theano's ``theano.tensor.shared_randomstreams`` for ports: ``RandomStreams(seed)`` draws from
symgraph's counter-based generator (symgraph/random/streams.py) with Theano's signatures."""
from __future__ import annotations

from symgraph.random.ports import RandomStreams

__all__ = ["RandomStreams"]
