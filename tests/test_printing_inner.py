"""Pictures and exports of inner graphs (issue 14): ``to_dot`` draws each inner graph of an
ifelse as a cluster (nested ifelses as nested clusters), ``to_networkx`` marks the ops that
hold inner graphs with what each holds."""
from __future__ import annotations

import re

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.printing import to_dot, to_networkx


def _nested(backend: str):
    c, x = T.dscalar("c"), T.dvector("x")
    inner = sg.ifelse(c > 1, T.tanh(x).sum(), T.exp(x).max())
    out = sg.ifelse(c > 0, inner * 2, T.sqrt(x).sum())
    return sg.function([c, x], out, backend=backend), out


def _clusters(source: str) -> dict[str, str]:
    """Each ``subgraph cluster_... { ... }`` block of a dot source, by name, with its nested blocks."""
    blocks = {}
    for m in re.finditer(r"subgraph (cluster_\w+) \{", source):
        depth, k = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(source[k], 0)
            k += 1
        blocks[m.group(1)] = source[m.end():k]
    return blocks


def _labels(block: str) -> set[str]:
    return {m.strip('"') for m in re.findall(r'\[label=("[^"]*"|\S+)', block)}


def test_each_inner_graph_of_an_ifelse_is_a_cluster(backend):
    f, _ = _nested(backend)
    assert f(2.0, np.ones(3)) == 2 * np.tanh(1.0) * 3
    dot = to_dot(f).source
    clusters = _clusters(dot)
    branches = {name: block for name, block in clusters.items() if 'label="IfElse: ' in block.split("\n")[1]}
    assert len(branches) == 4, sorted(clusters)  # then/else of the outer ifelse and of the nested one
    (outer_then,) = [n for n in branches if re.fullmatch(r"cluster_a\d+_then", n)]
    (outer_else,) = [n for n in branches if re.fullmatch(r"cluster_a\d+_else", n)]
    nested = sorted(n for n in branches if n not in (outer_then, outer_else))
    assert all(n.startswith(outer_then) for n in nested), "the nested ifelse's branches sit inside the then-branch"
    assert {"tanh", "exp", "IfElse", "mul"} <= _labels(clusters[outer_then])
    assert "sqrt" in _labels(clusters[outer_else]) and "tanh" not in _labels(clusters[outer_else])
    assert "tanh" in _labels(clusters[nested[1]]) and "exp" in _labels(clusters[nested[0]])  # else < then
    top = dot
    for name in (outer_then, outer_else):
        top = top.replace(clusters[name], "")
    assert not {"tanh", "exp", "sqrt", "mul"} & _labels(top), "branch code is drawn only inside its branch"
    node = outer_then[len("cluster_"):-len("_then")]
    assert re.search(rf"-> {node} \[label=then style=dashed\]", dot)
    assert re.search(rf"-> {node} \[label=else style=dashed\]", dot)
    assert to_dot(f).source == dot  # the same picture when drawn again


def test_an_unrewritten_ifelse_draws_its_branches_as_clusters():
    c, x = T.dscalar("c"), T.dvector("x")
    out = sg.ifelse(c > 0, [x * 2, x.sum()], [x, x.max()], name="pick")
    clusters = _clusters(to_dot(out).source)
    assert {re.sub(r"a\d+", "a", n) for n in clusters} == {"cluster_a_then", "cluster_a_else"}
    for block in clusters.values():
        assert 'label="IfElse{pick}: ' in block  # the name given, once


def test_networkx_marks_the_inner_graphs_of_an_ifelse(backend):
    f, out = _nested(backend)
    g = to_networkx(f)
    (top,) = [a for a in g.nodes.values() if a["kind"] == "apply" and a["op_class"] == "IfElse"]
    assert set(top["inner_graphs"]) == {"then", "else"}
    assert "IfElse" in top["inner_graphs"]["then"] and "mul" in top["inner_graphs"]["then"]
    assert top["inner_graphs"]["else"] and "IfElse" not in top["inner_graphs"]["else"]
    plain = [a for a in g.nodes.values() if a["kind"] == "apply" and a["op_class"] != "IfElse"]
    assert plain and all("inner_graphs" not in a for a in plain)
    unrewritten = [a for a in to_networkx(out).nodes.values() if a.get("op_class") == "IfElse"]
    assert len(unrewritten) == 2  # before compiling, both ifelses are outer nodes with empty branches
    assert all(a["inner_graphs"] == {"then": [], "else": []} for a in unrewritten)


def test_the_opencl_compact_view_draws_one_cluster_per_kernel(backend):
    """Issue 23 item 2: on OpenCL the compact view draws what runs, each kernel of ``f.kernels``
    as one cluster labelled with its name (a node with contiguous/strided or row/column/tree
    variants of its kernel: one cluster naming them all), a fused node's ops straight inside
    it; the numpy backend has no kernels and no such clusters."""
    x = T.fmatrix("x")
    w = sg.shared(np.ones((3, 4), np.float32), "w")
    b = sg.shared(np.ones(4, np.float32), "b")
    cost = (T.nnet.relu(T.dot(x, w) + b) ** 2).mean()
    gw, gb = sg.grad(cost, [w, b])
    f = sg.function([x], cost, updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)], backend=backend)
    f(np.ones((2, 3), np.float32))
    clusters = _clusters(to_dot(f).source)
    boxes = {n: block for n, block in clusters.items() if re.fullmatch(r"cluster_g\d+", n)}
    if backend == "numpy":
        assert not boxes and not f.kernels
        return
    shown = [re.search(r'label=("[^"]*"|\S+) style="rounded,dashed"', block).group(1).strip('"').split("\n")
             for block in boxes.values()]
    names = [n for labels in shown for n in labels]
    assert sorted(names) == sorted(f.kernels), "every kernel in exactly one cluster, and only kernels"
    (matmul,) = [boxes[n] for n, labels in zip(boxes, shown) if any(k.startswith("matmul") and "_add_" in k
                                                                      for k in labels)]
    assert {"Dot", "add"} <= _labels(matmul) and "(fused)" not in matmul  # the matmul with its epilogue
    assert to_dot(f).source == to_dot(f).source
