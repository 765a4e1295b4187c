"""Shape ops (shape, size, reshape, flatten, squeeze, expand_dims, concatenate, stack, alloc,
zeros/ones/full and *_like, arange) against numpy on hypothesis data: compiled with each backend,
through op.perform, static shapes and infer_shape checked, gradients by finite differences, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Constant, Variable
from symgraph.tensor.elemwise import broadcast_shapes
from symgraph.tensor.shape import entry_var, shape_tuple
from helpers import declare, fd_grad_check, perform_eval

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])
FLOATS = st.sampled_from(["float32", "float64"])


def check_infer_shape(inputs: list, out: Variable, values: list, real: tuple) -> None:
    """Compile the op's infer_shape (on the symbolic shapes of its inputs) and compare."""
    node = out.owner
    if node is None:
        return
    shape = node.op.infer_shape(node, [shape_tuple(i) for i in node.inputs])[out.index]
    got = sg.function(inputs, [entry_var(s) for s in shape], on_unused_input="ignore")(*values) if shape else []
    assert tuple(int(g) for g in got) == tuple(real)


def run(backend: str, inputs: list, out: Variable, values: list, expected: np.ndarray, rtol: float = 0) -> None:
    """Compiled result, perform result, static shape, dtype and infer_shape all agree with numpy
    (exactly, or within ``rtol`` for computed float values)."""
    out = T.as_tensor_variable(out)
    got = sg.function(inputs, out, backend=backend, on_unused_input="ignore")(*values)
    ref = perform_eval(inputs, out, values)
    for r in (got, ref):
        assert isinstance(r, np.ndarray) or np.ndim(r) == 0
        assert np.asarray(r).dtype == np.dtype(out.dtype) == np.asarray(expected).dtype, (r.dtype, out.dtype)
        if rtol:
            np.testing.assert_allclose(r, expected, rtol=rtol, atol=10 * rtol)
        else:
            np.testing.assert_array_equal(r, expected)
    assert len(out.type.shape) == np.ndim(expected)
    assert all(s is None or s == e for s, e in zip(out.type.shape, np.shape(expected))), (out.type, expected.shape)
    check_infer_shape(inputs, out, values, np.shape(expected))


@st.composite
def arrays(draw, min_dims=0, max_dims=4, min_side=0, max_side=4, dtype=None):
    dtype = dtype or draw(FLOATS)
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side))
    return draw(hnp.arrays(dtype, shape, elements=st.floats(-10, 10, width=32)))


# ---------------------------------------------------------------- shape, shape_i, size
@fixture_ok
@given(arrays(), st.booleans())
def test_shape_size_shape_i(backend, value, static):
    x = declare(value, static)
    run(backend, [x], x.shape, [value], np.array(value.shape, dtype="int64"))
    run(backend, [x], T.shape(x), [value], np.array(value.shape, dtype="int64"))
    run(backend, [x], T.size(x), [value], np.int64(value.size))
    for d in range(value.ndim):
        run(backend, [x], x.shape[d], [value], np.int64(value.shape[d]))
        run(backend, [x], x.shape[d - value.ndim], [value], np.int64(value.shape[d]))
        run(backend, [x], T.shape_i(x, d), [value], np.int64(value.shape[d]))
    if static:
        assert isinstance(x.shape, Constant) and isinstance(T.size(x), Constant)


def test_shape_of_unknown_dims_is_a_node_and_has_no_gradient():
    x = T.dmatrix()
    assert x.shape.owner is not None and x.shape.type.shape == (2,)
    assert x.shape.owner.op.grad([x], [None]) == [None]
    with pytest.raises(IndexError):
        T.dmatrix().shape[2]


@fixture_ok
@given(st.data())
def test_broadcast_shapes_matches_numpy(backend, data):
    ndim = data.draw(st.integers(0, 3))
    shapes = [data.draw(st.lists(st.sampled_from([0, 1, 1, 3]), min_size=0, max_size=ndim)) for _ in range(3)]
    target = [data.draw(st.sampled_from([0, 1, 3])) for _ in range(ndim)]
    shapes = [tuple(s if s == 1 else target[ndim - len(sh) + d] for d, s in enumerate(sh)) for sh in shapes]
    xs = [T.tensor("float64", tuple(1 if s == 1 else None for s in sh)) for sh in shapes]
    static = tuple(T.add(T.add(*xs[:2]), xs[2]).type.shape)
    out = broadcast_shapes([shape_tuple(x) for x in xs], static)
    got = sg.function(xs, [entry_var(s) for s in out], on_unused_input="ignore", backend=backend)(
        *[np.zeros(s) for s in shapes]) if out else []
    assert tuple(int(g) for g in got) == np.broadcast_shapes(*shapes)


# ---------------------------------------------------------------- reshape, flatten
@st.composite
def reshape_case(draw):
    value = draw(arrays(max_dims=4))
    dims = list(value.shape)
    draw(st.randoms()).shuffle(dims)
    cuts = sorted(draw(st.sets(st.integers(1, max(len(dims) - 1, 1)), max_size=3)))
    groups = [dims[a:b] for a, b in zip([0] + cuts, cuts + [len(dims)])]
    new = [int(np.prod(g)) for g in groups if g] or [1] * draw(st.integers(0, 2))
    if new and draw(st.booleans()):
        k = draw(st.integers(0, len(new) - 1))
        if np.prod(new[:k] + new[k + 1:]) != 0:
            new[k] = -1
    symbolic = [draw(st.booleans()) for _ in new]
    return value, new, symbolic


@fixture_ok
@given(reshape_case(), st.booleans(), st.booleans())
def test_reshape(backend, case, static, as_vector):
    value, new, symbolic = case
    x = declare(value, static)
    scalars = [T.lscalar() for s in symbolic if s]
    it = iter(scalars)
    entries = tuple(next(it) if s else n for n, s in zip(new, symbolic))
    expected = value.reshape(new)
    vals = [np.int64(n) for n, s in zip(new, symbolic) if s]
    if as_vector:
        v = T.lvector()
        run(backend, [x, v], T.reshape(x, v, ndim=len(new)), [value, np.array(new, dtype="int64")], expected)
    run(backend, [x] + scalars, x.reshape(entries), [value] + vals, expected)
    run(backend, [x] + scalars, T.reshape(x, list(entries)), [value] + vals, expected)
    if symbolic and all(symbolic):
        run(backend, [x] + scalars, x.reshape(*entries), [value] + vals, expected)
    if static and -1 not in new:
        assert x.reshape(new).type.shape == tuple(new)


@fixture_ok
@given(arrays(min_dims=1), st.booleans(), st.data())
def test_flatten(backend, value, static, data):
    nd = data.draw(st.integers(1, value.ndim))
    x = declare(value, static)
    expected = value.reshape(value.shape[:nd - 1] + (int(np.prod(value.shape[nd - 1:])),))
    run(backend, [x], T.flatten(x, nd), [value], expected)
    run(backend, [x], x.flatten(nd), [value], expected)


def test_reshape_is_a_view_but_outputs_do_not_alias_inputs():
    x = T.dvector()
    assert T.reshape(x, (2, 3)).owner.op.view_map == {0: 0}
    value = np.arange(6.)
    out = sg.function([x], x.reshape((2, 3)))(value)
    out[0, 0] = 99
    assert value[0] == 0


@pytest.mark.parametrize("shape,new", [((2, 3), (4,)), ((2, 3), (4, -1)), ((2, 3), (-1, -1)), ((2, 3), (-2, 3)),
                                       ((0, 3), (0, -1))])
def test_reshape_bad_static(shape, new):
    with pytest.raises(ShapeError, match="reshape"):
        T.reshape(T.tensor("float64", shape), new)


def test_reshape_bad_at_runtime(backend):
    x = T.dmatrix()
    f = sg.function([x], x.reshape((4,)), backend=backend)
    with pytest.raises(ValueError, match="reshape"):
        f(np.zeros((2, 3)))


def test_reshape_bad_arguments():
    x = T.dmatrix()
    with pytest.raises(GraphTypeError):
        T.reshape(x, (T.dscalar(), 2))
    with pytest.raises(ShapeError, match="ndim"):
        T.reshape(x, T.lvector())
    with pytest.raises(ShapeError):
        T.reshape(x, (2, 3), ndim=3)
    with pytest.raises(ShapeError):
        T.flatten(x, 3)


@given(reshape_case())
@settings(max_examples=10)
def test_reshape_grad(case):
    value, new, _ = case
    assume(value.size > 0)
    fd_grad_check(lambda x: T.reshape(x, new) * 2.0, [value])
    fd_grad_check(lambda x: T.flatten(x) ** 2, [value])


# ---------------------------------------------------------------- squeeze, expand_dims
@fixture_ok
@given(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3), FLOATS, st.booleans())
def test_squeeze(backend, shape, dtype, static):
    value = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    x = declare(value, static)
    run(backend, [x], T.squeeze(x), [value], np.squeeze(value))
    ones = [d for d, s in enumerate(shape) if s == 1]
    for d in ones:
        run(backend, [x], x.squeeze(d - value.ndim), [value], np.squeeze(value, d))
    if ones:
        run(backend, [x], T.squeeze(x, tuple(ones)), [value], np.squeeze(value, tuple(ones)))
    others = [d for d, s in enumerate(shape) if s != 1]
    for d in others[:1]:
        with pytest.raises(ShapeError, match="length 1"):
            T.squeeze(x, d)


@fixture_ok
@given(arrays(max_dims=3), st.data())
def test_expand_dims(backend, value, data):
    k = data.draw(st.integers(1, 2))
    out_nd = value.ndim + k
    axes = tuple(data.draw(st.lists(st.integers(-out_nd, out_nd - 1), min_size=k, max_size=k,
                                    unique_by=lambda a: a % out_nd)))
    x = declare(value, False)
    run(backend, [x], T.expand_dims(x, axes), [value], np.expand_dims(value, axes))
    one = data.draw(st.integers(-value.ndim - 1, value.ndim))
    run(backend, [x], T.expand_dims(x, one), [value], np.expand_dims(value, one))
    with pytest.raises(ShapeError):
        T.expand_dims(x, out_nd + 1)


@given(arrays(min_dims=1, min_side=1, max_side=3))
@settings(max_examples=8)
def test_squeeze_expand_dims_grad(value):
    fd_grad_check(lambda x: T.expand_dims(x, (0, -1)) * 3.0, [value])
    fd_grad_check(lambda x: T.squeeze(T.expand_dims(x, 1)) ** 2, [value])


# ---------------------------------------------------------------- concatenate, stack
@st.composite
def concat_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = draw(st.integers(1, 3))
    dtypes = [draw(FLOATS) for _ in range(n)]
    values = []
    for dt in dtypes:
        s = list(shape)
        s[axis] = draw(st.integers(0, 3))
        values.append(draw(hnp.arrays(dt, tuple(s), elements=st.floats(-10, 10, width=32))))
    return values, axis


@fixture_ok
@given(concat_case(), st.booleans())
def test_concatenate(backend, case, static):
    values, axis = case
    xs = [declare(v, static) for v in values]
    run(backend, xs, T.concatenate(xs, axis=axis), values, np.concatenate(values, axis=axis))


@fixture_ok
@given(arrays(max_dims=3), st.integers(1, 3), st.data())
def test_stack(backend, value, n, data):
    axis = data.draw(st.integers(-value.ndim - 1, value.ndim))
    values = [value + k for k in range(n)]
    xs = [declare(v, data.draw(st.booleans())) for v in values]
    run(backend, xs, T.stack(xs, axis=axis), values, np.stack(values, axis=axis))


def test_stack_scalars_mixes_numbers_and_variables(backend):
    n = T.lscalar()
    run(backend, [n], T.stack([n, 3, n * 2]), [np.int64(4)], np.array([4, 3, 8]))
    a = T.fscalar()
    run(backend, [a], T.stack([a, 1.5]), [np.float32(2)], np.array([2, 1.5], dtype="float32"))


@given(concat_case())
@settings(max_examples=10)
def test_concatenate_stack_grad(case):
    values, axis = case
    assume(sum(v.size for v in values) > 0)
    fd_grad_check(lambda *xs: T.concatenate(xs, axis=axis) ** 2, values)
    fd_grad_check(lambda a, b: T.stack([a, b * 2.0], axis=-1), [values[0], values[0] + 1])
    fd_grad_check(lambda a, b: T.stack([a.sum(), b.sum() * 3.0]), [values[0], values[0] + 1])


def test_concatenate_bad_input(backend):
    with pytest.raises(ShapeError, match="differ in dimension 1"):
        T.concatenate([T.tensor("float64", (2, 3)), T.tensor("float64", (2, 4))])
    with pytest.raises(ShapeError, match="same ndim"):
        T.concatenate([T.dmatrix(), T.dvector()])
    with pytest.raises(ShapeError, match="axis"):
        T.concatenate([T.dmatrix(), T.dmatrix()], axis=2)
    with pytest.raises(ValueError):
        T.concatenate([])
    a, b = T.dmatrix(), T.dmatrix()
    f = sg.function([a, b], T.concatenate([a, b]), backend=backend)
    with pytest.raises(ValueError):
        f(np.zeros((2, 3)), np.zeros((2, 4)))


# ---------------------------------------------------------------- alloc, zeros, ones, full, *_like
@fixture_ok
@given(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3), st.sampled_from([None, "float32",
       "int32", "float64"]), st.data())
def test_zeros_ones_full(backend, shape, dtype, data):
    sym = [data.draw(st.booleans()) for _ in shape]
    scalars = [T.lscalar() for s in sym if s]
    it = iter(scalars)
    entries = tuple(next(it) if s else n for n, s in zip(shape, sym))
    vals = [np.int64(n) for n, s in zip(shape, sym) if s]
    want = dtype or sg.config.floatX
    run(backend, scalars, T.zeros(entries, dtype), vals, np.zeros(shape, want))
    run(backend, scalars, T.ones(entries, dtype), vals, np.ones(shape, want))
    run(backend, scalars, T.full(entries, 7, dtype), vals, np.full(shape, 7, dtype=dtype))
    run(backend, scalars, T.alloc(np.float32(2.5), *entries), vals, np.full(shape, 2.5, "float32"))
    if shape:
        v = T.tensor("int64", (len(shape),))
        run(backend, [v], T.zeros(v, dtype), [np.array(shape, dtype="int64")], np.zeros(shape, want))


@fixture_ok
@given(arrays(), st.booleans(), st.sampled_from([None, "int64", "float32"]))
def test_like(backend, value, static, dtype):
    x = declare(value, static)
    want = dtype or value.dtype
    run(backend, [x], T.zeros_like(x, dtype), [value], np.zeros_like(value, dtype=want))
    run(backend, [x], T.ones_like(x, dtype), [value], np.ones_like(value, dtype=want))
    run(backend, [x], T.full_like(x, 3, dtype), [value], np.full_like(value, 3, dtype=want))


@fixture_ok
@given(arrays(max_dims=2, min_side=1, max_side=3), st.integers(0, 2), st.data())
def test_alloc_broadcasts_a_tensor_value(backend, value, lead, data):
    shape = tuple(data.draw(st.integers(0, 3)) for _ in range(lead)) + tuple(
        data.draw(st.integers(0, 3)) if s == 1 else s for s in value.shape)
    x = declare(value, False)
    n = T.lscalar()
    entries = shape if not shape else (n,) + shape[1:]
    vals = [np.int64(shape[0])] if shape else []
    run(backend, [x] + ([n] if shape else []), T.alloc(x, *entries), [value] + vals,
        np.broadcast_to(value, shape))


@given(arrays(max_dims=2, min_side=1, max_side=3))
@settings(max_examples=8)
def test_alloc_grad(value):
    shape = (2,) + tuple(3 if s == 1 else s for s in value.shape)
    fd_grad_check(lambda x: T.alloc(x, *shape) ** 2, [value])
    fd_grad_check(lambda x: T.alloc(x.sum(), 2, 3), [value])


def test_alloc_bad_input(backend):
    with pytest.raises(ShapeError, match="negative"):
        T.zeros((2, -1))
    with pytest.raises(ShapeError, match="cannot fill"):
        T.alloc(T.tensor("float64", (3,)), 2, 4)
    with pytest.raises(ShapeError, match="more dims"):
        T.alloc(T.dmatrix(), 3)
    with pytest.raises(GraphTypeError):
        T.zeros((T.dscalar(), 2))
    x = T.dvector()
    f = sg.function([x], T.alloc(x, 2, 4), backend=backend)
    with pytest.raises(ShapeError, match="does not fit"):
        f(np.zeros(3))
    with pytest.raises(ShapeError, match="only static length-1"):
        f(np.zeros(1))  # runtime broadcasting of a dim not declared broadcastable would break the gradient


# ---------------------------------------------------------------- arange
@fixture_ok
@given(st.integers(-6, 6), st.integers(-6, 6), st.integers(-3, 3).filter(bool), st.booleans(),
       st.sampled_from([None, "int32", "float64"]))
def test_arange_ints(backend, start, stop, step, symbolic, dtype):
    expected = np.arange(start, stop, step, dtype=dtype)
    if symbolic:
        a, b, c = T.lscalar(), T.lscalar(), T.lscalar()
        out = T.arange(a, b, c, dtype=dtype)
        assert out.type.shape == (None,)
        run(backend, [a, b, c], out, [np.int64(start), np.int64(stop), np.int64(step)], expected)
    else:
        out = T.arange(start, stop, step, dtype=dtype)
        assert out.type.shape == (len(expected),)
        run(backend, [], out, [], expected)
    if stop >= 0:
        run(backend, [], T.arange(stop), [], np.arange(stop))


@fixture_ok
@given(st.floats(-3, 3), st.floats(-3, 3), st.floats(0.3, 2), FLOATS)
def test_arange_floats(backend, start, stop, step, dtype):
    a, b, c = (T.scalar(dtype=dtype) for _ in range(3))
    vals = [np.asarray(v, dtype) for v in (start, stop, step)]
    run(backend, [a, b, c], T.arange(a, b, c), vals, np.arange(*vals, dtype=dtype),  # numpy would say float64
        rtol=1e-6 if dtype == "float32" else 1e-15)  # a device may compute start + i * step differently
    assert T.arange(1.5).dtype == sg.config.floatX and T.arange(3).dtype == "int64"


def test_arange_grad_and_errors():
    fd_grad_check(lambda a: T.arange(a, a + 3.5, 1.0) ** 2, [np.array(0.25)])
    with pytest.raises(ValueError, match="step"):
        T.arange(0, 3, 0)
    with pytest.raises(GraphTypeError):
        T.arange(T.dvector())
