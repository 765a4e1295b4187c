"""Smoke tests of the loop examples (issue 15): examples/rnn.py learns (its test error falls well
below predicting that the next value equals the current one), and examples/noisy_sine_loop.py's
one compiled loop of 100 steps per call gives the step-by-step loss curve, bit for bit on numpy."""
from __future__ import annotations

import numpy as np
import pytest
from test_examples import load

pytest.importorskip("matplotlib", reason="the examples extra (matplotlib) is not installed")


def test_rnn_learns_to_predict_the_next_value(backend, tmp_path, capsys):
    steps = "60" if backend == "numpy" else "25"  # OpenCL launches each step's kernels: fewer steps
    result = load("rnn").main(["--quick", "--backend", backend, "--out", str(tmp_path), "--steps", steps])
    assert result["test_mse"] < 0.6 * result["references"]["next = current"]
    assert result["losses"][-1] < result["losses"][0] / 4
    assert "BPTT through sg.scan" in capsys.readouterr().out


def test_rnn_gru_cell_trains(tmp_path):
    result = load("rnn").main(["--quick", "--cell", "gru", "--steps", "30", "--out", str(tmp_path)])
    assert result["losses"][-1] < result["losses"][0] / 2


def test_noisy_sine_loop_in_one_call_equals_the_step_by_step_loop(backend, tmp_path, capsys):
    result = load("noisy_sine_loop").main(["--quick", "--backend", backend, "--out", str(tmp_path),
                                           "--steps", "250"])
    assert len(result["one_loop"]) == len(result["step_by_step"]) == 250  # 100 + 100 + 50 steps per call
    if backend == "numpy":
        assert result["max_difference"] == 0.0
    np.testing.assert_allclose(result["one_loop"], result["step_by_step"], rtol=1e-5)
    assert result["one_loop"][-1] < result["one_loop"][0] / 2
    assert "steps per call" in capsys.readouterr().out
