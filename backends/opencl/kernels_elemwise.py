"""Elementwise kernels' text: one OpenCL kernel per Elemwise or fused Composite node (launched by
``elemwise_kernel.ElementwiseKernel``), and the launch geometry they share with other kernels.

Both run a Composite program (symgraph/tensor/composite.py: the one program format; a lone
Elemwise is a one-step program); the kernel source has one statement per step with a named
temporary, so long fused chains never nest. Two variants are generated: a contiguous fast path
(inputs either full C-contiguous arrays or single values) and a strided one (any rank,
broadcasting and transposed views via strides). Reductions and matrix products print the same
program into their loops and stores (``program_lines``).

The vector kernel runs its last, partial vector through the same one copy of the program (padded
with zeros, only real elements stored), and a long program's vector kernel is built without
LLVM's optimiser in small work-groups: what a cold first call compiles stays near-linear in the
program's length (backends/opencl/build_cost.py, issue 21).

Programs with random steps (the scalar table's random rows) read each element's flat index in the
step's output: ``i`` in the contiguous kernel, index strides (``is<step>_<axis>``, 0 on broadcast
axes) in the strided ones. Their work-items run 16 consecutive elements (64 in the contiguous vector
kernel, whose draws come eight Philox blocks at a time), so one Philox block
serves all the elements it covers (backends/opencl/kernels_random.py). An input that random steps
read only for its shape (a draw's size) is never loaded; key and counter words stay scalars.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from symgraph.backends.opencl import kernels_random as kr
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.runtime import DeviceArray
from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply
from symgraph.scalar import SCALAR_OPS
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import Elemwise
from symgraph.tensor.type import TensorVariable, tensor_inputs

WORK_GROUP = 256
"""Work-items per work-group of the elementwise kernels (explicit, rounded to the device's limit)."""
VECTOR_WIDTH = 16
"""Elements each work-item of the contiguous kernel handles as one floatN vector (vloadN/vstoreN):
pocl maps these to SIMD registers, several times faster than relying on its work-group vectoriser."""

WRONG_IN_VECTORS: dict[str, dict[str, str | None]] = {  # by dtype name: row -> when (None: always)
    "float64": {"pow": None},
    "float32": dict.fromkeys(("sin", "cos", "tan"), "fabs(a0) >= 0x1p20f"),
}
"""Rows whose C function pocl's vector math library computes wrong on floatN/doubleN (right on
scalars), one lane spoiling the others: double pow with a zero lane (pow([0, 2, 3], 1) gave
[0, 2, 0.75]; 1e-300 ** 0.5 gave inf); float sin/cos/tan of a lane below 2^-8 beside a lane of
2^23 or more (sin(1e-3) gave 0.008). In vector code these steps call a helper function, built
once per kernel (``lane_helper_source``), that computes the vector with the vector function unless
a lane meets the row's condition (a C test of the lane ``a0``; 2^20 leaves a margin below 2^23),
else with the scalar function lane by lane: a long program calling it hundreds of times builds about
as fast as one calling the vector function (tests/test_opencl_vector_math.py sweeps every vector row)."""

_DOUBLE_ROWS = {"random_normal32", "random_binomial"}  # random rows computing in double internally


def program_dtypes(prog: Composite) -> set[np.dtype]:
    """Every dtype a program's values take (inputs, steps, outputs, inlined constants); float64
    also where a random row computes in double."""
    dts = {np.dtype(d) for d in prog.in_dtypes + prog.step_dtypes + prog.out_dtypes}
    if any(name in _DOUBLE_ROWS for name, _ in prog.steps):
        dts.add(np.dtype(np.float64))
    return dts | {np.dtype(a[1]) for _, args in prog.steps for a in args if a[0] == "c"}


def value_dtypes(prog: Composite) -> set[np.dtype]:
    """The dtypes of the values a work-item of the vector path holds as vectors: not the shape-only
    inputs nor the key and counter words of random steps (scalars)."""
    roles = kr.input_roles(prog)
    dts = {np.dtype(d) for k, d in enumerate(prog.in_dtypes) if roles[k] == "value"}
    dts |= {np.dtype(d) for d in prog.step_dtypes + prog.out_dtypes}
    for name, args in prog.steps:
        first = 6 if SCALAR_OPS[name].is_random else 0
        dts |= {np.dtype(a[1]) for a in args[first:] if a[0] == "c"}
    return dts


@functools.lru_cache(maxsize=256)
def vector_width(prog: Composite) -> int:
    """Elements per work-item for the contiguous kernel: a float vector width when every value is
    the same float type and every op's C text is valid on vectors, else 1 (once per program)."""
    dts = value_dtypes(prog)
    if len(dts) != 1 or dts.pop() not in (np.float32, np.float64):
        return 1
    if not all(SCALAR_OPS[name].vector for name, _ in prog.steps):
        return 1
    return VECTOR_WIDTH


def program_lines(prog: Composite, load: list[str | None], width: int = 1,
                  index: Callable[[int], str] | None = None) -> tuple[list[str], list[str], set[str]]:
    """Statements computing every step (one per op), the output expressions, and needed helpers.
    ``load[k]`` is input k's expression (None: not loaded, a shape-only input); ``index(j)`` the
    flat index of random step j's element (the first of the vector's when ``width`` > 1)."""
    lines: list[str] = []
    needed: set[str] = set()
    roles = kr.input_roles(prog)

    def vt(dt: Any, k: int | None = None) -> str:
        return ks.ctype(dt) + str(width) if width > 1 and (k is None or roles[k] == "value") else ks.ctype(dt)

    def arg(ref: tuple, scalar: bool = False) -> tuple[str, Any]:
        if ref[0] == "i":
            return f"x{ref[1]}", prog.in_dtypes[ref[1]]
        if ref[0] == "s":
            return f"t{ref[1]}", prog.step_dtypes[ref[1]]
        lit = ks.literal(ref[2], ref[1])  # a vector of it in vector code: OpenCL's pow, fmin, ... take no scalar
        return (f"({vt(ref[1])})({lit})" if width > 1 and not scalar else lit), ref[1]

    for k, expr in enumerate(load):
        if expr is not None:
            lines.append(f"const {vt(prog.in_dtypes[k], k)} x{k} = {expr};")
    for j, ((name, refs), out_dtype) in enumerate(zip(prog.steps, prog.step_dtypes)):
        args = [arg(r, scalar=SCALAR_OPS[name].is_random) for r in refs]  # a draw's words and parameters are scalars
        if SCALAR_OPS[name].is_random:
            if index is None:
                raise ValueError(f"{name} needs the element index, which this kernel does not provide")
            names, dtypes = [a for a, _ in args], [d for _, d in args]
            step, helpers = kr.step_lines(j, name, names, dtypes, out_dtype, width, index(j))
            lines += step
            needed |= helpers
            continue
        if width > 1 and name in WRONG_IN_VECTORS.get(out_dtype, ()):  # step dtypes are names
            helper = f"lanes_{name}_{out_dtype}_{width}"
            expr, helpers = f"{helper}({', '.join(a for a, _ in args)})", {helper}
        else:
            expr, helpers = ks.expression(SCALAR_OPS[name], [a for a, _ in args], [d for _, d in args], out_dtype,
                                          width)
        needed |= helpers
        lines.append(f"const {vt(out_dtype)} t{j} = {expr};  /* {name} */")
    return lines, [arg(ref)[0] for ref in prog.outputs], needed


def lane_helper_source(helper: str) -> str:
    """The C function ``lanes_<row>_<dtype>_<width>`` (see ``WRONG_IN_VECTORS``): the row on
    vectors of ``width`` elements of ``dtype``, lane by lane when a lane meets the row's condition.
    It is not inlined, so each kernel holds one copy of the scalar loop, however many steps call
    it."""
    name, dtype, width_text = helper[len("lanes_"):].rsplit("_", 2)
    width, sop, when = int(width_text), SCALAR_OPS[name], WRONG_IN_VECTORS[dtype][name]
    t, names = ks.ctype(dtype), [f"a{k}" for k in range(sop.nin)]
    vector, _ = ks.expression(sop, names, [dtype] * sop.nin, dtype, width)
    lane, _ = ks.expression(sop, [f"l{k}[e]" for k in range(sop.nin)], [dtype] * sop.nin, dtype, 1)
    body = [f"if (!any({when})) return {vector};"] if when else []
    body += [f"{t} l{k}[{width}]; vstore{width}(a{k}, 0, l{k});" for k in range(sop.nin)]
    body += [f"{t} r[{width}];", f"for (int e = 0; e < {width}; e++) r[e] = {lane};  /* lane by lane */",
             f"return vload{width}(0, r);"]
    params = ", ".join(f"const {t}{width} {a}" for a in names)
    return (f"__attribute__((noinline)) {t}{width} {helper}({params})\n{{\n    "
            + "\n    ".join(body) + "\n}")


def preamble(dtypes: set[np.dtype], needed: set[str]) -> str:
    """The lines before a kernel: the fp64 pragma where doubles appear, and the helpers it calls."""
    lines = []
    if np.dtype(np.float64) in dtypes:
        lines.append("#pragma OPENCL EXTENSION cl_khr_fp64 : enable")
    helper_src = "\n".join([ks.helpers({n for n in needed if not n.startswith(("sg_", "lanes_"))})]
                           + [lane_helper_source(n) for n in sorted(needed) if n.startswith("lanes_")]).strip()
    if helper_src:
        lines.append(helper_src)
    random_src = kr.helper_source({n for n in needed if n.startswith("sg_")})
    if random_src:
        lines.append(random_src)
    return "\n".join(lines) + ("\n" if lines else "")


def _params(prog: Composite, ndim: int, strided: bool, by_value: list[bool]) -> list[str]:
    roles = kr.input_roles(prog)
    params: list[str | None] = []
    for k, dt in enumerate(prog.in_dtypes):
        if roles[k] == "shape":
            continue
        if by_value[k]:
            params.append(f"const {ks.ctype(dt)} in{k}")
            continue
        params.append(f"__global const {ks.ctype(dt)} *restrict in{k}, const long off{k}")
        if strided:
            params.append(", ".join(f"const long st{k}_{d}" for d in range(ndim)) or None)
    for k, dt in enumerate(prog.out_dtypes):
        params.append(f"__global {ks.ctype(dt)} *restrict out{k}")
    params.append("const long n")
    if strided:
        params.append(", ".join(f"const long n{d}" for d in range(ndim)) or None)
        params += [", ".join(f"const long is{j}_{d}" for d in range(ndim)) or None for j in kr.random_steps(prog)]
    return [p for p in params if p]


def _kernel_head(name: str, prog: Composite, needed: set[str], params: list[str], attr: str) -> str:
    return (f"{preamble(program_dtypes(prog), needed)}__kernel {attr}void {name}(\n        "
            + ",\n        ".join(params) + ")\n{\n")


def contiguous_source(name: str, prog: Composite, scalar_inputs: list[bool], by_value: list[bool],
                      work_group: int = WORK_GROUP) -> str:
    """Kernel over C-contiguous inputs (or single values, ``scalar_inputs[k]``; host values passed
    ``by_value``) and outputs; each work-item handles ``vector_width(prog)`` consecutive elements
    (with random steps: ``kernels_random.GROUP`` as 16-wide sub-vectors, or ``kernels_random.CHUNK``
    when the program has no vector form), in work-groups of ``work_group`` items."""
    width = vector_width(prog)
    roles = kr.input_roles(prog)

    def loads(w: int, idx: str) -> list[str | None]:
        out: list[str | None] = []
        for k, (s, v) in enumerate(zip(scalar_inputs, by_value)):
            ww = w if roles[k] == "value" else 1
            vec = f"({ks.ctype(prog.in_dtypes[k])}{ww})" if ww > 1 else ""  # (no inputs at all: nothing loaded)
            out.append(None if roles[k] == "shape" else f"{vec}(in{k})" if v else f"{vec}(in{k}[off{k}])" if s else
                       (f"vload{ww}({idx}, in{k} + off{k})" if ww > 1 else f"in{k}[off{k} + {idx}]"))
        return out
    attr = f"__attribute__((reqd_work_group_size({work_group}, 1, 1)))\n"
    if width > 1 and not kr.random_steps(prog):
        return _padded_vector_source(name, prog, loads(width, "i"), by_value, width, attr)
    elem = "i" if width == 1 else "j"
    lines, outs, needed = program_lines(prog, loads(1, elem), index=lambda j: elem)
    cache = "".join(f"    {ln}\n" for ln in kr.cache_lines(prog))
    if width == 1:
        inner = "\n".join("        " + ln for ln in lines + [f"out{k}[i] = {o};" for k, o in enumerate(outs)])
        head = _kernel_head(name, prog, needed, _params(prog, 0, False, by_value), attr)
        if not kr.random_steps(prog):
            return head + f"    const long i = get_global_id(0);\n    if (i < n) {{\n{inner}\n    }}\n}}\n"
        return (head + f"    const long g = get_global_id(0);\n{cache}"
                f"    for (long i = g * {kr.CHUNK}, e = min(n, i + {kr.CHUNK}); i < e; i++) {{\n{inner}\n    }}\n}}\n")
    # a work-item runs a group of kr.GROUP elements: kr.SUBVECTORS sub-vectors v, grouped draws made at s == 0
    vlines, vouts, vneeded = program_lines(prog, loads(width, "v"), width, index=lambda j: f"v * {width}")
    head = _kernel_head(name, prog, needed | vneeded, _params(prog, 0, False, by_value), attr)
    vinner = "\n".join("            " + ln for ln in vlines + [f"vstore{width}({o}, v, out{k});"
                                                              for k, o in enumerate(vouts)])
    groups = "".join(f"        {ln}\n" for ln in kr.group_lines(prog))
    tail = "\n".join("            " + ln for ln in lines + [f"out{k}[j] = {o};" for k, o in enumerate(outs)])
    return (head + f"    const long i = get_global_id(0);\n{cache}"
            f"    if ((i + 1) * {kr.GROUP} <= n) {{\n{groups}"
            f"        for (int s = 0; s < {kr.SUBVECTORS}; s++) {{\n"
            f"            const long v = i * {kr.SUBVECTORS} + s;\n"
            f"{vinner}\n        }}\n    }} else {{\n"
            f"        for (long j = i * {kr.GROUP}; j < n; j++) {{  /* the last partial group */\n{tail}\n"
            f"        }}\n    }}\n}}\n")


def _padded_vector_source(name: str, prog: Composite, vloads: list[str | None], by_value: list[bool],
                          width: int, attr: str) -> str:
    """The vector kernel whose last, partial vector goes through the same one copy of the program:
    its elements are gathered into a private array padded with zeros, and only the real ones
    stored. The program text appears once, not twice (a vector body and a scalar tail): for a
    long program that halves what pocl compiles on the first launch, the cost that dominates a
    cold call. (Padding lanes compute values nobody stores; OpenCL math never traps.)"""
    gathered = [k for k, ld in enumerate(vloads) if ld is not None and ld.startswith("vload")]
    load: list[str | None] = list(vloads)
    for k in gathered:
        load[k] = f"(full ? {vloads[k]} : vload{width}(0, p{k}))"
    lines, outs, needed = program_lines(prog, load, width, index=lambda j: f"i * {width}")
    head = _kernel_head(name, prog, needed, _params(prog, 0, False, by_value), attr)
    body = [f"const long i = get_global_id(0), first = i * {width};",
            f"const int full = first + {width} <= n;",
            "if (!full && first >= n) return;"]
    for k in gathered:
        ct = ks.ctype(prog.in_dtypes[k])
        body += [f"{ct} p{k}[{width}];", f"if (!full) for (int e = 0; e < {width}; e++)",
                 f"    p{k}[e] = first + e < n ? in{k}[off{k} + first + e] : 0;"]
    body += lines
    for k, o in enumerate(outs):
        ct = ks.ctype(prog.out_dtypes[k])
        body += [f"if (full) vstore{width}({o}, i, out{k});",
                 f"else {{ {ct} q{k}[{width}]; vstore{width}({o}, 0, q{k});",
                 f"       for (int e = 0; e < {width} && first + e < n; e++) out{k}[first + e] = q{k}[e]; }}"]
    return head + "".join(f"    {ln}\n" for ln in body) + "}\n"


def strided_source(name: str, prog: Composite, ndim: int, by_value: list[bool], grid: bool = False) -> str:
    """Kernel over inputs of any strides (0 = broadcast) writing C-contiguous outputs. The ``grid``
    variant (ndim 3) takes its three indices from a 3-D launch, innermost axis first, so no work-item
    divides (64-bit division is slow on CPUs); the flat one splits a 1-D index over ``ndim`` axes.
    With random steps a work-item runs ``kernels_random.CHUNK`` elements along the innermost axis."""
    chunk = kr.CHUNK if kr.random_steps(prog) else 1
    if grid:
        index = ["const long i = (i0 * n1 + i1) * n2 + i2;"]
    else:
        index = ["long r = i;"]
        for d in reversed(range(1, ndim)):
            index.append(f"const long i{d} = r % n{d}; r /= n{d};")
        if ndim:
            index.append("const long i0 = r;")
    roles = kr.input_roles(prog)
    load: list[str | None] = []
    for k in range(prog.nin):
        offs = " + ".join([f"off{k}"] + [f"i{d} * st{k}_{d}" for d in range(ndim)])
        load.append(None if roles[k] == "shape" else f"in{k}" if by_value[k] else f"in{k}[{offs}]")
    lines, outs, needed = program_lines(
        prog, load, index=lambda j: " + ".join(f"i{d} * is{j}_{d}" for d in range(ndim)) or "0")
    stores = [f"out{k}[i] = {o};" for k, o in enumerate(outs)]
    inner = "\n".join("        " + ln for ln in index + lines + stores)
    cache = "".join(f"    {ln}\n" for ln in kr.cache_lines(prog))
    if grid:
        attr, ids = "", "const long i1 = get_global_id(1), i0 = get_global_id(2);\n"
        if chunk == 1:
            head = f"    const long i2 = get_global_id(0), {ids[11:]}    if (i2 < n2 && i1 < n1 && i0 < n0) {{\n"
            close = "    }\n"
        else:
            head = (f"    const long g2 = get_global_id(0), {ids[11:]}{cache}    if (i1 < n1 && i0 < n0) {{\n"
                    f"    for (long i2 = g2 * {chunk}, e2 = min(n2, i2 + {chunk}); i2 < e2; i2++) {{\n")
            close = "    }}\n"
    else:
        attr = f"__attribute__((reqd_work_group_size({WORK_GROUP}, 1, 1)))\n"
        if chunk == 1:
            head, close = "    const long i = get_global_id(0);\n    if (i < n) {\n", "    }\n"
        else:
            head = (f"    const long g = get_global_id(0);\n{cache}"
                    f"    for (long i = g * {chunk}, e = min(n, i + {chunk}); i < e; i++) {{\n")
            close = "    }\n"
    return _kernel_head(name, prog, needed, _params(prog, ndim, True, by_value), attr) + f"{head}{inner}\n{close}}}\n"


def collapse_axes(shape: tuple, strides: list[list[int]], rank: int) -> tuple[list[int], list[list[int]]] | None:
    """``merge_axes``, None when more than ``rank`` axes remain."""
    dims, merged = merge_axes(shape, strides, rank)
    return (dims, merged) if len(dims) <= rank else None


def merge_axes(shape: tuple, strides: list[list[int]], rank: int) -> tuple[list[int], list[list[int]]]:
    """``shape`` and each operand's element strides (0 = broadcast) with length-1 axes dropped and
    neighbours merged where every operand walks them as one axis, padded in front to ``rank`` axes
    (when fewer remain)."""
    out_shape: list[int] = []
    out_strides: list[list[int]] = [[] for _ in strides]
    for d, n in enumerate(shape):
        if n == 1:
            continue
        if out_shape and all(o[-1] == st[d] * n for o, st in zip(out_strides, strides)):
            out_shape[-1] *= n
            for o, st in zip(out_strides, strides):
                o[-1] = st[d]
        else:
            out_shape.append(n)
            for o, st in zip(out_strides, strides):
                o.append(st[d])
    pad = max(0, rank - len(out_shape))
    return [1] * pad + out_shape, [[0] * pad + o for o in out_strides]


_NAME_SLOT = "SG_KERNEL_NAME_SLOT"
"""What a kernel source is generated with in place of its name, replaced once its hash is known."""


def content_named(base: str, make) -> tuple[str, str]:
    """A kernel name ``base_<hash of the source>`` and the source: identical kernels share a name,
    so the build cache compiles each distinct kernel once per process. The source is generated
    once (with a placeholder name, hashed, then named): a long program's source takes tens of ms."""
    text = make(_NAME_SLOT)
    name = f"{base}_{hashlib.sha1(text.encode()).hexdigest()[:6]}"
    return name, text.replace(_NAME_SLOT, name)


def broadcast_strides(a: DeviceArray, ndim: int) -> list[int]:
    """``a``'s element strides over ``ndim`` output axes (numpy's right alignment): 0 on the axes
    it broadcasts along (missing in front, or of length 1)."""
    return [0] * (ndim - a.ndim) + [0 if n == 1 else st for n, st in zip(a.shape, a.strides)]


class Shaped:
    """Stands for a value computed only inside a fused kernel (or not yet computed): it has a shape."""

    def __init__(self, shape: tuple):
        self.shape, self.ndim = shape, len(shape)


def broadcast_shapes(node: Apply, arrays: list[DeviceArray], out_ndim: int) -> tuple:
    """The runtime output shape of an elementwise node (numpy broadcasting); ShapeError otherwise."""
    out = [1] * out_ndim
    for a in arrays:
        pad = out_ndim - a.ndim
        for d, n in enumerate(a.shape):
            o = out[pad + d]
            if n != 1 and o != 1 and n != o:
                raise ShapeError(f"elementwise {node.op}: input shapes {[list(x.shape) for x in arrays]} do not "
                                 f"broadcast (dimension {pad + d})\n{node_context(node, arrays)}")
            if n != 1:
                out[pad + d] = n
    return tuple(out)


def program_label(prog: Composite) -> str:
    """A kernel name stem saying what a program computes: its op, or ``fused_`` and its first
    few distinct ops."""
    if len(prog.steps) == 1:
        return prog.steps[0][0]
    return "fused_" + "_".join(dict.fromkeys(name for name, _ in prog.steps[:4])) if prog.steps else "copy"


def program_and_inputs(node: Apply) -> tuple[Composite, list[TensorVariable]]:
    """The program of an Elemwise or Composite node and the variables bound to its inputs (scalar
    constants inlined, unless every input is one: a kernel reads at least one array)."""
    prog, bound = Composite.of_node(node)
    if not bound and isinstance(node.op, Elemwise):
        bound = list(tensor_inputs(node))
        prog = Composite([v.dtype for v in bound], [(node.op.scalar_op.name, [("i", k) for k in
                                                     range(len(bound))])], [("s", 0)])
    return prog, bound
