"""Text that came from outside (a loaded file, a user string) made safe to show.

Generated code may carry such text only inside comments, and a comment must never end early:
``code_comment`` returns printable ASCII with no line break, no ``*/`` and no backslash-newline,
so it is inert in a Python ``#`` comment and in a C ``/* */`` comment alike. ``printable`` keeps
readable Unicode for error messages but escapes control characters (line breaks, terminal
escape sequences), so a loaded string cannot forge lines of a traceback or drive a terminal.
"""
from __future__ import annotations

_COMMENT_LIMIT = 200


def code_comment(text: object, limit: int = _COMMENT_LIMIT) -> str:
    """``text`` as the body of a comment in generated Python or C source: only printable ASCII
    (anything else escaped as ``\\xNN``/``\\uNNNN``), ``*/`` broken up, at most ``limit`` characters."""
    escaped = ascii(str(text))[1:-1]  # printable ASCII only: \n, \r, \x00, U+2028 ... come out escaped
    escaped = escaped.replace("*/", "*\\/")
    if len(escaped) > limit:
        escaped = escaped[:limit - 3] + "..."
    return escaped


def printable(text: object) -> str:
    """``text`` for an error message: printable characters kept, every other one (line breaks,
    tabs, escape sequences, format characters) written as its Python escape."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in s)


__all__ = ["code_comment", "printable"]
