"""The elementwise kernel at run time: ``ElementwiseKernel`` launches a Composite program's
contiguous or strided kernel (texts from ``kernels_elemwise``) on device arrays, and
``lower_elementwise`` makes one per Elemwise or fused Composite node. Kernel texts are generated
once per process per program (``_variant_sources``), so a function relinked for other sizes (a
``SizePlaced`` variant) reuses them."""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.backends.opencl import build_cost as bc
from symgraph.backends.opencl import kernels_random as kr
from symgraph.backends.opencl.kernels_elemwise import (
    WORK_GROUP,
    broadcast_shapes,
    broadcast_strides,
    collapse_axes,
    content_named,
    contiguous_source,
    merge_axes,
    program_and_inputs,
    program_label,
    strided_source,
    vector_width,
)
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray, Runtime
from symgraph.errors import node_context
from symgraph.graph.basic import Apply, Variable
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import Elemwise
from symgraph.tensor.type import tensor_outputs


def _grid_local(shape: list[int]) -> tuple[int, ...]:
    """Work-group sizes (innermost axis first) of a 3-D launch over ``shape``: at most WORK_GROUP items."""
    local, room = [], WORK_GROUP
    for n in reversed(shape):
        size = min(room, 1 << max(0, int(n - 1).bit_length()))
        local.append(size)
        room //= size
    return tuple(local)


def _variant_sources(name: str, prog: Composite, scalar_inputs: tuple, by_value: tuple, local: int,
                     out_ndim: int) -> dict[str, tuple[str, str]]:
    """Each kernel variant of a program (kind -> (kernel name, source))."""
    return dict(_generated(name, prog, scalar_inputs, by_value, local, out_ndim))


@functools.lru_cache(maxsize=64)
def _generated(name: str, prog: Composite, scalar_inputs: tuple, by_value: tuple, local: int,
               out_ndim: int) -> tuple[tuple[str, tuple[str, str]], ...]:
    """``_variant_sources``, generated once per process while among the 64 most recent: a function
    placed again for other sizes (a ``SizePlaced`` variant) links its programs without regenerating
    sources that take tens of ms."""
    variants = {
        "fast": content_named(name, lambda n: contiguous_source(n, prog, list(scalar_inputs), list(by_value), local)),
        "grid": content_named(name + "_strided", lambda n: strided_source(n, prog, 3, list(by_value), grid=True))}
    if out_ndim > 3:  # shapes that do not collapse to three axes
        variants["strided"] = content_named(
            name + "_strided_flat", lambda n: strided_source(n, prog, out_ndim, list(by_value)))
    return tuple(variants.items())


class ElementwiseKernel:
    """Runs a Composite program on device arrays: picks the contiguous or strided kernel per call.
    ``bound`` are the graph variables bound to the program's inputs (their static types plan the
    rare host evaluation)."""

    def __init__(self, runtime: Runtime, node: Apply, prog: Composite, bound: Sequence[Variable], name: str,
                 scalar_inputs: list[bool], by_value: list[bool]):
        out_ndim = tensor_outputs(node)[0].ndim
        self.runtime, self.node, self.prog, self.name = runtime, node, prog, name
        self.ndim, self.scalar_inputs, self.by_value = out_ndim, scalar_inputs, by_value
        self._bound_types = tuple(v.type for v in bound)  # plans the rare host evaluation (_on_host)
        self.what = f"output of {node.op}"  # names an allocation that fails
        self.value_types = [np.dtype("uint8" if d == "bool" else d) for d in prog.in_dtypes]
        self.local = bc.work_group(prog, vector_width(prog), WORK_GROUP, runtime.is_cpu)  # of the contiguous kernel
        self.variants = _variant_sources(name, prog, tuple(scalar_inputs), tuple(by_value), self.local, out_ndim)
        self.sources = dict(self.variants.values())
        self._built: dict[str, Any] = {}
        self.out_dtypes = [np.dtype(d) for d in prog.out_dtypes]
        self.width = vector_width(prog)
        self.roles = kr.input_roles(prog)
        self.random = kr.random_steps(prog)
        self.chunk = kr.CHUNK if self.random else 1  # elements per work-item of the width-1 kernels
        self.per_item = (kr.GROUP if self.random else self.width) if self.width > 1 else self.chunk  # fast kernel
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
        host = [a.to_host() if isinstance(a, DeviceArray) else np.asarray(a) for a in ins]
        return [self.runtime.to_device(np.ascontiguousarray(o, dtype=dt), self.what)
                for o, dt in zip(self.prog.run(self.prog.plan(self._bound_types), host, buffered=False),
                                 self.out_dtypes)]

    def _kernel(self, kind: str) -> Any:
        if kind not in self._built:
            name, source = self.variants[kind]
            options = bc.build_options(self.prog, self.width, self.runtime.is_cpu) if kind == "fast" else ()
            self._built[kind] = self.runtime.kernel(source, name, options)
        return self._built[kind]

    def _random_shapes(self, ins: list) -> list[tuple]:
        """Each random step's output shape (its flat index space), padded to the kernel's rank."""
        deps = self.prog.step_deps
        return [broadcast_shapes(self.node, [ins[k] for k in sorted(deps[j])], self.ndim) for j in self.random]

    def __call__(self, ins: list[DeviceArray]) -> list[DeviceArray]:
        shape = broadcast_shapes(self.node, ins, self.ndim)
        if self.partial and self._shapes_differ(ins, shape):
            return self._on_host(ins)
        outs = [self.runtime.empty(shape, dt, self.what, kernel_output=True) for dt in self.out_dtypes]
        size = math.prod(shape)
        if size == 0:
            return outs
        live = [(a, v, t, s) for a, v, t, s, r in zip(ins, self.by_value, self.value_types, self.scalar_inputs,
                                                      self.roles) if r != "shape"]
        rshapes = self._random_shapes(ins)
        if all(v or ((a.size == 1) if s else (a.shape == shape and a.is_contiguous)) for a, v, _, s in live) \
                and all(r == shape for r in rshapes):
            args: list = []
            for a, v, t, _ in live:
                args += [t.type(a)] if v else [a.buffer, np.int64(a.offset)]
            args += [o.buffer for o in outs] + [np.int64(size)]
            items = -(-size // self.per_item)
            gsize = -(-items // self.local) * self.local
            self._kernel("fast")(self.runtime.queue, (gsize,), (self.local,), *args)
            return outs
        self._strided(live, rshapes, outs, shape, size)
        return outs

    def _strided(self, live: list, rshapes: list, outs: list, shape: tuple, size: int) -> None:
        """Launch the grid (or flat strided) kernel; random steps' index strides ride along as
        operands of the axis merging, so merged axes keep their flat indices."""
        strides = [[0] * self.ndim if v else broadcast_strides(a, self.ndim) for a, v, _, _ in live]
        strides += [kr.index_strides(r) for r in rshapes]
        grid = collapse_axes(shape, strides, 3)
        dims, strides = grid or merge_axes(shape, strides, self.ndim)  # (never more than ndim axes)
        args = []
        for (a, v, t, _), st in zip(live, strides):
            args += [t.type(a)] if v else [a.buffer, np.int64(a.offset)] + [np.int64(x) for x in st]
        args += [o.buffer for o in outs] + [np.int64(size)] + [np.int64(n) for n in dims]
        args += [np.int64(x) for st in strides[len(live):] for x in st]
        if grid:
            runs = dims[:-1] + [-(-dims[-1] // self.chunk)]
            local = _grid_local(runs)
            gsize = tuple(-(-n // w) * w for n, w in zip(reversed(runs), local))
            self._kernel("grid")(self.runtime.queue, gsize, local, *args)
        else:
            items = -(-size // self.chunk)
            self._kernel("strided")(self.runtime.queue, (-(-items // WORK_GROUP) * WORK_GROUP,), (WORK_GROUP,), *args)


@lowers(Elemwise, Composite)
def lower_elementwise(node: Apply, ctx: LowerContext) -> Lowered:
    """An Elemwise node or a fused Composite as one kernel: one statement per scalar op, scalar
    constants inlined as literals."""
    prog, bound = program_and_inputs(node)
    scalar = [all(s == 1 for s in v.type.shape) for v in bound]
    roles = kr.input_roles(prog)
    by_value = [v in ctx.host and v.type.ndim == 0 and r != "shape" for v, r in zip(bound, roles)]
    k = ElementwiseKernel(ctx.runtime, node, prog, bound, ctx.kernel_name(node, program_label(prog)), scalar, by_value)
    ctx.publish(k.sources)
    return Lowered(k, inputs=bound, host_inputs=frozenset(i for i, v in enumerate(by_value) if v),
                   any_side=frozenset(i for i, r in enumerate(roles) if r == "shape"), label=program_label(prog))
