"""Shared test fixtures: the backend parameter every op test runs over, and hypothesis profiles."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import symgraph

# CI draws the same examples on every run (derandomize), so a red build always reproduces and
# never comes from one unlucky draw; `make fuzz` (profile "fuzz") explores new random examples.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=10, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz", max_examples=1000, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The suite tests the OpenCL kernels: every node the device can run runs there, whatever its size
# (sg.config.placement 'device'), unless SYMGRAPH_PLACEMENT says otherwise. Size-aware placement
# ('auto', the default) and 'host' are tested where a test asks for them (tests/test_placement.py,
# the fuzzer).
if not os.environ.get("SYMGRAPH_PLACEMENT"):
    symgraph.config.placement = "device"

# Theano's Deep Learning Tutorials, vendored verbatim (their own test_hmc.py included), are run by
# tests/test_dlt.py through the import change, never collected as they are
collect_ignore_glob = ["dlt/code/*"]


def _why_no_opencl() -> str | None:
    """None when an OpenCL device is usable, else why not (shown as the skip reason)."""
    if os.environ.get("SYMGRAPH_SKIP_OPENCL") == "1":
        return "OpenCL tests switched off (SYMGRAPH_SKIP_OPENCL=1)"
    try:
        import pyopencl as cl
    except ImportError as e:
        return f"no OpenCL: pyopencl is not installed ({e}); `pip install 'symgraph[opencl]'`"
    try:
        if any(p.get_devices() for p in cl.get_platforms()):
            return None
    except Exception as e:  # noqa: BLE001 -- no ICD loader/platform raises here
        return f"no OpenCL device: {type(e).__name__}: {e} (install pocl-opencl-icd for the CPU)"
    return "no OpenCL device found (install pocl-opencl-icd for the CPU)"


NO_OPENCL = _why_no_opencl()
BACKENDS = ["numpy"] + (["opencl"] if NO_OPENCL is None else [])


_OPENCL_PARAM = pytest.param("opencl", marks=[pytest.mark.skip(reason=NO_OPENCL)] if NO_OPENCL else [])


@pytest.fixture(params=["numpy", _OPENCL_PARAM])
def backend(request) -> str:
    """Each test that takes ``backend`` runs once per backend; without an OpenCL device the
    opencl case is reported as skipped, with the reason."""
    return request.param
