"""examples/distributed.py: (a) the dask statistic on a local cluster (--quick: in-process workers,
2e6 points), (b) the data-parallel digits MLP under mpirun -np 2, whose loss curve equals the
one-process full-batch curve."""
from __future__ import annotations

import importlib.util
import os
import re
import threading

import numpy as np
import pytest

from mpi_run import mpi_available, mpirun

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "distributed.py")


def test_statistic_of_a_chunked_array_on_a_local_cluster(tmp_path, capsys, monkeypatch):
    """--quick runs the workers as threads of this process. They used to get the example's 1 GB
    worker memory limit, measured on the whole process: late in a test run (a large process)
    they paused for good and the computation waited forever. The test makes this process look
    4 GiB larger to them, and gives the run a deadline instead of letting a hang eat CI's budget."""
    pytest.importorskip("distributed")  # the real package first: the example's file has its name
    pytest.importorskip("sklearn")
    psutil = pytest.importorskip("psutil")
    spec = importlib.util.spec_from_file_location("example_distributed", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    real = psutil.Process.memory_info

    def larger(self):
        info = real(self)
        return info._replace(rss=info.rss + 2 ** 32)
    larger.cache_activate, larger.cache_deactivate = real.cache_activate, real.cache_deactivate  # psutil's memo
    monkeypatch.setattr(psutil.Process, "memory_info", larger)
    done: list = []

    def run():
        try:
            done.append(module.main(["--quick", "--out", str(tmp_path)]))
        except BaseException as e:  # noqa: BLE001 -- raised below, in the test
            done.append(e)
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=240)
    assert done, "the statistic did not finish within 240 s (paused workers?)"
    if isinstance(done[0], BaseException):
        raise done[0]
    r = done[0]
    assert r["rows"] == 2_000_000 and r["chunks"] == 4
    assert abs(r["pi"] - np.pi) < 5 * r["standard_error"]
    assert "pi from 2e+06 random points" in capsys.readouterr().out


@pytest.mark.skipif(not mpi_available(), reason="needs mpi4py and mpirun (make test installs them)")
def test_data_parallel_training_prints_the_one_process_loss_curve(tmp_path):
    pytest.importorskip("sklearn")
    r = mpirun([EXAMPLE, "--mpi", "--quick", "--out", str(tmp_path)], timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "one all-reduce call per step (56 calls, 56 steps)" in r.stdout
    rows = re.findall(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)$", r.stdout, re.M)
    assert [int(k) for k, *_ in rows] == [1, 2]
    for _, parallel, one, _ in rows:
        np.testing.assert_allclose(float(parallel), float(one), rtol=1e-9)
    largest = float(re.search(r"largest difference between the curves: (\S+)", r.stdout).group(1))
    assert largest < 1e-12
