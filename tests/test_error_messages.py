"""Every error a user can meet while building, differentiating, compiling, calling, printing or
saving, raised on purpose: the right exception class, and a message that names what was wrong.
(Errors of the ops' run-time checks on both backends are at the end; errors specific to the
loader, the command line and the rewriter live in test_serialize_forged.py, test_cli.py and
test_rewrite_pipeline.py.)"""
from __future__ import annotations

import shutil
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings

import symgraph as sg
import symgraph.tensor as T
from symgraph import scalar, serialize
from symgraph.errors import BackendError, GradientError, GraphTypeError, InputError, MethodNotDefined, MissingInputError, RewriteError, ShapeError
from symgraph.graph.basic import Apply, Op, Type, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.printing import to_dot
from symgraph.rewrite import as_mode
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import DimShuffle, Elemwise
from symgraph.tensor.reduction import ArgReduce, ReducedSize
from symgraph.tensor.shape import MakeVector, Reshape, Shape_i
from symgraph.tensor.subtensor import Subtensor
from symgraph.testing import strategies as sgs, verify_grad
from symgraph.testing.verify import GradientCheckError

x, y = T.dvector("x"), T.dvector("y")
m = T.dmatrix("m")
w = sg.shared(np.ones(3), "w")


class BadGradOp(Op):
    """A user op whose grad returns ``self.answer`` (a bug the gradient machinery must name)."""

    __props__ = ("kind",)

    def __init__(self, kind: str):
        self.kind = kind

    def make_node(self, a: Any) -> Apply:
        a = T.as_tensor_variable(a)
        return Apply(self, [a], [a.type.make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        return [inputs[0] * 2]

    def grad(self, inputs: list, output_grads: list) -> list:
        if self.kind == "count":
            return []
        return [output_grads[0][:1]] if self.kind == "short" else [output_grads[0].sum()]


class Bare(Op):
    """An op with nothing defined but make_node."""

    def make_node(self, a: Any) -> Apply:
        a = T.as_tensor_variable(a)
        return Apply(self, [a], [a.type.make_variable()])


class _ObjectProp(Op):
    """A registered user op whose prop holds an array of Python objects."""

    __props__ = ("table",)

    def __init__(self, table: Any = None):
        self.table = np.array(["a", 1], dtype=object) if table is None else table

    def __eq__(self, other: object) -> bool:
        return type(other) is _ObjectProp

    def __hash__(self) -> int:
        return hash(_ObjectProp)

    def make_node(self, a: Any) -> Apply:
        a = T.as_tensor_variable(a)
        return Apply(self, [a], [a.type.make_variable()])


def _save_object_prop(table: Any = None) -> bytes:
    serialize.register_op(_ObjectProp)
    try:
        return serialize.dumps(_ObjectProp(table)(x))
    finally:
        del serialize._REGISTERED["_ObjectProp"]


def _draw(strategy: Any) -> Any:
    """One example of a hypothesis strategy, drawn the supported way (inside @given)."""
    drawn = []

    @settings(max_examples=1, database=None)
    @given(strategy)
    def take(value: Any) -> None:
        drawn.append(value)
    take()
    return drawn[0]


def _twice_output() -> None:
    out = x * 2
    Apply(Bare(), [y], [out])


def _sg_function(*args: Any, **kw: Any) -> Callable[[], Any]:
    return lambda: sg.function(*args, **kw)


def _call_twice() -> None:
    sg.function([x, y], x + y)(np.ones(2), x=np.ones(2))


def _bad_shared_update() -> None:
    s = sg.shared(np.ones((2, 3)), "s", shape=(2, 3))
    sg.function([], [], updates=[(s, T.alloc(1.0, 3, 3))])


# id: (thunk, exception class, message pattern)
CASES: dict[str, tuple[Callable[[], Any], type, str]] = {
    # compiling and calling
    "input twice by keyword": (_call_twice, InputError, r"f\(\) got input 'x' twice"),
    "givens not pairs": (_sg_function([x], x * 2, givens=[x]), TypeError,
                         r"givens must be a dict or a list of \(variable, value\) pairs"),
    "shared as input": (_sg_function([w], w * 2), InputError, r"input 0 \(w\) is a shared variable"),
    "constant as input": (_sg_function([T.constant(2.0)], x), InputError, "input 0 is a constant"),
    "update of another static shape": (_bad_shared_update, InputError, "update of s has static shape"),
    "on_unused_input": (_sg_function([x], x, on_unused_input="sometimes"), ValueError,
                        "on_unused_input must be 'raise', 'warn' or 'ignore', got 'sometimes'"),
    "givens key not symbolic": (_sg_function([x], x * 2, givens=[(3, x)]), InputError,
                                "givens: 3 is not a symbolic variable"),
    "shared of objects": (lambda: sg.shared(object()), TypeError, "sg.shared needs numbers or an array, got object"),
    "unknown mode": (lambda: as_mode(3.5), ValueError, "unknown mode 3.5; use 'fast_run'"),
    "unknown backend": (_sg_function([x], x, backend="cuda"), ValueError, "unknown backend 'cuda'"),
    # configuration
    "no such flag": (lambda: sg.config.nonsense, AttributeError, "sg.config has no flag 'nonsense'; flags:"),
    "bad device flag": (lambda: setattr(sg.config, "device", "cuda:0"), ValueError,
                        "config.device must be None, 'cpu', 'opencl' or 'opencl:P:D', got 'cuda:0'"),
    # gradients
    "known_grads key": (lambda: sg.grad(None, x, known_grads={3: x}), GradientError,
                        "known_grads: keys must be symbolic variables, got int"),
    "return_disconnected": (lambda: sg.grad(x.sum(), x, return_disconnected="nan"), ValueError,
                            "return_disconnected must be 'zero' or 'none', got 'nan'"),
    "wrt not symbolic": (lambda: sg.grad(x.sum(), [x, 2.0]), GradientError,
                         "grad: wrt must be symbolic variables, got float 2.0"),
    "op grad count": (lambda: sg.grad(BadGradOp("count")(x).sum(), x), GradientError,
                      r"BadGradOp\{count\}.grad returned 0 gradients for 1 inputs \(a bug in the op\)"),
    "op grad ndim": (lambda: sg.grad(BadGradOp("ndim")(x).sum(), x), GradientError,
                     r"returned a 0-d gradient .* for its 1-d input 0"),
    "Lop counts": (lambda: sg.Lop([x * 2, x * 3], x, [y]), GradientError, "Lop: 2 outputs but 1 eval_points"),
    "Rop counts": (lambda: sg.Rop(x * 2, [x, y], [y]), GradientError, "Rop: 2 wrt but 1 eval_points"),
    "verify_grad shape": (lambda: verify_grad(lambda a: BadGradOp("short")(a), [np.ones(3)]), GradientCheckError,
                          r"verify_grad: the gradient of input 0 has shape \(1,\), but the"),
    # the graph
    "type without filter": (lambda: Type().filter(1), MethodNotDefined, "Type must define filter"),
    "output of two nodes": (_twice_output, ValueError, r"output 0 of .* already belongs to another node"),
    "out of a multi-output node": (lambda: Composite(["float64"], [("exp", (("i", 0),)), ("neg", (("i", 0),))],
                                                     [("s", 0), ("s", 1)]).make_node(x).out,
                                   ValueError, "has 2 outputs; use .outputs"),
    "op without make_node": (lambda: Op()(x), MethodNotDefined, "Op must define make_node"),
    "op without perform": (lambda: Bare().perform(None, [1]), MethodNotDefined, "Bare has no perform"),
    "op without infer_shape": (lambda: Bare().infer_shape(None, [()]), MethodNotDefined,
                               "Bare does not define infer_shape"),
    "fgraph with a free variable": (lambda: FunctionGraph([x], [x + y]), MissingInputError,
                                    r"(?s)the outputs depend on variables that are not inputs: \[y\].*"
                                    r"The first node reading one:.*Op: add.*test_error_messages.py"),
    "replacement brings a free variable": (lambda: FunctionGraph([x], [x * 2]).replace(
        FunctionGraph([x], [x * 2]).outputs[0], y * 2), RewriteError, "brings in the free variable y"),
    "unknown scalar op": (lambda: scalar.get("expp"), KeyError, "no elementwise op 'expp'; known:"),
    # printing
    "negative max_nodes": (lambda: to_dot((x * 2 + 1) * 3, max_nodes=-1), ValueError,
                           "max_nodes must be None or >= 0, got -1"),
    "unknown render format": (lambda: __import__("symgraph.printing.render", fromlist=["render"]).render(
        to_dot(x * 2), "jpg"), ValueError, "unknown format 'jpg'"),
    "printing attribute": (lambda: sg.printing.nonsense, AttributeError,
                           "module 'symgraph.printing' has no attribute 'nonsense'"),
    "testing attribute": (lambda: sg.testing.nonsense, AttributeError,
                          "module 'symgraph.testing' has no attribute 'nonsense'"),
    # saving
    "register a non-op": (lambda: serialize.register_op(int), TypeError, "register_op expects an Op subclass"),
    "save an object array": (_save_object_prop, serialize.SerializationError,
                             "cannot save an array of dtype object"),
    "prop without a safe encoding": (lambda: _save_object_prop(object()), serialize.SerializationError,
                                     "has no safe encoding"),
    "save a non-tensor": (lambda: serialize.dumps(Variable(Type(), name="t")), serialize.SerializationError,
                          "cannot save a variable of type .*only tensors"),
    # ops, at build time
    "composite step arity": (lambda: Composite(["float64"], [("add", (("i", 0),))], [("s", 0)]), GraphTypeError,
                             "Composite: step add takes 2 arguments, got 1"),
    "composite input count": (lambda: Composite(["float64"], [("exp", (("i", 0),))], [("s", 0)])(x, y),
                              GraphTypeError, "takes 1 inputs, got 2"),
    "composite input dtype": (lambda: Composite(["float64"], [("exp", (("i", 0),))], [("s", 0)])(T.fvector()),
                              GraphTypeError, "Composite input 0 must have dtype float64, got float32"),
    "elemwise arity": (lambda: Elemwise(scalar.get("add"))(x), GraphTypeError, "add takes 2 inputs, got 1"),

    "python number too big": (lambda: T.bvector() + 10 ** 30, GraphTypeError,
                              "cannot turn int into a tensor: cannot make a constant of int 10+"),
    "bad dimshuffle pattern": (lambda: DimShuffle(1, (0, 0)), ValueError, r"bad dimshuffle pattern \(0, 0\) for a 1-d"),
    "dimshuffle input ndim": (lambda: DimShuffle(2, (1, 0))(x), GraphTypeError, "expects a 2-d input, got float64"),

    "tensordot count": (lambda: T.tensordot(x, m, axes=3), ShapeError, "tensordot: cannot contract 3 axes"),
    "tensordot axes type": (lambda: T.tensordot(x, m, axes="0"), GraphTypeError,
                            "tensordot: axes must be an int or a pair of axis lists, got '0'"),
    "tensordot repeated": (lambda: T.tensordot(m, m, axes=[[0, 0], [0, 1]]), ShapeError,
                           r"tensordot: repeated axis in \(0, 0\)"),
    "tensordot out of bounds": (lambda: T.tensordot(m, m, axes=[[5], [0]]), ShapeError,
                                r"tensordot: axis 5 is out of bounds for float64\[\?, \?\]"),
    "one_hot of a scalar": (lambda: T.nnet.one_hot(T.lscalar(), 3), GraphTypeError,
                            "OneHot: the class axis comes from a tensor with at least 1 dimension"),
    "reduced size axis": (lambda: ReducedSize((3,))(x), ShapeError, r"ReducedSize: axis \(3,\) is out of bounds"),
    "argreduce which": (lambda: ArgReduce("median", 0, False), ValueError, "ArgReduce: which must be 'max' or 'min'"),
    "argmax axis": (lambda: ArgReduce("max", 4, False)(x), ShapeError, "argmax: axis 4 is out of bounds"),
    "shape_i": (lambda: Shape_i(3)(x), GraphTypeError, "has no dimension 3"),
    "reshape float shape": (lambda: x.reshape(T.dvector()), GraphTypeError, "a shape vector must hold integers"),
    "alloc shape of unknown length": (lambda: T.zeros(T.lvector()), ShapeError,
                                      "has a length unknown at build time; give the shape as a tuple"),
    "stack nothing": (lambda: T.stack([]), ValueError, "stack needs at least one tensor"),
    "stack mixed ndim": (lambda: T.stack([x, m]), ShapeError, "stack: all tensors need the same ndim"),
    "reshape op float shape": (lambda: Reshape(1)(x, T.dvector()), GraphTypeError,
                               "the new shape must be an integer vector"),
    "reshape op entries": (lambda: Reshape(2)(x, T.as_tensor_variable(np.array([3], "int64"))), ShapeError,
                           "has 1 entries, expected 2"),
    "repeated axis": (lambda: T.squeeze(T.tensor("float64", (1, 1)), axis=(0, 0)), ShapeError, "repeated axis"),
    "concatenate nothing": (lambda: T.concatenate([]), ValueError, "concatenate needs at least one tensor"),
    "subtensor index count": (lambda: Subtensor([(True, False, False)])(x), GraphTypeError,
                              "takes 1 index inputs, got 0"),
    "subtensor with arrays": (lambda: Subtensor(["a"])(x, T.lvector()), GraphTypeError,
                              "holds array indices; use AdvancedSubtensor"),
    "make_vector of vectors": (lambda: MakeVector("int64")(T.lvector()), GraphTypeError, "takes 0-d tensors"),
    "too many indices": (lambda: x[1, 2], IndexError, r"too many indices for x \(float64\[\?\]\)"),
    # tensor types and conversion
    "unsupported dtype": (lambda: T.tensor("float8", (None,)), GraphTypeError, "unsupported dtype 'float8'"),
    "negative static length": (lambda: T.tensor("float64", (-1,)), GraphTypeError, "has a negative length"),
    "symbolic value as input": (lambda: sg.function([x], x * 2)(y), InputError,
                                "must be a number or array, not the symbolic variable y"),
    "strict filter": (lambda: x.type.filter(np.ones(2, "float32"), strict=True), InputError,
                      "value: expected an ndarray of dtype float64, got ndarray of dtype float32"),
    "ragged list": (lambda: sg.function([m], m * 2)([[1.0, 2.0], [3.0]]), InputError,
                    r"argument 0 \(m\) of f: cannot convert list to an array"),
    "strings as numbers": (lambda: sg.function([x], x * 2)(["a", "b"]), InputError,
                           "expected numbers of dtype float64"),
    "iterate a vector": (lambda: list(iter(x)), TypeError, r"cannot iterate over x \(float64\[\?\]\)"),
    "constant of an object": (lambda: T.constant(object()), GraphTypeError, "cannot make a constant of object"),
    "as tensor of a non-tensor": (lambda: T.as_tensor_variable(Variable(Type())), GraphTypeError,
                                  "expected a tensor variable"),
    "as tensor of junk": (lambda: T.as_tensor_variable({1: 2}), GraphTypeError, "cannot turn dict into a tensor"),
    "as tensor ndim": (lambda: T.as_tensor_variable(x, ndim=2), GraphTypeError, "expected a 2-d tensor, got x"),
    # the testing helpers
    "strategy static": (lambda: _draw(sgs.broadcastable_shapes(2, static="sometimes")), ValueError,
                        "static must be 'mixed', 'known' or 'unknown', got 'sometimes'"),
    "no op matches": (lambda: _draw(sgs.elemwise_ops(arity=5)), ValueError, "no elementwise op matches these filters"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_message(case):
    thunk, error, message = CASES[case]
    with pytest.raises(error, match=message):
        thunk()


# --- run-time checks of the ops, on every backend (shapes unknown until the call) ----------

def _runtime_cases() -> dict[str, tuple[Callable[[str], Any], type, str]]:
    a, b = T.dmatrix("a"), T.dmatrix("b")
    t3 = T.dtensor3("t3")
    mask, i, j = T.tensor("bool", (None,)), T.lvector("i"), T.lvector("j")

    def call(inputs: list, out: Any, *values: Any) -> Callable[[str], Any]:
        return lambda backend: sg.function(inputs, out, backend=backend)(*values)

    return {
        "product not aligned": (call([a, b], T.dot(a, b), np.ones((2, 3)), np.ones((4, 5))), ValueError,
                                r"not aligned"),  # numpy's ValueError, or a ShapeError (a ValueError) on OpenCL
        "tensordot mismatch": (call([t3, b], T.tensordot(t3, b, axes=[[2], [0]]), np.ones((2, 3, 4)),
                                    np.ones((5, 2))), ValueError, r"shape.mismatch for sum"),
        "boolean mask length": (call([x, mask], x[mask], np.ones(3), np.array([True, False])), IndexError,
                                r"boolean index did not match indexed array along axis 0"),
        "index arrays that do not broadcast": (call([a, i, j], a[i, j], np.ones((3, 3)), np.array([0, 1]),
                                                    np.array([0, 1, 2])), IndexError,
                                               r"shape mismatch: indexing arrays could not be broadcast"),
        "values for a scatter": (call([a, i, b], T.set_subtensor(a[i], b), np.ones((3, 3)), np.array([0, 1]),
                                      np.ones((2, 2))), ValueError,
                                 r"shape mismatch: value array of shape \(2, ?2\) could not be broadcast"),
    }


RUNTIME = _runtime_cases()


@pytest.mark.parametrize("case", sorted(RUNTIME))
def test_runtime_error_message(case, backend):
    thunk, error, message = RUNTIME[case]
    with pytest.raises(error, match=message):
        thunk(backend)


def test_a_rule_returning_the_wrong_number_of_replacements(monkeypatch):
    from symgraph.rewrite.core import RULES, Rule
    two = Rule("two_for_one", lambda fgraph, node: [node.inputs[0], node.inputs[0]], ("exp",))
    monkeypatch.setitem(RULES, "canonicalize", [two] + RULES["canonicalize"])
    with pytest.raises(RewriteError, match="'two_for_one' failed on node exp: RewriteError: returned 2 "
                                           "replacements for 1 outputs"):
        sg.function([x], T.exp(x))


def test_saving_over_a_folder_fails_cleanly(tmp_path):
    """The file is written to a temporary name first: when it cannot take the target's place, the
    error is the operating system's and no temporary file stays behind."""
    (tmp_path / "model").mkdir()
    with pytest.raises(OSError):
        sg.save(x * 2, tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_no_opencl_device(monkeypatch):
    pytest.importorskip("pyopencl")
    from symgraph.backends.opencl import runtime
    monkeypatch.setattr(runtime.devices, "_devices", lambda: [])
    with pytest.raises(BackendError, match="the opencl backend found no OpenCL device. Install an OpenCL driver"):
        runtime.choose_device("opencl")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_graphviz_failures_are_explained():
    import graphviz
    from symgraph.printing.render import GraphvizError, render
    broken = graphviz.Digraph()
    broken.body.append("\t{{{ not dot\n")
    with pytest.raises(GraphvizError, match=r"dot -Tsvg failed \(exit \d+\): .*syntax error"):
        render(broken, "svg")
    big = to_dot(T.sum([T.exp(x) * k for k in range(300)]), max_nodes=None)
    with pytest.raises(GraphvizError, match="dot took more than 1e-06 s to lay out the graph; pass a smaller max_nodes"):
        render(big, "svg", timeout=1e-6)
