"""Every reduction kernel variant of the OpenCL backend (backends/opencl/kernels_reduce.py) forced
in turn on hypothesis shapes, axes and layouts (transposed, reversed), against numpy: sums of a
fused program, max, and argmax with ties and NaNs (the first wins, as in numpy). The device picks
one variant per call by size, so without forcing, most shapes would never reach most variants."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import NO_OPENCL
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
import symgraph.tensor as T

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=NO_OPENCL or "")
if NO_OPENCL is None:
    from symgraph.backends.opencl import kernels_reduce as kr


def _variants() -> tuple:
    from symgraph.backends.opencl.runtime import get_runtime
    return kr.CPU_VARIANTS if get_runtime().is_cpu else kr.GPU_VARIANTS


@st.composite
def _case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 40), min_size=1, max_size=3)))
    axes = draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1).map(tuple))
    value = np.random.default_rng(draw(st.integers(0, 99))).integers(-3, 4, size=shape).astype(np.float32)
    if draw(st.booleans()):
        value.flat[draw(st.integers(0, value.size - 1))] = np.nan
    layout = draw(st.sampled_from(["c", "transposed", "reversed"]))
    if layout == "transposed":
        value = np.ascontiguousarray(value.T).T
    elif layout == "reversed":
        value = value[::-1]
    return value, axes


def test_the_cpu_and_gpu_variants_are_named():
    assert set(kr.CPU_VARIANTS) | set(kr.GPU_VARIANTS) == set(kr.VARIANTS)
    assert kr.choose_variant(True, 1, 409600, 1 << 62, 1) == "chunks"  # a full sum: a work-group's chunks
    assert kr.choose_variant(False, 1, 409600, 1 << 62, 1) == "tree"
    assert kr.choose_variant(True, 128, 3200, 1, 128) == "columns"  # BPTT's bias gradient on a CPU
    assert kr.choose_variant(True, 3200, 128, 128, 1) == "rows"


@settings(deadline=None, max_examples=25)
@given(case=_case(), pick=st.integers(0, 2))
def test_each_variant_agrees_with_numpy(case, pick):
    value, axes = case
    variant = _variants()[pick % len(_variants())]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kr, "choose_variant", lambda *a: variant)
        _check(value, axes)


def _check(value: np.ndarray, axes: tuple) -> None:
    x = T.ftensor3("x") if value.ndim == 3 else T.fmatrix("x") if value.ndim == 2 else T.fvector("x")
    flat_axis = axes[0] if len(axes) == 1 else None
    outs = [T.sum(x * 2 + 1, axis=axes), T.max(x, axis=axes), T.argmax(x, axis=flat_axis)]
    f = sg.function([x], outs, backend="opencl", placement="device")
    got = f(value)
    clean = np.nan_to_num(value, nan=0.5)
    np.testing.assert_allclose(f(clean)[0], (clean * 2 + 1).sum(axis=axes), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(got[1], value.max(axis=axes))
    np.testing.assert_array_equal(got[2], value.argmax(axis=flat_axis))
