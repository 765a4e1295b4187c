"""Where the user built a node: ``SourceLine`` (file, line, function, text) and the walks up the
stack that find the innermost frame outside symgraph (for node traces and warnings)."""
from __future__ import annotations

import linecache
import os
import sys
from types import FrameType

from symgraph.safe_text import printable


def _internal_dirs() -> tuple[str, ...]:
    """Folders whose frames are ours (symgraph and symgraph.backends), skipped when blaming a user line."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../symgraph
    return (here + os.sep, os.path.join(os.path.dirname(here), "backends") + os.sep)


_INTERNAL = _internal_dirs()


def _internal(filename: str) -> bool:
    """Frames of symgraph's own files and of the code it generates (``<symgraph ...>``)."""
    return filename.startswith(_INTERNAL) or filename.startswith("<symgraph")


class SourceLine:
    """Where the user built a node: file, line number, function and the line's text.

    A line recorded in this process reads its text lazily from the source file. A line
    loaded from a saved file (``recorded`` given) shows the text the file recorded and never
    reads the local disk: the file may name any local path. Its fields are shown with control
    characters escaped."""

    __slots__ = ("filename", "lineno", "function", "recorded")

    def __init__(self, filename: str, lineno: int, function: str, recorded: str | None = None):
        self.filename, self.lineno, self.function = filename, lineno, function
        self.recorded = recorded

    @property
    def text(self) -> str:
        """The source line itself, stripped (empty when the file cannot be read)."""
        if self.recorded is not None:
            return self.recorded
        return linecache.getline(self.filename, self.lineno).strip()

    def __str__(self) -> str:
        text = printable(self.text)
        where = f'File "{printable(self.filename)}", line {self.lineno}, in {printable(self.function)}'
        if self.recorded is not None:
            where += " (as recorded in a loaded file)"
        return f"{where}\n    {text}" if text else where

    def __repr__(self) -> str:
        return f"SourceLine({self.filename!r}, {self.lineno})"


def user_source_line() -> SourceLine | None:
    """The innermost stack frame outside symgraph: the line of user code that is building a node."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return None
    return SourceLine(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised here point at the innermost user frame
    (the first one outside symgraph), for ``warnings.warn(..., stacklevel=user_stacklevel())``."""
    level = 1
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _internal(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level
