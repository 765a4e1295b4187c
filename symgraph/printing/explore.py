"""``sg.printing.to_html(obj, path=None)`` and ``f.explore()``: one self-contained HTML page to look
inside a graph or a compiled function in a browser.

The page needs no network: the graph is laid out by Graphviz's ``dot`` here, as SVG; the script
(``explorer.js``), the styles (``explorer.css``) and the data (JSON) are inlined, and a Content
Security Policy forbids the page from loading anything at all. Pan and zoom, search nodes by name
or op, click a node for its panel (op and parameters, types, the user line that built it, its
lines of ``f.source`` or its OpenCL kernels, its time when profiled), open fused kernels in place,
and, for a function compiled with ``history=True``, step through the rewrite passes with a slider.

Nothing in the page is ever evaluated as code: names and source lines travel as JSON (with ``<``,
``>`` and ``&`` escaped, so nothing can close the script element) and are inserted as text."""
from __future__ import annotations

import html
import json
import os
import re
from importlib import resources
from typing import Any

from symgraph.printing.explore_model import function_model, view_model

CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="@CSP@">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@ · symgraph explorer</title>
<style>
@CSS@
</style>
</head>
<body>
<header>
  <h1 id="sg-title">@TITLE@</h1><span class="sg-backend">@BACKEND@</span>
  <input type="search" id="sg-search" placeholder="search op or name (Enter: next)" aria-label="search">
  <span class="sg-status" id="sg-search-status"></span>
  <button id="sg-fit" title="show the whole graph">fit</button>
  <label><input type="checkbox" id="sg-heat" checked> colour by time</label>
  <span class="sg-legend" id="sg-legend"@LEGEND@><span>fast</span><span class="bar"></span><span>slow</span></span>
  <span id="sg-badges"></span>
</header>
<div id="sg-steps">
  <button id="sg-prev" title="previous pass">◀</button>
  <input type="range" id="sg-slider" min="0" max="0" step="1" value="0" aria-label="rewrite step">
  <button id="sg-next" title="next pass">▶</button>
  <span id="sg-step-label"></span>
</div>
<main>
  <div id="sg-graph"></div>
  <aside class="sg-panel">
    <nav class="sg-tabs">
      <button data-tab="node" class="active">Node</button><button data-tab="step">Step</button>
      <button data-tab="profile">Profile</button><button data-tab="source">Source</button>
    </nav>
    <section class="sg-tab active" id="sg-tab-node"></section>
    <section class="sg-tab" id="sg-tab-step"></section>
    <section class="sg-tab" id="sg-tab-profile"></section>
    <section class="sg-tab" id="sg-tab-source"></section>
  </aside>
</main>
<script type="application/json" id="sg-data">@DATA@</script>
<script>
@JS@
</script>
</body>
</html>
"""


def _asset(name: str) -> str:
    return resources.files("symgraph.printing").joinpath(name).read_text(encoding="utf-8")


def page_data(obj: Any, timeout: float = 120) -> dict:
    """The explorer's data for ``obj``: a compiled function (steps, code, profile) or anything
    ``sg.printing.collect`` accepts (one graph)."""
    if hasattr(obj, "spec") and hasattr(obj, "graph") and hasattr(obj, "_impl"):
        return function_model(obj, timeout)
    return view_model(obj, timeout)


def json_for_script(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` as \\u escapes."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_page(data: dict) -> str:
    """The HTML page for explorer ``data``."""
    js, css = _asset("explorer.js"), _asset("explorer.css")
    if "</script" in js.lower() or "</style" in css.lower():  # our own files: a bug, never user data
        raise AssertionError("explorer assets must not close their own elements")
    parts = {"@CSP@": CSP, "@TITLE@": html.escape(data["title"]), "@BACKEND@": html.escape(data["backend"] or "graph"),
             "@LEGEND@": "" if data["profile"] else ' style="display:none"', "@CSS@": css,
             "@DATA@": json_for_script(data), "@JS@": js}
    return re.sub(r"@[A-Z]+@", lambda m: parts[m.group(0)], _TEMPLATE)  # one pass: inserted text is not rescanned


def to_html(obj: Any, path: str | os.PathLike | None = None, timeout: float = 120) -> str:
    """The explorer page of ``obj`` (a compiled function, a variable, a list of variables, an
    Apply or a FunctionGraph) as one self-contained HTML text; written to ``path`` when given.
    Needs Graphviz's ``dot`` (GraphvizError says how to install it); ``timeout`` bounds each
    layout."""
    page = render_page(page_data(obj, timeout))
    if path is not None:
        with open(os.fspath(path), "w", encoding="utf-8") as fh:
            fh.write(page)
    return page


class Explorer:
    """The explorer of a compiled function for Jupyter (``f.explore()``): shown inline (in an
    iframe, so its script and styles stay its own); ``html`` is the page, ``save(path)`` writes it."""

    height = 680

    def __init__(self, page: str) -> None:
        self.html = page

    def save(self, path: str | os.PathLike) -> str:
        with open(os.fspath(path), "w", encoding="utf-8") as fh:
            fh.write(self.html)
        return os.fspath(path)

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;height:{self.height}px;'
                'border:1px solid #ccc" title="symgraph explorer"></iframe>')

    def __repr__(self) -> str:
        return f"<symgraph Explorer: {len(self.html):,} characters of HTML; show it in Jupyter or save(path)>"


def explore(obj: Any, path: str | os.PathLike | None = None, timeout: float = 120) -> Explorer:
    """``f.explore()``: the Explorer of ``obj`` (written to ``path`` too when given)."""
    return Explorer(to_html(obj, path, timeout))
