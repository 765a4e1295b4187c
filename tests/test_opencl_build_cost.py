"""Cold builds of long elementwise programs (issue 21, backends/opencl/build_cost.py): a long
program's vector kernel holds one copy of the program (the partial last vector is padded, not run
by a second scalar copy), is built unoptimised in work-groups of one item, and computes the same
numbers as the numpy backend on every length, partial vectors included."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("pyopencl")
from conftest import NO_OPENCL  # noqa: E402

if NO_OPENCL:
    pytest.skip(NO_OPENCL, allow_module_level=True)

import symgraph as sg  # noqa: E402
import symgraph.tensor as T  # noqa: E402
from symgraph.backends.opencl import build_cost as bc  # noqa: E402
from symgraph.backends.opencl import kernels_elemwise as ke  # noqa: E402
from symgraph.tensor.composite import Composite  # noqa: E402

STEPS = 2 * bc.LONG_PROGRAM  # a chain long enough to be built unoptimised (about 0.3 s cold)


def _chain(x: T.TensorVariable, n: int) -> T.TensorVariable:
    """W4's cycle of tanh, *1.01, +0.1, sin, ... (benchmarks/data.py), ``n`` ops long."""
    h = x
    for k in range(n):
        h = [T.tanh, lambda v: v * np.float32(1.01), lambda v: v + np.float32(0.1), T.sin][k % 4](h)
    return h


def _functions() -> tuple:
    x = T.fvector("x")
    h = _chain(x, STEPS // 2)
    outs = [h, sg.grad(T.sum(h), x)]
    return (sg.function([x], outs, backend="opencl", placement="device"),
            sg.function([x], outs, backend="numpy"))


_COMPILED: dict = {}


def _compiled() -> tuple:
    if not _COMPILED:
        _COMPILED["f"] = _functions()
    return _COMPILED["f"]


@given(n=st.integers(1, 100), seed=st.integers(0, 2**16))
def test_long_chain_and_gradient_match_numpy(n: int, seed: int) -> None:
    """Every length (whole vectors, a partial last vector, less than one vector) gives the numpy
    backend's values for the chain and its gradient."""
    fo, fn = _compiled()
    xv = np.random.default_rng(seed).uniform(-2, 2, n).astype(np.float32)
    for got, want in zip(fo(xv), fn(xv)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_long_program_kernel_is_one_copy_unoptimised_in_small_groups() -> None:
    """The fused node is one long Composite; its contiguous kernel has each step once, is built
    with -cl-opt-disable and asks for LONG_WORK_GROUP items."""
    fo, _ = _compiled()
    fo(np.ones(37, np.float32))
    [node] = [n for n in fo.graph.apply_nodes if isinstance(n.op, Composite)]
    prog = node.op
    width = ke.vector_width(prog)
    assert width > 1 and len(prog.steps) >= STEPS and bc.unoptimised(prog, width)
    assert bc.build_options(prog, width) == ("-cl-opt-disable",)
    [fast] = [s for name, s in fo.kernels.items() if name.startswith("fused") and "_strided" not in name]
    assert fast.count("/* tanh */") == sum(name == "tanh" for name, _ in prog.steps)
    assert f"reqd_work_group_size({bc.LONG_WORK_GROUP}, 1, 1)" in fast
    # sin and cos (pocl's float vector forms are wrong beside a huge lane) call one helper each:
    # the scalar loop is in the kernel once per row, not once per step (W4 at N=3000 took 10 s)
    lanes = {name for name, _ in prog.steps if name in ke.WRONG_IN_VECTORS["float32"]}
    assert lanes == {"sin", "cos"} and fast.count("/* lane by lane */") == len(lanes)
    assert fast.count("lanes_sin_float32_16(") == 1 + sum(name == "sin" for name, _ in prog.steps)


def test_short_programs_keep_the_optimiser() -> None:
    """Short programs (and scalar-width ones) are built as before: default options and work-group."""
    short = Composite(["float32"], [("tanh", (("i", 0),)), ("sin", (("s", 0),))], [("s", 1)])
    assert bc.build_options(short, 16) == () and bc.work_group(short, 16, 256) == 256
    long_ = Composite(["float32"], [("tanh", ((("i", 0),) if k == 0 else (("s", k - 1),))) for k in range(80)],
                      [("s", 79)])
    assert bc.work_group(long_, 16, 256) == bc.LONG_WORK_GROUP
    assert bc.build_options(long_, 1) == () and bc.work_group(long_, 1, 256) == 256
    # measured on pocl only: a GPU keeps the default build and work-group size
    assert bc.build_options(long_, 16, on_cpu=False) == () and bc.work_group(long_, 16, 256, on_cpu=False) == 256


def test_long_programs_run_one_item_per_work_group() -> None:
    """An unoptimised kernel asks for work-groups of one item at every length (pocl then compiles
    no loop over the group's items, and each item's temporaries are its own), float32 or float64."""
    def prog(n: int, dtype: str) -> Composite:
        return Composite([dtype], [("tanh", ((("i", 0),) if k == 0 else (("s", k - 1),))) for k in range(n)],
                         [("s", n - 1)])
    assert bc.LONG_WORK_GROUP == 1
    for dtype in ("float32", "float64"):
        assert [bc.work_group(prog(n, dtype), 16, 256) for n in (64, 1000, 100_000)] == [1, 1, 1]
        assert bc.work_group(prog(63, dtype), 16, 256) == 256
