"""Indexing against numpy on hypothesis data: basic (ints, slices with negative/symbolic bounds and
steps, newaxis, Ellipsis), integer-array and boolean-mask indexing, set_subtensor / inc_subtensor
(repeated indices accumulate); compiled with each backend and through op.perform, static shapes and
infer_shape checked, gradients by central finite differences, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, ShapeError
from symgraph.graph.basic import Constant, Variable
from symgraph.tensor.shape import Shape_i, entry_var, shape_tuple
from symgraph.tensor.subtensor import AdvancedSubtensor, IncSubtensor, Subtensor
from helpers import declare, fd_grad_check, perform_eval

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])
FLOATS = st.sampled_from(["float32", "float64"])


def run(backend: str, inputs: list, out: Variable, values: list, expected: np.ndarray) -> None:
    """Compiled result, perform result, static shape, dtype and infer_shape all agree with numpy."""
    got = sg.function(inputs, out, backend=backend, on_unused_input="ignore")(*values)
    for r in (got, perform_eval(inputs, out, values)):
        assert np.asarray(r).dtype == np.dtype(out.dtype) == expected.dtype
        np.testing.assert_array_equal(r, expected)
    assert len(out.type.shape) == expected.ndim
    assert all(s is None or s == e for s, e in zip(out.type.shape, expected.shape)), (out.type, expected.shape)
    node = out.owner
    if node is not None:
        shape = node.op.infer_shape(node, [shape_tuple(i) for i in node.inputs])[out.index]
        got = sg.function(inputs, [entry_var(s) for s in shape], on_unused_input="ignore")(*values) if shape else []
        assert tuple(int(g) for g in got) == expected.shape


# ---------------------------------------------------------------- index strategies
@st.composite
def arrays(draw, min_dims=1, max_dims=3, min_side=0, max_side=4):
    dtype = draw(FLOATS)
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side))
    return draw(hnp.arrays(dtype, shape, elements=st.floats(-10, 10, width=32)))


@st.composite
def basic_index(draw, shape):
    """A numpy basic index for ``shape``: ints, slices (negative bounds and steps), None, Ellipsis."""
    k = draw(st.integers(0, len(shape)))
    j = draw(st.integers(0, len(shape) - k))  # indexes the last j dims after an Ellipsis

    def item(n):
        if n > 0 and draw(st.booleans()):
            return draw(st.integers(-n, n - 1))
        bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
        return slice(draw(bound), draw(bound), draw(st.one_of(st.none(), st.integers(-3, 3).filter(bool))))
    items = [item(n) for n in shape[:k]]
    suffix = [item(n) for n in shape[len(shape) - j:]] if j else []
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    if suffix or draw(st.booleans()):
        items += [Ellipsis] + suffix
    return tuple(items)


def symbolize(index: tuple, draw, scalar=T.lscalar) -> tuple[tuple, list, list]:
    """Replace some integers of an index (in ints and slice bounds) by symbolic scalars."""
    inputs, values = [], []

    def sym(v):
        if v is None or not draw(st.booleans()):
            return v
        s = scalar()
        inputs.append(s)
        values.append(np.asarray(v, dtype=s.dtype))
        return s
    out = []
    for it in index:
        if isinstance(it, slice):
            out.append(slice(sym(it.start), sym(it.stop), sym(it.step)))
        elif isinstance(it, int):
            out.append(sym(it))
        else:
            out.append(it)
    return tuple(out), inputs, values


@st.composite
def advanced_index(draw, shape):
    """An index mixing integer arrays (with repeats, broadcasting together) with ints, slices, None."""
    bshape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=3))
    dims = shape[:draw(st.integers(1, len(shape)))]
    kinds = [draw(st.sampled_from(["array", "array", "int", "slice"] if n > 0 else ["slice"])) for n in dims]
    if "array" not in kinds:
        usable = [d for d, n in enumerate(dims) if n > 0]
        assume(usable)
        kinds[draw(st.sampled_from(usable))] = "array"
    items = []
    for n, kind in zip(dims, kinds):
        if kind == "array":
            sub = tuple(1 if draw(st.booleans()) else s for s in bshape[draw(st.integers(0, len(bshape) - 1)):])
            items.append(draw(hnp.arrays("int64", sub, elements=st.integers(-n, n - 1))))
        elif kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        else:
            start = draw(st.one_of(st.none(), st.integers(-n, n)))
            items.append(slice(start, None, draw(st.sampled_from([None, -1, 2]))))
    for _ in range(draw(st.integers(0, 1))):
        items.insert(draw(st.integers(0, len(items))), None)
    return tuple(items)


def symbolize_arrays(index: tuple, draw) -> tuple[tuple, list, list]:
    """Pass each index array as a constant ndarray, a Python list, or a symbolic input."""
    inputs, values, out = [], [], []
    for it in index:
        how = draw(st.sampled_from(["const", "list", "sym", "sym_static"])) if isinstance(it, np.ndarray) else None
        if how == "list" and it.size:  # (an empty list loses the array's shape)
            it = it.tolist()
        elif how in ("sym", "sym_static"):
            v = T.tensor("int64", it.shape if how == "sym_static" else (None,) * it.ndim)
            inputs.append(v)
            values.append(it)
            it = v
        out.append(it)
    return tuple(out), inputs, values


# ---------------------------------------------------------------- reading
@fixture_ok
@given(arrays(), st.booleans(), st.data())
def test_basic_indexing(backend, value, static, data):
    index = data.draw(basic_index(value.shape))
    sym_index, inputs, values = symbolize(index, data.draw, data.draw(st.sampled_from([T.lscalar, T.iscalar])))
    x = declare(value, static)
    out = x[sym_index]
    assert isinstance(out.owner.op, Subtensor) and out.owner.op.view_map == {0: 0}
    run(backend, [x] + inputs, out, [value] + values, np.asarray(value[index]))


@fixture_ok
@given(arrays(), st.booleans(), st.data())
def test_advanced_indexing(backend, value, static, data):
    index = data.draw(advanced_index(value.shape))
    sym_index, inputs, values = symbolize_arrays(index, data.draw)
    x = declare(value, static)
    out = x[sym_index]
    assert isinstance(out.owner.op, AdvancedSubtensor) and out.owner.op.view_map == {}
    run(backend, [x] + inputs, out, [value] + values, value[index])


@fixture_ok
@given(arrays(), st.booleans(), st.data())
def test_boolean_mask_indexing(backend, value, symbolic, data):
    k = data.draw(st.integers(1, value.ndim))
    mask = data.draw(hnp.arrays("bool", value.shape[:k]))
    tail = tuple(slice(None, None, -1) for _ in range(data.draw(st.integers(0, value.ndim - k))))
    x = declare(value, False)
    m = T.tensor("bool", (None,) * k) if symbolic else mask
    out = x[(m,) + tail]
    assert out.type.shape[0] is None if symbolic else out.type.shape[0] == mask.sum()
    run(backend, [x] + ([m] if symbolic else []), out, [value] + ([mask] if symbolic else []),
        value[(mask,) + tail])


def test_shape_indexing_builds_shape_i_and_constants_fold():
    x = T.dmatrix()
    assert isinstance(x.shape[1].owner.op, Shape_i) and x.shape[1].owner.op.i == 1
    assert isinstance(x.shape[-2].owner.op, Shape_i) and x.shape[-2].owner.op.i == 0
    assert isinstance(T.tensor("float64", (2, 5)).shape[1], Constant)  # constant shape entries fold
    c = T.constant(np.arange(6.).reshape(2, 3))
    assert isinstance(T.set_subtensor(c[1, ::-1], 0.5).owner.op, IncSubtensor)  # other constants stay nodes
    np.testing.assert_array_equal(T.inc_subtensor(c[0], 1.0, set_instead_of_inc=True).eval(), [[1.] * 3, [3, 4, 5]])
    assert str(x[1:, ::2].owner.op) == "Subtensor{?:, ::?}"
    assert T.tensor("float64", (2, 5))[1:4, None].type.shape == (1, 1, 5)


def test_view_outputs_do_not_alias_inputs(backend):
    x = T.dvector()
    value = np.arange(4.)
    out = sg.function([x], x[1:], backend=backend)(value)
    out[0] = 99
    assert value[1] == 1


# ---------------------------------------------------------------- set / inc
@st.composite
def update_value(draw, shape, dtype):
    """A value broadcastable to ``shape``: leading dims dropped, some dims 1."""
    drop = draw(st.integers(0, len(shape)))
    ys = tuple(1 if draw(st.booleans()) else s for s in shape[drop:])
    return draw(hnp.arrays(dtype, ys, elements=st.floats(-10, 10, width=32)))


@fixture_ok
@given(arrays(), st.booleans(), st.booleans(), st.data())
def test_set_inc_subtensor(backend, value, advanced, static, data):
    index = data.draw(advanced_index(value.shape) if advanced else basic_index(value.shape))
    y_val = data.draw(update_value(np.shape(value[index]), value.dtype.name))
    sym_index, inputs, values = (symbolize_arrays if advanced else symbolize)(index, data.draw)
    x, y = declare(value, static), declare(y_val, data.draw(st.booleans()))
    expected_set, expected_inc = value.copy(), value.copy()
    expected_set[index] = y_val
    np.add.at(expected_inc, index, y_val)
    run(backend, [x, y] + inputs, T.set_subtensor(x[sym_index], y), [value, y_val] + values, expected_set)
    run(backend, [x, y] + inputs, T.inc_subtensor(x[sym_index], y), [value, y_val] + values, expected_inc)


def test_inc_subtensor_accumulates_repeated_indices(backend):
    x, y = T.dvector(), T.dvector()
    f = sg.function([x, y], T.inc_subtensor(x[[0, 2, 0, 0]], y), backend=backend)
    np.testing.assert_array_equal(f(np.zeros(3), np.array([1., 2., 3., 4.])), [8., 0., 2.])
    f = sg.function([x], T.inc_subtensor(x[1:], 1.5), backend=backend)
    np.testing.assert_array_equal(f(np.zeros(3)), [0, 1.5, 1.5])
    assert isinstance(T.set_subtensor(x[0], 1).owner.op, IncSubtensor)


# ---------------------------------------------------------------- gradients
@given(arrays(max_side=3), st.data())
@settings(max_examples=10)
def test_subtensor_grad(value, data):
    index = data.draw(basic_index(value.shape))
    fd_grad_check(lambda x: x[index] * 3.0, [value])
    adv = data.draw(advanced_index(value.shape))
    fd_grad_check(lambda x: x[adv] ** 2, [value])


@given(arrays(max_side=3), st.booleans(), st.data())
@settings(max_examples=10)
def test_set_inc_subtensor_grad(value, advanced, data):
    index = data.draw(advanced_index(value.shape) if advanced else basic_index(value.shape))
    y_val = data.draw(update_value(np.shape(value[index]), "float64"))
    fd_grad_check(lambda x, y: T.inc_subtensor(x[index], y) ** 2, [value, y_val])
    if advanced:  # set with repeated indices keeps one write: its gradient is only defined without repeats
        flat = np.ravel_multi_index(np.nonzero(np.ones(value.shape)), value.shape).reshape(value.shape)
        assume(len(np.unique(flat[index])) == flat[index].size)
    fd_grad_check(lambda x, y: T.set_subtensor(x[index], y) ** 2, [value, y_val])


def test_mask_grad():
    mask = np.array([[True, False, True], [False, False, True]])
    fd_grad_check(lambda x: x[mask] ** 2, [np.arange(6.).reshape(2, 3)])


# ---------------------------------------------------------------- bad input
def test_bad_indices_at_build_time():
    x, v = T.dmatrix(), T.tensor("float64", (3, 4))
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="too many indices"):
        x[np.zeros((2, 2, 2), bool)]
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 3"):
        v[3]
    with pytest.raises(IndexError, match="out of bounds for axis 1 with size 4"):
        v[:, -5]
    with pytest.raises(IndexError, match="index 7 is out of bounds"):
        v[:, [0, 7]]
    with pytest.raises(IndexError, match="boolean mask"):
        v[np.ones(4, bool)]
    with pytest.raises(IndexError, match="integers"):
        x[1.5]
    with pytest.raises(IndexError, match="integers"):
        x[T.dscalar()]
    with pytest.raises(IndexError, match="boolean scalar"):
        x[True]
    with pytest.raises(IndexError, match="single Ellipsis"):
        x[..., 0, ...]
    with pytest.raises(ValueError, match="step"):
        x[::0]
    with pytest.raises(GraphTypeError):
        x[T.dscalar():]
    with pytest.raises(GraphTypeError):
        Subtensor(("i",))(x, T.dscalar())


def test_bad_set_inc_arguments():
    x, y = T.dmatrix(), T.tensor("float64", (3,))
    with pytest.raises(TypeError, match="indexed tensor"):
        T.set_subtensor(x, 1.0)
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        T.set_subtensor(T.tensor("float64", (4, 5))[0:2], y)
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        T.inc_subtensor(x[0], T.dmatrix())
    with pytest.raises(GraphTypeError, match="safely cast"):
        T.set_subtensor(T.fmatrix()[0], T.dvector())
    assert T.set_subtensor(T.fmatrix()[0], 2.5).dtype == "float32"
    assert T.inc_subtensor(x[0], T.ivector()).dtype == "float64"


def test_runtime_index_errors_name_the_node(backend):
    x, n = T.dvector(), T.lscalar()
    f = sg.function([x, n], x[n] * 2, backend=backend)
    with pytest.raises(IndexError, match="test_subtensor.py"):
        f(np.zeros(3), np.int64(5))
    g = sg.function([x, n], x[n:][[0, 4]], backend=backend)
    with pytest.raises(IndexError, match="out of bounds"):
        g(np.zeros(3), np.int64(0))


def test_set_and_inc_subtensor_print_their_kind_once():
    x = T.dmatrix("x")
    assert str(T.inc_subtensor(x[:, 1], 1.0).owner.op) == "IncSubtensor{:, ?}"
    assert str(T.set_subtensor(x[1:], 0.0).owner.op) == "SetSubtensor{?:}"
