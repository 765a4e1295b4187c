"""Shared test fixtures: the backend parameter every op test runs over, and hypothesis profiles."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# CI draws the same examples on every run (derandomize), so a red build always reproduces and
# never comes from one unlucky draw; `make fuzz` (profile "fuzz") explores new random examples.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=10, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("fuzz", max_examples=1000, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _opencl_available() -> bool:
    try:
        import pyopencl as cl
        return any(p.get_devices() for p in cl.get_platforms())
    except Exception:
        return False


BACKENDS = ["numpy"] + (["opencl"] if _opencl_available() and os.environ.get("SYMGRAPH_SKIP_OPENCL") != "1" else [])


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Each test that takes ``backend`` runs once per available backend."""
    return request.param
