"""Smoke tests: each example runs in-process with --quick and its numbers say it learned."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the examples extra (matplotlib) is not installed")
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def load(name: str):
    """Import examples/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, backend: str, tmp_path, *extra: str) -> dict:
    return load(name).main(["--quick", "--backend", backend, "--out", str(tmp_path), *extra])


def test_xor_predictions_round_to_targets(backend, tmp_path, capsys):
    result = run("xor", backend, tmp_path)
    assert np.round(result["predictions"]).tolist() == [0, 1, 1, 0]
    assert result["losses"][-1] < result["losses"][0] / 10
    assert os.path.getsize(result["plot"]) > 0
    out = capsys.readouterr().out
    assert "target" in out and "symgraph" in out


def test_xor_full_run_matches_the_numpy_tutorial(tmp_path):
    result = load("xor").main(["--out", str(tmp_path)])
    # the hand-written numpy loop with the same seed and step prints these to 3 decimals
    np.testing.assert_allclose(result["predictions"], [0.015, 0.981, 0.984, 0.022], atol=1e-3)


def test_relu_neuron_dies_and_leaky_recovers(backend, tmp_path, capsys):
    result = run("relu_neuron", backend, tmp_path)
    dead, healthy, leaky = result["dead start"], result["healthy start"], result["dead start, leaky"]
    assert not dead["moved"] and dead["w"][0] == dead["w"][1] and dead["losses"][0] == dead["losses"][-1]
    assert healthy["moved"] and healthy["losses"][-1] < healthy["losses"][0] / 2
    assert leaky["moved"] and leaky["losses"][-1] < leaky["losses"][0] / 2
    assert "dying ReLU" in capsys.readouterr().out


def test_noisy_sine_adam_beats_sgd(backend, tmp_path, capsys):
    result = run("noisy_sine", backend, tmp_path, "--epochs", "150")
    final = result["final_mse"]
    for arch in ("1-60-1", "1-10-10-1"):
        assert final[f"{arch} Adam"] < final[f"{arch} SGD"]
        losses = result["losses"][f"{arch} Adam"]
        assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert "gif" not in result and os.path.getsize(result["plot"]) > 0
    assert "noise floor" in capsys.readouterr().out


def test_mlp_digits_learns(backend, tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    result = run("mlp_digits", backend, tmp_path)[backend]
    assert result["losses"][-1] < result["losses"][0]
    assert result["accuracy"][-1] > 0.85
    assert all(s > 0 for s in result["epoch_seconds"])


def test_mlp_digits_learns_with_dropout(backend, tmp_path, capsys):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    result = run("mlp_digits", backend, tmp_path, "--dropout", "0.2")[backend]
    assert result["losses"][-1] < result["losses"][0]
    assert result["accuracy"][-1] > 0.85
    assert "random_bernoulli32" in result["step_source"]  # the mask is drawn in the training step
    assert "dropout 0.2" in capsys.readouterr().out
    same = run("mlp_digits", backend, tmp_path, "--dropout", "0.2")[backend]
    assert same["losses"] == result["losses"]  # the same seed draws the same masks


def _gp_optimum(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The GP's minimal negative log marginal likelihood and its (l, s, n), by scipy's BFGS on an
    independent numpy/scipy implementation."""
    import scipy.linalg as sla
    import scipy.optimize as so

    def nll(t):
        length, s, n = np.exp(t)
        k = s ** 2 * np.exp(-0.5 * ((x[:, None] - x[None, :]) / length) ** 2) + n ** 2 * np.eye(len(x))
        c = sla.cho_factor(k, lower=True)
        return 0.5 * y @ sla.cho_solve(c, y) + np.log(np.diag(c[0])).sum() + 0.5 * len(x) * np.log(2 * np.pi)
    best = so.minimize(nll, np.log([1.5, 0.5, 0.5]))
    return float(best.fun), np.exp(best.x)


def test_gaussian_process_reaches_the_likelihood_optimum(backend, tmp_path, capsys):
    result = run("gaussian_process", backend, tmp_path)
    best, params = _gp_optimum(*result["data"])
    assert result["nll"][0] > best + 20 and result["nll"][-1] < best + 0.05
    np.testing.assert_allclose(list(result["params"].values()), params, rtol=0.1)
    assert result["inside_band"] > 0.8 and os.path.getsize(result["plot"]) > 0
    assert bool(result["host_fallbacks"]) == (backend == "opencl")
    assert "noise sd" in capsys.readouterr().out


def test_unknown_backend_lists_the_backends(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load("xor").main(["--backend", "cuda", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "cuda" in err and "numpy" in err and "opencl" in err


def test_missing_optional_package_gives_install_hint():
    kit = load("example_kit")
    with pytest.raises(SystemExit, match=r"needs no_such_package_q: pip install 'symgraph\[examples\]'"):
        kit.require("no_such_package_q")
