"""theano.gof.toolbox: the ``ReplaceValidate`` feature gives a FunctionGraph ``replace_validate``."""
from __future__ import annotations

from typing import Any

from symgraph.graph.basic import Variable
from symgraph.graph.fgraph import FunctionGraph


class Feature:
    """Base of FunctionGraph features (observers)."""

    def on_attach(self, fgraph: FunctionGraph) -> None:
        pass


class ReplaceValidate(Feature):
    """Adds ``fgraph.replace_validate(old, new, reason=None)`` (symgraph's ``replace`` checks types)."""

    def on_attach(self, fgraph: FunctionGraph) -> None:
        def replace_validate(old: Variable, new: Variable, reason: Any = None) -> None:
            fgraph.replace(old, new, str(reason or "replace_validate"))

        def replace_all_validate(pairs: Any, reason: Any = None) -> None:
            for old, new in pairs:
                replace_validate(old, new, reason)
        fgraph.replace_validate = replace_validate  # type: ignore[attr-defined]
        fgraph.replace_all_validate = replace_all_validate  # type: ignore[attr-defined]
