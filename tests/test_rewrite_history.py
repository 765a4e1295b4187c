"""Rewrite history (sg.function(..., history=True), f.history): one step per pass that ran, the
graph of each step, which rule replaced which node, and stable node ids with links, so that the
user's ``dot(x, W)`` can be followed to the fused kernel it ends up in (and back); recording
changes nothing in the compiled function and costs nothing when off."""
from __future__ import annotations

import warnings

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.tensor.fused import Epilogue
from symgraph.tensor.math import Dot

from explore_cases import HIDDEN_LINE, batch, hidden_node, mlp_step


def _sid_of(h, node) -> str:
    return next(s for s, n in h.nodes.items() if n is node)


def test_one_step_per_pass_and_the_last_is_the_compiled_graph(backend):
    f = mlp_step(backend, history=True)
    h, report = f.history, f.rewrite_report()
    assert [s.label for s in h.steps] == ["input graph"] + [p["name"] for p in report["passes"]]
    assert len(h.steps[0].nodes) == report["nodes_before"]
    for step, p in zip(h.steps[1:], report["passes"]):
        assert len(step.nodes) == p["nodes_after"] and step.applied == p["applied"]
    assert h.steps[-1].sids == [h.sid(n) for n in f.graph.toposort()]
    assert [n for n in (s.node for s in h.steps[-1].nodes)] == f.graph.toposort()


def test_node_ids_are_stable_and_deterministic(backend):
    a, b = mlp_step(backend, history=True), mlp_step(backend, history=True)
    for sa, sb in zip(a.history.steps, b.history.steps):
        assert sa.sids == sb.sids
        assert [str(s.node.op) for s in sa.nodes] == [str(s.node.op) for s in sb.nodes]
    h = a.history
    for k, step in enumerate(h.steps[1:], 1):  # a node kept by a pass keeps its id, and its object
        before = {s.sid: s.node for s in h.steps[k - 1].nodes}
        for s in step.nodes:
            assert before.get(s.sid, s.node) is s.node


def test_follow_the_users_product_to_its_kernel_and_back(backend):
    f = mlp_step(backend, history=True)
    h = f.history
    first = h.steps[0]
    products = [s.sid for s in first.nodes if isinstance(s.node.op, Dot) and s.node.trace.lineno == HIDDEN_LINE]
    assert len(products) == 1
    kernel = hidden_node(f)
    assert isinstance(kernel.op, Epilogue)
    last = len(h.steps) - 1
    shape_reads = ("Shape", "MakeVector")  # the product's shape, read from its inputs for sg.grad's broadcast check
    assert [s for s in h.follow(products[0], 0, last) if not str(h.nodes[s].op).startswith(shape_reads)] \
        == [_sid_of(h, kernel)]
    back = h.follow(_sid_of(h, kernel), last, 0)
    ops = sorted(str(h.nodes[s].op) for s in back)
    assert products[0] in back and ops == ["Dot", "add", "sigmoid"], ops


def test_the_step_that_fused_lists_its_replacements(backend):
    f = mlp_step(backend, history=True)
    fusion = next(s for s in f.history.steps if s.label == "fusion")
    assert fusion.fired and {x.rule for x in fusion.fired} == {"fusion"}
    kernel = _sid_of(f.history, hidden_node(f))
    assert kernel in fusion.new and any(kernel in x.new for x in fusion.fired)
    before = next(s for s in reversed(f.history.steps[:f.history.steps.index(fusion)]))
    sigmoid = [s.sid for s in before.nodes if str(s.node.op) == "sigmoid" and s.node.trace.lineno == HIDDEN_LINE]
    assert sigmoid and all(s in fusion.removed and fusion.links[s] == [kernel] for s in sigmoid)
    for sid in fusion.removed:  # every removed node links somewhere, or nowhere when it was folded away
        assert sid in fusion.links


def test_a_folded_constant_links_to_nothing():
    x = T.dvector("x")
    c = T.constant(np.arange(3.0))
    f = sg.function([x], x + T.exp(c) * 2, history=True)
    folding = next(s for s in f.history.steps if s.label == "constant_folding")
    assert folding.removed and all(folding.links[s] == [] for s in folding.removed)
    assert folding.applied == {"constant_folding": len(folding.removed)}
    assert {str(f.history.nodes[s].op) for s in folding.removed} == {"exp", "mul"}


def test_backend_placement_is_a_step_on_opencl():
    from conftest import BACKENDS
    if "opencl" not in BACKENDS:
        return
    a, b = T.matrix("a", dtype="float32"), T.matrix("b", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f = sg.function([a, b], T.linalg.cho_solve((T.linalg.cholesky(a), True), b) * 2, backend="opencl",
                        history=True)
    last = f.history.steps[-1]
    assert last.label == "opencl placement" and last.sids == [f.history.sid(n) for n in f.graph.toposort()]
    assert {x.rule for x in last.fired} == {"opencl host fallback"}
    assert all(type(f.history.nodes[s].op).__name__ == "HostFallback" for x in last.fired for s in x.new)


def test_recording_changes_nothing_and_costs_nothing_when_off(backend):
    plain, recorded = mlp_step(backend), mlp_step(backend, history=True)
    assert plain.history is None and plain.graph.features == [] and recorded.graph.features == []
    assert recorded.source == plain.source
    args = batch(plain)
    np.testing.assert_allclose(recorded(*args), plain(*args), rtol=1e-6)
    with sg.config.change_flags(rewrite_history=True):
        assert mlp_step(backend).history is not None
