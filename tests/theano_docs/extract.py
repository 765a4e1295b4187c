"""Extract the code examples of Theano's documentation into data files (one JSON file per page).

    python -m tests.theano_docs.extract /path/to/Theano/checkout

reads ``doc/tutorial``, ``doc/extending`` and ``doc/library`` of a Theano checkout (a git
directory made by ``fetch github:Theano/Theano``, or a work tree) and writes
``tests/theano_docs/pages/<area>/<page>.json``. The files are data: the runner
(``python -m tests.theano_docs``) executes them after the import change that porting.md
documents. Theano is BSD-licensed (THEANO_LICENSE.txt, next to this file); every page file names
the commit and path it was taken from.

What is collected, following Sphinx's doctest extension (which Theano's docs were tested with):
``>>>`` doctest blocks (also inside notes and other directives), ``.. doctest::``,
``.. testcode::`` with the ``.. testoutput::`` after it, ``.. testsetup::``, and Python
``.. code-block::`` / ``.. code::`` blocks (not tested by Sphinx, but code users copy).
reST comments and literal blocks (``::``) are skipped, as Sphinx skips them.
"""
from __future__ import annotations

import doctest
import json
import os
import re
import subprocess
import sys
from typing import Any

AREAS = ("tutorial", "extending", "library")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+.:_])\1{2,}\s*$")
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w-]+)::\s*(.*?)\s*$")
_COMMENT = re.compile(r"^(\s*)\.\.(\s.*)?$")
_CODE_DIRECTIVES = {"testcode", "testoutput", "testsetup", "doctest", "code-block", "code", "sourcecode"}
_PARSER = doctest.DocTestParser()
_FLAGS = {name: flag for name, flag in doctest.OPTIONFLAGS_BY_NAME.items()}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the indented body starting at ``start`` (lines indented more than ``indent``)."""
    i = start
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        i += 1
    while i > start and not lines[i - 1].strip():
        i -= 1
    return i


def _dedent(body: list[str]) -> str:
    width = min((_indent(s) for s in body if s.strip()), default=0)
    return "\n".join(s[width:] for s in body).strip("\n") + "\n"


def _options(text: str) -> list[str]:
    """Option names (ELLIPSIS, SKIP, ...) from ``:options: +A, +B`` or ``# doctest: +A``."""
    return [o.strip().lstrip("+") for o in text.split(",") if o.strip().startswith("+")]


def _examples(text: str, line: int) -> list[dict]:
    """doctest examples (source, expected output, options) of a ``>>>`` text."""
    out = []
    for ex in _PARSER.get_examples(text):
        opts = [name for name, flag in _FLAGS.items() if ex.options.get(flag)]
        out.append({"source": ex.source, "want": ex.want, "line": line + ex.lineno, "options": opts})
    return out


class _Page:
    """Walks one reST page and collects its code blocks in order."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.blocks: list[dict] = []
        self.section = ""

    def run(self) -> list[dict]:
        i = 0
        while i < len(self.lines):
            i = self._step(i)
        return self.blocks

    def _step(self, i: int) -> int:
        line = self.lines[i]
        nxt = self.lines[i + 1] if i + 1 < len(self.lines) else ""
        if line.strip() and not line.startswith(" ") and _UNDERLINE.match(nxt) and not _UNDERLINE.match(line):
            self.section = line.strip()
            return i + 2
        m = _DIRECTIVE.match(line)
        if m and m.group(2) in _CODE_DIRECTIVES:
            return self._directive(i, len(m.group(1)), m.group(2), m.group(3))
        if m:
            return i + 1  # other directives (note, function, ...): their bodies are read normally
        c = _COMMENT.match(line)
        if c and not (c.group(2) or "").strip().startswith(("_", "[", "|")):
            return _block_end(self.lines, i + 1, len(c.group(1)))  # a comment and its body
        if line.lstrip().startswith(">>>"):
            return self._doctest_block(i)
        if line.rstrip().endswith("::") and line.strip() != "::" or line.strip() == "::":
            return self._literal_block(i)
        return i + 1

    def _literal_block(self, i: int) -> int:
        j = i + 1
        while j < len(self.lines) and not self.lines[j].strip():
            j += 1
        if j < len(self.lines) and _indent(self.lines[j]) > _indent(self.lines[i]):
            return _block_end(self.lines, j, _indent(self.lines[i]))
        return i + 1

    def _doctest_block(self, i: int) -> int:
        indent, j = _indent(self.lines[i]), i
        while j < len(self.lines) and self.lines[j].strip() and _indent(self.lines[j]) >= indent:
            j += 1
        self._add("doctest", "default", i, _examples(_dedent(self.lines[i:j]), i + 1))
        return j

    def _directive(self, i: int, indent: int, name: str, arg: str) -> int:
        j, options = i + 1, {}
        while j < len(self.lines) and self.lines[j].strip().startswith(":") and _indent(self.lines[j]) > indent:
            key, _, value = self.lines[j].strip()[1:].partition(":")
            options[key.strip()] = value.strip()
            j += 1
        end = _block_end(self.lines, j, indent)
        body = _dedent(self.lines[j:end]) if end > j else ""
        group = arg.strip() or "default"
        opts = _options(options.get("options", ""))
        if name == "doctest":
            self._add("doctest", group, i, _examples(body, j + 1), opts)
        elif name in ("testcode", "testsetup"):
            self._add(name, group, i, [{"source": body, "want": "", "line": i + 1, "options": []}])
        elif name == "testoutput":
            self._attach_output(group, body, opts, "hide" in options)
        elif arg.strip().lower() in ("python", "python3", "py", "pycon", ""):
            kind = "doctest" if body.lstrip().startswith(">>>") else "code"
            examples = _examples(body, j + 1) if kind == "doctest" else \
                [{"source": body, "want": "", "line": i + 1, "options": []}]
            self._add(kind, "default", i, examples)
        return end

    def _attach_output(self, group: str, body: str, opts: list[str], hidden: bool) -> None:
        for block in reversed(self.blocks):
            if block["kind"] == "testcode" and block["group"] == group:
                ex = block["examples"][0]
                ex["want"], ex["options"], ex["hidden_output"] = body, opts, hidden
                return

    def _add(self, kind: str, group: str, i: int, examples: list[dict], opts: Any = ()) -> None:
        for ex in examples:
            ex["options"] = sorted(set(ex["options"]) | set(opts))
        if examples:
            self.blocks.append({"kind": kind, "group": group, "section": self.section, "line": i + 1,
                                "examples": examples})


def extract_page(text: str) -> list[dict]:
    """The code blocks of one reST page, in order."""
    return _Page(text).run()


def _read_tree(checkout: str) -> tuple[str, dict[str, str]]:
    """(commit, {path: text}) of the doc pages, from a git directory or a work tree."""
    git = ["git", "-C", checkout]
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    names = subprocess.run(git + ["ls-tree", "-r", "--name-only", "HEAD", "doc"], capture_output=True,
                           text=True, check=True).stdout.split()
    pages = {}
    for name in names:
        if name.endswith(".txt") and name.split("/")[1] in AREAS:
            pages[name] = subprocess.run(git + ["show", f"HEAD:{name}"], capture_output=True, text=True,
                                         check=True).stdout
    return commit, pages


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    commit, pages = _read_tree(argv[0])
    out_root = os.path.join(os.path.dirname(__file__), "pages")
    n = 0
    for path, text in sorted(pages.items()):
        blocks = extract_page(text)
        if not blocks:
            continue
        rel = path[len("doc/"):-len(".txt")]
        target = os.path.join(out_root, rel + ".json")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            json.dump({"page": rel, "source": f"https://github.com/Theano/Theano/blob/{commit}/{path}",
                       "license": "BSD-3-Clause (Theano)", "blocks": blocks}, f, indent=1)
            f.write("\n")
        n += 1
    print(f"wrote {n} pages to {out_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
