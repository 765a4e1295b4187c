"""Theano's loop helpers, built on ``scan``: ``map`` (no carried state), ``reduce``/``foldl``/``foldr``
(only the last value of each output)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from symgraph.scan.build import build_scan, scan


def map(fn: Callable, sequences: Any, non_sequences: Any = None, truncate_gradient: int = -1,  # noqa: A001
        go_backwards: bool = False, mode: Any = None, name: str | None = None) -> Any:
    """``fn`` applied to each row of ``sequences``, the results stacked: ``(outputs, updates)``."""
    return scan(fn, sequences=sequences, outputs_info=None, non_sequences=non_sequences,
                truncate_gradient=truncate_gradient, go_backwards=go_backwards, name=name)


def reduce(fn: Callable, sequences: Any, outputs_info: Any, non_sequences: Any = None,  # noqa: A001
           go_backwards: bool = False, mode: Any = None, name: str | None = None) -> Any:
    """The last value of each output of the loop: ``(outputs, updates)``. A fed-back output that
    no step updated (empty sequences) gives its initial value; the loop keeps no trace."""
    _, last = build_scan(fn, sequences, outputs_info, non_sequences, None, -1, go_backwards, name, False, None)
    return (last[0] if len(last) == 1 else last), OrderedDict()


def foldl(fn: Callable, sequences: Any, outputs_info: Any, non_sequences: Any = None, mode: Any = None,
          name: str | None = None) -> Any:
    """``reduce`` from the first row to the last."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=False, name=name)


def foldr(fn: Callable, sequences: Any, outputs_info: Any, non_sequences: Any = None, mode: Any = None,
          name: str | None = None) -> Any:
    """``reduce`` from the last row to the first."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=True, name=name)
