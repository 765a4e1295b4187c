"""T.linalg failures: a matrix an op cannot handle raises LinAlgError naming the op, the matrix of
the batch, the shapes and the user line (on both backends), or gives NaN for that matrix alone
with on_error='nan'; a failed call leaves shared variables as they were; ops survive sg.save /
sg.load; on OpenCL they run as explicit host fallbacks (warned, visible, transfers counted)."""
from __future__ import annotations

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph import serialize
from symgraph.errors import LinAlgError
from linalg_cases import compile_on

L = T.linalg
SPD = np.array([[4.0, 1.0], [1.0, 3.0]])
NOT_PD = np.array([[1.0, 2.0], [2.0, 1.0]])
SINGULAR = np.array([[1.0, 2.0], [2.0, 4.0]])
B = np.array([[1.0], [2.0]])

# name: (builder, good matrix, bad matrix, what the message says); each takes on_error
FAILING = {
    "cholesky": (lambda a, e: L.cholesky(a, on_error=e), SPD, NOT_PD, "not positive definite"),
    "solve": (lambda a, e: L.solve(a, B, on_error=e), SPD, SINGULAR, "is singular"),
    "solve_pos": (lambda a, e: L.solve(a, B, assume_a="pos", on_error=e), SPD, NOT_PD, "not positive definite"),
    "solve_sym": (lambda a, e: L.solve(a, B, assume_a="sym", on_error=e), SPD, np.zeros((2, 2)), "is singular"),
    "solve_triangular": (lambda a, e: L.solve_triangular(a, B, lower=True, on_error=e), SPD,
                         SINGULAR * [[1, 1], [1, 0]], "is singular"),
    "cho_solve": (lambda a, e: L.cho_solve((a, True), B, on_error=e), SPD, np.diag([1.0, 0.0]), "singular factor"),
    "inv": (lambda a, e: L.inv(a, on_error=e), SPD, SINGULAR, "is singular"),
    "svd": (lambda a, e: L.svd(a, compute_uv=False, on_error=e), SPD, np.full((2, 2), np.nan), "did not converge"),
}


@pytest.mark.parametrize("name", sorted(FAILING))
def test_failure_names_op_matrix_shapes_and_user_line(backend, name):
    build, good, bad, why = FAILING[name]
    a = T.dtensor3("a")
    out = build(a, "raise")
    f = compile_on(backend, [a], [out])
    stack = np.stack([good, bad, good])
    err = None
    with np.errstate(all="ignore"):
        try:
            got = f(stack)
        except LinAlgError as e:
            err = e
        else:
            raise AssertionError(f"{name} of a bad matrix did not raise: {got}")
    msg = str(err)
    assert why in msg and "matrix 1 of the batch" in msg and "float64[3, 2, 2]" in msg
    assert "on_error='nan'" in msg
    assert "test_linalg_errors.py" in msg and f'    "{name}": (lambda a, e:' in msg  # the user line: FAILING's entry
    assert isinstance(err, np.linalg.LinAlgError) and isinstance(err, ValueError)


@pytest.mark.parametrize("name", sorted(FAILING))
def test_on_error_nan_marks_only_the_bad_matrix(backend, name):
    build, good, bad, _ = FAILING[name]
    a = T.dtensor3("a")
    f = compile_on(backend, [a], [build(a, "nan")])
    ref = sg.function([a], build(a, "raise"))(np.stack([good]))[0]
    with np.errstate(all="ignore"):
        (got,) = f(np.stack([good, bad, good]))
    assert np.all(np.isnan(got[1]))
    np.testing.assert_allclose(got[0], ref)
    np.testing.assert_allclose(got[2], ref)


def test_failed_call_leaves_shared_variables_unchanged(backend):
    w = sg.shared(np.ones((2, 1)), "w")
    a = T.dmatrix("a")
    f = compile_on(backend, [a], [w.sum()], updates=[(w, w + L.solve(a, w))])
    f(SPD)
    before = w.get_value().copy()
    with pytest.raises(LinAlgError, match="singular"):
        f(SINGULAR)
    np.testing.assert_array_equal(w.get_value(), before)


def test_single_matrix_message_and_catching_as_numpy_error():
    a = T.dmatrix("a")
    f = sg.function([a], L.cholesky(a))
    with pytest.raises(np.linalg.LinAlgError, match=r"Cholesky\{lower=True\}: the matrix is not positive definite"):
        f(NOT_PD)


def test_ops_round_trip_through_save_and_load(tmp_path):
    a, b = T.dtensor3("a"), T.dmatrix("b")
    u, s, vh = L.svd(a, full_matrices=False)
    q, r = L.qr(a, mode="complete")
    outs = [L.solve(a, b, assume_a="pos", lower=True, on_error="nan"),
            L.solve_triangular(a, b, trans=1, unit_diagonal=True),
            L.cho_solve((L.cholesky(a, lower=False), False), b), L.inv(a), L.det(a), L.slogdet(a)[1], L.adjugate(a),
            *L.eigh(a, UPLO="U"), L.eigvalsh(a), q, r, u, s, vh, L.pinv(a, rtol=1e-3)]
    f = sg.function([a, b], outs, mode=None)  # no rewrites: every op stays in the graph
    sg.save(f, tmp_path / "linalg.sgz")
    g = sg.load(tmp_path / "linalg.sgz")
    x = np.stack([SPD, SPD + np.eye(2)])
    for got, want in zip(g(x, B), f(x, B)):
        np.testing.assert_array_equal(got, want)
    names = {type(n.op).__name__ for n in g.graph.apply_nodes}
    assert {"Solve", "SolveTriangular", "CholeskySolve", "Cholesky", "MatrixInverse", "Det", "SLogDet", "Adjugate",
            "Eigh", "Eigvalsh", "QR", "SVD", "Pinv"} <= names
    registry = serialize.op_registry()
    assert all(registry[n] is getattr(L, n) for n in names & set(L.__all__))


def test_opencl_runs_linalg_as_an_explicit_host_fallback():
    pytest.importorskip("pyopencl")
    from conftest import BACKENDS
    if "opencl" not in BACKENDS:
        pytest.skip("no OpenCL device")
    from symgraph.backends.opencl.runtime import TRANSFERS
    a, b = T.dmatrix("a"), T.dmatrix("b")
    warning = r"Cholesky(Solve)?\{lower=True.*\} \(built at .*test_linalg_errors.py.*runs on the host"
    with pytest.warns(RuntimeWarning, match=warning) as caught:
        f = sg.function([a, b], L.cho_solve((L.cholesky(a), True), b) * 2, backend="opencl")
    assert {str(w.message).split(" (built")[0] for w in caught} == {
        "opencl backend: Cholesky{lower=True}", "opencl backend: CholeskySolve{lower=True, b_ndim=2}"}
    fallbacks = [n for n in f.graph.apply_nodes if type(n.op).__name__ == "HostFallback"]
    assert {type(n.op.op).__name__ for n in fallbacks} == {"Cholesky", "CholeskySolve"}
    assert any("HOST FALLBACK: Cholesky" in src for src in f.kernels.values())
    assert "HostFallback{Cholesky{lower=True}}" in sg.printing.debugprint(f, file="str")
    before = sum(TRANSFERS.values())
    np.testing.assert_allclose(f(SPD, B), 2 * np.linalg.solve(SPD, B))
    assert sum(TRANSFERS.values()) > before  # the host round trips are counted
