"""Theano's loop helpers, built on ``scan``: ``map`` (no carried state), ``reduce``/``foldl``/``foldr``
(only the last value of each output), and ``scan_updates`` (a training step's updates repeated
inside one loop: a whole training loop in one call)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from symgraph.graph.basic import Variable
from symgraph.graph.traversal import clone_replace
from symgraph.scan.build import build_scan, scan
from symgraph.tensor.type import as_tensor_variable


def map(fn: Callable, sequences: Any, non_sequences: Any = None, truncate_gradient: int = -1,  # noqa: A001
        go_backwards: bool = False, mode: Any = None, name: str | None = None) -> Any:
    """``fn`` applied to each row of ``sequences``, the results stacked: ``(outputs, updates)``."""
    return scan(fn, sequences=sequences, outputs_info=None, non_sequences=non_sequences,
                truncate_gradient=truncate_gradient, go_backwards=go_backwards, name=name)


def reduce(fn: Callable, sequences: Any, outputs_info: Any, non_sequences: Any = None,  # noqa: A001
           go_backwards: bool = False, mode: Any = None, name: str | None = None) -> Any:
    """The last value of each output of the loop: ``(outputs, updates)``. A fed-back output that
    no step updated (empty sequences) gives its initial value; the loop keeps no trace."""
    _, last, updates = build_scan(fn, sequences, outputs_info, non_sequences, None, -1, go_backwards, name, False,
                                  None)
    return (last[0] if len(last) == 1 else last), updates


def foldl(fn: Callable, sequences: Any, outputs_info: Any, non_sequences: Any = None, mode: Any = None,
          name: str | None = None) -> Any:
    """``reduce`` from the first row to the last."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=False, name=name)


def foldr(fn: Callable, sequences: Any, outputs_info: Any, non_sequences: Any = None, mode: Any = None,
          name: str | None = None) -> Any:
    """``reduce`` from the last row to the first."""
    return reduce(fn, sequences, outputs_info, non_sequences, go_backwards=True, name=name)


def scan_updates(updates: Any, n_steps: Any = None, sequences: Any = None, outputs: Any = None,
                 name: str | None = None) -> tuple[list, OrderedDict]:
    """Repeat a training step inside one loop: ``updates`` (shared variable -> new value, as
    ``sg.updates.adam`` and the others return them) applied ``n_steps`` times, the shared
    variables carried from step to step. ``sequences`` maps per-step inputs to stacked values
    (step t reads row t in place of the input: a batch per step); ``outputs`` are per-step values
    to keep (the loss). Returns ``(the outputs stacked over steps, the updates that store each
    shared variable's value after the last step)``: compile them with ``sg.function(...,
    updates=...)`` and one call runs the whole loop. Shared variables the step reads but does not
    update are loop constants; the step's stream draws (a dropout mask) are drawn anew at every
    step, as a scan step's closed-over draws are (symgraph/scan/draws.py)."""
    pairs = list(updates.items()) if hasattr(updates, "items") else [tuple(p) for p in updates]
    if not pairs:
        raise ValueError("scan_updates: no updates to repeat")
    carried = [s for s, _ in pairs]
    news = [as_tensor_variable(v) for _, v in pairs]
    seq_items = list(sequences.items()) if sequences else []
    kept = [as_tensor_variable(o) for o in (outputs or [])]

    def step(*args: Variable) -> list[Variable]:
        rows, carries = args[:len(seq_items)], args[len(seq_items):len(seq_items) + len(carried)]
        replace = dict(zip([v for v, _ in seq_items], rows))
        replace.update(zip(carried, carries))
        new, _ = clone_replace(kept + news, replace)
        return list(new)
    info: list[Any] = [None] * len(kept) + carried
    results, last, _ = build_scan(step, [s for _, s in seq_items], info, None, n_steps, -1, False, name, False, None)
    return results[:len(kept)], OrderedDict(zip(carried, last[len(kept):]))
