"""sg.function, shared variables, updates, givens, config, and every bad input the foundation
issue lists (each error must be clear, and a failed call must leave shared state untouched)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import InputError


def test_single_and_list_outputs(backend):
    x = T.dvector("x")
    f = sg.function([x], x * 2, backend=backend)
    g = sg.function([x], [x * 2, x + 1], backend=backend)
    assert isinstance(f(np.ones(2)), np.ndarray)
    out = g(np.ones(2))
    assert isinstance(out, list) and len(out) == 2


def test_keyword_arguments_and_python_inputs(backend):
    x, y = T.dvector("x"), T.dscalar("y")
    f = sg.function([x, y], x * y, backend=backend)
    np.testing.assert_array_equal(f(y=2.0, x=[1, 2]), [2, 4])
    with pytest.raises(InputError, match="unexpected keyword"):
        f(x=[1.0], z=1)
    with pytest.raises(InputError, match="missing"):
        f(x=[1.0])


def test_wrong_number_of_arguments(backend):
    x = T.dvector("x")
    f = sg.function([x], x + 1, backend=backend)
    with pytest.raises(InputError, match=r"takes 1 argument.*got 2"):
        f(np.ones(2), np.ones(2))


def test_no_silent_downcast_but_opt_in(backend):
    x = T.fvector("x")
    f = sg.function([x], x * 2, backend=backend)
    with pytest.raises(InputError, match="float32.*float64|float64.*float32"):
        f(np.ones(3, dtype=np.float64))
    g = sg.function([x], x * 2, backend=backend, allow_input_downcast=True)
    assert g(np.ones(3)).dtype == np.float32
    assert f([1.0, 2.5]).dtype == np.float32  # Python numbers are fine when they are plain floats
    y = T.dvector("y")
    h = sg.function([y], y, backend=backend)
    assert h(np.ones(2, dtype=np.float32)).dtype == np.float64  # safe upcast is silent


def test_python_floats_that_overflow_float32_are_refused(backend):
    """Issue 22 item 13: [0.5, 1e300] into a float32 input would silently become [0.5, inf]."""
    x = T.fvector("x")
    f = sg.function([x], x * 2, backend=backend)
    for bad in ([0.5, 1e300], [-1e39], [1.0, 2.0, 3.5e38]):
        with pytest.raises(InputError, match=r"does not fit in float32.*would become inf"):
            f(bad)
    np.testing.assert_array_equal(f([0.1, 1e38, np.inf, -np.inf]),  # rounding, and inf given as inf, are fine
                                  np.array([0.1, 1e38, np.inf, -np.inf], dtype=np.float32) * 2)
    g = sg.function([x], x * 2, backend=backend, allow_input_downcast=True)
    with np.errstate(over="ignore"):  # the user asked for the cast: inf, as numpy gives it
        assert np.isinf(g([0.5, 1e300])[1])


def test_wrong_ndim_and_static_shape(backend):
    x = T.dmatrix("x")
    f = sg.function([x], x + 1, backend=backend)
    with pytest.raises(InputError, match=r"argument 0 \(x\).*2 dimensions"):
        f(np.ones(3))
    w = T.tensor("float64", (None, 3), name="w")
    g = sg.function([w], w * 2, backend=backend)
    with pytest.raises(InputError, match="dimension 1 must have length 3"):
        g(np.ones((2, 4)))


def test_bad_inputs_and_outputs_to_function():
    x = T.dvector("x")
    with pytest.raises(InputError, match="not symbolic"):
        sg.function([x], [x + 1, 3.0])
    with pytest.raises(InputError, match="computed by"):
        sg.function([x + 1], x)
    with pytest.raises(InputError, match="must be a symbolic variable"):
        sg.function([np.ones(2)], x)
    with pytest.raises(InputError, match="not used"):
        sg.function([x, T.dvector("unused")], x + 1)
    with pytest.raises(InputError, match="twice"):
        sg.function([x, x], x + 1)
    with pytest.warns(UserWarning, match="not used"):
        sg.function([x, T.dvector("u")], x + 1, on_unused_input="warn")
    with pytest.raises(ValueError, match="unknown backend"):
        sg.function([x], x, backend="cuda")


def test_shared_values_are_copies():
    v = np.ones(3)
    s = sg.shared(v, name="s")
    v[0] = 5
    assert s.get_value()[0] == 1
    got = s.get_value()
    got[1] = 7
    assert s.get_value()[1] == 1
    s.set_value(np.zeros(3))
    assert s.get_value().sum() == 0
    assert sg.shared(1.5).dtype == sg.config.floatX and sg.shared(np.int32(3)).dtype == "int32"
    with pytest.raises(InputError):
        s.set_value(np.ones((2, 2)))


def test_updates_are_computed_from_old_values_and_committed_together(backend):
    a, b = sg.shared(np.array([1.0]), "a"), sg.shared(np.array([2.0]), "b")
    f = sg.function([], [a, b], updates=[(a, b), (b, a)], backend=backend)  # swap
    out = f()
    np.testing.assert_array_equal(out, [[1.0], [2.0]])
    assert a.get_value()[0] == 2.0 and b.get_value()[0] == 1.0
    f()
    assert a.get_value()[0] == 1.0 and b.get_value()[0] == 2.0


def test_update_errors():
    w = sg.shared(np.zeros(3), "w")
    x = T.fvector("x")
    with pytest.raises(InputError, match="dtype float32.*float64.*cast"):
        sg.function([x], x, updates=[(w, x)])
    with pytest.raises(InputError, match="2 dimensions"):
        sg.function([], w, updates=[(w, T.dmatrix())])
    with pytest.raises(InputError, match="not a shared variable"):
        sg.function([x], x, updates=[(x, x)])
    with pytest.raises(InputError, match="updated twice"):
        sg.function([], w, updates=[(w, w + 1), (w, w * 2)])


def test_failed_call_leaves_shared_variables_unchanged(backend):
    w = sg.shared(np.ones(3), "w")
    c = sg.shared(np.zeros(()), "count")
    x = T.dvector("x")
    f = sg.function([x], (w * x).sum() if hasattr(T, "sum") else w * x,
                    updates=[(w, w - 0.1 * x), (c, c + 1)], backend=backend)
    f(np.ones(3))
    before_w, before_c = w.get_value(), c.get_value()
    with pytest.raises(ValueError):
        f(np.ones(4))  # shapes do not broadcast: fails mid-call
    np.testing.assert_array_equal(w.get_value(), before_w)
    np.testing.assert_array_equal(c.get_value(), before_c)
    f(np.ones(3))  # still usable
    assert c.get_value() == before_c + 1


def test_outputs_never_alias_inputs_or_shared_storage(backend):
    x = T.dvector("x")
    s = sg.shared(np.arange(3.0), "s")
    f = sg.function([x], [x, s, x.T], backend=backend)
    v = np.ones(3)
    a, b, c = f(v)
    a[0] = b[0] = c[1] = 99
    assert v[0] == 1 and s.get_value()[0] == 0


def test_update_value_that_is_also_an_output_is_not_shared(backend):
    s = sg.shared(np.zeros(2), "s")
    f = sg.function([], s + 1, updates=[(s, s + 1)], backend=backend)
    out = f()
    out[0] = 42
    assert s.get_value()[0] == 1


def test_givens_replace_variables(backend):
    x, y = T.dvector("x"), T.dvector("y")
    s = sg.shared(np.array([3.0]), "s")
    f = sg.function([y], x * 2, givens={x: y + s}, backend=backend)
    np.testing.assert_array_equal(f(np.array([1.0])), [8.0])
    with pytest.raises(InputError, match="dtype and number of dimensions"):
        sg.function([y], x, givens={x: T.dmatrix()})


def test_logistic_regression_loss_falls(backend):
    rng = np.random.default_rng(0)
    n, d = 200, 5
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) > 0).astype(np.float64)
    w, b = sg.shared(np.zeros(d), "w"), sg.shared(0.0, "b")
    x_sym, y_sym = T.dmatrix("X"), T.dvector("y")
    p = T.sigmoid(T.dot(x_sym, w) + b)
    loss = -T.mean(y_sym * T.log(p) + (1 - y_sym) * T.log(1 - p))
    gw = T.dot(x_sym.T, p - y_sym) / n  # hand-written gradient
    gb = T.mean(p - y_sym)
    train = sg.function([x_sym, y_sym], loss, updates=[(w, w - 0.5 * gw), (b, b - 0.5 * gb)], backend=backend)
    losses = [float(train(X, y)) for _ in range(100)]
    assert losses[-1] < 0.5 * losses[0]
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:]))


def test_config_flags_and_env():
    assert sg.config.floatX in ("float32", "float64")
    with sg.config.change_flags(floatX="float32", backend="numpy"):
        assert T.vector().dtype == "float32"
    with pytest.raises(ValueError, match="floatX must be one of"):
        sg.config.floatX = "float16"
    with pytest.raises(AttributeError, match="no flag"):
        sg.config.nonsense = 1


def test_source_is_readable_straight_line_code():
    x, y = T.dmatrix("x"), T.dmatrix("y")
    f = sg.function([x, y], x + y)
    assert "np.add(x, y)" in f.source and "def f(x, y):" in f.source
    assert "for " not in f.source


def test_calls_from_many_threads_give_correct_results(backend):
    x = T.dvector("x")
    f = sg.function([x], T.exp(x) * 2 + x, backend=backend)
    errors = []

    def work(k):
        v = np.full(4, k / 10.0)
        for _ in range(50):
            if not np.allclose(f(v), np.exp(v) * 2 + v):
                errors.append(k)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_nan_guard_names_the_node_and_keeps_shared_state(backend):
    from symgraph.errors import NanGuardError
    w = sg.shared(np.ones(2), "w")
    x = T.dvector("x")
    y = T.log(x)  # the NaN comes from here
    f = sg.function([x], y * w, updates=[(w, w + 1)], nan_guard=True, backend=backend)
    f(np.ones(2))
    with np.errstate(invalid="ignore"), pytest.raises(NanGuardError) as info:
        f(np.array([1.0, -1.0]))
    msg = str(info.value)
    assert "log produced NaN" in msg and "y = T.log(x)" in msg and "[-1.0, 1.0]" in msg
    np.testing.assert_array_equal(w.get_value(), [2.0, 2.0])
    assert isinstance(info.value, FloatingPointError)


def test_functions_with_updates_serialize_calls(backend):
    counter = sg.shared(np.zeros(()), "counter")
    step = sg.function([], [], updates=[(counter, counter + 1)], backend=backend)
    threads = [threading.Thread(target=lambda: [step() for _ in range(250)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.get_value() == 2000


def test_awkward_names_do_not_collide_in_generated_code(backend):
    w1, w2 = sg.shared(np.ones(2), "W"), sg.shared(np.full(2, 3.0), "W")
    a, b, c = T.dvector("lambda"), T.dvector("v2"), T.dvector("_k4")
    f = sg.function([a, b, c], a + 2 * b + 3 * c + w1 * w2, updates=[(w1, w1 + 1), (w2, w2 * 2)],
                    backend=backend)
    np.testing.assert_array_equal(f([1, 1], [1, 1], [1, 1]), [9, 9])
    np.testing.assert_array_equal(w1.get_value(), [2, 2])
    np.testing.assert_array_equal(w2.get_value(), [6, 6])
    assert f.spec.input_names == ["in0", "in1", "in2"]
    np.testing.assert_array_equal(f(in0=[0, 0], in1=[0, 0], in2=[0, 0]), [12, 12])
