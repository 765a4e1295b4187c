"""The lowering seam every backend implements: a table from Op class to a lowering function
``lower(node, ctx) -> code or None``, looked up through the op's class hierarchy (so a
subclass inherits its base's lowering unless it registers its own), and ``CodeContext``, which
names the Python objects that generated code refers to.

What a lowering returns is the backend's business (a numpy expression for the numpy backend, a
runnable step for OpenCL); None means "this node cannot be lowered here", and the backend then
runs the op's ``perform`` (on the host backend) or an explicit, visible host fallback."""
from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any

import numpy as np

from symgraph.safe_text import code_comment

HOST, DEVICE = "host", "device"  # where a value lives in generated code (see symgraph/compile/link.py)


class LoweringTable:
    """Op class -> lowering function, with lookup along the op class's MRO (cached)."""

    def __init__(self, backend: str):
        self.backend = backend
        self._table: dict[type, Callable] = {}
        self._cache: dict[type, Callable | None] = {}

    def register(self, *op_classes: type) -> Callable[[Callable], Callable]:
        """Decorator: ``fn(node, ctx)`` lowers nodes whose op is one of ``op_classes`` (or a subclass)."""
        def add(fn: Callable) -> Callable:
            for cls in op_classes:
                if not isinstance(cls, type):
                    raise TypeError(f"{self.backend} lowerings are keyed by Op class, got {cls!r}")
                self._table[cls] = fn
            self._cache.clear()
            return fn
        return add

    def lookup(self, op: Any) -> Callable | None:
        """The lowering of ``op``'s class, or of its nearest base class that has one."""
        cls = type(op)
        if cls not in self._cache:
            self._cache[cls] = next((self._table[c] for c in cls.__mro__ if c in self._table), None)
        return self._cache[cls]

    def remove(self, op_class: type) -> Callable | None:
        """Unregister ``op_class`` (tests use this to force the fallback path); returns the old entry."""
        self._cache.clear()
        return self._table.pop(op_class, None)

    def __contains__(self, op_class: type) -> bool:
        return op_class in self._table


class CodeContext:
    """Names the Python objects generated code refers to (its globals), readably: ``ref(obj,
    'filter_x')`` gives ``_filter_x`` (made unique); the same object always gets the same name."""

    def __init__(self) -> None:
        self.globals: dict[str, Any] = {"np": np, "ndarray": np.ndarray}
        self._ids: dict[int, str] = {}
        self._keep: list[Any] = []  # objects named here stay alive as long as the names

    def ref(self, obj: Any, hint: str) -> str:
        """The global name of ``obj`` in the generated code (registered on first use)."""
        key = id(obj)
        if key not in self._ids:
            base = "_" + "".join(c if c.isascii() and c.isalnum() else "_" for c in hint).strip("_")[:40]
            name, k = base, 1
            while name in self.globals:
                name, k = f"{base}{k}", k + 1
            self.globals[name] = obj
            self._ids[key] = name
            self._keep.append(obj)
        return self._ids[key]


_RESERVED = {"np", "ndarray", "e"}


def python_name(name: str | None, default: str, taken: set[str]) -> str:
    """A local name for generated code: the variable's own name when it is a usable identifier
    (ASCII, so Python's NFKC folding cannot turn it into another name; not a keyword, not
    private, not like a generated temporary ``v12``, not taken), else ``default`` made unique.
    The result is added to ``taken``."""
    ok = (name and name.isascii() and name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")
          and name not in _RESERVED and name not in taken and not (name[0] == "v" and name[1:].isdigit()))
    result = name if ok and name else default
    k = 0
    while result in taken or result in _RESERVED:
        k += 1
        result = f"{default}_{k}"
    taken.add(result)
    return result


def describe(node: Any) -> str:
    """The comment after a node's line: its op and where the user built it (file name and line
    number), made inert by ``code_comment``: nothing from a trace or a loaded file can end the
    comment and become code."""
    where = ""
    if node.trace is not None:
        where = f"  ({node.trace.filename.rsplit('/', 1)[-1]}:{int(node.trace.lineno)})"
    return code_comment(f"{node.op}{where}")
