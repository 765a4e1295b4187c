"""The import change: the only edit the porting check makes to Theano's examples.

Every ``import theano...`` / ``from theano... import`` statement is pointed at
``symgraph.compat.theano`` (Theano's module layout over symgraph); nothing else in an
example is touched. docs/porting.md documents the same change for users.
"""
from __future__ import annotations

import re

COMPAT = "symgraph.compat.theano"
_FROM = re.compile(r"^(\s*)from\s+theano((?:\.[\w.]+)?)\s+import\b")
_IMPORT = re.compile(r"^(\s*)import\s+(.+?)\s*$")


def _import_item(item: str) -> list[str]:
    """One item of an ``import a, b as c`` list, rewritten when it names theano."""
    name, _, alias = (s.strip() for s in item.partition(" as "))
    if name != "theano" and not name.startswith("theano."):
        return [item.strip()]
    target = COMPAT + name[len("theano"):]
    if alias:
        return [f"{target} as {alias}"]
    if name == "theano":
        return [f"{COMPAT} as theano"]
    return [target, f"{COMPAT} as theano"]  # `import theano.x` binds `theano` and loads theano.x


def port_line(line: str) -> str:
    """``line`` with its theano import (if any) pointed at symgraph.compat.theano."""
    m = _FROM.match(line)
    if m:
        return f"{m.group(1)}from {COMPAT}{m.group(2)} import" + line[m.end():]
    m = _IMPORT.match(line)
    if m and re.search(r"\btheano\b", m.group(2)):
        body, comment = m.group(2), ""
        if "#" in body:
            body, comment = body.split("#", 1)
            comment = "  #" + comment
        items = [p for item in body.split(",") for p in _import_item(item)]
        return f"{m.group(1)}import {', '.join(items)}{comment}"
    return line


def port_source(source: str) -> str:
    """Apply the import change to every line of ``source``."""
    return "\n".join(port_line(line) for line in source.split("\n"))
