"""Elementwise kernels: one OpenCL kernel per Elemwise or fused Composite node.

Both run a Composite program (symgraph/tensor/composite.py: the one program format; a lone
Elemwise is a one-step program); the kernel source has one statement per step with a named
temporary, so long fused chains never nest. Two variants are generated: a contiguous fast path
(inputs either full C-contiguous arrays or single values) and a strided one (any rank,
broadcasting and transposed views via strides). Reductions and matrix products print the same
program into their loops and stores (``program_lines``).
"""
from __future__ import annotations

import hashlib
import math
import warnings
from typing import Any, Callable

import numpy as np

from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply, Variable
from symgraph.scalar import SCALAR_OPS
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import Elemwise
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray, Runtime

WORK_GROUP = 256
"""Work-items per work-group of the elementwise kernels (explicit, rounded to the device's limit)."""
VECTOR_WIDTH = 16
"""Elements each work-item of the contiguous kernel handles as one floatN vector (vloadN/vstoreN):
pocl maps these to SIMD registers, several times faster than relying on its work-group vectoriser."""


def program_dtypes(prog: Composite) -> set[np.dtype]:
    """Every dtype a program's values take (inputs, steps, outputs, inlined constants)."""
    dts = {np.dtype(d) for d in prog.in_dtypes + prog.step_dtypes + prog.out_dtypes}
    return dts | {np.dtype(a[1]) for _, args in prog.steps for a in args if a[0] == "c"}


def vector_width(prog: Composite) -> int:
    """Elements per work-item for the contiguous kernel: a float vector width when every value is
    the same float type and every op's C text is valid on vectors, else 1."""
    dts = program_dtypes(prog)
    if len(dts) != 1 or dts.pop() not in (np.float32, np.float64):
        return 1
    if not all(SCALAR_OPS[name].vector for name, _ in prog.steps):
        return 1
    return VECTOR_WIDTH


def program_lines(prog: Composite, load: list[str], width: int = 1) -> tuple[list[str], list[str], set[str]]:
    """Statements computing every step (one per op), the output expressions, and needed helpers."""
    lines: list[str] = []
    needed: set[str] = set()
    vt: Callable[[Any], str] = (lambda dt: ks.ctype(dt) + str(width)) if width > 1 else ks.ctype

    def arg(ref: tuple) -> tuple[str, Any]:
        if ref[0] == "i":
            return f"x{ref[1]}", prog.in_dtypes[ref[1]]
        if ref[0] == "s":
            return f"t{ref[1]}", prog.step_dtypes[ref[1]]
        return ks.literal(ref[2], ref[1]), ref[1]

    for k, expr in enumerate(load):
        lines.append(f"const {vt(prog.in_dtypes[k])} x{k} = {expr};")
    for j, ((name, refs), out_dtype) in enumerate(zip(prog.steps, prog.step_dtypes)):
        args = [arg(r) for r in refs]
        expr, helpers = ks.expression(SCALAR_OPS[name], [a for a, _ in args], [d for _, d in args], out_dtype, width)
        needed |= helpers
        lines.append(f"const {vt(out_dtype)} t{j} = {expr};  /* {name} */")
    return lines, [arg(ref)[0] for ref in prog.outputs], needed


def preamble(dtypes: set[np.dtype], needed: set[str]) -> str:
    """The lines before a kernel: the fp64 pragma where doubles appear, and the helpers it calls."""
    lines = []
    if np.dtype(np.float64) in dtypes:
        lines.append("#pragma OPENCL EXTENSION cl_khr_fp64 : enable")
    helper_src = ks.helpers(needed)
    if helper_src:
        lines.append(helper_src)
    return "\n".join(lines) + ("\n" if lines else "")


def _params(prog: Composite, ndim: int, strided: bool, by_value: list[bool]) -> list[str]:
    params = []
    for k, dt in enumerate(prog.in_dtypes):
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
    return [p for p in params if p]


def contiguous_source(name: str, prog: Composite, scalar_inputs: list[bool], by_value: list[bool]) -> str:
    """Kernel over C-contiguous inputs (or single values, ``scalar_inputs[k]``; host values passed
    ``by_value``) and outputs; each work-item handles ``vector_width(prog)`` consecutive elements."""
    width = vector_width(prog)

    def loads(w: int, idx: str) -> list[str]:
        vec = f"({ks.ctype(prog.in_dtypes[0])}{w})" if w > 1 and prog.in_dtypes else ""  # none: all constants
        return [f"{vec}(in{k})" if v else f"{vec}(in{k}[off{k}])" if s else
                (f"vload{w}({idx}, in{k} + off{k})" if w > 1 else f"in{k}[off{k} + {idx}]")
                for k, (s, v) in enumerate(zip(scalar_inputs, by_value))]
    lines, outs, needed = program_lines(prog, loads(1, "i" if width == 1 else "j"))
    params = ",\n        ".join(_params(prog, 0, False, by_value))
    head = f"{preamble(program_dtypes(prog), needed)}__kernel __attribute__((reqd_work_group_size({WORK_GROUP}, 1, 1)))\n" \
           f"void {name}(\n        {params})\n{{\n    const long i = get_global_id(0);\n"
    if width == 1:
        inner = "\n".join("        " + ln for ln in lines + [f"out{k}[i] = {o};" for k, o in enumerate(outs)])
        return head + f"    if (i < n) {{\n{inner}\n    }}\n}}\n"
    vlines, vouts, _ = program_lines(prog, loads(width, "i"), width)
    vinner = "\n".join("        " + ln for ln in vlines + [f"vstore{width}({o}, i, out{k});"
                                                          for k, o in enumerate(vouts)])
    tail = "\n".join("            " + ln for ln in lines + [f"out{k}[j] = {o};" for k, o in enumerate(outs)])
    return (head + f"    if ((i + 1) * {width} <= n) {{\n{vinner}\n    }} else {{\n"
            f"        for (long j = i * {width}; j < n; j++) {{  /* the last partial vector */\n{tail}\n"
            f"        }}\n    }}\n}}\n")


def strided_source(name: str, prog: Composite, ndim: int, by_value: list[bool], grid: bool = False) -> str:
    """Kernel over inputs of any strides (0 = broadcast) writing C-contiguous outputs. The ``grid``
    variant (ndim 3) takes its three indices from a 3-D launch, innermost axis first, so no work-item
    divides (64-bit division is slow on CPUs); the flat one splits a 1-D index over ``ndim`` axes."""
    if grid:
        index = ["const long i = (i0 * n1 + i1) * n2 + i2;"]
    else:
        index = ["long r = i;"]
        for d in reversed(range(1, ndim)):
            index.append(f"const long i{d} = r % n{d}; r /= n{d};")
        if ndim:
            index.append("const long i0 = r;")
    load = []
    for k in range(prog.nin):
        offs = " + ".join([f"off{k}"] + [f"i{d} * st{k}_{d}" for d in range(ndim)])
        load.append(f"in{k}" if by_value[k] else f"in{k}[{offs}]")
    lines, outs, needed = program_lines(prog, load)
    stores = [f"out{k}[i] = {o};" for k, o in enumerate(outs)]
    inner = "\n".join("        " + ln for ln in index + lines + stores)
    params = ",\n        ".join(_params(prog, ndim, True, by_value))
    if grid:
        attr, head = "", ("    const long i2 = get_global_id(0), i1 = get_global_id(1), i0 = get_global_id(2);\n"
                          "    if (i2 < n2 && i1 < n1 && i0 < n0) {\n")
    else:
        attr = f"__attribute__((reqd_work_group_size({WORK_GROUP}, 1, 1)))\n"
        head = "    const long i = get_global_id(0);\n    if (i < n) {\n"
    return f"{preamble(program_dtypes(prog), needed)}__kernel {attr}void {name}(\n        {params})\n{{\n{head}{inner}\n    }}\n}}\n"


def collapse_axes(shape: tuple, strides: list[list[int]], rank: int) -> tuple[list[int], list[list[int]]] | None:
    """``shape`` and each operand's element strides (0 = broadcast) with length-1 axes dropped and
    neighbours merged where every operand walks them as one axis, padded in front to ``rank`` axes;
    None when more than ``rank`` axes remain."""
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
    if len(out_shape) > rank:
        return None
    pad = rank - len(out_shape)
    return [1] * pad + out_shape, [[0] * pad + o for o in out_strides]


def _grid_local(shape: list[int]) -> tuple[int, int, int]:
    """Work-group sizes (innermost axis first) of a 3-D launch over ``shape``: at most WORK_GROUP items."""
    local, room = [], WORK_GROUP
    for n in reversed(shape):
        size = min(room, 1 << max(0, int(n - 1).bit_length()))
        local.append(size)
        room //= size
    return tuple(local)


def content_named(base: str, make) -> tuple[str, str]:
    """A kernel name ``base_<hash of the source>`` and the source: identical kernels share a name,
    so the build cache compiles each distinct kernel once per process."""
    digest = hashlib.sha1(make("KERNEL").encode()).hexdigest()[:6]
    name = f"{base}_{digest}"
    return name, make(name)


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


class ElementwiseKernel:
    """Runs a Composite program on device arrays: picks the contiguous or strided kernel per call.
    ``bound`` are the graph variables bound to the program's inputs (their static types plan the
    rare host evaluation)."""

    def __init__(self, runtime: Runtime, node: Apply, prog: Composite, bound: list[Variable], name: str,
                 scalar_inputs: list[bool], by_value: list[bool]):
        out_ndim = node.outputs[0].ndim
        self.runtime, self.node, self.prog, self.name = runtime, node, prog, name
        self.ndim, self.scalar_inputs, self.by_value = out_ndim, scalar_inputs, by_value
        self.host_plan = prog.plan(tuple(v.type for v in bound))
        self.what = f"output of {node.op}"  # names an allocation that fails
        self.value_types = [np.dtype("uint8" if d == "bool" else d) for d in prog.in_dtypes]
        self.variants = {  # kind -> (kernel name, source); each built on first use
            "fast": content_named(name, lambda n: contiguous_source(n, prog, scalar_inputs, by_value)),
            "grid": content_named(name + "_strided", lambda n: strided_source(n, prog, 3, by_value, grid=True))}
        if out_ndim > 3:  # shapes that do not collapse to three axes
            self.variants["strided"] = content_named(
                name + "_strided_flat", lambda n: strided_source(n, prog, out_ndim, by_value))
        self.sources = dict(self.variants.values())
        self._built: dict[str, Any] = {}
        self.out_dtypes = [np.dtype(d) for d in prog.out_dtypes]
        self.width = vector_width(prog)
        deps = prog.output_deps
        # Outputs that read only some inputs: their own shape can be smaller than the kernel's when
        # a length-1 axis of an input broadcasts at run time against a None axis of another.
        self.partial = [sorted(d) for d in deps if len(d) < prog.nin] if len(deps) > 1 else []

    def _shapes_differ(self, ins: list, shape: tuple) -> bool:
        return any(broadcast_shapes(self.node, [ins[k] for k in d if not self.by_value[k]], self.ndim) != shape
                   for d in self.partial)

    def _on_host(self, ins: list) -> list[DeviceArray]:
        """Rare path (run-time broadcasting that gives a fused Composite's outputs different shapes,
        which one index space cannot cover): evaluate the program with numpy and upload its outputs.
        Never silent: a RuntimeWarning says so, as for any host fallback."""
        warnings.warn(f"opencl backend: {self.node.op} ran on the host for a call whose inputs broadcast at run "
                      f"time to outputs of different shapes\n{node_context(self.node, ins)}", RuntimeWarning,
                      stacklevel=2)
        host = [np.asarray(a) if v else a.to_host() for a, v in zip(ins, self.by_value)]
        return [self.runtime.to_device(np.ascontiguousarray(o, dtype=dt), self.what)
                for o, dt in zip(self.prog.run(self.host_plan, host, buffered=False), self.out_dtypes)]
    def _kernel(self, kind: str) -> Any:
        if kind not in self._built:
            name, source = self.variants[kind]
            self._built[kind] = self.runtime.kernel(source, name)
        return self._built[kind]

    def __call__(self, ins: list[DeviceArray]) -> list[DeviceArray]:
        shape = broadcast_shapes(self.node, ins, self.ndim)
        if self.partial and self._shapes_differ(ins, shape):
            return self._on_host(ins)
        outs = [self.runtime.empty(shape, dt, self.what) for dt in self.out_dtypes]
        size = math.prod(shape)
        if size == 0:
            return outs
        fast = all(v or ((a.size == 1) if s else (a.shape == shape and a.is_contiguous))
                   for a, s, v in zip(ins, self.scalar_inputs, self.by_value))
        if fast:
            args: list = []
            for a, v, t in zip(ins, self.by_value, self.value_types):
                args += [t.type(a)] if v else [a.buffer, np.int64(a.offset)]
            args += [o.buffer for o in outs] + [np.int64(size)]
            items = -(-size // self.width)
            gsize = -(-items // WORK_GROUP) * WORK_GROUP
            self._kernel("fast")(self.runtime.queue, (gsize,), (WORK_GROUP,), *args)
            return outs
        strides = [[0] * self.ndim if v else broadcast_strides(a, self.ndim) for a, v in zip(ins, self.by_value)]
        grid = collapse_axes(shape, strides, 3)
        dims, strides = grid or collapse_axes(shape, strides, self.ndim)
        args = []
        for a, v, t, st in zip(ins, self.by_value, self.value_types, strides):
            args += [t.type(a)] if v else [a.buffer, np.int64(a.offset)] + [np.int64(x) for x in st]
        args += [o.buffer for o in outs] + [np.int64(size)] + [np.int64(n) for n in dims]
        if grid:
            local = _grid_local(dims)
            gsize = tuple(-(-n // l) * l for n, l in zip(reversed(dims), local))
            self._kernel("grid")(self.runtime.queue, gsize, local, *args)
        else:
            self._kernel("strided")(self.runtime.queue, (-(-size // WORK_GROUP) * WORK_GROUP,), (WORK_GROUP,), *args)
        return outs


def program_label(prog: Composite) -> str:
    """A kernel name stem saying what a program computes: its op, or ``fused_`` and its first
    few distinct ops."""
    if len(prog.steps) == 1:
        return prog.steps[0][0]
    return "fused_" + "_".join(dict.fromkeys(name for name, _ in prog.steps[:4])) if prog.steps else "copy"


def program_and_inputs(node: Apply) -> tuple[Composite, list[Variable]]:
    """The program of an Elemwise or Composite node and the variables bound to its inputs (scalar
    constants inlined, unless every input is one: a kernel reads at least one array)."""
    prog, bound = Composite.of_node(node)
    if not bound and isinstance(node.op, Elemwise):
        prog = Composite([v.dtype for v in node.inputs], [(node.op.scalar_op.name, [("i", k) for k in
                                                           range(len(node.inputs))])], [("s", 0)])
        bound = list(node.inputs)
    return prog, bound


@lowers(Elemwise, Composite)
def lower_elementwise(node: Apply, ctx: LowerContext) -> Lowered:
    """An Elemwise node or a fused Composite as one kernel: one statement per scalar op, scalar
    constants inlined as literals."""
    prog, bound = program_and_inputs(node)
    scalar = [all(s == 1 for s in v.type.shape) for v in bound]
    by_value = [v in ctx.host and v.type.ndim == 0 for v in bound]
    k = ElementwiseKernel(ctx.runtime, node, prog, bound, ctx.kernel_name(node, program_label(prog)), scalar, by_value)
    ctx.publish(k.sources)
    return Lowered(k, inputs=bound, host_inputs=frozenset(i for i, v in enumerate(by_value) if v),
                   label=program_label(prog))
