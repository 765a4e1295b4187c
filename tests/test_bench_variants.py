"""The benchmark harness's W4 cold variants (issue 21 item 1): 'N=1000 cold' runs W4 at N=1000 in a
process whose kernel caches start empty."""
from __future__ import annotations

import os

from benchmarks import data as D
from benchmarks import run_case


def test_w4_cold_variants_are_named_and_parsed():
    assert run_case.variants("W4", quick=False)[-2:] == ["N=1000 cold", "N=3000 cold"]
    assert D.w4_n("N=1000 cold") == D.w4_n("N=1000") == 1000
    assert D.is_cold("N=3000 cold") and not D.is_cold("N=3000")


def test_a_cold_case_points_the_kernel_caches_at_fresh_folders(monkeypatch, capsys):
    seen = {}

    def fake(workload, backend):
        def run(variant, quick):
            seen.update({k: os.environ.get(k) for k in ("POCL_CACHE_DIR", "SYMGRAPH_CACHE_DIR")})
            return {"s": 0.0}
        return run
    monkeypatch.setattr(run_case, "implementation", fake)
    for name in ("POCL_CACHE_DIR", "SYMGRAPH_CACHE_DIR"):  # recorded, so the test's changes are undone after it
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    run_case.main(["W4", "N=1000 cold", "opencl"])
    assert all(v and os.path.isdir(v) and not os.listdir(v) for v in seen.values()), seen
    assert seen["POCL_CACHE_DIR"] != seen["SYMGRAPH_CACHE_DIR"]
    seen.clear()
    for name in ("POCL_CACHE_DIR", "SYMGRAPH_CACHE_DIR"):
        os.environ.pop(name, None)
    run_case.main(["W4", "N=1000", "opencl"])
    assert seen == {"POCL_CACHE_DIR": None, "SYMGRAPH_CACHE_DIR": None}
    capsys.readouterr()


def test_the_cold_case_left_no_cache_folder_behind_in_this_process():
    assert "POCL_CACHE_DIR" not in os.environ or not os.environ["POCL_CACHE_DIR"].startswith("/tmp/sg-cold")
