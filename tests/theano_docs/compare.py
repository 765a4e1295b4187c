"""Does an example print the documented numbers?

Theano's outputs were printed by an old numpy (``array(5.0)``, ``[ 1.  2.]``) and name
Theano's classes, so outputs are not compared as text. What is compared are the numbers:

- an output that is only numeric data (``array([[ 11., 22.], ...])``, ``(3, 2)``, ``True``,
  ``[array(...), array(...)]``) must print the same numbers, in the same order;
- in any other output, each numeric span (an ``array(...)``, a bracketed list of numbers, or a
  line holding only numbers) must appear among the printed spans, in order. Numbers inside
  names (``TensorConstant{2}``, ``[id A]``) are not data and are ignored.

Values agree within rtol 1e-5 (the docs print 8 significant digits).
"""
from __future__ import annotations

import math
import re

_NUM = r"(?<![\w.])(?:[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?j?|[-+]?nan|[-+]?inf|True|False)(?![\w])"
_NUM_RE = re.compile(_NUM)
_DTYPE = re.compile(r",?\s*dtype=['\"]?\w+['\"]?")
_NP_BOOL = re.compile(r"\bnp\.(True|False)_")  # numpy 2's repr of a numpy bool: True where Theano's numpy printed it
_FILLER = re.compile(r"array\(|[()\[\],\s]")
_ONLY_NUMS = re.compile(rf"^(?:\s*(?:{_NUM})\s*)*$")
RTOL, ATOL = 1e-5, 1e-8


def _value(token: str) -> complex:
    if token in ("True", "False"):
        return 1.0 if token == "True" else 0.0
    return complex(token) if token.endswith("j") else float(token)


def _plain(text: str) -> str:
    """``text`` without dtype annotations, numpy 2's ``np.True_`` read as ``True``."""
    return _NP_BOOL.sub(r"\1", _DTYPE.sub("", text))


def numbers(text: str) -> list[complex]:
    """The numeric tokens of ``text`` (dtype annotations removed)."""
    return [_value(t) for t in _NUM_RE.findall(_plain(text))]


def is_numeric(text: str) -> bool:
    """``text`` is numeric data only: numbers, arrays, lists and tuples of them, booleans."""
    stripped = _FILLER.sub(" ", _plain(text))
    return bool(stripped.strip()) and bool(_ONLY_NUMS.match(stripped))


def _close(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, float) and isinstance(y, float) and (math.isnan(x) or math.isnan(y)):
            if not (math.isnan(x) and math.isnan(y)):
                return False
        elif x != y and not abs(x - y) <= ATOL + RTOL * abs(y):
            return False
    return True


def _matching(text: str, start: int, open_: str, close: str) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += (text[i] == open_) - (text[i] == close)
        if depth == 0:
            return i
    return -1


def spans(text: str) -> list[list[complex]]:
    """The numeric spans of a text output, in order (see the module docstring)."""
    out, i = [], 0
    text = _plain(text)
    while i < len(text):
        after_name = i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_}.")  # part of a name, not data
        if text.startswith("array(", i) and not after_name:
            end = _matching(text, i + 5, "(", ")")
        elif text[i] == "[" and not after_name:
            end = _matching(text, i, "[", "]")
            if end > 0 and not is_numeric(text[i:end + 1]):
                end = -1
        else:
            end = -1
        if end > 0:
            out.append((i, numbers(text[i:end + 1])))
            i = end + 1
        else:
            i += 1
    pos = 0
    for line in text.split("\n"):
        if is_numeric(line) and not any(p >= pos and p < pos + len(line) for p, _ in out):
            out.append((pos, numbers(line)))
        pos += len(line) + 1
    return [nums for _, nums in sorted(out, key=lambda s: s[0]) if nums]


def compare(want: str, got: str) -> str | None:
    """None when ``got`` prints the numbers ``want`` documents, else what differs."""
    if not want.strip():
        return None
    if is_numeric(want):
        if _close(numbers(got), numbers(want)):
            return None
        return f"expected {want.strip()!r}, printed {got.strip()!r}"
    got_spans = spans(got)
    k = 0
    for span in spans(want):
        while k < len(got_spans) and not _close(got_spans[k], span):
            k += 1
        if k == len(got_spans):
            return f"the documented numbers {span} are not printed (output: {got.strip()[:300]!r})"
        k += 1
    return None


def expected_exception(want: str) -> str | None:
    """The exception class name a doctest output documents (``Traceback ...`` then ``Name: msg``)."""
    if not want.lstrip().startswith("Traceback (most recent call last):"):
        return None
    for line in want.strip().split("\n")[1:]:
        if line and not line.startswith((" ", "\t", "...")):
            return line.split(":", 1)[0].strip().split(".")[-1]
    return "Exception"
