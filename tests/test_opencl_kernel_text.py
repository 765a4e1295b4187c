"""Kernel text written once and from caches (issue 21: a long program's source is cheap to write):
``content_named`` generates a source once and names it by its hash; ``ctype`` and ``expression``
answer from caches exactly what they compute fresh. Pure text: no OpenCL device needed."""
from __future__ import annotations

import numpy as np
import pytest

from symgraph.backends.opencl import kernels_elemwise as ke
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.errors import BackendError
from symgraph.scalar import SCALAR_OPS


def test_content_named_generates_once_and_names_by_content() -> None:
    calls: list[str] = []

    def make(body: str):
        def gen(name: str) -> str:
            calls.append(name)
            return f"__kernel void {name}(__global float *x) {{ {body} }}  /* {name} */\n"
        return gen
    name, src = ke.content_named("k", make("x[0] = 1;"))
    assert len(calls) == 1
    assert src == make("x[0] = 1;")(name) and ke._NAME_SLOT not in src and src.count(name) == 2
    assert ke.content_named("k", make("x[0] = 1;"))[0] == name  # the same kernel: the same name
    assert ke.content_named("k", make("x[0] = 2;"))[0] != name


_DTYPES = ("float32", "float64", "int32", "int64", "uint8", "bool")


@pytest.mark.parametrize("name", sorted(n for n, op in SCALAR_OPS.items() if not op.is_random))
def test_cached_expression_is_the_fresh_one_with_these_names(name: str) -> None:
    """Every row, on mixed argument dtypes and two widths: the second call (from the cache), with
    other argument names, is the first call's text with those names; the helpers are the same."""
    sop = SCALAR_OPS[name]
    for k in range(len(_DTYPES)):
        arg_dtypes = [_DTYPES[(k + j) % len(_DTYPES)] for j in range(sop.nin)]
        try:
            out = np.dtype(sop.out_dtype(*arg_dtypes))
        except Exception:  # no output dtype for these inputs: nothing to print
            continue
        if not ks.supported_dtype(out):
            continue
        for width in (1, 16):
            ks._EXPRESSIONS.clear()
            first, helpers = ks.expression(sop, [f"a{j}" for j in range(sop.nin)], arg_dtypes, out, width)
            again, helpers2 = ks.expression(sop, [f"zz{j}" for j in range(sop.nin)], arg_dtypes, out, width)
            want = first
            for j in reversed(range(sop.nin)):  # (a1 before a10 never arises: at most 3 arguments)
                want = want.replace(f"a{j}", f"zz{j}")
            assert again == want and helpers == helpers2
            helpers2.add("mutated")  # the caller's set is its own: the cache is not changed
            assert "mutated" not in ks.expression(sop, ["b"] * sop.nin, arg_dtypes, out, width)[1]


def test_ctype_cache_answers_as_numpy_and_still_refuses() -> None:
    assert [ks.ctype(d) for d in ("float32", np.float64, np.dtype("int8"), "bool")] == \
        ["float", "double", "char", "uchar"]
    assert ks.ctype("float32") == "float"  # (from the cache)
    for _ in range(2):
        with pytest.raises(BackendError, match="float16"):
            ks.ctype("float16")
