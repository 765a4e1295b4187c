"""Profiling (sg.function(..., profile=True), f.profile): times are non-negative and add up to no
more than the calls' wall time, counts match the calls, transfers are counted in bytes, the
tables name every op; and profiling off costs nothing: an unprofiled function's source has no
profiling line, and a profiled source is the unprofiled one plus timing lines only."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.errors import InputError

from explore_cases import batch, mlp_step


def _calls(f, n: int) -> float:
    args = batch(f)
    t0 = time.perf_counter()
    for _ in range(n):
        f(*args)
    return time.perf_counter() - t0


def test_times_are_non_negative_and_within_the_wall_time(backend):
    f = mlp_step(backend, profile=True)
    f(*batch(f))  # the first call builds OpenCL kernels: leave it out of the comparison
    f.profile.reset()
    wall = _calls(f, 7)
    p = f.profile
    assert p.n_calls == 7
    assert len(p.nodes) == len(f.graph.apply_nodes) and set(p.nodes) == f.graph.apply_nodes
    assert all(c == 7 for c in p.calls)
    assert all(s >= 0 for s in p.seconds) and p.node_seconds > 0
    assert p.node_seconds + p.transfer_seconds <= p.call_seconds <= wall
    if backend == "opencl":
        assert all(d is not None and d >= 0 for d in p.device)
        assert sum(p.device) <= wall
    else:
        assert all(d is None for d in p.device)
    assert all(shapes is not None for shapes in p.shapes)
    assert p.shapes[p.nodes.index(f.graph.outputs[0].owner)][0] == ()  # the loss is a scalar


def test_counts_follow_the_calls_and_reset(backend):
    f = mlp_step(backend, profile=True)
    _calls(f, 3)
    assert f.profile.n_calls == 3 and set(f.profile.calls) == {3}
    f.profile.reset()
    assert f.profile.n_calls == 0 and f.profile.node_seconds == 0 and set(f.profile.calls) == {0}
    _calls(f, 2)
    assert set(f.profile.calls) == {2}


def test_transfers_are_counted_in_bytes_on_opencl(backend):
    f = mlp_step(backend, profile=True)
    x, t = batch(f, n=11)
    for _ in range(4):
        f(x, t)
    sites = {s.label: s for s in f.profile.transfers}
    if backend == "numpy":
        assert sites == {}
        return
    assert sites["argument x"].calls == 4 and sites["argument x"].bytes == 4 * x.nbytes
    assert sites["argument t"].bytes == 4 * t.nbytes and sites["argument t"].to == "device"
    assert sites["output 0"].to == "host" and sites["output 0"].bytes == 4 * np.dtype(x.dtype).itemsize
    text = str(f.profile)
    assert "Transfers" in text and f"{4 * x.nbytes:,}" in text
    assert "Device runtime copies" in text


def test_the_tables_name_ops_nodes_and_kernels(backend):
    f = mlp_step(backend, profile=True)
    _calls(f, 2)
    text = str(f.profile)
    assert "Time in 2 calls to Function.__call__" in text
    for title in ("Class\n-----", "Ops\n---", "Apply\n-----"):
        assert title in text
    for node in f.graph.apply_nodes:
        assert str(node.op) in text
    assert "Epilogue" in text and "explore_cases.py:" in text  # op class and the user line of each node
    assert ("Kernels\n-------" in text) == (backend == "opencl")
    if backend == "opencl":
        for names in (f._impl.backend.kernel_names(n) for n in f.graph.apply_nodes):
            assert all(name in f.kernels for name in names)
        assert any(name in text for name in f.kernels)
    out = []

    class Sink:
        def write(self, s):
            out.append(s)
    f.profile.summary(file=Sink(), n_rows=2)
    assert "more rows" in "".join(out)


def test_unprofiled_functions_have_no_profile_and_no_profiling_line(backend):
    f = mlp_step(backend)
    assert f.profile is None
    assert "_prof" not in f.source and "_pt" not in f.source
    g = mlp_step(backend, profile=False)
    assert g.source == f.source


def _strip_profiling(src: str) -> str:
    """The source without the profiling lines: timing calls removed, read-backs put back into the
    return statement, the profile's ``with`` item dropped (and a ``with`` holding only it)."""
    lines, outs = [], {}
    for line in src.splitlines():
        s = line.strip()
        if s == "_pt = _prof_start()" or re.fullmatch(r"_prof_(node|transfer)\(.*\)", s):
            continue
        m = re.fullmatch(r"(_out\d+) = (.*)", s)
        if m:
            outs[m.group(1)] = m.group(2)
            continue
        lines.append(line)
    text = "\n".join(lines) + "\n"
    for name, expr in outs.items():
        text = re.sub(rf"\b{name}\b", lambda _, e=expr: e, text)
    if "    with _profile:\n" in text:  # the only context manager: the body was indented for it
        head, body = text.split("    with _profile:\n", 1)
        text = head + "".join(ln[4:] + "\n" for ln in body.splitlines())
    return text.replace(", _profile:", ":")


def test_a_profiled_source_is_the_unprofiled_one_plus_timing_lines(backend):
    plain, profiled = mlp_step(backend), mlp_step(backend, profile=True)
    assert "_prof_node(" in profiled.source
    assert _strip_profiling(profiled.source) == plain.source
    x = T.vector("x", dtype="float32")
    one, two = (sg.function([x], [T.exp(x).sum(), x * 2], backend=backend, profile=p) for p in (False, True))
    assert "with _profile:" in two.source or ", _profile:" in two.source
    assert _strip_profiling(two.source) == one.source


def test_config_flag_and_errors_in_profiled_calls(backend):
    with sg.config.change_flags(profile=True):
        f = mlp_step(backend)
    assert f.profile is not None
    x, t = batch(f)
    with pytest.raises(Exception) as info:  # t has the wrong length: the loss's subtraction fails
        f(x, t[:-1])
    assert not isinstance(info.value, InputError) and "explore_cases.py" in str(info.value)
    assert f.profile.n_calls == 1  # the failed call counts; nothing after the failing node does
    f(x, t)
    assert f.profile.n_calls == 2 and max(f.profile.calls) == 2 and min(f.profile.calls) == 1


def test_profiled_values_are_the_unprofiled_values(backend):
    plain, profiled = mlp_step(backend), mlp_step(backend, profile=True)
    args = batch(plain)
    for _ in range(3):
        np.testing.assert_allclose(profiled(*args), plain(*args), rtol=1e-6)
