"""debugprint and pprint: golden outputs, and a property test that pprint's parentheses are right
(the printed text, evaluated by Python on numpy arrays, gives the graph's value)."""
from __future__ import annotations

import ast

import io

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import given, strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.printing import debugprint, pprint


@pytest.fixture
def xy():
    return T.dmatrix("x"), T.dmatrix("y")


def test_debugprint_z_equals_x_plus_y(xy):
    x, y = xy
    z = x + y
    z.name = "z"
    assert debugprint(z, file="str") == ("add [id A] 'z' <float64[?, ?]>\n"
                             " |x [id B] <float64[?, ?]>\n"
                             " |y [id C] <float64[?, ?]>\n")


def test_debugprint_shared_subexpression_printed_once(xy):
    x, y = xy
    s = x + y
    out = s * s - T.exp(s)
    assert debugprint(out, file="str") == ("sub [id A] <float64[?, ?]>\n"
                               " |mul [id B] <float64[?, ?]>\n"
                               " | |add [id C] <float64[?, ?]>\n"
                               " | | |x [id D] <float64[?, ?]>\n"
                               " | | |y [id E] <float64[?, ?]>\n"
                               " | |add [id C]\n"
                               " |exp [id F] <float64[?, ?]>\n"
                               " | |add [id C]\n")


def test_debugprint_options_and_marks(xy):
    x, _ = xy
    w = sg.shared(np.ones(3), name="w")
    out = (x * w + 2.0).sum(axis=0)
    assert debugprint(out, file="str", ids=False, print_type=False) == ("sum{axis=(0,)}\n"
                                                            " |add\n"
                                                            " | |mul\n"
                                                            " | | |x\n"
                                                            " | | |w (shared)\n"
                                                            " | |2.0 (constant)\n")
    s = x + x
    assert debugprint([s, s * 2.0], file="str", ids=False, print_type=False).endswith("mul\n |add ...\n |2.0 (constant)\n")


def test_debugprint_to_file_and_several_outputs(xy):
    x, y = xy
    buf = io.StringIO()
    assert debugprint([x + y, x - y], file=buf, print_type=False) is buf
    assert buf.getvalue() == "add [id A]\n |x [id B]\n |y [id C]\nsub [id D]\n |x [id B]\n |y [id C]\n"
    assert debugprint((x + y).owner, file="str", print_type=False) == "add [id A]\n |x [id B]\n |y [id C]\n"
    with pytest.raises(ValueError, match="a stream, None or 'str', got 'out.txt'"):
        debugprint(x + y, file="out.txt")  # a path is not a stream: said so, nothing written


def test_debugprint_prints_to_stdout_by_default(xy, capsys):
    """As in Theano and PyTensor: no ``file`` prints and returns None (an interactive prompt then
    shows only the tree); ``file="str"`` returns the text."""
    x, y = xy
    assert debugprint(x + y, print_type=False) is None
    assert capsys.readouterr().out == debugprint(x + y, file="str", print_type=False)


def test_debugprint_depth_limits_the_levels(xy):
    x, y = xy
    text = debugprint((x + y) * x, file="str", print_type=False, depth=2)
    assert text == "mul [id A]\n |add [id B]\n |x [id C]\n"


def test_debugprint_compiled_function_with_updates(xy):
    x, _ = xy
    w = sg.shared(np.ones((2, 2)), name="W")
    f = sg.function([x], (x * w).T, updates=[(w, w - 0.5 * x)], name="step", mode=None)
    text = debugprint(f, file="str", print_type=False)
    assert text == ("Function step(x) [numpy]\n"
                    "Outputs:\n"
                    "DimShuffle{1,0} [id A]\n"
                    " |mul [id B]\n"
                    " | |x [id C]\n"
                    " | |W [id D] (shared)\n"
                    "Updates:\n"
                    "W [id D] <- sub [id E]\n"
                    " |W [id D] (shared)\n"
                    " |mul [id F]\n"
                    " | |0.5 [id G] (constant)\n"
                    " | |x [id C]\n")
    assert pprint(f) == "(x * W).T\nW <- (W - 0.5 * x)"


def test_debugprint_deep_graph_does_not_recurse():
    x = T.dvector("x")
    v = x
    for _ in range(3000):
        v = T.tanh(v)
    lines = debugprint(v, file="str", print_type=False).splitlines()
    assert len(lines) == 3001 and lines[-1] == " |" * 3000 + "x [id " + lines[-1].split("[id ")[1]
    assert pprint(v).startswith("tanh(tanh(") and pprint(v).endswith("(x" + ")" * 3000)


def test_debugprint_rejects_other_objects():
    with pytest.raises(TypeError, match="expected a symbolic variable"):
        debugprint(3.0)


# --- pprint ----------------------------------------------------------------------------------

def test_pprint_issue_examples(xy):
    x, y = xy
    W, b = T.dmatrix("W"), T.dvector("b")
    assert pprint(x + y) == "(x + y)"
    assert pprint(T.sigmoid(T.dot(x, W) + b)) == "sigmoid(dot(x, W) + b)"


@pytest.mark.parametrize("build, text", [
    (lambda x, y, z: (x + y) * z, "((x + y) * z)"),
    (lambda x, y, z: x + y * z, "(x + y * z)"),
    (lambda x, y, z: x - (y - z), "(x - (y - z))"),
    (lambda x, y, z: (x - y) - z, "(x - y - z)"),
    (lambda x, y, z: x / (y * z), "(x / (y * z))"),
    (lambda x, y, z: x ** y ** z, "(x ** y ** z)"),
    (lambda x, y, z: (x ** y) ** z, "((x ** y) ** z)"),
    (lambda x, y, z: -x, "-x"),
    (lambda x, y, z: -(x ** 2), "-(x ** 2.0)"),
    (lambda x, y, z: (-x) ** 2, "((-x) ** 2.0)"),
    (lambda x, y, z: T.exp(-(x + y)), "exp(-(x + y))"),
    (lambda x, y, z: (x < y) & (y < z), "((x < y) & (y < z))"),
    (lambda x, y, z: T.maximum(x, y + 1), "maximum(x, y + 1.0)"),
    (lambda x, y, z: (x + y).T, "(x + y).T"),
    (lambda x, y, z: x.T * 2, "(x.T * 2.0)"),
    (lambda x, y, z: x.dimshuffle(0, "x", 1), "x.dimshuffle(0, 'x', 1)"),
    (lambda x, y, z: x + T.dvector("v"), "(x + v)"),  # broadcasting DimShuffle is invisible
    (lambda x, y, z: T.cast(x, "float32"), "cast(x, 'float32')"),
    (lambda x, y, z: x.sum(axis=0), "sum(x, axis=0)"),
    (lambda x, y, z: x.max(axis=1, keepdims=True), "max(x, axis=1, keepdims=True)"),
    (lambda x, y, z: T.switch(x > 0, x, 0), "switch(x > 0.0, x, 0.0)"),
    (lambda x, y, z: x.shape, "x.shape"),
])
def test_pprint_parentheses_and_notation(build, text):
    x, y, z = T.dmatrix("x"), T.dmatrix("y"), T.dmatrix("z")
    assert pprint(build(x, y, z)) == text


def test_pprint_constants_and_unnamed(xy):
    x, _ = xy
    assert pprint(x * T.constant(np.array([1.0, -2.0]))) == "(x * [1.0, -2.0])"
    assert pprint(x + T.constant(np.zeros(10))) == "(x + array(shape=(10,)))"
    assert pprint(T.dmatrix() * 2) == "(<float64[?, ?]> * 2.0)"


# --- property: the printed math evaluates to the graph's value --------------------------------

_BIN = [("+", np.add, lambda a, b: a + b), ("-", np.subtract, lambda a, b: a - b),
        ("*", np.multiply, lambda a, b: a * b), ("/", np.divide, lambda a, b: a / b),
        ("**", np.power, lambda a, b: a ** b), ("<", np.less, lambda a, b: a < b)]
_UN = [("neg", np.negative, lambda a: -a), ("exp", np.exp, T.exp), ("tanh", np.tanh, T.tanh),
       ("sigmoid", sps.expit, T.sigmoid), ("T", np.transpose, lambda a: a.T)]


@st.composite
def expressions(draw, depth=4):
    """(symbolic expression, numpy value) built side by side from x, y and small constants."""
    kind = draw(st.sampled_from(["leaf"] * 2 + ["bin"] * 3 + ["un"] * 2)) if depth else "leaf"
    if kind == "leaf":
        choice = draw(st.sampled_from(["x", "y", "c"]))
        if choice == "c":
            c = draw(st.sampled_from([0.5, 2.0, -1.5, 3.0]))
            return ("const", c)
        return ("var", choice)
    if kind == "un":
        name = draw(st.sampled_from([u[0] for u in _UN]))
        return ("un", name, draw(expressions(depth=depth - 1)))
    name = draw(st.sampled_from([b[0] for b in _BIN]))
    return ("bin", name, draw(expressions(depth=depth - 1)), draw(expressions(depth=depth - 1)))


def _build(tree, sym, val):
    tag = tree[0]
    if tag == "var":
        return sym[tree[1]], val[tree[1]]
    if tag == "const":
        return T.constant(tree[1]), np.float64(tree[1])
    if tag == "un":
        _, np_fn, sg_fn = next(u for u in _UN if u[0] == tree[1])
        s, v = _build(tree[2], sym, val)
        if s.dtype == "bool":
            s, v = T.cast(s, "float64"), np.asarray(v, dtype="float64")
        return sg_fn(s), np_fn(v)
    _, np_fn, sg_fn = next(b for b in _BIN if b[0] == tree[1])
    (s1, v1), (s2, v2) = _build(tree[2], sym, val), _build(tree[3], sym, val)
    if s1.dtype == "bool" or s2.dtype == "bool":  # keep to float arithmetic
        s1, v1 = T.cast(s1, "float64"), np.asarray(v1, dtype="float64")
        s2, v2 = T.cast(s2, "float64"), np.asarray(v2, dtype="float64")
    return sg_fn(s1, s2), np_fn(v1, v2)


def _numpy_literals(text: str):
    """The printed expression with its numbers as numpy float64, so it evaluates with numpy's
    semantics (Python's own (-1.5) ** 0.5 is complex; numpy's is NaN, as in the graph)."""
    class Literals(ast.NodeTransformer):
        def visit_Constant(self, node):
            if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                return ast.Call(ast.Attribute(ast.Name("np", ast.Load()), "float64", ast.Load()), [node], [])
            return node
    tree = ast.fix_missing_locations(Literals().visit(ast.parse(text, mode="eval")))
    return compile(tree, "<pprint>", "eval")


@given(expressions(), st.integers(0, 2 ** 31 - 1))
def test_pprint_text_evaluates_to_the_graph_value(tree, seed):
    rng = np.random.default_rng(seed)
    val = {"x": rng.uniform(0.1, 2.0, (3, 3)), "y": rng.uniform(-2.0, 2.0, (3, 3))}
    sym = {"x": T.dmatrix("x"), "y": T.dmatrix("y")}
    with np.errstate(all="ignore"):
        expr, expected = _build(tree, sym, val)
        text = pprint(expr)
        namespace = {"exp": np.exp, "tanh": np.tanh, "sigmoid": sps.expit, "np": np,
                     "cast": lambda a, dt: np.asarray(a).astype(dt), **val}
        got = eval(_numpy_literals(text), namespace)  # noqa: S307 - the text is our own printer's output
    np.testing.assert_allclose(np.asarray(got, dtype="float64"), np.asarray(expected, dtype="float64"),
                               rtol=1e-12, equal_nan=True, err_msg=text)


def test_pprint_of_exponentially_shared_graph_is_bounded():
    x = T.dvector("x")
    v = x
    for _ in range(60):
        v = v * v + x
    text = pprint(v)
    assert "…" in text and len(text) < 500_000
    assert len(debugprint(v, file="str", print_type=False).splitlines()) == 1 + 2 * 120  # a line per edge, linear
