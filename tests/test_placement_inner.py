"""Size-aware placement inside branches and loop bodies (issue 21): the nodes of an ifelse
branch or a scan body are placed like the outer graph's, small ones as ``OnHost{...}`` nodes of
the inner graph run by numpy in the same generated function; a branch or loop whose every node
runs on the host keeps its values there (no transfer, no device scope). Never a changed number."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.compile.placement import HostPlaced
from tests.conftest import NO_OPENCL

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=str(NO_OPENCL))

if NO_OPENCL is None:
    from symgraph.backends.opencl.runtime import OPENS, TRANSFERS
    from tests.test_placement import calibrated  # noqa: F401  (the fixture: a fixed calibration)


def _graph():
    """A branch on c (tanh program / a reduction minus x) and a loop over the rows of m."""
    c, x, m = T.iscalar("c"), T.fvector("x"), T.fmatrix("m")
    branch = sg.ifelse(c, T.tanh(x) * 2 + 1, T.sum(x * x) - x)
    carries, _ = sg.scan(lambda row, acc: T.tanh(acc * 0.5 + row), sequences=[m], outputs_info=[x])
    return [c, x, m], [branch, carries]


def _inner_ops(fgraph) -> list:
    """The ops of every branch and loop body of ``fgraph`` (one level deep)."""
    return [n.op for node in fgraph.apply_nodes for g in getattr(node.op, "inner_graphs", {}).values()
            for n in g.nodes]


def _variant(f, shapes: dict):
    """The compiled variant a call with these argument shapes runs (the function itself when it has one)."""
    impl = f._impl
    return impl.variants[impl.signature(shapes)] if hasattr(impl, "variants") else impl


@pytest.mark.parametrize("placement", ["host", "device", "auto"])
def test_inner_nodes_placed_each_way_give_the_numpy_backends_numbers(calibrated, placement):  # noqa: F811
    ins, outs = _graph()
    f = sg.function(ins, outs, backend="opencl", placement=placement)
    ref = sg.function(ins, outs, backend="numpy")
    checked = []

    @settings(max_examples=10)
    @given(c=st.integers(0, 1), n=st.integers(1, 6), rows=st.integers(0, 4), data=st.data())
    def check(c, n, rows, data):
        xv = data.draw(hnp.arrays("float32", (n,), elements=st.floats(-3, 3, width=32)), "x")
        mv = data.draw(hnp.arrays("float32", (rows, n), elements=st.floats(-3, 3, width=32)), "m")
        cv = np.array(c, np.int32)
        for got, want in zip(f(cv, xv, mv), ref(cv, xv, mv)):
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
        checked.append(_variant(f, {ins[0]: (), ins[1]: (n,), ins[2]: (rows, n)}))
    check()
    placed = [op for v in checked for op in _inner_ops(v.fgraph) if isinstance(op, HostPlaced)]
    if placement == "device":
        assert not placed
    else:  # every inner node of these small calls runs on the host, visibly
        assert placed and all(isinstance(op, HostPlaced) for v in checked for op in _inner_ops(v.fgraph)
                              if op.view_map == {} and str(op) != "Shape_i{0}")


def test_large_inner_nodes_stay_kernels(calibrated):  # noqa: F811
    c, x = T.iscalar("c"), T.fvector("x")
    f = sg.function([c, x], sg.ifelse(c, T.tanh(x) * 2 + 1, x - 1), backend="opencl", placement="auto")
    small, large = np.linspace(-1, 1, 10, dtype="f"), np.linspace(-1, 1, 200_000, dtype="f")
    for xv in (small, large, small):
        np.testing.assert_allclose(f(1, xv), np.tanh(xv) * 2 + 1, rtol=1e-6)
        np.testing.assert_allclose(f(0, xv), xv - 1, rtol=1e-6)
    on_small = _inner_ops(_variant(f, {c: (), x: small.shape}).fgraph)
    on_large = _inner_ops(_variant(f, {c: (), x: large.shape}).fgraph)
    assert all(isinstance(op, HostPlaced) for op in on_small)
    assert not any(isinstance(op, HostPlaced) for op in on_large)
    assert any(name.startswith("onhost") for name in f.kernels)


def test_host_placed_branches_and_loops_make_no_copies_and_build_nothing(calibrated):  # noqa: F811
    ins, outs = _graph()
    f = sg.function(ins, outs, backend="opencl", placement="auto")
    args = [(np.array(c, np.int32), np.linspace(-1, 1, 5, dtype="f"), np.ones((3, 5), "f")) for c in (0, 1)]
    for a in args:
        f(*a)
        f(*a)
    transfers, builds = dict(TRANSFERS), OPENS["programs"]
    for a in args:
        f(*a)
    assert dict(TRANSFERS) == transfers  # not even a zero-copy wrap: the values never leave the host
    assert OPENS["programs"] == builds
    variant = _variant(f, {ins[0]: (), ins[1]: (5,), ins[2]: (3, 5)})
    assert "_call_lock" not in variant.source and "transfer" not in variant.source
    assert "OnHost{" in variant.source


def test_a_loop_with_a_branch_inside_placed_on_the_host(calibrated):  # noqa: F811
    """A while loop whose step is an ifelse (nested inner graphs), placed each way."""
    a0, b0 = T.fscalar("a0"), T.fvector("b0")

    def step(a, b):
        half = T.eq(T.floor(a / 2) * 2, a)
        na, nb = sg.ifelse(half, [a / 2, b * 0.5], [3 * a + 1, b + a])
        return [na, nb], sg.until(T.le(na, 1))
    (av, bv), _ = sg.scan(step, outputs_info=[a0, b0], n_steps=100)
    want = sg.function([a0, b0], [av, bv], backend="numpy")(np.float32(6), np.ones(3, "f"))
    for placement in ("host", "auto", "device"):
        f = sg.function([a0, b0], [av, bv], backend="opencl", placement=placement)
        for _ in range(2):
            got = f(np.float32(6), np.ones(3, "f"))
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-6)
        assert len(got[0]) == 8


def test_a_device_sequence_a_host_body_reads_moves_once_before_the_loop(calibrated):  # noqa: F811
    """A scan whose body runs on the host (small work and a product) over the rows of a large
    value computed on the device: the sequence moves to the host once, before the loop (one
    transfer, not a row per step), and the transposed constant the product reads is laid out
    C-ordered there; the same numbers as the numpy backend, placed each way."""
    x, w = T.fmatrix("x"), T.fmatrix("w")
    out, _ = sg.scan(lambda row, acc, wt: T.dot(acc * 0.5 + row[:4], wt), sequences=[T.tanh(x) * 2],
                     outputs_info=[T.zeros((4,), "float32")], non_sequences=[w.T])
    xv = np.random.default_rng(0).normal(size=(6, 40000)).astype("f")
    wv = np.random.default_rng(1).normal(size=(4, 4)).astype("f")
    want = sg.function([x, w], out, backend="numpy")(xv, wv)
    for placement in ("auto", "device", "host"):
        f = sg.function([x, w], out, backend="opencl", placement=placement)
        np.testing.assert_allclose(f(xv, wv), want, rtol=1e-4, atol=1e-4)
    f = sg.function([x, w], out, backend="opencl", placement="auto")
    f(xv, wv)
    source = _variant(f, {x: xv.shape, w: wv.shape}).source
    head, loop = source.split("for _t")
    assert head.count("to_host()  # transfer (once)") == 2 and "_c_ordered(" in head  # the sequence, w.T
    assert "to_host()" not in loop.split("return")[0]


def test_branch_and_loop_bodies_see_the_outer_lengths_and_the_loops_stacked_shapes():
    """concrete_shapes: a for-loop whose stacked output has no static row shape (a gradient's
    reverse loop) gets its shape from the body; a branch slicing by an outer length (x[:n], n a
    Shape_i outside) knows the slice's size: both are placed by size, not left to the device."""
    from symgraph.backends.opencl import placement as pl
    from symgraph.compile.placement import concrete_shapes
    from symgraph.scan.op import Scan
    x, h0 = T.ftensor3("x"), T.fmatrix("h0")
    W = sg.shared(np.eye(5, dtype="f"))
    hs, _ = sg.scan(lambda x_t, h: T.tanh(T.dot(x_t, W) + h), sequences=[x], outputs_info=[h0])
    g = sg.grad(T.sum(hs), W)
    fg = sg.function([x, h0], g, backend="numpy").graph
    known = concrete_shapes([], {fg.inputs[0]: (7, 3, 5), fg.inputs[1]: (3, 5), fg.inputs[2]: (5, 5)})
    scans = [(node, sh) for _, node, sh, _ in pl.walk(fg, "auto", None, known) if isinstance(node.op, Scan)]
    assert len(scans) == 2 and all(all(o in sh for o in node.outputs) for node, sh in scans)
    n = x.shape[0]
    c = T.iscalar("c")
    f = sg.function([c, x], sg.ifelse(c, T.sum(x[:n - 1] * 2), T.sum(x)), backend="numpy").graph
    known = pl.known_shapes(f, {f.inputs[0]: (), f.inputs[1]: (7, 3, 5)})
    inner = [(node, sh) for path, node, sh, _ in pl.walk(f, "auto", None, known) if len(path) > 1]
    assert inner and all(pl.work(node, sh) is not None for node, sh in inner if not node.op.view_map)
