"""sg.scan's API and behaviour: n_steps=0, while loops, map/reduce/foldl/foldr, shared variables,
the errors (each naming the user line), printing, save/load, and four implementations agreeing
on hypothesis-drawn bodies (numpy, OpenCL, no rewrites, the perform interpreter)."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import perform_eval
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import GraphTypeError, MissingInputError, ShapeError
from symgraph.scan import Scan


def _scans(f):
    return [n for n in f.graph.apply_nodes if isinstance(n.op, Scan)]


def test_zero_steps_give_the_initial_carry_and_empty_traces(backend):
    dt = "float32" if backend == "opencl" else "float64"
    x, h0 = T.tensor(dt, (None, 2), "x"), T.tensor(dt, (2,), "h0")
    h, _ = sg.scan(lambda xt, h: h + xt, sequences=[x], outputs_info=[h0])
    y, _ = sg.map(lambda xt: xt * 2, sequences=[x])
    last, _ = sg.reduce(lambda xt, h: h + xt, sequences=[x], outputs_info=[h0])
    f = sg.function([x, h0], [h, y, last], backend=backend)
    hv = np.array([1, 2], dt)
    got = f(np.zeros((0, 2), dt), hv)
    assert got[0].shape == (0, 2) and got[1].shape == (0, 2)
    np.testing.assert_array_equal(got[2], hv)
    got[2][0] = 7  # the initial value handed back is a copy
    assert hv[0] == 1
    with pytest.raises(IndexError, match="no step"):  # h[-1] of an empty trace still raises
        sg.function([x, h0], h[-1], backend=backend)(np.zeros((0, 2), dt), hv)


def test_zero_steps_give_stacked_rows_the_shape_the_body_would(backend):
    """An empty sequence of rows whose length the graph does not fix: the stacked outputs' rows
    have the shape the body computes from its inputs' shapes and integer values (as JAX's tracing
    gives), on every backend and in the perform interpreter; a length that depends on data stays 0."""
    dt = "float32" if backend == "opencl" else "float64"
    x, h0, k = T.tensor(dt, (None, None), "x"), T.tensor(dt, (None,), "h0"), T.lscalar("k")
    doubled, _ = sg.map(lambda r: r * 2, sequences=[x])
    (hs, outer), _ = sg.scan(lambda r, h: [h + r, T.outer(r, h)], sequences=[x], outputs_info=[h0, None])
    padded, _ = sg.map(lambda r, n: T.concatenate([r, T.zeros((n,), dt)]), sequences=[x], non_sequences=[k])
    data_sized, _ = sg.map(lambda r: r[:T.cast(r[0], "int64")], sequences=[x])
    outs = [doubled, hs, outer, padded, data_sized]
    f = sg.function([x, h0, k], outs, backend=backend)
    empty, h0v = np.zeros((0, 3), dt), np.ones(3, dt)
    want = [(0, 3), (0, 3), (0, 3, 3), (0, 5), (0, 0)]
    assert [a.shape for a in f(empty, h0v, 2)] == want
    assert [perform_eval([x, h0, k], o, [empty, h0v, np.int64(2)]).shape for o in outs] == want
    assert [a.shape[1:] for a in f(np.ones((2, 3), dt), h0v, 2)][:4] == [w[1:] for w in want[:4]]


def test_until_stops_early_and_traces_only_the_steps_run(backend):
    dt = "float32" if backend == "opencl" else "float64"
    limit = T.tensor(dt, (), "limit")
    v, _ = sg.scan(lambda v, lim: (v * 2, sg.until(v * 2 > lim)), outputs_info=[T.constant(np.ones((), dt))],
                   non_sequences=[limit], n_steps=10 ** 6)
    f = sg.function([limit], v, backend=backend)
    np.testing.assert_array_equal(f(np.asarray(100, dt)), [2, 4, 8, 16, 32, 64, 128])
    np.testing.assert_array_equal(f(np.asarray(0, dt)), [2])
    count, _ = sg.scan(lambda k: (k + 1, sg.until(k + 1 >= 40)), outputs_info=[T.constant(np.int64(0))])
    assert list(sg.function([], count, backend=backend)()) == list(range(1, 41))  # no bound but the condition


def test_map_reduce_foldl_foldr():
    x = T.dvector("x")
    sq, upd = sg.map(lambda v: v * v, sequences=[x])
    assert upd == {}
    total, _ = sg.reduce(lambda v, acc: acc + v, sequences=[x], outputs_info=[T.constant(0.0)])
    left, _ = sg.foldl(lambda v, acc: acc * 10 + v, sequences=[x], outputs_info=[T.constant(0.0)])
    right, _ = sg.foldr(lambda v, acc: acc * 10 + v, sequences=[x], outputs_info=[T.constant(0.0)])
    f = sg.function([x], [sq, total, left, right])
    got = f(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(got[0], [1, 4, 9])
    assert (got[1], got[2], got[3]) == (6.0, 123.0, 321.0)
    only = sg.scan(lambda v: v + 1, sequences=[x], return_updates=False)
    np.testing.assert_allclose(sg.function([x], only)(np.zeros(2)), [1, 1])


def test_python_number_initial_values_take_the_step_dtype():
    x = T.fvector("x")
    c, _ = sg.scan(lambda v, acc: acc + v, sequences=[x], outputs_info=[0])
    assert c.dtype == "float32"
    np.testing.assert_allclose(sg.function([x], c)(np.ones(3, "float32")), [1, 2, 3])


def test_shared_variables_are_read_and_a_failing_step_changes_none():
    w = sg.shared(np.array([1.0, 2.0]), "w")
    x = T.dmatrix("x")
    h, _ = sg.scan(lambda xt, h: h * w + xt, sequences=[x], outputs_info=[T.zeros((2,))])
    bad, _ = sg.scan(lambda xt, h: h + xt[T.cast(h[0], "int64")], sequences=[x], outputs_info=[T.zeros((2,))])
    f = sg.function([x], [h[-1], bad[-1]], updates=[(w, w * 3)])
    np.testing.assert_allclose(f(np.zeros((2, 2)))[0], [0, 0])
    np.testing.assert_allclose(w.get_value(), [3, 6])
    with pytest.raises(IndexError, match=r"(?s)test_scan\.py.*xt\[T\.cast"):  # the step at t=2 indexes past the row
        f(np.ones((3, 2)) * 2)
    np.testing.assert_allclose(w.get_value(), [3, 6])


def test_bad_taps_and_types_name_the_user_line():
    x, h0 = T.dmatrix("x"), T.fvector("h0")
    with pytest.raises(GraphTypeError, match=r"(?s)float64.*float32.*T\.cast.*test_scan\.py"):
        sg.scan(lambda xt, h: h + xt, sequences=[x], outputs_info=[h0])
    with pytest.raises(GraphTypeError, match=r"(?s)negative.*test_scan\.py"):
        sg.scan(lambda a: a, outputs_info=[{"initial": x, "taps": [1]}], n_steps=3)
    with pytest.raises(GraphTypeError, match="distinct"):
        sg.scan(lambda a, b: a, sequences=[{"input": x, "taps": [0, 0]}])
    with pytest.raises(GraphTypeError, match=r"needs 3 initial values, but"):
        sg.scan(lambda a, b: a + b, outputs_info=[{"initial": T.constant(np.zeros((2, 2))), "taps": [-3, -1]}],
                n_steps=2)
    with pytest.raises(GraphTypeError, match="returns 2 output.*1 entries"):
        sg.scan(lambda xt, h: [h, h], sequences=[x], outputs_info=[T.zeros((2,))])
    with pytest.raises(GraphTypeError, match="n_steps"):
        sg.scan(lambda h: h, outputs_info=[T.zeros(2)])
    with pytest.raises(GraphTypeError, match="keeps its shape"):
        sg.scan(lambda xt, h: T.outer(h, xt), sequences=[x], outputs_info=[T.zeros((2,))])
    with pytest.raises(MissingInputError, match="strict"):  # Theano's error
        sg.scan(lambda xt: xt + h0.sum(), sequences=[x], strict=True)


def test_a_carry_changing_shape_at_run_time_is_a_shape_error(backend):
    dt = "float32" if backend == "opencl" else "float64"
    x, h0 = T.tensor(dt, (None, None), "x"), T.tensor(dt, (None,), "h0")
    h, _ = sg.scan(lambda xt, h: xt * 2, sequences=[x], outputs_info=[h0])
    f = sg.function([x, h0], h, backend=backend)
    with pytest.raises(ShapeError, match=r"(?s)step 0 returned carry 0 of shape \(2,\).*test_scan\.py"):
        f(np.ones((2, 2), dt), np.zeros(3, dt))


def test_too_short_a_sequence_names_the_user_line_once(backend):
    x, n = T.dmatrix("x"), T.lscalar("n")
    out, _ = sg.scan(lambda xt, c: c + xt, sequences=[x], outputs_info=[T.zeros((3,))], n_steps=n)
    f = sg.function([x, n], out, backend=backend)
    with pytest.raises(ValueError, match="sequence 0 has 4 rows, fewer than the 9 steps") as info:
        f(np.ones((4, 3)), 9)
    message = str(info.value)
    assert message.count("Built at") == 1 and message.count("test_scan.py") == 1, message


def test_the_carry_that_changed_shape_is_named_among_several(backend):
    """Several carries are checked in one comparison; the error still names the one that changed."""
    dt = "float32" if backend == "opencl" else "float64"
    x, a0, b0 = T.tensor(dt, (None, None), "x"), T.tensor(dt, (None,), "a0"), T.tensor(dt, (None,), "b0")
    (a, b), _ = sg.scan(lambda xt, a, b: [a + 1, xt * b[0]], sequences=[x], outputs_info=[a0, b0])
    f = sg.function([x, a0, b0], [a[-1], b[-1]], backend=backend)
    np.testing.assert_array_equal(f(np.ones((2, 3), dt), np.zeros(4, dt), np.ones(3, dt))[0], np.full(4, 2.0, dt))
    with pytest.raises(ShapeError, match=r"step 0 returned carry 1 of shape \(2,\), but the carry has shape \(3,\)"):
        f(np.ones((2, 2), dt), np.zeros(4, dt), np.ones(3, dt))


def test_printing_saving_and_the_generated_loop(tmp_path):
    x = T.dvector("x")
    h, _ = sg.scan(lambda v, acc: acc + T.exp(v), sequences=[x], outputs_info=[T.constant(0.0)], name="cumexp")
    f = sg.function([x], h)
    text = sg.printing.debugprint(f, file="str")
    assert "Inner graphs:" in text and " body:" in text and "exp" in text.split("Inner graphs:")[1]
    assert "for _t" in f.source and "_check_steps" in f.source
    assert "cluster" in sg.printing.to_dot(f).source
    assert sg.printing.pprint(h).startswith("scan(")
    sg.save(f, tmp_path / "f.sg")
    g = sg.load(tmp_path / "f.sg")
    np.testing.assert_allclose(g(np.arange(3.0)), f(np.arange(3.0)))
    sg.save(h, tmp_path / "h.sg")
    assert isinstance(sg.load(tmp_path / "h.sg").owner.op, Scan)


def test_equal_loops_merge():
    x = T.dvector("x")
    a, _ = sg.scan(lambda v, acc: acc + v, sequences=[x], outputs_info=[T.constant(0.0)])
    b, _ = sg.scan(lambda v, acc: acc + v, sequences=[x], outputs_info=[T.constant(0.0)])
    f = sg.function([x], a + b)
    assert len(_scans(f)) == 1


# --- four implementations on drawn bodies -----------------------------------------------------------

_STEPS = [lambda h, x: T.tanh(h + x), lambda h, x: h * 0.5 + x, lambda h, x: T.maximum(h, x) - 0.25,
          lambda h, x: h + x.sum() * 0.1, lambda h, x: T.sin(h) * x, lambda h, x: h[::-1] + x]


@given(st.lists(st.integers(0, len(_STEPS) - 1), min_size=1, max_size=3), st.integers(0, 4), st.booleans(),
       st.lists(st.floats(-2, 2), min_size=3, max_size=3))
def test_four_implementations_agree(ops, n, backwards, init):
    """numpy, OpenCL, no rewrites, and the perform interpreter, on drawn loop bodies and lengths."""
    from conftest import BACKENDS

    def build(dtype):
        x, h0 = T.tensor(dtype, (None, 3), "x"), T.tensor(dtype, (3,), "h0")

        def step(xt, h):
            for k in ops:
                h = _STEPS[k](h, xt)
            return h
        h, _ = sg.scan(step, sequences=[x], outputs_info=[h0], go_backwards=backwards)
        return [x, h0], h
    rng = np.random.default_rng(n)
    xv, hv = rng.uniform(-1, 1, size=(n, 3)), np.array(init)
    ins, out = build("float64")
    expected = perform_eval(ins, out, [xv, hv])
    np.testing.assert_allclose(sg.function(ins, out, mode=None)(xv, hv), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sg.function(ins, out)(xv, hv), expected, rtol=1e-12, atol=1e-14)
    if "opencl" in BACKENDS:
        ins32, out32 = build("float32")
        got = sg.function(ins32, out32, backend="opencl")(xv.astype("float32"), hv.astype("float32"))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_typed_list_can_be_a_loop_constant(backend):
    """Theano's typed_list page: a scan over indices reading a typed list given in non_sequences."""
    from symgraph.compat.theano import typed_list
    a = typed_list.TypedListType(T.fvector)()
    s, _ = sg.scan(lambda i, tl: tl[i].sum(), non_sequences=[a],
                   sequences=[T.arange(typed_list.length(a), dtype="int64")])
    if backend == "opencl":  # the list's items are read on the host (a visible host fallback)
        with pytest.warns(RuntimeWarning, match="GetItem.*runs on the host"):
            f = sg.function([a], s, backend=backend)
    else:
        f = sg.function([a], s, backend=backend)
    np.testing.assert_allclose(f([[1, 2, 3], [4, 5]]), [6, 9])
    with pytest.raises(GraphTypeError, match="constant 0 is"):
        Scan(s.owner.op.body, n_seqs=1, n_carries=0)(2, T.arange(2), T.fvector())
