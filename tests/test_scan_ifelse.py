"""sg.ifelse inside scan bodies (issue 14 item 3) on both backends: lazy per step in every mode
(an untaken branch never runs, even one that would raise), multi-output branches and a while
loop stopping on a branch's value against numpy loops, and gradients through both branches."""
from __future__ import annotations

import numpy as np
import pytest
from test_ifelse import CALLS, MODES, Counted, _compile

import symgraph as sg
import symgraph.tensor as T
from symgraph.ifelse import ifelse
from symgraph.testing import verify_grad


@pytest.mark.parametrize("mode", MODES)
def test_untaken_branch_never_runs_in_any_step(backend, mode):
    """Step t runs the expensive branch only when c[t] is set; the else branch indexes e, which
    raises on an empty e, so it must not run in the steps that take the then branch."""
    c, x, e = T.bvector("c"), T.dmatrix("x"), T.dvector("e")
    acc, _ = sg.scan(lambda ct, xt, acc: acc + ifelse(ct, Counted()(xt * 2).sum(), e[0] + 1),
                     sequences=[c, x], outputs_info=[T.zeros((), "float64")])
    f = _compile(backend, [c, x, e], acc, mode=mode)
    xs = np.arange(12.0).reshape(4, 3)
    CALLS["count"] = 0
    np.testing.assert_allclose(f(np.ones(4, np.int8), xs, np.zeros(0)), np.cumsum(2 * xs.sum(1)))
    assert CALLS["count"] == 4
    CALLS["count"] = 0
    got = f(np.array([1, 0, 0, 1], np.int8), xs, np.array([10.0]))
    np.testing.assert_allclose(got, np.cumsum([2 * xs[0].sum(), 11, 11, 2 * xs[3].sum()]))
    assert CALLS["count"] == 2, "an untaken branch ran"
    with pytest.raises(IndexError):
        f(np.array([1, 0, 1, 1], np.int8), xs, np.zeros(0))


def test_multi_output_branches_and_a_while_loop_on_a_branch_value(backend):
    """A two-output ifelse on carries (a Collatz-like step that halves or grows) and a while loop
    whose stop condition is computed from the branch's result, against a numpy loop."""
    dtype = "float32" if backend == "opencl" else "float64"
    a0, b0 = T.tensor(dtype, (), "a0"), T.tensor(dtype, (3,), "b0")

    def step(a, b):
        half = T.eq(T.floor(a / 2) * 2, a)
        na, nb = ifelse(half, [a / 2, b * 0.5], [3 * a + 1, b + a])
        return [na, nb], sg.until(T.le(na, 1))
    (av, bv), _ = sg.scan(step, outputs_info=[a0, b0], n_steps=1000)
    f = sg.function([a0, b0], [av, bv], backend=backend)
    got_a, got_b = f(np.array(6, dtype), np.ones(3, dtype))
    want_a, want_b, a, b = [], [], 6.0, np.ones(3)
    while True:
        a, b = (a / 2, b * 0.5) if a % 2 == 0 else (3 * a + 1, b + a)
        want_a.append(a)
        want_b.append(b)
        if a <= 1:
            break
    np.testing.assert_allclose(got_a, want_a, rtol=1e-6)
    np.testing.assert_allclose(got_b, np.stack(want_b), rtol=1e-6)
    assert len(got_a) == 8  # 6 3 10 5 16 8 4 2 1: stopped by the branch's value


def test_gradient_through_both_branches_of_a_body():
    """Steps whose input row sums to a positive number take the tanh branch, the others the linear
    one; verify_grad w.r.t. the sequence, the initial state and the weights."""
    def rnn(x, h0, W):
        h, _ = sg.scan(lambda xt, h: ifelse(xt.sum() > 0, T.tanh(T.dot(h, W) + xt), h * 0.5 - xt),
                       sequences=[x], outputs_info=[h0])
        return h
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 3))
    x[1] = np.abs(x[1])
    x[2] = -np.abs(x[2])  # both branches are taken
    verify_grad(rnn, [x, rng.normal(size=3), rng.normal(size=(3, 3)) * 0.5])
