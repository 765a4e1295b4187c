"""theano.gof.type: ``Type`` and ``Generic`` (any Python object, passed through unchanged)."""
from __future__ import annotations

from typing import Any

from symgraph.graph.basic import Type


class Generic(Type):
    """A type whose values are any Python objects (Theano's op parameters, lists, ...)."""

    def filter(self, value: Any, strict: bool = False, allow_downcast: Any = None) -> Any:
        return value

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __str__(self) -> str:
        return "generic"


generic = Generic()
