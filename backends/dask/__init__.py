"""The dask backend: ``sg.function(..., backend='dask', chunks=...)`` evaluates the rewritten graph
chunk by chunk with dask.array, on any dask scheduler (threads by default, a dask.distributed
Client when one is active), for data larger than memory or spread over a cluster."""
from __future__ import annotations

from symgraph.backends.dask.backend import DaskBackend, DaskFunction, compile

__all__ = ["DaskBackend", "DaskFunction", "compile"]
