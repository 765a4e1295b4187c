"""Function inputs and outputs as Theano has them (issue 20 item 4): sg.In (defaults, states,
keywords, mutable, borrow, strict), sg.Out(borrow=True), f[x] and f.value/f.container, f.maker,
f.copy, f.trust_input, keyword checking of sg.function, and every bad input with a clear error.
Each behaviour runs on every backend (the backend fixture)."""
from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import InputError

HERE = os.path.basename(__file__)


def _fn(*args, backend, **kw):
    return sg.function(*args, backend=backend, **kw)


# ---------------------------------------------------------------- defaults and keywords
def test_defaults_and_keywords_as_in_theanos_tutorial(backend):
    x, y, w = T.dscalars("x", "y", "w")
    f = _fn([x, sg.In(y, value=1), sg.In(w, value=2, name="w_by_name")], (x + y) * w, backend=backend)
    assert f(33) == 68.0 and f(33, 2) == 70.0 and f(33, 0, 1) == 33.0
    assert f(33, w_by_name=1) == 34.0 and f(33, w_by_name=1, y=0) == 33.0
    assert f(x=33) == 68.0
    with pytest.raises(InputError, match=r"missing input\(s\) \['x'\]"):
        f(y=2)
    with pytest.raises(InputError, match=r"keyword argument 'w'.*named inputs are \['x', 'y', 'w_by_name'\]"):
        f(1, w=3)
    with pytest.raises(InputError, match="got input 'y' twice"):
        f(1, 2, y=3)
    with pytest.raises(InputError, match=r"takes 3 argument\(s\) \(x, y=.*w_by_name=.*got 4"):
        f(1, 2, 3, 4)
    assert "if y is _not_given: y = _c_y.value" in f.source  # the protocol fills defaults, readably


def test_input_shortcuts_of_theanos_io_page(backend):
    """Unnamed inputs go by position only; Theano's ((w, update), value) tuple is a state."""
    x, y, z, w = T.scalar(), T.scalar("y"), T.scalar("z"), T.scalar("w")
    fn = _fn([x, y, sg.In(z, value=42), ((w, w + x), 0)], x + y + z, backend=backend)
    with pytest.raises(TypeError, match=r"missing input\(s\) \['y'\]"):
        fn(1)
    assert fn(1, 2) == 45 and fn[w] == 1
    assert fn(1, y=2) == 45 and fn[w] == 2
    with pytest.raises(TypeError, match=r"'x'.*1 unnamed input\(s\) can only be given by position"):
        fn(x=1, y=2)
    assert fn(1, 2, 3) == 6 and fn(1, z=3, y=2) == 6 and fn[w] == 4
    assert fn(1, 2, w=400) == 45 and fn[w] == 401 and fn["w"] == 401


def test_a_required_input_after_a_default_and_names_that_are_not_python_names(backend):
    a, b = T.dscalar("a"), T.dscalar("b.2")  # not a Python identifier: still a keyword
    f = _fn([sg.In(a, value=5.0), b], a - b, backend=backend)
    assert f(1.0, 2.0) == -1.0 and f(**{"b.2": 1.0}) == 4.0 and f(2.0, **{"b.2": 1.0}) == 1.0
    with pytest.raises(InputError, match=r"missing input 'b.2'|missing input\(s\) \['b.2'\]"):
        f(1.0)
    dup1, dup2 = T.dscalar("v"), T.dscalar("v")
    g = _fn([dup1, dup2], dup1 - dup2, backend=backend)
    assert g(3.0, 1.0) == 2.0
    with pytest.raises(InputError, match="2 inputs are named 'v': give them by position"):
        g(v=1.0)


# ---------------------------------------------------------------- states: In(update=...) and f[x]
def test_states_and_stored_values_of_theanos_io_page(backend):
    u, x, s = T.dscalars("u", "x", "s")
    inc = _fn([u, sg.In(x, value=3), sg.In(s, update=(s + x * u), value=10.0)], [], backend=backend)
    assert inc(5) == [] and inc[s] == 25.0
    inc(3, 4)
    assert inc[s] == 37.0 and inc[x] == 3.0  # the override of x was only for that call
    inc(3, 4, 7)
    assert inc[s] == 19.0
    inc[s] = 10
    assert inc["s"] is inc.value[s] is inc.container[s].value and inc[2] == 10.0
    assert isinstance(inc[s], np.ndarray) and inc[s].dtype == np.float64
    inc[x] = 1.0  # a new default
    inc(1)
    assert inc[s] == 11.0


def test_old_tuple_form_and_the_function_values(backend):
    a, b, c = T.scalars("xys")
    fn = _fn([a, b, ((c, c + a + b), 10.0)], [], backend=backend)
    assert fn["s"] is fn.value[c] is fn.container[c].value and fn["s"] == 10.0
    fn(1, 2)
    assert fn["s"] == 13.0
    fn["s"] = 99.0
    fn(1, 0)
    assert fn["s"] == 100.0


def test_a_state_update_is_atomic_with_shared_updates_and_locked(backend):
    x, s = T.dvector("x"), T.dvector("s")
    w = sg.shared(np.zeros(3), "w")
    f = _fn([x, sg.In(s, value=np.zeros(3), update=s + x)], s.sum(), updates=[(w, w + x)], backend=backend)
    f(np.ones(3))
    with pytest.raises(ValueError):
        f(np.ones(4))  # fails mid-call: neither the state nor w changes
    np.testing.assert_array_equal(f[s], np.ones(3))
    np.testing.assert_array_equal(w.get_value(), np.ones(3))
    out = f(np.ones(3))
    assert out == 3.0 and f[s].sum() == 6.0  # the output reads the state before the update
    f[s][0] = 100.0  # the stored value itself: Theano's meaning
    assert f(np.zeros(3)) == 104.0
    assert f[w] is w.get_value(borrow=True) or backend != "numpy"  # shared variables too


def test_shared_variables_by_name_and_stored_value_errors(backend):
    x = T.dscalar("x")
    w = sg.shared(np.float64(2.0), "w")
    f = _fn([x], x * w, backend=backend)
    f["w"] = 3.0
    assert w.get_value() == 3.0 and f(2.0) == 6.0 and f.container[w] is w.container
    with pytest.raises(InputError, match="input x has no stored value.*sg.In"):
        f[x]
    with pytest.raises(KeyError, match="no input or shared variable named 'nope'.*'x', 'w'"):
        f["nope"]
    with pytest.raises(KeyError, match="neither an input"):
        f[T.dscalar("other")]
    with pytest.raises(IndexError, match="there is no input 3"):
        f[3]
    g = _fn([sg.In(x, value=1.0)], x * 2, backend=backend)
    with pytest.raises(InputError, match=r"f\[x\] = 'abc'.*refuses"):
        g[x] = "abc"


# ---------------------------------------------------------------- borrowing and mutable arguments
@pytest.mark.parametrize("in_borrow,out_borrow", [(False, False), (True, False), (False, True), (True, True)])
def test_an_output_shares_an_argument_only_when_both_borrow(backend, in_borrow, out_borrow):
    x = T.dmatrix("x")
    f = _fn([sg.In(x, borrow=in_borrow)], [sg.Out(x, borrow=out_borrow), sg.Out(x.T, borrow=out_borrow)],
            backend=backend)
    a = np.ones((2, 3))
    out, out_t = f(a)
    shares = backend == "numpy" and in_borrow and out_borrow  # a device backend returns read-back copies
    assert np.shares_memory(a, out) == shares and np.shares_memory(a, out_t) == shares
    np.testing.assert_array_equal(out_t, a.T)


def test_borrowed_outputs_of_shared_values_constants_and_each_other(backend):
    w = sg.shared(np.arange(4.0), "w")
    x = T.dvector("x")
    y = x * 2
    f = _fn([x], [sg.Out(w, borrow=True), w, sg.Out(y, borrow=True), sg.Out(y[::-1], borrow=True), y[1:],
                  sg.Out(T.constant(np.ones(2)), borrow=True)], backend=backend)
    ws, wc, y0, y1, y2, k = f(np.arange(4.0))
    host = backend == "numpy"
    assert np.shares_memory(ws, w.get_value(borrow=True)) == host  # the shared variable's own storage
    assert not np.shares_memory(wc, w.get_value(borrow=True))  # not borrowed: a copy
    assert np.shares_memory(y0, y1) or not host  # borrowed outputs may share (on the host they do)
    assert not np.shares_memory(y0, y2) and not np.shares_memory(y1, y2)  # never with one that does not borrow
    np.testing.assert_array_equal(y1, [6, 4, 2, 0])
    k[0] = 5.0  # a borrowed constant: the caller promised not to write; the default copies it
    g = _fn([x], [x + 1, T.constant(np.ones(2))], backend=backend)
    _, c = g(np.ones(1))
    c[0] = 7.0
    assert g(np.ones(1))[1][0] == 1.0


def test_a_mutable_argument_may_be_written_into_and_results_stay_correct(backend):
    x = T.dvector("x")
    f = _fn([sg.In(x, mutable=True)], T.log(T.exp(x)), backend=backend, mode=sg.Mode().excluding("fusion"))
    a = np.array([0.0, 1.0, 2.0])
    z = f(a)
    np.testing.assert_allclose(z, [0.0, 1.0, 2.0])
    assert not np.shares_memory(z, a)  # a result in the caller's memory is never returned
    if backend == "numpy":  # exp ran in place in the argument (the permission is used)
        assert "np.exp(x, out=x)" in f.source
        np.testing.assert_allclose(a, np.exp([0.0, 1.0, 2.0]))
    g = _fn([x], [T.log(T.exp(x))], backend=backend, mode=sg.Mode().excluding("fusion"))
    b = np.array([1.0, 2.0])
    g(b)
    np.testing.assert_array_equal(b, [1.0, 2.0])  # not mutable: never written
    h = _fn([sg.In(x, mutable=True, value=np.array([1.0]))], T.exp(x) * 2, backend=backend,
            mode=sg.Mode().excluding("fusion"))
    h(), h()
    np.testing.assert_array_equal(h[x], [1.0])  # a mutable input's default is not the argument written into


def test_no_inplace_write_into_an_array_a_live_view_still_reads(backend):
    """The in-place rule follows views: log(a) must not overwrite a while a.T is read later."""
    w = T.dmatrix("w")
    a = T.exp(w)
    f = _fn([w], a.T + T.log(a).sum(), backend=backend, mode=sg.Mode().excluding("fusion"))
    x = np.arange(4.0).reshape(2, 2)
    np.testing.assert_allclose(f(x), np.exp(x).T + x.sum())


def test_strict_and_per_input_downcast(backend):
    x, y = T.fvector("x"), T.fvector("y")
    f = _fn([sg.In(x, strict=True), sg.In(y, allow_downcast=True)], x + y, backend=backend)
    assert f(np.ones(2, np.float32), np.ones(2)).dtype == np.float32
    with pytest.raises(InputError, match="argument 0 .x. of f: expected an ndarray of dtype float32"):
        f([1.0, 2.0], np.ones(2))


# ---------------------------------------------------------------- f.maker, f.copy, trust_input
def test_maker_is_the_optimized_graph(backend):
    x = T.dscalar("x")
    f = _fn([x], T.grad(x ** 2, x), backend=backend)
    assert f.maker.fgraph is f.graph and f.maker.mode == f.mode
    assert [i.variable for i in f.maker.inputs] == [x] and isinstance(f.maker.outputs[0], sg.Out)
    assert sg.printing.pp(f.maker.fgraph.outputs[0]) in ("(2.0 * x)", "(x * 2.0)", "(x + x)")


def test_copy_with_swap_delete_updates_and_own_states(backend):
    state, inc = sg.shared(0), T.iscalar("inc")
    acc = _fn([inc], state, updates=[(state, state + inc)], backend=backend)
    acc(10)
    new_state = sg.shared(0)
    new_acc = acc.copy(swap={state: new_state}, name="new_acc")
    assert new_acc(100) == 0 and new_state.get_value() == 100 and state.get_value() == 10
    assert new_acc.name == "new_acc" and new_acc.graph is not acc.graph
    null_acc = acc.copy(delete_updates=True)
    assert null_acc(9000) == 10 and state.get_value() == 10
    s = T.iscalar("s")
    counter = _fn([inc, sg.In(s, value=0, update=s + inc)], s, backend=backend)
    counter(5)
    own, shared_memory = counter.copy(), counter.copy(share_memory=True)
    own(1), shared_memory(2)
    assert counter[s] == 7 and shared_memory[s] == 7 and own[s] == 6


def test_copy_refuses_bad_swaps(backend):
    state, other = sg.shared(0), sg.shared(0.0)
    x = T.iscalar("x")
    f = _fn([x], x + state, backend=backend)
    with pytest.raises(InputError, match="has type float64.*but .* has int64|has type .*float64"):
        f.copy(swap={state: other})
    with pytest.raises(InputError, match="not a shared variable that f uses"):
        f.copy(swap={other: sg.shared(1.0)})
    with pytest.raises(InputError, match="only be swapped for a shared variable"):
        f.copy(swap={state: 3})


def test_trust_input_skips_the_argument_checks(backend):
    x = T.dvector("x")
    f = _fn([sg.In(x, value=np.zeros(2))], x + 1, backend=backend)
    checked = f.source
    assert f.trust_input is False and "_filter_x" in checked
    f.trust_input = True
    assert "_filter_x" not in f.source and "trust_input: argument not checked" in f.source
    assert f.source.count("\n") == checked.count("\n")  # same lines: errors still name their node
    np.testing.assert_array_equal(f(np.ones(2)), [2.0, 2.0])
    np.testing.assert_array_equal(f(), [1.0, 1.0])  # defaults and keywords still work
    f.trust_input = False
    with pytest.raises(InputError, match="expected 1 dimensions"):
        f(np.ones((2, 2)))
    g = _fn([x], x * 2, backend=backend, trust_input=True)
    assert g.trust_input and g.copy().trust_input
    np.testing.assert_array_equal(g(np.ones(3)), [2.0, 2.0, 2.0])


# ---------------------------------------------------------------- sg.function's keywords
def test_a_misspelled_keyword_is_named_with_what_is_accepted(backend):
    x = T.dscalar("x")
    with pytest.raises(InputError, match=r"unexpected keyword argument 'updtaes' \(did you mean 'updates'\?\); "
                                         r"it takes outputs, updates, .*trust_input"):
        sg.function([x], x, updtaes=[], backend=backend)
    with pytest.raises(InputError, match="Theano's accept_inplace=.*remove it"):
        sg.function([x], x, accept_inplace=True, backend=backend)
    if backend == "opencl":
        assert sg.function([x], x + 1, backend=backend, device=None)(1.0) == 2.0  # the backend's own option
    else:
        with pytest.raises(InputError, match="'device'.*backend='numpy' takes no options of its own"):
            sg.function([x], x, device=0, backend=backend)


# ---------------------------------------------------------------- bad input names what and where
def _at_this_line(match: str) -> str:
    return "(?s)" + match + ".*" + re.escape(HERE)


def test_a_default_of_the_wrong_type_or_shape_names_the_line_that_gave_it():
    x, r = T.dscalar("x"), T.drow("r")
    with pytest.raises(InputError, match=_at_this_line(r"In\(x, value='abc'\): the default does not fit .*float64")):
        sg.In(x, value="abc")
    with pytest.raises(InputError, match=_at_this_line(r"In\(r, value=.*dimension 0 must have length 1")):
        sg.In(r, value=np.ones((2, 2)))
    with pytest.raises(InputError, match=_at_this_line(r"In\(x, value=.*symbolic variable")):
        sg.In(x, value=T.dscalar())
    i = T.iscalar("i")
    with pytest.raises(InputError, match=_at_this_line(r"In\(i, value=2.5\).*int32")):
        sg.In(i, value=2.5)


def test_bad_updates_and_specs_of_inputs_and_outputs():
    x, v = T.dscalar("x"), T.dvector("v")
    with pytest.raises(InputError, match=_at_this_line(r"In\(x, update=\.\.\.\) needs value=")):
        sg.In(x, update=x + 1)
    with pytest.raises(InputError, match=_at_this_line(r"the update is float64\[\?\] but the input is float64")):
        sg.In(x, value=1.0, update=v)
    with pytest.raises(InputError, match=r"cast it: T.cast\(update, 'float32'\)"):
        sg.In(T.fscalar("f"), value=1.0, update=T.dscalar() + 1)
    with pytest.raises(InputError, match="input 1: .* is not an input; write a variable, sg.In"):
        sg.function([x, (1, 2, 3)], x)
    with pytest.raises(InputError, match="input 0 .* is a shared variable"):
        sg.function([sg.In(sg.shared(1.0))], x)
    with pytest.raises(InputError, match="got input x twice"):
        sg.function([x, sg.In(x)], x)
    with pytest.raises(InputError, match="Out: the output must be a symbolic variable"):
        sg.Out(3)


def test_a_type_that_rejects_an_argument_or_a_test_value_names_it_and_the_line(backend):
    from tests.test_theano_types import double, mul
    x = double("x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # OpenCL runs the user's op on the host
        f = _fn([x], mul(x, x), backend=backend)
    with pytest.raises(InputError, match=r"argument 0 \(x\) of f: the type double refuses 'a'"):
        f("a")
    m = T.dmatrix("m")
    with pytest.raises(InputError, match=_at_this_line("test value of m: expected 2 dimensions.*Set at")):
        m.tag.test_value = np.ones(3)
    with pytest.raises(InputError, match=_at_this_line("test value of m: expected numbers")):
        m.tag.test_value = "text"


# ---------------------------------------------------------------- the checking modes, save/load
@pytest.mark.parametrize("mode", ["DebugMode", "MonitorMode"])
def test_checking_modes_take_defaults_keywords_and_states(mode, backend):
    x, s = T.dscalars("x", "s")
    m = sg.compile.MonitorMode() if mode == "MonitorMode" else mode
    f = sg.function([x, sg.In(s, value=1.0, update=s * x)], s + x, mode=m, backend=backend)
    assert f(2.0) == 3.0 and f[s] == 2.0
    assert f(x=3.0) == 5.0 and f[s] == 6.0
    with pytest.raises(InputError, match="missing"):
        f()


def test_saved_functions_keep_in_and_out_options(tmp_path, backend):
    u, s = T.dscalars("u", "s")
    w = sg.shared(np.ones(2), "w")
    f = _fn([u, sg.In(s, value=10.0, update=s + u, name="state")], [sg.Out(w, borrow=True), s * 2],
            updates=[(w, w + u)], backend=backend)
    f(5.0)
    sg.save(f, tmp_path / "f.sg")
    g = sg.load(tmp_path / "f.sg", backend=backend)
    assert g["state"] == 15.0 and g.spec.borrow_outputs == (True, False)
    np.testing.assert_array_equal(g(1.0, state=2.0)[1], 4.0)
    assert g["state"] == 3.0


def test_no_default_updates_all_some_or_none(backend):
    s, t = sg.shared(0.0, name="s"), sg.shared(0.0, name="t")
    s.default_update, t.default_update = s + 1, t + 10
    _fn([], s + t, backend=backend)()
    assert (s.get_value(), t.get_value()) == (1.0, 10.0)
    _fn([], s + t, backend=backend, no_default_updates=True)()
    assert (s.get_value(), t.get_value()) == (1.0, 10.0)
    _fn([], s + t, backend=backend, no_default_updates=[s])()
    assert (s.get_value(), t.get_value()) == (1.0, 20.0)
    _fn([], s + t, backend=backend, updates=[(s, s * 4)])()  # an explicit update replaces the default one
    assert (s.get_value(), t.get_value()) == (4.0, 30.0)
    for bad in ("yes", [T.dscalar("q")], 1):
        with pytest.raises(InputError, match="no_default_updates must be True, False or a list of shared"):
            _fn([], s, backend=backend, no_default_updates=bad)
