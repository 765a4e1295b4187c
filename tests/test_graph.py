"""The graph IR: Variables, Apply nodes, Ops, walks, cloning and FunctionGraph."""
from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, RewriteError
from symgraph.graph import Apply, Constant, FunctionGraph, Op, ancestors, clone_replace, graph_inputs, toposort
from symgraph.tensor.type import TensorType


def test_theano_example_builds_the_expected_graph():
    x, y = T.dmatrix("x"), T.dmatrix("y")
    z = x + y
    node = z.owner
    assert isinstance(node, Apply) and node.inputs == [x, y] and node.outputs == [z]
    assert str(node.op) == "add" and z.index == 0 and x.owner is None
    assert z.type == TensorType("float64", (None, None)) and z.type.broadcastable == (False, False)
    f = sg.function([x, y], z)
    np.testing.assert_array_equal(f(np.ones((2, 2)), np.arange(4.).reshape(2, 2)), [[1., 2.], [3., 4.]])


def test_node_records_the_user_line():
    x = T.dvector("x")
    y = T.exp(x)  # this line
    assert y.owner.trace.filename == __file__
    assert "y = T.exp(x)  # this line" in y.owner.trace.text


def test_ops_are_hashable_by_props():
    a, b = T.DimShuffle(2, (1, 0)), T.DimShuffle(2, (1, 0))
    assert a == b and hash(a) == hash(b) and a != T.DimShuffle(2, (0, 1))
    assert T.ELEMWISE_OPS["add"] == T.Elemwise(sg.scalar.get("add"))
    assert len({T.ELEMWISE_OPS["add"], T.Elemwise(sg.scalar.get("add"))}) == 1


def test_types_and_constructors():
    assert T.fmatrix().type == TensorType("float32", (None, None))
    assert T.iscalar().type.ndim == 0 and T.lvector().dtype == "int64" and T.btensor3().ndim == 3
    assert T.tensor("float32", shape=(None, 3), name="w").type.shape == (None, 3)
    with sg.config.change_flags(floatX="float32"):
        assert T.matrix().dtype == "float32"
    assert T.matrix().dtype == sg.config.floatX
    with pytest.raises(GraphTypeError):
        T.tensor("str", ())
    with pytest.raises(GraphTypeError, match="2 dimensions"):
        T.matrix(shape=(None,))


def test_walks_are_iterative_on_deep_graphs():
    x = T.dvector("x")
    y = x
    for _ in range(5000):
        y = T.tanh(y) * 1.0001
    nodes = toposort([y])
    assert len(nodes) == 10000 and nodes[-1] is y.owner
    assert x in graph_inputs([y]) and len(ancestors([y])) > 10000
    f = sg.function([x], y, mode=None)
    assert np.isfinite(f(np.ones(3))).all()


def test_toposort_orders_inputs_first():
    x = T.dvector("x")
    a = T.exp(x)
    b = a + x
    c = b * a
    order = toposort([c])
    assert order.index(a.owner) < order.index(b.owner) < order.index(c.owner)


def test_clone_replace_substitutes_without_touching_the_original():
    x, y = T.dvector("x"), T.dvector("y")
    z = T.exp(x) + 1
    (z2,), _ = clone_replace([z], {x: y})
    assert x in graph_inputs([z]) and y in graph_inputs([z2]) and x not in graph_inputs([z2])


def test_function_graph_clients_and_replace():
    x = T.dvector("x")
    a = T.exp(x)
    out = a * 2
    fg = FunctionGraph([x], [out])
    (mul_node,) = [n for n in fg.apply_nodes if str(n.op) == "mul"]
    exp_var = mul_node.inputs[0]
    assert fg.clients[exp_var] == [(mul_node, 0)]
    assert a.owner not in fg.apply_nodes  # the graph was copied
    new = T.log(x)
    fg.replace(exp_var, new)
    assert mul_node.inputs[0] is new and exp_var.owner not in fg.apply_nodes and len(fg) == 2
    with pytest.raises(RewriteError, match="changes the type"):
        fg.replace(new, T.fvector())


def test_constant_signature_merges_equal_values():
    a, b = T.constant(np.arange(3.0)), T.constant(np.arange(3.0))
    assert isinstance(a, Constant) and a.signature() == b.signature() and a is not b
    assert a.data.flags.writeable is False


def test_custom_op_with_perform_runs_through_the_backend(backend):
    class Double(Op):
        """Doubles its input (a user-defined op without a numpy lowering)."""
        def make_node(self, x):
            x = T.as_tensor_variable(x)
            return Apply(self, [x], [x.type.make_variable()])

        def perform(self, node, inputs):
            return [inputs[0] * 2]

    x = T.dvector("x")
    if backend == "opencl":
        pytest.skip("a user op with only perform runs on the host; covered by the OpenCL fallback tests")
    f = sg.function([x], Double()(x) + 1, backend=backend)
    np.testing.assert_array_equal(f(np.arange(3.0)), [1, 3, 5])


def test_eval_convenience():
    x = T.dvector("x")
    np.testing.assert_allclose((x * 2).eval({x: np.ones(2)}), [2, 2])
    assert float((T.constant(2.0) + 1).eval()) == 3.0


def test_variables_refuse_truth_and_len():
    x = T.dvector("x")
    with pytest.raises(TypeError, match="truth value"):
        bool(x > 0)
    with pytest.raises(TypeError, match="shape"):
        len(x)


_KINDS = {"scalar": (), "vector": (None,), "matrix": (None, None), "tensor3": (None,) * 3, "tensor4": (None,) * 4,
          "tensor5": (None,) * 5, "tensor6": (None,) * 6, "tensor7": (None,) * 7, "row": (1, None), "col": (None, 1)}
_PREFIXES = {"b": "int8", "w": "int16", "i": "int32", "l": "int64", "f": "float32", "d": "float64",
             "c": "complex64", "z": "complex128"}


def _kind_of(name: str) -> tuple[str, str | None, bool]:
    """(kind, dtype prefix or None, plural) of a constructor name."""
    plural = name.endswith("s") and name not in _KINDS
    base = name[:-len("matrices")] + "matrix" if name.endswith("matrices") else (name[:-1] if plural else name)
    if base in _KINDS:
        return base, None, plural
    return base[1:], base[0], plural


@pytest.mark.parametrize("name", sorted(T.CONSTRUCTORS))
def test_every_constructor(name):
    kind, prefix, plural = _kind_of(name)
    dtype = _PREFIXES[prefix] if prefix else sg.config.floatX
    if plural:
        vs = getattr(T, name)("a", "b")
        assert [v.name for v in vs] == ["a", "b"] and len(getattr(T, name)(3)) == 3
        assert getattr(T, name)("q").name == "q"  # one name: one variable, not a list (Theano)
    else:
        vs = [getattr(T, name)(name="v")]
    for v in vs:
        assert v.type.shape == _KINDS[kind] and v.dtype == dtype
    if prefix and not plural:  # prefixed forms are TensorType instances, as in Theano
        assert isinstance(getattr(T, name), T.TensorType) and vs[0].type is getattr(T, name)


def test_types_are_callable_tensor_types_as_in_theano():
    x = T.dscalar("x")
    assert x.type is T.dscalar and x.type == T.dscalar and T.dscalar == T.TensorType("float64", ())
    assert T.TensorType("int32", broadcastable=())("v").type == T.iscalar
    assert T.TensorType("float64", (False,) * 8)().ndim == 8  # Theano's positional broadcastable
    assert T.TensorType("complex64", [False, True, False]).shape == (None, 1, None)
    assert T.TensorType("float64", broadcastable=(False, True)) == T.dcol
    assert T.drow.broadcastable == (True, False) and T.col().broadcastable == (False, True)
    assert T.matrix("m", dtype="int32").type == T.imatrix
    assert T.scalars("xyz")[2].name == "z"  # a single string names one variable per character
    with pytest.raises(GraphTypeError, match="not both"):
        T.TensorType("float64", shape=(None,), broadcastable=(False,))


def test_static_broadcasting_helpers():
    assert T.broadcast_static_shape([(None, 3), (1, 3), (3,)]) == (None, 3)
    assert T.broadcast_static_shape([(1, 1), (1,)]) == (1, 1)
    assert T.normalize_axis(-1, 3, "sum") == (2,) and T.normalize_axis(None, 2, "sum") == (0, 1)
    x = T.dmatrix("x")
    f = sg.function([x], T.subtensor(x, (slice(1, None), 0)))
    np.testing.assert_array_equal(f(np.arange(6.0).reshape(3, 2)), [2.0, 4.0])


def test_dtype_predicates():
    """One home for dtype questions: float and complex are inexact (they carry gradients)."""
    for dt in ("float16", "float32", "float64", "complex64", "complex128"):
        assert T.is_inexact(dt) and T.is_inexact(T.tensor(dt)) and not T.is_integer(dt)
    for dt in ("int8", "int64", "uint32"):
        assert T.is_integer(dt) and not T.is_inexact(T.tensor(dt))
    assert not T.is_integer("bool") and not T.is_inexact("bool")
