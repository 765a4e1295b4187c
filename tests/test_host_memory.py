"""Freed host memory kept for the next call (symgraph/compile/host_memory.py): the allocator
settings each pad asks for, the flag's check, and, in fresh processes, that a function over
megabyte arrays stops taking fresh page faults every call (counted, not timed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import symgraph as sg
from symgraph.compile import host_memory

GLIBC = sys.platform.startswith("linux") and host_memory._mallopt() is not None


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return 1


def _without_malloc_settings(env: dict) -> dict:
    """``env`` without malloc's thresholds (a dask cluster started by an earlier test leaves
    MALLOC_TRIM_THRESHOLD_ in this process's environment, which would keep the settings off)."""
    return {k: v for k, v in env.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}


@pytest.fixture
def recorder(monkeypatch):
    for k in set(os.environ) - set(_without_malloc_settings(dict(os.environ))):
        monkeypatch.delenv(k)
    rec = _Recorder()
    monkeypatch.setattr(host_memory, "_state", {"applied": None, "libc": rec})
    return rec


def test_a_pad_asks_for_the_three_settings_once(recorder):
    assert host_memory.keep_freed_memory(8 * 2**20)
    assert sorted(recorder.calls) == sorted([(host_memory.M_MMAP_THRESHOLD, host_memory.MMAP_THRESHOLD),
                                             (host_memory.M_TOP_PAD, 8 * 2**20),
                                             (host_memory.M_TRIM_THRESHOLD, 16 * 2**20)])
    assert host_memory.keep_freed_memory(8 * 2**20) and len(recorder.calls) == 3  # already in force
    assert host_memory.applied_pad() == 8 * 2**20


@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "65536"}, {"GLIBC_TUNABLES": "glibc.malloc.top_pad=0"}])
def test_a_launchers_malloc_settings_are_left_alone(recorder, monkeypatch, env):
    """dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, so that the worker's memory
    limit sees freed memory: a worker keeping it stayed paused and never spilled."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert not host_memory.keep_freed_memory(8 * 2**20)
    assert recorder.calls == []


def test_zero_leaves_the_allocator_alone(recorder):
    assert not host_memory.keep_freed_memory(0)
    assert recorder.calls == [] and host_memory.applied_pad() is None


def test_a_huge_pad_stays_within_a_c_int(recorder):
    host_memory.keep_freed_memory(2**40)
    assert all(value < 2**31 for _, value in recorder.calls)


def test_sg_function_applies_the_configured_pad(recorder):
    x = sg.tensor.dvector("x")
    with sg.config.change_flags(host_memory_pad=4 * 2**20):
        sg.function([x], x + 1)
    assert host_memory.applied_pad() == 4 * 2**20


def test_the_flag_refuses_a_negative_size():
    with pytest.raises(ValueError, match="host_memory_pad"):
        sg.config.host_memory_pad = -1


_FAULTS = """
import json, resource, numpy as np, symgraph as sg, symgraph.tensor as T
x = T.dmatrix("x")
f = sg.function([x], [T.tanh(x) * 2 + x.sum(), T.exp(x).sum(axis=0)])
xv = np.random.default_rng(0).standard_normal((500, 400))  # 1.6 MB per array
for _ in range(3):
    f(xv)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    f(xv)
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10))
"""


def _faults_per_call(pad: str) -> float:
    env = dict(_without_malloc_settings(dict(os.environ)), SYMGRAPH_HOST_MEMORY_PAD=pad)
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="needs glibc's mallopt")
def test_kept_memory_spares_the_page_faults_of_every_call():
    left_alone, kept = _faults_per_call("0"), _faults_per_call(str(32 * 2**20))
    assert left_alone > 200  # each fresh 1.6 MB array is about 400 pages
    assert kept < left_alone / 10
