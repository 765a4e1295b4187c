"""The OpenCL backend's vector path (16 elements per work-item as floatN/doubleN, contiguous
arrays) computes what its one-element path (strided arrays) computes, for every row of the
scalar table it vectorises, on values that stress math libraries: zeros of both signs, tiny and
denormal numbers, huge ones, infinities and NaN, mixed in every lane.

pocl's vector math library got some wrong, one lane spoiling the others (double ``pow`` beside a
zero lane; float ``sin``/``cos``/``tan`` of a lane below 2^-8 beside a lane of 2^23 or more): in
vector code those steps call a helper that goes lane by lane with the scalar function (for
sin/cos/tan only when a lane reaches 2^20; ``kernels_elemwise.WRONG_IN_VECTORS``), and this sweep
finds any other."""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import NO_OPENCL

import symgraph as sg
import symgraph.tensor as T
from symgraph.backends.opencl import kernels_elemwise as ke
from symgraph.errors import GraphTypeError
from symgraph.scalar import SCALAR_OPS
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import Elemwise

pytestmark = pytest.mark.skipif(NO_OPENCL is not None, reason=str(NO_OPENCL))

SPECIAL = [0.0, -0.0, 1.0, 2.0, 3.0, -2.5, 0.5, 1e-300, 1e-310, 1e-30, 1e-40, 1e30, 1e300, 100.0, -100.0,
           1e5, 710.0, -745.0, 88.0, np.inf, -np.inf, np.nan, 7.25, -1.0, 0.999, 1.001, -0.999, 0.1, -7.0]
VECTOR_ROWS = sorted(name for name, op in SCALAR_OPS.items() if op.vector and not op.is_random)
# each row builds four kernels (about 0.5 s on a cold pocl cache, as on CI): make test sweeps the
# rows known wrong and every third other row; SYMGRAPH_LONG_TESTS=1 (make fuzz) sweeps them all
KNOWN_WRONG = {"pow", "sin", "cos", "tan"}  # pocl got these wrong when they were vectorised
ROWS = VECTOR_ROWS if os.environ.get("SYMGRAPH_LONG_TESTS") == "1" else \
    [n for k, n in enumerate(VECTOR_ROWS) if n in KNOWN_WRONG or k % 3 == 0]
RTOL = {"float32": 1e-5, "float64": 1e-12}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ROWS)
def test_the_vector_path_computes_what_the_one_element_path_computes(name, dtype):
    op = SCALAR_OPS[name]
    xs = [T.vector(dtype=dtype) for _ in range(op.nin)]
    try:
        out = Elemwise(op)(*xs)
    except GraphTypeError:
        pytest.skip(f"{name} takes no {dtype} arguments")
    f = sg.function(xs, out, backend="opencl", placement="device", mode=None)  # the node as built
    every_other = sg.function(xs, Elemwise(op)(*[x[::2] for x in xs]), backend="opencl", placement="device",
                              mode=None)  # views with a stride on the device: the one-element kernel
    node = next(n for n in f.graph.apply_nodes if isinstance(n.op, Elemwise))
    vectorised = ke.vector_width(Composite.of_node(node)[0]) > 1
    rng = np.random.default_rng(sum(map(ord, name + dtype)))
    with np.errstate(all="ignore"):
        for _ in range(4):
            vals = [rng.choice(SPECIAL, 16 * 24).astype(dtype) for _ in range(op.nin)]
            whole = f(*vals)  # contiguous: the vector kernel
            one_by_one = every_other(*[np.repeat(v, 2) for v in vals])
            assert whole.dtype == one_by_one.dtype
            tiny = 4 * np.finfo(dtype).smallest_subnormal  # a last-bit difference of a subnormal result
            np.testing.assert_allclose(whole, one_by_one, rtol=RTOL[dtype], atol=tiny, equal_nan=True,
                                       err_msg=f"{name} on {dtype}{'N' if vectorised else ''}")
    assert vectorised == (out.dtype == dtype)
    lane_by_lane = any("lane by lane" in src for k, src in f.kernels.items() if "_strided" not in k)
    assert lane_by_lane == (name in ke.WRONG_IN_VECTORS[dtype] and vectorised)


def test_pocls_wrong_pow_example_computes_right():
    x = T.dvector("x")
    f = sg.function([x], x ** 1.0, backend="opencl", placement="device")
    np.testing.assert_array_equal(f(np.array([0.0, 2.0, 3.0])), [0.0, 2.0, 3.0])


@pytest.mark.parametrize("name", ["sin", "cos", "tan"])
def test_pocls_wrong_sin_example_computes_right(name):
    """Tiny lanes beside a lane of 2^23 (pocl's vector sin spoils them) and without it (the helper
    takes the vector function then): both equal numpy."""
    x = T.fvector("x")
    f = sg.function([x], getattr(T, name)(x), backend="opencl", placement="device")
    tiny = np.full(32, 1e-3, np.float32)
    beside = tiny.copy()
    beside[5] = 2.0 ** 23
    for v in (tiny, beside):
        np.testing.assert_allclose(f(v), getattr(np, name)(v), rtol=1e-6)
    [helper] = [line for src in f.kernels.values() for line in src.splitlines() if "noinline" in line]
    assert f"lanes_{name}_float32_16" in helper
