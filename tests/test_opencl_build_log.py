"""What the OpenCL compiler says while building kernels: pocl's psABI notes on wide vectors
(double16 without AVX-512) are dropped; any other diagnostic reaches the user as one
CompilerWarning that shows it, naming the kernel."""
from __future__ import annotations

import warnings

import pytest

pytest.importorskip("pyopencl")
from conftest import NO_OPENCL  # noqa: E402

if NO_OPENCL:
    pytest.skip(NO_OPENCL, allow_module_level=True)

import pyopencl as cl  # noqa: E402

from symgraph.backends.opencl import runtime as rtmod  # noqa: E402

ABI = "AVX vector return of type 'double16' without 'avx512f' enabled changes the ABI"

POCL_LOG = (f"warning: /tmp/k.cl:2:2: {ABI}\n"
            "warning: /tmp/k.cl:3:2: unused variable 'y'\n"
            f"warning: /tmp/k.cl:2:2: {ABI}\n"
            "warning: /tmp/k.cl:3:2: unused variable 'y'\n")
CLANG_LOG = ("<source>:4:17: warning: AVX vector argument of type 'double16' (vector of 16 'double' values) "
             "without 'avx512f' enabled changes the ABI [-Wpsabi]\n"
             "    double16 v = vload16(i, x);\n"
             "                ^\n"
             "<source>:7:9: warning: comparison of integers of different signs [-Wsign-compare]\n"
             "    if (i < n) {\n"
             "        ^\n"
             "2 warnings generated.\n")


def test_worth_reading_drops_abi_notes_and_repeats():
    assert rtmod.worth_reading(POCL_LOG) == ["warning: /tmp/k.cl:3:2: unused variable 'y'"]
    assert rtmod.worth_reading(CLANG_LOG) == [
        "<source>:7:9: warning: comparison of integers of different signs [-Wsign-compare]\n"
        "    if (i < n) {\n        ^"]
    assert rtmod.worth_reading(f"warning: x.cl:1:1: {ABI}\n1 warning generated.\n") == []
    assert rtmod.worth_reading("") == []
    # pocl's one-line form gets the generated line it points at
    assert rtmod.worth_reading("warning: /tmp/k.cl:2:30: self-comparison always evaluates to false\n",
                               "kernel\n    const uchar t0 = (x0 > x0);  /* gt */\n") == [
        "warning: /tmp/k.cl:2:30: self-comparison always evaluates to false\n    const uchar t0 = (x0 > x0);  /* gt */"]


def _build(body: str) -> list:
    src = body + "\n__kernel void build_log_probe(__global float *x) { x[get_global_id(0)] = 1; }\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rtmod.get_runtime()._build(src, [])
    return [w for w in caught if issubclass(w.category, cl.CompilerWarning)]


def test_abi_notes_alone_warn_nothing():
    assert _build(f"#warning {ABI}") == []


def test_other_diagnostics_are_shown():
    (w,) = _build(f"#warning {ABI}\n#warning the kernel needs attention")
    text = str(w.message)
    assert "the kernel needs attention" in text and "building build_log_probe:" in text
    assert "changes the ABI" not in text and "PYOPENCL_COMPILER_OUTPUT" not in text


def test_other_warnings_during_a_build_pass_through(monkeypatch):
    """Only the compiler's output is filtered: any other warning raised while building (here one
    pyopencl might give) reaches the user unchanged, category and text."""
    build = cl.Program.build

    def noisy_build(self, *args, **kwargs):
        warnings.warn("a pyopencl deprecation", DeprecationWarning)
        return build(self, *args, **kwargs)
    monkeypatch.setattr(cl.Program, "build", noisy_build)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rtmod.get_runtime()._build("__kernel void passes_warnings(__global float *x) { x[0] = 2; }\n", [])
    assert [(w.category, str(w.message)) for w in caught] == [(DeprecationWarning, "a pyopencl deprecation")]
