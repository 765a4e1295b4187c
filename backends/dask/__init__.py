"""The dask backend: ``sg.function(..., backend='dask', chunks=...)`` evaluates the rewritten graph
chunk by chunk with dask.array, on any dask scheduler (threads by default, a dask.distributed
Client when one is active), for data larger than memory or spread over a cluster."""
from __future__ import annotations

try:
    import dask.array  # noqa: F401  (optional: only this backend needs it)
except ImportError as e:  # say what to install instead of a bare "No module named 'dask'"
    raise ImportError(f"backend='dask' needs dask ({e}): pip install 'symgraph[distributed]'") from e

from symgraph.backends.dask.backend import OPTIONS, DaskBackend, DaskFunction, compile  # noqa: E402

__all__ = ["OPTIONS", "DaskBackend", "DaskFunction", "compile"]
