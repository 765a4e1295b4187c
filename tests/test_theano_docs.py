"""The porting check (tests/theano_docs, issue 20): Theano's documentation examples run with only
their imports changed. Every example group recorded in expected_pass.txt must keep running and
printing the documented numbers; the comparison of printed numbers must catch wrong ones."""
from __future__ import annotations

import os

import pytest

from theano_docs.compare import compare, expected_exception, is_numeric, spans
from theano_docs.runner import build_groups, load_pages, run_all

EXPECTED = os.path.join(os.path.dirname(__file__), "theano_docs", "expected_pass.txt")


def test_the_documented_numbers_are_compared():
    assert compare("array([[ 11.,  22.],\n       [ 33.,  44.]])", "array([[11., 22.],\n       [33., 44.]])") is None
    assert compare("array(5.0)", "array(5.)") is None and compare("True", "True\n") is None
    assert compare("array([ 0.5       ,  0.73105858])", "array([0.5, 0.7310586])") is None
    assert compare("array([ 2.,  2.])", "array([2., 3.])") is not None
    assert compare("True", "False") is not None and compare("(3, 2)", "(2, 3)") is not None
    assert compare("[array([ 1.,  2.], dtype=float32), array([ 3.])]", "[array([1., 2.], dtype=float32), array([3.])]") is None
    # text outputs: only their numeric spans count, and names such as [id A] or Add}[(0, 0)] are not data
    assert spans("Elemwise{Add}[(0, 0)] [id B] ''   3\n |x [id C]") == []
    assert compare("hello world __str__ = [ 1.  2.  3.]", "hello world __str__ = [1. 2. 3.]") is None
    assert compare("hello world __str__ = [ 1.  2.  3.]", "hello world __str__ = [1. 2. 4.]") is not None
    assert compare("0 mul(5.0, x) input(s) value(s): [array(5.0), array(3.0)] output(s) value(s): [array(15.0)]",
                   "0 mul input(s) value(s): [array(5.), array(3.)] output(s) value(s): [array(14.)]") is not None
    assert is_numeric("np.float64(5.0)") is False and compare("5.0", "np.float64(5.0)") is None
    assert compare("True", "np.True_") is None and compare("True", "np.False_") is not None  # numpy 2's bools
    assert expected_exception("Traceback (most recent call last):\n  ...\nValueError: bad") == "ValueError"


def test_groups_left_out_are_those_of_other_open_issues():
    (page,) = [p for p in load_pages("tutorial/gradients") if p["page"] == "tutorial/gradients"]
    groups, _ = build_groups(page)
    status = {g.section: (g.status, g.reason) for g in groups}
    assert status["Computing the Jacobian"][0] == "not run"  # scan has landed: its groups count
    (sparse,) = [p for p in load_pages("tutorial/sparse") if p["page"] == "tutorial/sparse"]
    assert {g.status for g in build_groups(sparse)[0]} == {"excluded"}
    assert status["R-operator"][0] == "not run"  # counted: it only reuses names an earlier kept group defines


@pytest.fixture(scope="module")
def results():
    return run_all()


def test_theano_documentation_examples_still_run(results):
    passing = {g.name for g in results if g.status == "pass"}
    with open(EXPECTED) as f:
        expected = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    lost = sorted(expected - passing)
    reasons = {g.name: g.reason for g in results}
    assert not lost, "documentation example groups that stopped running:\n" + "\n".join(
        f"  {name}: {reasons.get(name, 'not found')[:300]}" for name in lost)
