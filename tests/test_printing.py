"""Graphviz and networkx output: DOT structure (shapes, colours, labels, edges) of the z = x + y
structure figure and of a small MLP, its gradient and a compiled training step; rendering
through dot; max_nodes on a 10^4-node graph; missing dot; bad arguments."""
from __future__ import annotations

import re
import shutil
import time

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph.basic import Apply, Op
from symgraph.printing.collect import Group, collect
from symgraph.printing.dot_compact import compact_dot
from symgraph.printing import (FORMATS, STYLES, GraphvizError, pydotprint, repr_svg, to_dot,
                               to_networkx)
from symgraph.tensor.composite import Composite
from symgraph.tensor.type import TensorType

NEEDS_DOT = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed "
                               "(apt-get install graphviz / brew install graphviz): nothing to render with")
_STMT = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|[^\s\[\]]+)(?:\s*->\s*("(?:[^"\\]|\\.)*"|[^\s\[\]]+))?\s*'
                   r'(?:\[(.*)\])?\s*$', re.S)
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]+)')


def parse(dot) -> tuple[dict, list]:
    """Nodes {id: attrs} and edges [(src, dst, attrs)] from a Digraph (clusters included)."""
    nodes, edges = {}, []

    def walk(body):
        for stmt in body:
            stmt = stmt.strip()
            if not stmt or stmt.startswith(("subgraph", "}", "graph ", "node ", "edge ", "label=", "style=",
                                            "fillcolor=", "color=")):
                continue
            m = _STMT.match(stmt)
            assert m, stmt
            attrs = {k: v.strip('"') for k, v in _ATTR.findall(m.group(3) or "")}
            if m.group(2):
                edges.append((m.group(1), m.group(2), attrs))
            else:
                nodes[m.group(1)] = attrs
    walk(dot.body)
    return nodes, edges


def by_label(nodes: dict, label: str) -> list[str]:
    return [n for n, a in nodes.items() if a.get("label") == label]


@pytest.fixture
def zxy():
    x, y = T.dmatrix("x"), T.dmatrix("y")
    z = x + y
    z.name = "z"
    return x, y, z


def test_structure_figure_of_z_equals_x_plus_y(zxy):
    nodes, edges = parse(to_dot(zxy[2], style="structure"))
    (x,), (y,), (z,) = by_label(nodes, "x"), by_label(nodes, "y"), by_label(nodes, "z")
    (apply,), (op,) = by_label(nodes, "Apply"), by_label(nodes, "Elemwise{add}")
    (typ,) = by_label(nodes, "TensorType(float64, shape=(?, ?))")
    for v in (x, y, z):
        assert nodes[v]["shape"] == "box" and nodes[v]["color"] == "red"
    assert nodes[apply]["shape"] == "box" and nodes[apply]["color"] == "blue"
    assert nodes[op]["shape"] == "circle" and nodes[op]["color"] == "darkgreen"
    assert nodes[typ]["shape"] == "box" and nodes[typ]["color"] == "purple"
    assert len(nodes) == 6  # 3 variables, 1 Apply, 1 Op, 1 Type (equal types are one box)
    got = sorted((s, d, a.get("label")) for s, d, a in edges)
    assert got == sorted([(apply, x, "inputs[0]"), (apply, y, "inputs[1]"), (apply, z, "outputs[0]"),
                          (apply, op, "op"), (z, apply, "owner"),
                          (x, typ, "type"), (y, typ, "type"), (z, typ, "type")])


def test_compact_view_of_z(zxy):
    nodes, edges = parse(to_dot(zxy[2]))
    (add,) = by_label(nodes, "add")
    (x,), (y,), (z,) = (by_label(nodes, f"{n}\nfloat64[?, ?]") for n in "xyz")
    assert nodes[add]["shape"] == "ellipse"
    assert nodes[x]["fillcolor"] == nodes[y]["fillcolor"] == "palegreen"
    assert nodes[z]["fillcolor"] == "lightskyblue" and nodes[z]["shape"] == "box"
    assert sorted((s, d, a.get("label")) for s, d, a in edges) == sorted(
        [(x, add, "0"), (y, add, "1"), (add, z, None)])


def _mlp():
    rng = np.random.default_rng(0)
    x, t = T.dmatrix("x"), T.dvector("t")
    W = sg.shared(rng.normal(size=(3, 4)), name="W")
    b = sg.shared(np.zeros(4), name="b")
    v = sg.shared(rng.normal(size=4), name="v")
    h = T.sigmoid(T.dot(x, W) + b)
    h.name = "h"
    cost = ((T.sigmoid(T.dot(h, v)) - t) ** 2).mean()
    cost.name = "cost"
    return x, t, (W, b, v), h, cost


def test_compact_view_of_small_mlp():
    x, t, (W, b, v), h, cost = _mlp()
    nodes, edges = parse(to_dot(cost))
    fill = {a["label"].split("\n")[0]: a.get("fillcolor") for a in nodes.values() if a.get("shape") == "box"}
    assert fill["x"] == fill["t"] == "palegreen"
    assert fill["W (shared)"] == fill["b (shared)"] == fill["v (shared)"] == "gold"
    assert fill["2.0"] == "lightgrey"
    assert fill["cost"] == "lightskyblue" and fill["h"] == "white"  # named intermediate gets a box
    ellipses = [a["label"] for a in nodes.values() if a.get("shape") == "ellipse"]
    assert sorted(ellipses) == sorted(str(n.op) for n in sg.printing.collect(cost).nodes)
    assert ellipses.count("Dot") == 2 and ellipses.count("sigmoid") == 2
    (add,) = [n for n, a in nodes.items() if a.get("label") == "add"]
    (bbox,) = by_label(nodes, "b (shared)\nfloat64[?]")
    assert (bbox, add, "1") in [(s, d, a.get("label")) for s, d, a in edges]
    (hbox,) = by_label(nodes, "h\nfloat64[?, ?]")
    assert [d for s, d, _ in edges if s == hbox] == [by_label(nodes, "Dot")[1]]


def test_compact_view_of_mlp_gradient_has_every_node():
    x, t, params, h, cost = _mlp()
    grads = sg.grad(cost, list(params))
    view = sg.printing.collect([cost, *grads])
    nodes, edges = parse(to_dot([cost, *grads], max_nodes=None))
    assert len([a for a in nodes.values() if a.get("shape") == "ellipse"]) == len(view.nodes)
    outputs = [a for a in nodes.values() if a.get("fillcolor") == "lightskyblue"]
    assert len(outputs) == 4
    # every Apply node has as many incoming edges as inputs
    ids = {a["label"]: n for n, a in nodes.items()}
    assert len(edges) >= sum(len(n.inputs) for n in view.nodes)
    assert "more" not in ids.values()


def _composite_graph():
    x, y = T.dmatrix("x"), T.dvector("y")
    comp = Composite(["float64", "float64"],
                     [("mul", (("i", 0), ("i", 1))), ("add", (("s", 0), ("c", "float64", 0.5))),
                      ("sigmoid", (("s", 1),)), ("tanh", (("i", 0),))], [("s", 2), ("s", 3)])
    a, b = comp(x, y)
    return x, y, a, b


def test_fused_composite_is_a_cluster_of_its_inner_ops():
    x, y, a, b = _composite_graph()
    dot = to_dot([a.sum(), b])
    starts = [k for k, s in enumerate(dot.body) if s.strip().startswith("subgraph cluster_")]
    assert len(starts) == 1
    end = dot.body.index("\t}\n", starts[0])
    cluster = dot.body[starts[0] + 1:end]
    assert any("Composite (fused)" in s for s in cluster)
    inner, inner_edges = parse(_Body(cluster))
    assert {a_["label"] for a_ in inner.values()} == {"mul", "add", "sigmoid", "tanh", "0.5"}
    assert inner_edges == []  # edges live outside, or outer nodes would be pulled in
    nodes, edges = parse(dot)
    xbox, = by_label(nodes, "x\nfloat64[?, ?]")
    assert xbox not in inner
    mul, = by_label(nodes, "mul")
    tanh, = by_label(nodes, "tanh")
    add, = by_label(nodes, "add")
    half, = by_label(nodes, "0.5")
    assert {(s, d, a_.get("label")) for s, d, a_ in edges} >= {(xbox, mul, "0"), (xbox, tanh, None),
                                                              (mul, add, "0"), (half, add, "1")}



def declarations(dot) -> dict[str, list[tuple[str, ...]]]:
    """Each dot node id -> the cluster paths it is declared in (subgraph names, outermost first)."""
    out: dict[str, list[tuple[str, ...]]] = {}
    path: list[str] = []
    for stmt in dot.body:
        stmt = stmt.strip()
        if stmt.startswith("subgraph "):
            path.append(stmt.split()[1])
        elif stmt == "}":
            path.pop()
        elif (m := _STMT.match(stmt)) and not m.group(2) and "=" not in m.group(1) \
                and not stmt.startswith(("graph ", "node ", "edge ")):
            out.setdefault(m.group(1), []).append(tuple(path))
    return out


def test_drawing_a_compiled_function_again_gives_the_same_picture(backend):
    """Fused nodes' inner graphs are built afresh for each drawing; freed ones must not lend their
    names (ids) to the next cluster: the same function always draws as the same dot source, and
    every inner op is declared once, inside its own cluster."""
    x, t, params, h, cost = _mlp()
    grads = sg.grad(cost, list(params))
    f = sg.function([x, t], cost, updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)],
                    backend=backend, name="train")
    sources = {to_dot(f).source for _ in range(6)}
    assert len(sources) == 1
    dot = to_dot(f)
    decl = declarations(dot)
    clusters = {p[-1] for paths in decl.values() for p in paths if p}
    assert len(clusters) >= 2  # several fused nodes, each its own cluster
    for nid, paths in decl.items():
        assert len(paths) == 1, f"{nid} declared {len(paths)} times"
        if nid.startswith("cluster_"):  # an inner op or constant: inside the cluster named after it
            assert paths[0] and nid.startswith(paths[0][-1] + "_"), (nid, paths)
        elif backend == "opencl":  # an outer node: at the top, or in the box of the kernel that runs it
            assert paths[0] == () or (len(paths[0]) == 1 and re.fullmatch(r"cluster_g\d+", paths[0][0])), (nid, paths)
        else:
            assert paths[0] == (), (nid, paths)


def test_groups_draw_boxes_around_outer_nodes():
    """GraphView.groups (what one kernel runs, for a backend that says so) box outer nodes
    together, a fused node's cluster nested inside."""
    x, y, a, b = _composite_graph()
    s = a.sum()
    view = collect([s, b])
    comp = a.owner
    view.groups = [Group("kernel k0", [comp, s.owner])]
    dot = compact_dot(view, None)
    decl = declarations(dot)
    nodes, _ = parse(dot)
    for label in ("mul", "tanh", "0.5"):
        (nid,) = by_label(nodes, label)
        assert decl[nid] == [("cluster_g0", f"cluster_{nid.split('_')[1]}")]
    (total,) = [n for n, a_ in nodes.items() if a_.get("label", "").startswith("sum")]
    assert decl[total] == [("cluster_g0",)]
    (xbox,) = by_label(nodes, "x\nfloat64[?, ?]")
    assert decl[xbox] == [()]
    assert 'label="kernel k0"' in dot.source
    assert compact_dot(view, None).source == dot.source

class _Body:
    def __init__(self, body):
        self.body = body


class HostToDeviceTransfer(Op):
    """A stand-in transfer op (the OpenCL backend's own are detected the same way)."""

    def make_node(self, x):
        return Apply(self, [x], [TensorType(x.dtype, x.type.shape).make_variable()])


def test_transfer_nodes_stand_out_and_updates_are_labelled_edges():
    x = T.dvector("x")
    w = sg.shared(np.ones(3), name="w")
    moved = HostToDeviceTransfer()(x)
    f = sg.function([x], moved * w, updates=[(w, w + moved)], mode=None)
    nodes, edges = parse(to_dot(f))
    (transfer,) = by_label(nodes, "HostToDeviceTransfer")
    assert nodes[transfer]["shape"] == "doubleoctagon" and nodes[transfer]["fillcolor"] == "tomato"
    (wbox,) = by_label(nodes, "w (shared)\nfloat64[?]")
    (add,) = by_label(nodes, "add")
    updates = [(s, d, a) for s, d, a in edges if a.get("label") == "update"]
    assert [(s, d) for s, d, _ in updates] == [(add, wbox)]
    assert updates[0][2]["color"] == "red" and updates[0][2]["style"] == "dashed"


def test_compiled_training_function_has_title_and_updates():
    x, t, params, h, cost = _mlp()
    grads = sg.grad(cost, list(params))
    f = sg.function([x, t], cost, updates=[(p, p - 0.1 * g) for p, g in zip(params, grads)], name="train")
    dot = to_dot(f)
    assert 'label="train(x, t) [numpy]"' in dot.source
    assert len([e for e in parse(dot)[1] if e[2].get("label") == "update"]) == 3


@NEEDS_DOT
def test_render_svg_through_dot(tmp_path, zxy):
    for style in STYLES:
        path = pydotprint(zxy[2], tmp_path / f"z_{style}.svg", style=style)
        svg = open(path).read()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        labels = {"compact": ["add", "x", "y", "z", "float64[?, ?]"],
                  "structure": ["Apply", "Elemwise{add}", "TensorType(float64, shape=(?, ?))", "owner",
                                "inputs[0]", "outputs[0]"]}[style]
        for label in labels:
            assert f">{label}</text>" in svg, label
    png = pydotprint(zxy[2], tmp_path / "z.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    pdf = pydotprint(zxy[2], tmp_path / "z.out", format="pdf")
    assert open(pdf, "rb").read(5) == b"%PDF-"
    assert open(pydotprint(zxy[2], tmp_path / "z.gv")).read() == to_dot(zxy[2]).source


@NEEDS_DOT
def test_repr_svg_for_notebooks(zxy):
    x, y, z = zxy
    svg = repr_svg(z)
    assert svg is not None and "<svg" in svg and ">add</text>" in svg
    f = sg.function([x, y], z)
    assert "<svg" in f._repr_svg_()


def test_missing_dot(tmp_path, monkeypatch, zxy):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on PATH
    assert "add" in to_dot(zxy[2]).source  # to_dot is only text
    with pytest.raises(GraphvizError, match="apt-get install graphviz.*brew install graphviz"):
        pydotprint(zxy[2], tmp_path / "z.svg")
    assert not (tmp_path / "z.svg").exists()
    assert repr_svg(zxy[2]) is None  # Jupyter falls back to the text repr
    pydotprint(zxy[2], tmp_path / "z.dot")  # dot source needs no binary
    assert (tmp_path / "z.dot").read_text().startswith("digraph")


def test_bad_style_and_format(tmp_path, zxy):
    with pytest.raises(ValueError, match=r"unknown style 'fancy'.*'compact', 'structure'"):
        to_dot(zxy[2], style="fancy")
    with pytest.raises(ValueError, match=r"unknown format 'jpg'.*'svg', 'png', 'pdf', 'dot'"):
        pydotprint(zxy[2], tmp_path / "z.svg", format="jpg")
    with pytest.raises(ValueError, match=r"cannot tell the format.*\.svg"):
        pydotprint(zxy[2], tmp_path / "z.jpeg")
    with pytest.raises(TypeError, match="expected a symbolic variable"):
        to_dot("x + y")
    assert FORMATS == ("svg", "png", "pdf", "dot")


def _chain(n: int):
    x = T.dvector("x")
    v = x
    for k in range(n):
        v = T.tanh(v) if k % 2 else v * 1.5
    return v


@NEEDS_DOT
def test_huge_graph_collapses_beyond_max_nodes(tmp_path):
    v = _chain(10_000)
    start = time.perf_counter()
    dot = to_dot(v, max_nodes=50)
    nodes, edges = parse(dot)
    assert len([a for a in nodes.values() if a.get("shape") == "ellipse"]) == 50
    (more,) = [a for a in nodes.values() if a["label"].startswith("…")]
    assert more["label"] == "… 9950 more nodes"
    svg = pydotprint(v, tmp_path / "huge.svg", max_nodes=50)
    assert "9950 more nodes" in open(svg).read()
    full = to_dot(v, max_nodes=None)  # all 10^4 nodes: still only Python text
    assert full.source.count("ellipse") == 10_000
    structure = to_dot(v, style="structure", max_nodes=20)
    assert "… 9980 more nodes" in structure.source
    assert time.perf_counter() - start < 60  # guards against a hang, not a benchmark


def test_networkx_export_counts_and_attributes(zxy):
    x, t, params, h, cost = _mlp()
    view = sg.printing.collect(cost)
    g = to_networkx(cost)
    applies = [n for n, a in g.nodes(data=True) if a["kind"] == "apply"]
    variables = [n for n, a in g.nodes(data=True) if a["kind"] == "variable"]
    assert len(applies) == len(view.nodes)
    assert len(variables) == len(view.variables())
    assert g.number_of_edges() == sum(len({id(i) for i in n.inputs}) + len(n.outputs) for n in view.nodes)
    import networkx as nx
    assert nx.is_directed_acyclic_graph(g)
    attrs = {a["name"]: a for a in g.nodes.values() if a["kind"] == "variable" and a["name"]}
    assert attrs["W"]["role"] == "shared" and attrs["W"]["dtype"] == "float64"
    assert attrs["W"]["shape"] == (None, None) and attrs["W"]["type"] == "float64[?, ?]"
    assert attrs["x"]["role"] == "input" and attrs["cost"]["role"] == "output"
    assert attrs["cost"]["shape"] == ()
    ops = sorted(a["op"] for a in g.nodes.values() if a["kind"] == "apply")
    assert ops.count("Dot") == 2
    (out,) = g.graph["outputs"]
    assert g.nodes[out]["name"] == "cost"
    # data flows from x to cost: x -> Dot -> ... -> cost
    (xkey,) = [n for n, a in g.nodes(data=True) if a["name"] == "x"]
    assert nx.has_path(g, xkey, out) and not nx.has_path(g, out, xkey)
    longest = nx.dag_longest_path_length(g)
    assert longest % 2 == 0 and longest >= 2 * 8  # alternating variable/apply, >= 8 ops deep


def test_networkx_repeated_input_and_function_updates():
    x = T.dvector("x")
    w = sg.shared(np.ones(3), name="w")
    g = to_networkx(x * x)
    (mul,) = [n for n, a in g.nodes(data=True) if a["op"] == "mul"]
    (edge,) = g.in_edges(mul, data=True)
    assert edge[2]["positions"] == [0, 1]
    f = sg.function([x], x * w, updates=[(w, w * 2.0)], mode=None)
    g = to_networkx(f)
    ((shared, value),) = g.graph["updates"]
    assert g.nodes[shared]["name"] == "w" and g.nodes[shared]["role"] == "shared"
    assert next(iter(g.predecessors(value))) in [n for n, a in g.nodes(data=True) if a["op"] == "mul"]
    inner = to_networkx(_composite_graph()[2])
    (comp,) = [a for a in inner.nodes.values() if a.get("op_class") == "Composite"]
    assert comp["inner_ops"] == ["mul", "add", "sigmoid", "tanh"]


@NEEDS_DOT
def test_render_graphs_example(tmp_path, capsys):
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                        "render_graphs.py")
    spec = importlib.util.spec_from_file_location("render_graphs_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.main(["--out", str(tmp_path)])
    assert sorted(os.path.basename(p) for p in written) == sorted(
        [f"{n}.{e}" for n in ("z_structure", "z_compact", "mlp_train_step") for e in ("svg", "png")]
        + ["mlp_step.html"])
    assert all(os.path.getsize(p) > 0 for p in written)
    out = capsys.readouterr().out
    assert "pprint(z) = (x + y)" in out and out.count("wrote ") == 7
    page = (tmp_path / "mlp_step.html").read_text()
    assert "Function profiling" in page and '"label":"fusion"' in page
    svg = (tmp_path / "mlp_train_step.svg").read_text()
    train = module.mlp_training_step("numpy")
    fused = sum(type(n.op).__name__ == "Composite" for n in train.graph.toposort())
    assert svg.count(">Composite (fused)</text>") == fused
    assert ">loss</text>" in svg  # the user's output name survives the rewrites
    assert svg.count(">update</text>") == 3
