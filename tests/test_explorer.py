"""The explorer page (sg.printing.to_html, f.explore) without a browser: it references nothing
outside itself, every node of f.graph is drawn with its stable id, each node's panel facts (op,
types, user line, its lines of f.source, its kernels, its inner graph, its time) are right, hostile
names stay text, and host fallbacks and transfers are marked. tests/test_explorer_browser.py
drives the same pages in Chromium."""
from __future__ import annotations

import re
import shutil
import warnings

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.printing import Explorer, to_html
from symgraph.printing.collect import inner_graph
from symgraph.printing.explore import CSP, json_for_script

from conftest import NO_OPENCL
from explore_cases import HIDDEN_LINE, batch, hidden_node, mlp_step, page_data

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")

_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


@pytest.fixture(scope="module")
def pages():
    """Profiled, history-recording MLP steps and their pages, per backend (built once)."""
    cache = {}

    def get(backend):
        if backend not in cache:
            f = mlp_step(backend, profile=True, history=True)
            for _ in range(3):
                f(*batch(f))
            page = to_html(f)
            cache[backend] = f, page, page_data(page)
        return cache[backend]
    return get


def _apply_ids(svg: str) -> list[str]:
    return re.findall(r'<g id="([^"]+)" class="node apply[^"]*"', svg)


def test_the_page_references_nothing_outside_itself(pages, backend):
    _, page, _ = pages(backend)
    assert f'content="{CSP}"' in page and "default-src 'none'" in CSP
    assert not re.search(r"<(link|img|iframe|object|embed|base)\b", page, re.I)
    assert not re.search(r"\b(src|href|action)\s*=", page, re.I)
    assert not re.search(r"url\(|@import", page, re.I)
    found = set(re.findall(r"[a-z]+://[^\s\"'<>\\]+", page))
    assert found <= _NAMESPACES, found - _NAMESPACES
    assert page.count("<script") == 2 and "<style>" in page  # the data and the inline script


def test_every_node_of_the_graph_is_drawn_with_its_stable_id(pages, backend):
    f, _, data = pages(backend)
    final = data["steps"][-1]
    assert final["final"] and final["label"].endswith(f"compiled ({backend})")
    sids = [f.history.sid(n) for n in f.graph.toposort()]
    assert final["nodes"] == sids
    assert sorted(_apply_ids(data["svgs"][final["svg"]])) == sorted(sids)
    assert len(data["steps"]) == len(f.history.steps)
    for step, recorded in zip(data["steps"], f.history.steps):
        assert sorted(_apply_ids(data["svgs"][step["svg"]])) == sorted(recorded.sids)
    assert len(data["steps"][0]["nodes"]) > len(sids)  # the slider shows a different graph


def test_a_nodes_panel_facts(pages, backend):
    f, _, data = pages(backend)
    node = hidden_node(f)
    facts = data["nodes"][f.history.sid(node)]
    assert facts["op"] == str(node.op) and facts["op_class"] == "Epilogue"
    assert facts["user"]["line"] == HIDDEN_LINE and facts["user"]["file"].endswith("explore_cases.py")
    assert "T.sigmoid(T.dot(x, W) + b)" in facts["user"]["text"]
    assert [i["name"] for i in facts["inputs"]] == ["x", "W", "b"]
    assert facts["inputs"][0]["type"] == str(node.inputs[0].type)
    assert dict(facts["params"])["slot"] == "0"
    lines = f.source.splitlines()
    assert facts["code"] and all(lines[n - 1].strip() == text for n, text in facts["code"])
    assert any(f"(explore_cases.py:{HIDDEN_LINE})" in text for _, text in facts["code"])
    if backend == "opencl":
        assert facts["kernels"] and all(data["kernels"][k] == f.kernels[k] for k in facts["kernels"])
        assert "__kernel" in data["kernels"][facts["kernels"][0]]
    else:
        assert facts["kernels"] == [] and data["kernels"] == {}
    assert facts["profile"]["calls"] == 3 and facts["profile"]["seconds"] > 0
    assert facts["origin"] == ["fusion"] and data["steps"][facts["step"]]["label"] == "fusion"


def test_fused_kernels_carry_their_inner_graph(pages, backend):
    f, _, data = pages(backend)
    for node in f.graph.apply_nodes:
        facts = data["nodes"][f.history.sid(node)]
        inner = inner_graph(node)
        if inner is None:
            assert facts["inner"] is None
            continue
        n_inner = len(sg.graph.toposort(inner[1], blockers=inner[0]))
        assert len(facts["inner"]["nodes"]) == n_inner == len(facts["inner"]["ops"])
        ids = _apply_ids(data["svgs"][facts["inner"]["svg"]])
        assert sorted(ids) == sorted(facts["inner"]["nodes"])
        assert all(data["nodes"][i]["user"] == facts["user"] for i in ids)  # inner nodes: the kernel's line
    assert sum(data["nodes"][f.history.sid(n)]["inner"] is not None for n in f.graph.apply_nodes) >= 4


def test_profile_and_steps_in_the_data(pages, backend):
    f, _, data = pages(backend)
    assert data["profile"]["calls"] == 3 and "Function profiling" in data["profile"]["text"]
    fusion = next(s for s in data["steps"] if s["label"] == "fusion")
    assert fusion["applied"]["fusion"] >= 4 and fusion["fired"] and fusion["links"]
    assert data["source"] == f.source and data["backend"] == backend


@pytest.mark.skipif(NO_OPENCL is not None, reason=str(NO_OPENCL))
def test_profile_of_an_opencl_function_with_a_placement_variant():
    """Theano's d3viz page of a profiled function: on OpenCL a call of other shapes runs a variant
    placed for them, whose nodes the profile times too; the page draws the compiled graph's and
    says the others are in the profile's text (it raised KeyError)."""
    rng = np.random.default_rng(0)
    x = T.dmatrix("x")
    wh, wy = sg.shared(rng.normal(size=(100, 50)), "wh"), sg.shared(rng.normal(size=(50, 10)), "wy")
    bh, by = sg.shared(np.zeros(50), "bh"), sg.shared(np.zeros(10), "by")
    y = T.nnet.softmax(T.dot(T.nnet.sigmoid(T.dot(x, wh) + bh), wy) + by)  # the d3viz page's MLP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with sg.config.change_flags(placement="auto"):  # the default: placed by size (tests use 'device')
            f = sg.function([x], y, backend="opencl", profile=True)
            f(rng.normal(size=(1000, 100)))
    data = page_data(to_html(f))
    assert data["profile"]["calls"] == 1
    timed = [n for n in data["nodes"].values() if n.get("profile")]
    assert timed and len(timed) <= len(f.profile.nodes)
    if len(f.profile.nodes) <= len(f.graph.apply_nodes):  # placement is calibrated on each machine
        pytest.skip("size-aware placement made no variant for these shapes on this machine")
    assert any("variant compiled for the calls' shapes" in note for note in data["notes"])


def test_hostile_names_stay_text():
    evil = '</script><script>alert("x")</script>&amp;<b>'
    x = T.dvector(evil)
    y = T.exp(x)
    y.name = "@JS@ @DATA@ \u2028"
    f = sg.function([x], y, name="f")
    page = to_html(f)
    assert "<script>alert" not in page and "</script><script>" not in page
    data = page_data(page)
    assert data["nodes"]["n0"]["inputs"][0]["name"] == evil
    assert data["nodes"]["n0"]["outputs"][0]["name"] == y.name
    assert page.count("<script") == 2
    assert "&lt;/script&gt;" in data["svgs"][0]  # dot escaped the label
    assert json_for_script({"a": "</script>"}) == '{"a":"\\u003c/script\\u003e"}'


def test_host_fallbacks_and_transfers_are_marked():
    from conftest import BACKENDS
    if "opencl" not in BACKENDS:
        pytest.skip("no OpenCL device")
    a, b = T.matrix("a", dtype="float32"), T.matrix("b", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = sg.function([a, b], T.linalg.cho_solve((T.linalg.cholesky(a), True), b) * 2, backend="opencl")
    data = page_data(to_html(f))
    svg = data["svgs"][data["steps"][-1]["svg"]]
    fallbacks = [s for s in data["steps"][-1]["nodes"] if data["nodes"][s]["fallback"]]
    assert len(fallbacks) == 2
    for sid in fallbacks:
        assert re.search(rf'<g id="{sid}" class="node apply fallback', svg)
        assert any(name.startswith("host") for name in data["nodes"][sid]["kernels"])
    assert svg.count('class="edge flow transfer"') >= 1  # the device value a fallback reads on the host
    assert "to host" in svg
    assert data["notes"] and "history=True" in data["notes"][0]


def test_graphs_that_are_not_functions():
    x, y = T.dmatrix("x"), T.dmatrix("y")
    z = T.tanh(x @ y + 1)
    data = page_data(to_html(z))
    assert len(data["steps"]) == 1 and len(data["steps"][0]["nodes"]) == 3
    assert sorted(_apply_ids(data["svgs"][0])) == sorted(data["steps"][0]["nodes"])
    assert data["source"] == "" and data["profile"] is None
    assert data["nodes"]["n0"]["user"]["line"] > 0


def test_explore_inline_and_to_a_file(tmp_path, backend):
    f = mlp_step(backend)
    path = tmp_path / "step.html"
    shown = f.explore(path)
    assert isinstance(shown, Explorer) and path.read_text() == shown.html
    frame = shown._repr_html_()
    assert frame.startswith("<iframe srcdoc=\"") and "<script" not in frame and "&lt;script" in frame
    assert to_html(f, tmp_path / "again.html") == (tmp_path / "again.html").read_text()
    data = page_data(shown.html)
    assert data["profile"] is None and len(data["steps"]) == 1
    assert np.isfinite(f(*batch(f)))


def test_a_large_graph_draws_a_box_per_reader_of_a_leaf():
    from symgraph.printing.explore_draw import SPLIT_ABOVE
    x, w = T.dvector("x"), sg.shared(np.ones(3), name="w")
    y, layers = x, SPLIT_ABOVE // 2 + 1
    for _ in range(layers):
        y = T.tanh(y * w + x)  # w is read once per layer, x once more than that
    data = page_data(to_html(sg.function([x], y, mode=None)))
    svg = data["svgs"][data["steps"][-1]["svg"]]
    assert len(_apply_ids(svg)) == len(data["steps"][-1]["nodes"]) > SPLIT_ABOVE
    ids = re.findall(r'<g id="([^"]+)" class="node var', svg)
    assert len(ids) == len(set(ids))  # ids stay unique
    copies = re.findall(r'<g id="[^"]+~\d+" class="node var (input|shared) copy"', svg)
    assert copies.count("input") == layers and copies.count("shared") == layers - 1
