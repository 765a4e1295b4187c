"""Run the example groups of Theano's documentation against symgraph (after the import change).

An *example group* is the code of one titled section of a page, within one Sphinx doctest
group (Sphinx runs each named group of a page in its own namespace; unnamed blocks share the
page's ``default`` group). A group passes when every example in it runs, raises the documented
exception where the docs show a traceback, and prints the documented numbers (compare.py).

Groups are left out of the count, each with its reason, when they are GPU-only or depend on
a capability that has not landed (sparse); scan, ifelse, random streams, convolution, linear
algebra, profiling, d3viz and OpFromGraph have landed and count. Python ``code-block`` examples that are
not complete programs (invalid syntax, or names no earlier code of the page defines) are
fragments: they are listed, not run. Everything else counts.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import os
import re
import signal
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

from .compare import compare, expected_exception
from .imports import port_source

PAGES = os.path.join(os.path.dirname(__file__), "pages")
GROUP_TIMEOUT_S = 300

# page prefix -> why its groups are left out
EXCLUDED_PAGES = {
    "tutorial/using_gpu": "GPU-only", "tutorial/using_multi_gpu": "GPU-only",
    "extending/extending_theano_gpu": "GPU-only", "library/gpuarray/": "GPU-only",
    "tutorial/sparse": "sparse", "library/sparse/": "sparse",
}
# code pattern -> why a group using it is left out
EXCLUDED_CODE = [
    (r"\bsparse\b", "sparse"),
    (r"gpuarray|\bcuda\b|\.transfer\(|pycuda|pygpu", "GPU-only"),
]
# code-block examples (not tested by Sphinx) that cannot run in Theano either, by (page, line)
NOT_RUNNABLE = {("tutorial/loading_and_saving", 137): "reads model.zip, a file no example of the page writes",
                ("tutorial/shape_info", 110): "its arguments are elided (conv2d(..., image_shape=...))"}


@dataclass
class Example:
    source: str
    want: str
    line: int
    options: list[str]
    kind: str


@dataclass
class Group:
    """One example group: a page section within one Sphinx group."""
    page: str
    section: str
    sphinx_group: str
    examples: list[Example] = field(default_factory=list)
    left_out: list[tuple[int, str]] = field(default_factory=list)  # (line, why) of blocks not counted
    fragments: list[int] = field(default_factory=list)  # lines of code blocks not run
    status: str = "not run"  # pass | fail | excluded | fragment
    reason: str = ""

    @property
    def name(self) -> str:
        return f"{self.page} :: {self.section or '(top)'}" + \
            (f" [{self.sphinx_group}]" if self.sphinx_group != "default" else "")


def load_pages(pattern: str = "") -> list[dict]:
    """The extracted pages (tests/theano_docs/pages), optionally those whose name contains ``pattern``."""
    pages = []
    for root, _, files in os.walk(PAGES):
        for name in sorted(files):
            if name.endswith(".json"):
                with open(os.path.join(root, name)) as f:
                    page = json.load(f)
                if pattern in page["page"]:
                    pages.append(page)
    return sorted(pages, key=lambda p: p["page"])


def _page_exclusion(page: str) -> str | None:
    return next((why for prefix, why in EXCLUDED_PAGES.items() if page.startswith(prefix)), None)


def _code_exclusion(source: str) -> str | None:
    return next((why for pat, why in EXCLUDED_CODE if re.search(pat, source)), None)


class _Names(ast.NodeVisitor):
    """Names a block binds, and names it reads when run (function bodies run only when called)."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.read: set[str] = set()
        self.imported: set[str] = set()
        self.star = False

    def visit_Name(self, node: ast.Name) -> None:
        (self.read if isinstance(node.ctx, ast.Load) else self.bound).add(node.id)

    def visit_FunctionDef(self, node: Any) -> None:
        self.bound.add(node.name)
        for d in node.decorator_list + node.args.defaults + node.args.kw_defaults:
            if d is not None:
                self.visit(d)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for d in node.args.defaults:
            self.visit(d)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.bound.add(node.name)
        self.generic_visit(node)

    def visit_Import(self, node: Any) -> None:
        for a in node.names:
            if a.name == "*":
                self.star = True
            else:
                self.bound.add((a.asname or a.name).split(".")[0])
                self.imported.add((a.asname or a.name).split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)


def _names(source: str) -> _Names | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names = _Names()
    names.visit(tree)
    return names


def _free_names(source: str, known: set[str]) -> set[str] | None:
    """Names ``source`` reads when run that neither it nor earlier code binds (None: not Python)."""
    names = _names(source)
    if names is None:
        return None
    return names.read - names.bound - known - set(dir(builtins))


def _bound_names(source: str) -> set[str]:
    """Names ``source`` binds ('*' when it star-imports)."""
    names = _names(source)
    if names is None:
        return set()
    return names.bound | ({"*"} if names.star else set())


def _block_reads(examples: list[dict]) -> set[str]:
    """Names a block reads before binding them itself."""
    parsed = [_names(e["source"]) or _Names() for e in examples]
    return set().union(*[n.read for n in parsed]) - set().union(*[n.bound for n in parsed]) if parsed else set()


def build_groups(page: dict) -> tuple[list[Group], dict[str, list[str]]]:
    """The page's example groups, and the setup code of each Sphinx group ('*' = all).

    Leaving out is decided per code block: a block whose code uses a capability of another open
    issue, or reads a name whose latest definition is in a left-out block, is left out (and the
    names it defines become left-out names). A group whose blocks are all left out is left out."""
    groups: dict[tuple, Group] = {}
    setup: dict[str, list[str]] = {}
    known: dict[str, set[str]] = {}
    last_binder: dict[str, dict[str, str | None]] = {}  # Sphinx group -> name -> why left out (None: kept)
    page_excl = _page_exclusion(page["page"])
    for block in page["blocks"]:
        sg = block["group"]
        if block["kind"] == "testsetup":
            setup.setdefault(sg, []).append(block["examples"][0]["source"])
            known.setdefault(sg, set()).update(_bound_names(block["examples"][0]["source"]))
            continue
        g = groups.setdefault((sg, block["section"]), Group(page["page"], block["section"], sg))
        binders = last_binder.setdefault(sg, {})
        source = "\n".join(e["source"] for e in block["examples"])
        why = page_excl or _code_exclusion(source) or next(
            (f"{binders[n]} (uses {n}, which a left-out example defines)" for n in sorted(_block_reads(block["examples"]))
             if binders.get(n)), None)
        bound = set().union(*[_bound_names(e["source"]) for e in block["examples"]])
        imported = set().union(*[(_names(e["source"]) or _Names()).imported for e in block["examples"]])
        # a left-out block that re-imports a module kept code imported already changes nothing
        binders.update({n: why for n in bound if not (why and n in imported and n in binders and binders[n] is None)})
        if why:
            g.left_out.append((block["line"], why))
            continue
        names = known.setdefault(sg, set()) | known.get("*", set())
        for ex in block["examples"]:
            if block["kind"] == "code":
                free = _free_names(ex["source"], names)
                if free is None or (free and "*" not in names) or (page["page"], ex["line"]) in NOT_RUNNABLE:
                    g.fragments.append(ex["line"])
                    continue
            g.examples.append(Example(ex["source"], ex["want"], ex["line"], ex["options"], block["kind"]))
            known[sg].update(_bound_names(ex["source"]))
    for g in groups.values():
        if not g.examples and g.left_out:
            g.status, g.reason = "excluded", g.left_out[0][1]
        elif not g.examples:
            g.status, g.reason = "fragment", f"only code fragments (lines {g.fragments})"
    return list(groups.values()), setup


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout(f"group ran longer than {GROUP_TIMEOUT_S} s")


def _run_example(ex: Example, ns: dict) -> str | None:
    """Run one example in ``ns``; None on success, else why it failed."""
    source = port_source(ex.source)
    exc_name = expected_exception(ex.want)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, f"<{ex.kind} line {ex.line}>", "single" if ex.kind == "doctest" else "exec")
            exec(code, ns)
    except _Timeout:
        raise
    except BaseException as e:  # noqa: BLE001 - any failure of the example is its result
        if exc_name and any(c.__name__ == exc_name for c in type(e).__mro__):
            return None
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f" (line {f.lineno} of the example)" for f in reversed(tb) if f.filename.startswith("<")), "")
        return f"line {ex.line}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{where}"
    if exc_name:
        return f"line {ex.line}: expected {exc_name}, nothing was raised"
    if "SKIP" in ex.options:
        return None
    diff = compare(ex.want, out.getvalue())
    return None if diff is None else f"line {ex.line}: {diff}"


@contextlib.contextmanager
def _isolated() -> Any:
    """Registries and flags a page may change (rewrites it registers, config flags) are restored."""
    from symgraph.config import config
    from symgraph.rewrite.core import RULES, USER_PASSES
    from symgraph.rewrite import user
    rules = {k: list(v) for k, v in RULES.items()}
    passes, names, flags = dict(USER_PASSES), set(user._USER_RULES), dict(config._values)
    try:
        yield
    finally:
        for k, v in rules.items():
            RULES[k][:] = v
        USER_PASSES.clear()
        USER_PASSES.update(passes)
        user._USER_RULES.clear()
        user._USER_RULES.update(names)
        config._values.update(flags)


def run_page(page: dict) -> list[Group]:
    """Run every counted group of ``page``, in order, one namespace per Sphinx group."""
    with _isolated():
        return _run_groups(page)


def _run_groups(page: dict) -> list[Group]:
    groups, setup = build_groups(page)
    namespaces: dict[str, dict] = {}
    for g in groups:
        if g.status != "not run":
            continue
        ns = namespaces.get(g.sphinx_group)
        if ns is None:
            ns = namespaces[g.sphinx_group] = {"__name__": "__theano_doc__"}
            for code in setup.get("*", []) + setup.get(g.sphinx_group, []):
                err = _run_example(Example(code, "", 0, [], "testsetup"), ns)
                if err:
                    g.reason = f"setup failed: {err}"
        failures = []
        for ex in g.examples:
            err = _run_example(ex, ns)
            if err:
                failures.append(err)
        g.status = "fail" if failures or g.reason else "pass"
        g.reason = g.reason or "; ".join(failures)
    return groups


def run_all(pattern: str = "") -> list[Group]:
    """Run all pages (or those matching ``pattern``) in a scratch directory; the groups with results."""
    results = []
    old_cwd, old_handler = os.getcwd(), signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "pics"))  # the docs' own folders have pics/ for pydotprint output
        os.chdir(tmp)
        try:
            for page in load_pages(pattern):
                signal.alarm(GROUP_TIMEOUT_S * 4)
                try:
                    results += run_page(page)
                except _Timeout as e:
                    results += [Group(page["page"], "(timeout)", "default", status="fail", reason=str(e))]
                finally:
                    signal.alarm(0)
        finally:
            os.chdir(old_cwd)
            signal.signal(signal.SIGALRM, old_handler)
            sys.stdout.flush()
    return results
