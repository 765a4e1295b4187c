"""What a call hands back and stores (issue 22 items 7 and 8).

- An update whose value breaks its shared variable's static shape is refused, naming the user
  line that built the update, and no shared variable changes (not even those updated by
  well-shaped updates listed before it): the same rule ``set_value`` applies.
- Every returned array owns its memory: outputs that are views of one another (``[y, y.T]``,
  reshapes, slices, an output listed twice) come back independent, so writing into one never
  changes another, an input, a shared variable or a later call's result."""
from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import InputError


def test_an_update_breaking_a_static_shape_is_refused_and_changes_nothing(backend):
    v = T.dvector("v")
    a = sg.shared(np.arange(3.0), "a", shape=(3,))
    b = sg.shared(np.float64(1.0), "b")
    c = sg.shared(np.zeros(3), "c")
    too_long = v * 2  # the user line the error names
    f = sg.function([v], b * 10, updates=[(b, b + 1), (c, c + 1), (a, too_long)], backend=backend)
    with pytest.raises(InputError, match=r"shared variable a .* shape \(5,\).* dimension 0 of length 3") as e:
        f(np.ones(5))
    assert "too_long = v * 2" in str(e.value) and "no shared variable was changed" in str(e.value)
    np.testing.assert_array_equal(a.get_value(), np.arange(3.0))
    assert b.get_value() == 1.0
    np.testing.assert_array_equal(c.get_value(), np.zeros(3))
    with pytest.raises(InputError):  # set_value refuses the same value
        a.set_value(np.ones(5))
    assert f(np.ones(3)) == 10.0  # a well-shaped call still works, and commits everything
    np.testing.assert_array_equal(a.get_value(), np.full(3, 2.0))
    assert b.get_value() == 2.0
    np.testing.assert_array_equal(c.get_value(), np.ones(3))


def test_a_matrix_update_breaking_one_static_dimension_is_refused(backend):
    """Only the declared dimension is checked: (None, 2) accepts any number of rows."""
    m = T.dmatrix("m")
    w = sg.shared(np.zeros((2, 2)), "w", shape=(None, 2))
    f = sg.function([m], [], updates=[(w, m + 1)], backend=backend)
    f(np.zeros((4, 2)))
    assert w.get_value().shape == (4, 2)
    with pytest.raises(InputError, match=r"shared variable w .* shape \(4, 3\).* dimension 1 of length 2"):
        f(np.zeros((4, 3)))
    np.testing.assert_array_equal(w.get_value(), np.ones((4, 2)))


def _outputs(m, s):
    """Lists of outputs whose values share memory inside the call (views of one another, of an
    input, of a shared variable, or the same variable twice)."""
    y = m * 2
    return {
        "y and y.T": [y, y.T],
        "m and m.T": [m, m.T],
        "y twice": [y, y],
        "y, a reshape and a row": [y, y.reshape((-1,)), y[0]],
        "a slice and its transpose": [y[:, 1:], y[:, 1:].T],
        "a shared variable and its transpose": [s, s.T],
        "y, y.T and y again": [y.T, y, y],
    }


@pytest.mark.parametrize("case", list(_outputs(T.dmatrix(), sg.shared(np.zeros((2, 3)))).keys()))
def test_returned_arrays_never_share_memory(backend, case):
    m = T.dmatrix("m")
    s = sg.shared(np.arange(6.0).reshape(2, 3), "s")
    f = sg.function([m], _outputs(m, s)[case], backend=backend, on_unused_input="ignore")
    value = np.arange(6.0).reshape(2, 3)
    first = f(value)
    expected = [r.copy() for r in first]
    for i, r in enumerate(first):
        for j, other in enumerate(first):
            assert i == j or not np.shares_memory(r, other), f"outputs {i} and {j} share memory"
        assert not np.shares_memory(r, value) and not np.shares_memory(r, s.get_value(borrow=True))
    for i, r in enumerate(first):  # writing into one output changes no other output
        r[...] = -7.0
        for j in range(i + 1, len(first)):
            np.testing.assert_array_equal(first[j], expected[j], err_msg=f"written through output {i}")
    np.testing.assert_array_equal(value, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(s.get_value(), np.arange(6.0).reshape(2, 3))
    for r, want in zip(f(value), expected):  # nor a later call's results
        np.testing.assert_array_equal(r, want)


def test_writing_into_one_output_leaves_the_other_intact(backend):
    """The plain statement of item 8: ``a, b = f(x)`` with ``b`` the transpose of ``a``."""
    m = T.dmatrix("m")
    y = m + 1
    a, b = sg.function([m], [y, y.T], backend=backend)(np.zeros((2, 3)))
    a[0, 1] = 5.0
    np.testing.assert_array_equal(b, np.ones((3, 2)))
    c, d = sg.function([m], [y, y], backend=backend)(np.zeros((2, 3)))
    c[1, 2] = 5.0
    np.testing.assert_array_equal(d, np.ones((2, 3)))
