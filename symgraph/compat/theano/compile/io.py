"""theano.compile.io: ``In`` and ``Out`` are symgraph's (sg.In / sg.Out) once they exist."""
from __future__ import annotations

from typing import Any

import symgraph


def __getattr__(name: str) -> Any:
    if name in ("In", "Out", "SymbolicInput", "SymbolicOutput") and hasattr(symgraph, name):
        return getattr(symgraph, name)
    raise AttributeError(f"symgraph has no {name} yet (function inputs/outputs with options: issue 20 item 4)")
