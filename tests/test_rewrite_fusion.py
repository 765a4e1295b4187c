"""Elementwise fusion and the Composite op: what fuses, what must not, and that the fused
program (perform and the numpy lowering) computes what the Elemwise nodes did."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.rewrite import Mode
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import DimShuffle, Elemwise
from symgraph.tensor.fused import Epilogue, ReduceOf
from symgraph.tensor.reduction import CAReduce


def ops(f) -> list:
    return [type(n.op) for n in f.graph.apply_nodes]


def composites(f) -> list:
    return [n for n in f.graph.apply_nodes if type(n.op) is Composite]


def same(f, g, *vals):
    a, b = f(*vals), g(*vals)
    for u, v in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        assert u.dtype == v.dtype and u.shape == v.shape
        tol = 1e-5 if u.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(u, v, rtol=tol, atol=tol)


def test_issue_example_is_one_composite(backend):
    x, y = T.dmatrix("x"), T.dmatrix("y")
    out = T.sigmoid(x * y + 0.5) * T.tanh(x) - T.relu(y)
    f = sg.function([x, y], out, backend=backend)
    assert ops(f) == [Composite]
    assert str(composites(f)[0].op) == "Composite{(sigmoid(((i0 * i1) + 0.5)) * tanh(i0)) - relu(i1)}"
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    same(f, sg.function([x, y], out, mode=None, backend=backend), a, b)


def test_a_fused_program_of_constants_only(backend):
    """x * 0 (integers) is 0 whatever x is, so the program left reads no input: its numpy helper
    was generated as ``def composite(, out=None)`` (found by make fuzz)."""
    x = T.iscalar("x")
    out = -T.maximum(T.constant(np.int32(3)), T.constant(np.int32(0)) * x)
    f = sg.function([x], out, backend=backend, on_unused_input="ignore")
    assert int(f(np.int32(7))) == -3


def _mlp():
    X, Y = T.dmatrix("X"), T.lvector("Y")
    W1, b1 = sg.shared(np.random.default_rng(0).normal(size=(4, 5)), "W1"), sg.shared(np.zeros(5), "b1")
    W2, b2 = sg.shared(np.random.default_rng(1).normal(size=(5, 3)), "W2"), sg.shared(np.zeros(3), "b2")
    h = T.tanh(T.dot(X, W1) + b1)
    p = T.nnet.softmax(T.dot(h, W2) + b2)
    loss = T.nnet.categorical_crossentropy(p, Y).mean() + 1e-3 * (T.sqr(W1).sum() + T.sqr(W2).sum())
    return [X, Y], [loss] + sg.grad(loss, [W1, b1, W2, b2])


def test_mlp_forward_backward_elementwise_chains_are_fused():
    inputs, outputs = _mlp()
    unfused = sg.function(inputs, outputs, mode=Mode().excluding("fusion"))
    fused = sg.function(inputs, outputs)
    n_elem = ops(unfused).count(Elemwise)
    programs = [op for op in ops(fused) if op in (Composite, ReduceOf, Epilogue)]  # each runs one program
    n_fused = ops(fused).count(Elemwise) + len(programs)
    assert n_elem >= 15
    assert len(programs) >= 4 and ReduceOf in programs and Epilogue in programs
    assert n_fused <= n_elem // 2  # chains became single nodes (lone elementwise nodes stay as they are)
    # every other node stays, but for the products and reductions that took in a program
    absorbed = ops(fused).count(ReduceOf) + ops(fused).count(Epilogue)
    assert len(fused.graph.apply_nodes) >= len(unfused.graph.apply_nodes) - n_elem + n_fused - absorbed
    rng = np.random.default_rng(2)
    same(fused, sg.function(inputs, outputs, mode=None), rng.normal(size=(6, 4)), rng.integers(0, 3, 6))


def test_intermediate_used_outside_becomes_a_second_output():
    x = T.dvector("x")
    e = T.exp(x)
    outs = [e + 1, e * 2, T.sin(e)]
    f = sg.function([x], outs)
    (node,) = composites(f)
    assert len(node.outputs) == 3 and ops(f) == [Composite]
    same(f, sg.function([x], outs, mode=None), np.linspace(-1, 1, 5))


def test_dimshuffle_is_not_fused_and_broadcast_inputs_are():
    m, v = T.dmatrix("m"), T.dvector("v")
    out = T.exp(m.T) * v + T.tanh(v)
    f = sg.function([m, v], out)
    assert sorted(t.__name__ for t in ops(f)) == ["Composite", "DimShuffle"]
    g = sg.function([m, v], out, mode=None)
    for shape in [(3, 2), (1, 4), (0, 3), (3, 1)]:
        same(f, g, np.random.default_rng(0).normal(size=shape), np.arange(shape[0], dtype=float))


def test_no_fusion_across_a_reduction_that_would_make_a_cycle():
    x = T.dvector("x")
    e = T.exp(x)
    out = (e * e.sum()) + 1  # e -> sum -> mul: e and mul cannot be one node
    f = sg.function([x], out)
    assert CAReduce in ops(f)
    same(f, sg.function([x], out, mode=None), np.array([0.1, 0.2, 0.3]))



def _acyclic(f) -> bool:
    """Every node of the compiled graph comes after the producers of its inputs."""
    order = f.graph.toposort()
    seen = set()
    for node in order:
        if any(v.owner is not None and v.owner not in seen for v in node.inputs):
            return False
        seen.add(node)
    return len(order) == len(f.graph.apply_nodes)


def test_two_groups_that_would_close_a_cycle_together(backend):
    """mean's 1/n fused with the loss, and the gradient it feeds fused with the squared error the
    loss sums: each group is convex alone, but as two nodes they would feed each other."""
    x = T.dmatrix("x")
    W = sg.shared(np.linspace(-1, 1, 12).reshape(4, 3), "W")
    h = T.tanh(T.dot(x, W))
    loss = (h ** 2).mean()
    outs = [loss, sg.grad(loss, W)]
    f = sg.function([x], outs, backend=backend)
    assert _acyclic(f)
    same(f, sg.function([x], outs, mode=None), np.random.default_rng(1).normal(size=(5, 4)))


@st.composite
def _graphs_through_reductions(draw):
    """Elementwise work on a matrix and on 0-d values, joined by full reductions and by
    broadcasts of 0-d values back into the matrix: the paths that can tie groups together."""
    x, c = T.dmatrix("x"), T.dscalar("c")
    big, small = [x], [c]
    for _ in range(draw(st.integers(3, 10))):
        kind = draw(st.sampled_from(["big", "big", "small", "reduce", "broadcast"]))
        if kind == "big":
            a, b = draw(st.sampled_from(big)), draw(st.sampled_from(big + small))
            big.append(draw(st.sampled_from([T.mul, T.add, T.sub]))(T.tanh(a), b))
        elif kind == "small":
            a, b = draw(st.sampled_from(small)), draw(st.sampled_from(small))
            small.append(draw(st.sampled_from([T.mul, T.add, lambda u, v: u / (1 + v * v)]))(a, b))
        elif kind == "reduce":
            small.append(draw(st.sampled_from([T.sum, T.mean, T.max]))(draw(st.sampled_from(big))))
        else:
            big.append(draw(st.sampled_from(big)) * draw(st.sampled_from(small)).dimshuffle("x", "x"))
    outs = draw(st.lists(st.sampled_from(big[1:] + small[1:]), min_size=1, max_size=3, unique_by=id)) \
        if len(big) + len(small) > 2 else [x * 2]
    return [x, c], outs


@given(_graphs_through_reductions())
def test_fusion_never_makes_a_cycle(graph):
    ins, outs = graph
    f = sg.function(ins, outs, on_unused_input="ignore")
    assert _acyclic(f)
    vals = [np.random.default_rng(0).uniform(-1, 1, (3, 2)), np.float64(0.7)]
    same(f, sg.function(ins, outs, mode=None, on_unused_input="ignore"), *vals)

def test_operand_cap_is_respected():
    xs = [T.dvector(f"x{k}") for k in range(12)]
    out = xs[0]
    for v in xs[1:]:
        out = T.tanh(out) * v
    f = sg.function(xs, out, mode=Mode(max_operands=5))
    nodes = composites(f)
    assert len(nodes) >= 3
    assert all(len(n.inputs) + len(n.outputs) <= 5 for n in nodes)
    vals = [np.linspace(0, 1, 4) + k for k in range(12)]
    same(f, sg.function(xs, out, mode=None), *vals)


def test_reduction_of_a_composite_becomes_one_reduce_of_node():
    x = T.dmatrix("x")
    f = sg.function([x], (T.exp(x) * 2 + 1).sum(axis=1))
    (red,) = f.graph.apply_nodes
    assert type(red.op) is ReduceOf and red.op.reduce == CAReduce("add", (1,))
    assert [name for name, _ in red.op.program.steps] == ["exp", "mul", "add"]
    assert red.inputs == [f.graph.inputs[0]]
    same(f, sg.function([x], (T.exp(x) * 2 + 1).sum(axis=1), mode=None), np.arange(6.0).reshape(2, 3) / 7)


@pytest.mark.parametrize("dtypes", [("float32", "float64"), ("int8", "float32"), ("int32", "int64"),
                                    ("bool", "float32")])
def test_mixed_dtypes_match_elemwise(dtypes):
    a, b = T.vector("a", dtype=dtypes[0]), T.vector("b", dtype=dtypes[1])
    out = (a + b) * (b - a) + T.maximum(a, b)
    f, g = sg.function([a, b], out), sg.function([a, b], out, mode=None)
    assert ops(f) == [Composite]
    va = np.array([1, 0, 1], dtype=dtypes[0])
    vb = np.array([2, 3, 0], dtype=dtypes[1])
    same(f, g, va, vb)


def test_runtime_broadcast_of_unknown_dims_falls_back_to_numpy_rules():
    """Static shapes (None, None) that broadcast at run time: the buffer plan does not hold,
    the helper computes it as numpy would."""
    x, y = T.dmatrix("x"), T.dmatrix("y")
    out = T.exp(x) * y + x
    f, g = sg.function([x, y], out), sg.function([x, y], out, mode=None)
    same(f, g, np.ones((1, 3)), np.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("shapes", [((1, 0), (1, 1)), ((2, 3), (1, 3)), ((1, 3), (2, 1))])
def test_fused_outputs_whose_shapes_differ_at_run_time(backend, shapes):
    """One output reads only the smaller input: a length-1 axis broadcasts against a None axis at
    run time, so the Composite's outputs differ in shape (found by the fuzzer, OpenCL gave (1, 0))."""
    x, y = T.fmatrix("x"), T.fmatrix("y")
    e = T.exp(T.exp(y))
    f = sg.function([x, y], [T.switch(x, y, e), e], backend=backend)
    assert len(composites(f)[0].outputs) == 2
    a, b = (np.random.default_rng(0).uniform(-1, 1, s).astype("f") for s in shapes)
    if backend == "opencl":  # one index space cannot cover both shapes: that call runs on the host, and says so
        with pytest.warns(RuntimeWarning, match="ran on the host"):
            got = f(a, b)
    else:
        got = f(a, b)
    want = [np.where(a, b, np.exp(np.exp(b))), np.exp(np.exp(b))]
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_composite_program_equality_perform_and_expand():
    x, y = T.dvector("x"), T.dvector("y")
    f1 = sg.function([x, y], T.exp(x) * y)
    f2 = sg.function([x, y], T.exp(x) * y)
    (n1,), (n2,) = composites(f1), composites(f2)
    assert n1.op == n2.op and hash(n1.op) == hash(n2.op)
    (expanded,) = n1.op.expand([x, y])
    vals = [np.array([0.5, 1.0]), np.array([2.0, 3.0])]
    np.testing.assert_allclose(n1.op.perform(n1, vals)[0], sg.function([x, y], expanded, mode=None)(*vals))


def test_long_program_prints_briefly():
    x = T.dvector("x")
    y = x
    for _ in range(200):
        y = T.tanh(y) * 1.5
    (node,) = composites(sg.function([x], y))
    assert len(str(node.op)) < 400 and "steps" in str(node.op)


@st.composite
def _fusable_graphs(draw):
    shapes = draw(st.sampled_from([[(None, None), (None, None)], [(None, None), (1, None)], [(None, 1), (1, None)],
                                   [(None,), (None, None)]]))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    ins = [T.tensor(dtype, s, f"i{k}") for k, s in enumerate(shapes)]
    pool = list(ins)
    for _ in range(draw(st.integers(2, 8))):
        name = draw(st.sampled_from(["add", "mul", "sub", "tanh", "sigmoid", "sqr", "maximum", "neg", "exp_small"]))
        a, b = draw(st.sampled_from(pool)), draw(st.sampled_from(pool))
        if name == "exp_small":
            pool.append(T.exp(T.tanh(a)))
        elif name in ("tanh", "sigmoid", "sqr", "neg"):
            pool.append(getattr(T, name)(T.tanh(a) if name == "sqr" else a))
        else:
            pool.append(getattr(T, name)(a, b))
    outs = draw(st.lists(st.sampled_from(pool[len(ins):]), min_size=1, max_size=3, unique_by=id))
    return ins, outs, dtype


@given(_fusable_graphs(), st.data())
def test_fused_graphs_match_unfused(graph, data):
    ins, outs, dtype = graph
    f, g = sg.function(ins, outs, on_unused_input="ignore"), sg.function(ins, outs, mode=None, on_unused_input="ignore")
    rows, cols = data.draw(st.sampled_from([(2, 3), (1, 4), (3, 1), (0, 2)]))
    vals = []
    for v in ins:
        shape = tuple(rows if s is None and d == v.ndim - 2 else cols if s is None else 1
                      for d, s in enumerate(v.type.shape))
        vals.append(np.random.default_rng(len(vals)).uniform(-2, 2, shape).astype(dtype))
    same(f, g, *vals)


def test_fusion_never_joins_chains_of_unrelated_shapes(backend):
    """Two update chains that share only a scalar (as Adam's do) stay separate Composites."""
    t = sg.shared(np.float32(1), "t")
    for a_shape, b_shape in [((3, 2), (4,)), ((3,), (4,))]:
        a, b = sg.shared(np.ones(a_shape, "f"), "a"), sg.shared(np.ones(b_shape, "f"), "b")
        ga, gb = T.tensor("float32", (None,) * len(a_shape)), T.fvector()
        f = sg.function([ga, gb], [], updates=[(a, a - ga * T.exp(t)), (b, b - gb * T.exp(t))], backend=backend)
        f(np.ones(a_shape, "f"), np.ones(b_shape, "f"))
        np.testing.assert_allclose(a.get_value(), np.full(a_shape, 1 - np.e, "f"), rtol=1e-6)
        np.testing.assert_allclose(b.get_value(), np.full(b_shape, 1 - np.e, "f"), rtol=1e-6)


@given(st.sampled_from(["float32", "float64", "int32", "int64"]), st.data())
def test_fused_switch_selects_exactly(dtype, data):
    """switch inside a Composite writes through a bitwise select: every value, NaN and Inf too,
    must come out as numpy.where gives it, with broadcasting between condition and branches."""
    from hypothesis.extra import numpy as hnp
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=1, max_dims=3, max_side=4))
    kind = st.floats(allow_nan=True, allow_infinity=True, width=32) if dtype.startswith("float") else \
        st.integers(-1000, 1000)
    c, a, b = (data.draw(hnp.arrays(dtype, s, elements=kind)) for s in shapes.input_shapes)
    xs = [T.tensor(dtype, tuple(1 if n == 1 else None for n in v.shape)) for v in (c, a, b)]
    f = sg.function(xs, T.switch(xs[0] > 0, xs[1] * 1, xs[2] + 0) + 0)  # the switch is fused with its neighbours
    assert any(isinstance(n.op, Composite) for n in f.graph.apply_nodes)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(f(c, a, b), np.where(c > 0, a, b))


def test_reduction_of_a_lone_elementwise_op_is_fused_too():
    x, y = T.dmatrix("x"), T.dmatrix("y")
    f = sg.function([x, y], (x * y).sum(axis=1))
    (red,) = f.graph.apply_nodes
    assert type(red.op) is ReduceOf and red.op.program.steps == (("mul", (("i", 0), ("i", 1))),)


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """``g`` summed over the axes numpy broadcast ``shape`` along (a gradient's reduction)."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    return g.sum(axis=tuple(d for d, n in enumerate(shape) if n == 1 and g.shape[d] != 1), keepdims=True) \
        if any(n == 1 for n in shape) else g


@given(dims=st.lists(st.integers(0, 4), min_size=1, max_size=3), ones=st.lists(st.booleans(), min_size=3, max_size=3),
       dtype=st.sampled_from(["float32", "float64"]))
def test_a_fill_read_only_by_full_size_steps_is_not_materialised(dims, ones, dtype):
    """The gradient of sum(x * y) is second(x * y, 1) * y in the fused program: its fill is read
    only by a full-size step, which broadcasts the 1 itself (no array of ones is written); with
    broadcast axes and empty axes, the numbers hold."""
    yshape = tuple(1 if o else n for n, o in zip(dims, ones))
    x = T.tensor(dtype, (None,) * len(dims), "x")
    y = T.tensor(dtype, tuple(1 if n == 1 else None for n in yshape), "y")  # broadcast axes declared, as in Theano
    cost = T.sum(x * y)
    f = sg.function([x, y], [cost, *sg.grad(cost, [x, y])], backend="numpy")
    (node,) = [n for n in f.graph.apply_nodes if isinstance(n.op, Composite)]
    assert "second" in str(node.op)
    from symgraph.backends.numpy.lower_composite import helper_source
    assert "_second" not in helper_source(node.op, tuple(v.type for v in node.inputs))[0]
    rng = np.random.default_rng(len(dims))
    xv = rng.normal(size=dims).astype(dtype)
    yv = rng.normal(size=yshape).astype(dtype)
    c, gx, gy = f(xv, yv)
    full = np.broadcast_shapes(xv.shape, yv.shape)
    np.testing.assert_allclose(c, np.sum(xv * yv), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gx, _unbroadcast(np.broadcast_to(yv, full), xv.shape), rtol=1e-5)
    np.testing.assert_allclose(gy, _unbroadcast(np.broadcast_to(xv, full), yv.shape), rtol=1e-4, atol=1e-4)
