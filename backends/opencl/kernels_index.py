"""Integer-array indexing on the device: gather (``x[idx]`` with any mix of index arrays, slices,
integers, newaxis and boolean masks), scatter (set_subtensor / inc_subtensor on any index) and
one_hot.

Bounds: a kernel never touches memory through an out-of-range index; it skips it and records the
first bad index of its node in the function's check buffer (see ``lowering.Checks``), which the
function reads once at the end of the call and raises as IndexError naming the node.

Scatter is deterministic and uses no atomics: one work-item per position of the non-indexed
(slice) dimensions walks the index arrays in order. Targets of different work-items differ in
those dimensions, so they never collide; repeated indices within a work-item accumulate in
np.add.at's order (bitwise equal to numpy) and set_subtensor keeps the last value, as numpy does.
The cost: parallelism is the size of the slice dimensions (e.g. the embedding width), so a 1-d
scatter runs serially on one work-item.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_copy import copy_into, publish_copy
from symgraph.backends.opencl.kernels_elemwise import WORK_GROUP, broadcast_strides, content_named
from symgraph.backends.opencl.kernels_reduce import digits
from symgraph.backends.opencl.kernels_shape import _index_view
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray, Runtime
from symgraph.graph.basic import Apply
from symgraph.tensor.nnet import OneHot
from symgraph.tensor.subtensor import AdvancedSubtensor, IncSubtensor, _IndexOp
from symgraph.tensor.type import tensor_inputs, tensor_outputs

_BAD = ("if (v{k} < 0 || v{k} >= an{k}) {{ if (atomic_cmpxchg((__global int *)(err + 4 * slot), 0, 1) == 0) "
        "{{ err[4 * slot + 1] = (long)idx{k}[q{k}]; err[4 * slot + 2] = ax{k}; err[4 * slot + 3] = an{k}; }} {skip} }}")


def _head(dtypes: list) -> str:
    return "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" if any(np.dtype(d) == np.float64 for d in dtypes) else ""


def _array_params(idx_dtypes: tuple) -> list[str]:
    return [f"__global const {ks.ctype(d)} *restrict idx{k}, const long ioff{k}, const long an{k}, "
            f"const long as{k}, const long ax{k}" for k, d in enumerate(idx_dtypes)]


def _resolve(idx_dtypes: tuple, pos: str, skip: str) -> list[str]:
    """Statements reading every index, wrapping negatives, checking bounds and adding to ``pos``."""
    lines = []
    for k in range(len(idx_dtypes)):
        lines += [f"long v{k} = (long)idx{k}[q{k}];", f"if (v{k} < 0) v{k} += an{k};",
                  _BAD.format(k=k, skip=skip), f"{pos} += v{k} * as{k};"]
    return lines


def gather_source(name: str, dtype, idx_dtypes: tuple, ndim: int) -> str:
    """out[i] (contiguous, ``ndim`` dims) = x[view offset of i's slice coordinates + indexed positions]."""
    T, A = ks.ctype(dtype), len(idx_dtypes)
    params = [f"__global {T} *restrict out", f"__global const {T} *restrict x", "const long xoff", "const long total",
              "__global long *err", "const long slot"] + _array_params(idx_dtypes)
    params += [f"const long n{d}, const long xs{d}" + "".join(f", const long is{k}_{d}" for k in range(A))
               for d in range(ndim)]
    body = ["const long i = get_global_id(0);", "if (i >= total) return;", "long r = i, p = xoff;"]
    body += [f"long q{k} = ioff{k};" for k in range(A)]
    for d in reversed(range(ndim)):
        step = "".join(f" q{k} += c * is{k}_{d};" for k in range(A))
        body.append(f"{{ const long c = {f'r % n{d}' if d else 'r'};{f' r /= n{d};' if d else ''} "
                    f"p += c * xs{d};{step} }}")
    body += _resolve(idx_dtypes, "p", f"out[i] = ({T})0; return;") + ["out[i] = x[p];"]
    return (f"{_head([dtype])}__kernel void {name}(\n        " + ",\n        ".join(params) + ")\n{\n"
            + "\n".join("    " + ln for ln in body) + "\n}\n")


def scatter_source(name: str, dtype, idx_dtypes: tuple, n_slice: int, n_adv: int, add: bool) -> str:
    """One work-item per slice position of ``out``: for each index position in order,
    out[target] = y (set) or out[target] += y (add)."""
    T, A = ks.ctype(dtype), len(idx_dtypes)
    params = [f"__global {T} *restrict out", "const long ooff", f"__global const {T} *restrict y", "const long yoff",
              "const long m", "const long nb", "__global long *err", "const long slot"] + _array_params(idx_dtypes)
    params += [f"const long n{d}, const long os{d}, const long ys{d}" for d in range(n_slice)]
    params += [f"const long bn{j}, const long bys{j}" + "".join(f", const long is{k}_{j}" for k in range(A))
               for j in range(n_adv)]
    body = ["const long i = get_global_id(0);", "if (i >= m) return;", "long r = i, o = ooff, yo = yoff;"]
    for d in reversed(range(n_slice)):
        body.append(f"{{ const long c = {f'r % n{d}' if d else 'r'};{f' r /= n{d};' if d else ''} "
                    f"o += c * os{d}; yo += c * ys{d}; }}")
    loop = ["long rb = b, p = o, yp = yo;"] + [f"long q{k} = ioff{k};" for k in range(A)]
    for j in reversed(range(n_adv)):
        step = "".join(f" q{k} += c * is{k}_{j};" for k in range(A))
        loop.append(f"{{ const long c = {f'rb % bn{j}' if j else 'rb'};{f' rb /= bn{j};' if j else ''} "
                    f"yp += c * bys{j};{step} }}")
    store = ("out[p] = out[p] | y[yp];" if np.dtype(dtype).kind == "b" else "out[p] += y[yp];") if add \
        else "out[p] = y[yp];"
    loop += _resolve(idx_dtypes, "p", "continue;") + [store]
    body += ["for (long b = 0; b < nb; b++) {"] + ["    " + ln for ln in loop] + ["}"]
    return (f"{_head([dtype])}__kernel void {name}(\n        " + ",\n        ".join(params) + ")\n{\n"
            + "\n".join("    " + ln for ln in body) + "\n}\n")


@lru_cache(maxsize=256)
def _source(kind: str, *key) -> tuple[str, str]:
    """(name, source) of a gather/scatter kernel, cached per (dtype, index dtypes, ranks, mode)."""
    dtype, idx_dtypes = key[0], key[1]
    stem = f"{kind}_{np.dtype(dtype).name}_{len(idx_dtypes)}idx"
    make = (lambda n: gather_source(n, *key)) if kind == "gather" else (lambda n: scatter_source(n, *key))
    return content_named(stem, make)


@dataclass
class IndexPlan:
    """``x[index]`` as a slice view of ``x`` plus index arrays: output dims are (length, view
    stride, adv) where adv is the index-broadcast dim number or None for a slice dim."""
    view: DeviceArray
    arrays: list
    axes: list
    x_axes: list
    dims: list
    bshape: tuple
    first: int

    @property
    def shape(self) -> tuple:
        return tuple(n for n, _, _ in self.dims)

    def array_args(self) -> list:
        """Kernel arguments of every index array: buffer, offset, axis length and stride, x axis."""
        args = []
        for a, ax, xax in zip(self.arrays, self.axes, self.x_axes):
            args += [a.buffer, np.int64(a.offset), np.int64(self.view.shape[ax]), np.int64(self.view.strides[ax]),
                     np.int64(xax)]
        return args

    def array_strides(self, k: int) -> list[int]:
        """Strides of index array k over the broadcast index dims (0 where it broadcasts)."""
        return broadcast_strides(self.arrays[k], len(self.bshape))


def index_plan(op, x: DeviceArray, parts: list, rt: Runtime) -> IndexPlan:
    """Split ``x[op.np_index(parts)]`` into a view (slices, integers, newaxis applied; indexed
    axes kept whole) and index arrays; boolean masks (host values) become their nonzero arrays."""
    it = iter(parts)
    basic: list[slice | int | None] = []
    arrays, axes, x_axes, adv_pos = [], [], [], []
    vax = xax = 0
    first = None
    for pos, e in enumerate(op.idx_list):
        if e is None or isinstance(e, tuple):
            vals = [next(it) for _ in range(sum(e))] if e is not None else []
            if e is not None:
                flags = iter(vals)
                basic.append(slice(*(int(next(flags)) if f else None for f in e)))
                xax += 1
            else:
                basic.append(None)
            vax += 1
            continue
        v = next(it)
        if first is None:
            first = vax
        adv_pos.append(pos)
        if e == "i":
            basic.append(int(v))
            xax += 1
            continue
        if e == "b":
            mask = np.asarray(v)
            if mask.shape != tuple(x.shape[xax:xax + mask.ndim]):
                raise IndexError(f"boolean index did not match indexed array along axis {xax}; size of axis is "
                                 f"{x.shape[xax] if xax < x.ndim else 0} but size of corresponding boolean axis "
                                 f"is {mask.shape[0]} (mask shape {mask.shape}, array shape {x.shape})")
            comps = [rt.to_device(c.astype(np.int64), "boolean mask positions") for c in np.nonzero(mask)]
        else:
            comps = [v]
        for c in comps:
            arrays.append(c)
            axes.append(vax)
            x_axes.append(xax)
            basic.append(slice(None))
            vax += 1
            xax += 1
    view = _index_view(x, tuple(basic))
    try:
        bshape = tuple(np.broadcast_shapes(*(a.shape for a in arrays))) if arrays else ()
    except ValueError:
        raise IndexError("shape mismatch: indexing arrays could not be broadcast together with shapes "
                         + " ".join(str(a.shape) for a in arrays)) from None
    adjacent = adv_pos == list(range(adv_pos[0], adv_pos[-1] + 1)) if adv_pos else True
    first = first if adjacent and first is not None else 0
    slice_dims = [(n, s, None) for d, (n, s) in enumerate(zip(view.shape, view.strides)) if d not in axes]
    dims = slice_dims[:first] + [(n, 0, j) for j, n in enumerate(bshape)] + slice_dims[first:]
    return IndexPlan(view, arrays, axes, x_axes, dims, bshape, first)


def _launch(rt: Runtime, kernel, n: int, args: list) -> None:
    kernel(rt.queue, (-(-n // WORK_GROUP) * WORK_GROUP,), (WORK_GROUP,), *args)


def gather(plan: IndexPlan, dtype, checks, slot: int, what: str) -> DeviceArray:
    """A new contiguous array ``x[index]`` from ``plan``."""
    rt = plan.view.runtime
    out = rt.empty(plan.shape, dtype, what)
    if out.size == 0:
        return out
    if not plan.arrays:
        copy_into(out, plan.view)
        return out
    idt = tuple(a.dtype.name for a in plan.arrays)
    name, src = _source("gather", np.dtype(dtype).name, idt, len(plan.dims))
    args = [out.buffer, plan.view.buffer, np.int64(plan.view.offset), np.int64(out.size), checks.buffer(),
            np.int64(slot)] + plan.array_args()
    istr = [plan.array_strides(k) for k in range(len(plan.arrays))]
    for n, s, j in plan.dims:
        args += [np.int64(n), np.int64(s)] + [np.int64(0 if j is None else st[j]) for st in istr]
    _launch(rt, rt.kernel(src, name), out.size, args)
    checks.ran()
    return out


def scatter(plan: IndexPlan, y: DeviceArray, add: bool, checks, slot: int) -> None:
    """``plan.view[index] = y`` (or ``+= y``, repeated indices accumulating) in place."""
    rt = plan.view.runtime
    shape = plan.shape
    pad = len(shape) - y.ndim
    if pad < 0 or any(yn not in (1, n) for yn, n in zip(y.shape, shape[pad:])):
        raise ValueError(f"shape mismatch: value array of shape {y.shape} could not be broadcast to indexing "
                         f"result of shape {shape}")
    ystr = [0] * pad + [0 if yn == 1 else s for yn, s in zip(y.shape, y.strides)]
    if not plan.arrays:  # slices and integers only: plan.view is the indexed part
        copy_into(plan.view, y, add)
        return
    sl = [(n, s, ystr[d]) for d, (n, s, j) in enumerate(plan.dims) if j is None]
    ad = [(n, ystr[d], j) for d, (n, s, j) in enumerate(plan.dims) if j is not None]
    m = math.prod([n for n, _, _ in sl])
    nb = math.prod(plan.bshape)
    if m == 0 or nb == 0:
        return
    idt = tuple(a.dtype.name for a in plan.arrays)
    name, src = _source("scatter", plan.view.dtype.name, idt, len(sl), len(ad), add)
    args = [plan.view.buffer, np.int64(plan.view.offset), y.buffer, np.int64(y.offset), np.int64(m), np.int64(nb),
            checks.buffer(), np.int64(slot)] + plan.array_args()
    for n, s, ys in sl:
        args += [np.int64(n), np.int64(s), np.int64(ys)]
    istr = [plan.array_strides(k) for k in range(len(plan.arrays))]
    for n, ys, j in ad:
        args += [np.int64(n), np.int64(ys)] + [np.int64(st[j]) for st in istr]
    _launch(rt, rt.kernel(src, name), m, args)
    checks.ran()


def _host_parts(op) -> frozenset:
    """Index inputs needed on the host: slice bounds, integers and boolean masks (offset by 1 for x)."""
    out: list[int] = []
    k = 0
    for e in op.idx_list:
        n = sum(e) if isinstance(e, tuple) else 0 if e is None else 1
        if e != "a":
            out += range(k, k + n)
        k += n
    return frozenset(out)


def _static_index_dtypes(node: Apply, parts_at: int) -> tuple:
    """The dtypes of the index arrays the kernel will see (a mask becomes ndim int64 arrays)."""
    out, rank, it = [], 0, iter(tensor_inputs(node)[parts_at:])
    for e in node.op_as(_IndexOp).idx_list:
        ps = [next(it) for _ in range(sum(e) if isinstance(e, tuple) else 0 if e is None else 1)]
        if e == "a":
            out.append(ps[0].dtype)
            rank = max(rank, ps[0].ndim)
        elif e == "b":
            out += ["int64"] * ps[0].ndim
            rank = max(rank, 1)
    return tuple(out), rank


def _out_of_bounds(bad: int, axis: int, n: int) -> str:
    return f"index {bad} is out of bounds for axis {axis} with size {n}"


@lowers(AdvancedSubtensor)
def lower_advanced_subtensor(node: Apply, ctx: LowerContext) -> Lowered:
    """x[index] with index arrays: one gather kernel (masks: their positions uploaded once per call)."""
    op, rt, dtype = node.op, ctx.runtime, tensor_outputs(node)[0].dtype
    slot = ctx.checks.slot(node, _out_of_bounds)
    publish_copy(ctx, dtype, tensor_outputs(node)[0].ndim)
    ctx.publish(dict([_source("gather", np.dtype(dtype).name, _static_index_dtypes(node, 1)[0],
                              tensor_outputs(node)[0].ndim)]))
    host = _host_parts(op)

    def run(ins: list) -> list:
        plan = index_plan(op, ins[0], ins[1:], rt)
        return [gather(plan, dtype, ctx.checks, slot, f"output of {op}")]
    return Lowered(run, host_inputs=frozenset(k + 1 for k in host))


@lowers(IncSubtensor)
def lower_inc_subtensor(node: Apply, ctx: LowerContext) -> Lowered:
    """set_subtensor / inc_subtensor: a copy of x, then the scatter (or a strided copy for slices)."""
    op, rt = node.op_as(IncSubtensor), ctx.runtime
    x = tensor_inputs(node)[0]
    slot = ctx.checks.slot(node, _out_of_bounds)
    publish_copy(ctx, x.dtype, x.ndim)
    add = not op.set_instead_of_inc
    if op.advanced:
        idt, nb = _static_index_dtypes(node, 2)
        sub_ndim = len(op.out_static_shape(x, tensor_inputs(node)[2:]))
        ctx.publish(dict([_source("scatter", np.dtype(x.dtype).name, idt, sub_ndim - nb, nb, add)]))
    host = _host_parts(op)

    def run(ins: list) -> list:
        xv, y = ins[0], ins[1]
        out = rt.empty(xv.shape, xv.dtype, f"output of {op}")
        copy_into(out, xv)
        if out.size:
            scatter(index_plan(op, out, ins[2:], rt), y, add, ctx.checks, slot)
        return [out]
    return Lowered(run, host_inputs=frozenset(k + 2 for k in host))


def one_hot_source(name: str, idx_dtype, ndim: int) -> str:
    """out[row, k] = (idx[row] == k) over a strided ``ndim``-d idx; out is contiguous (rows, n)."""
    I = ks.ctype(idx_dtype)
    params = ["__global uchar *restrict out", f"__global const {I} *restrict idx", "const long ioff", "const long rows",
              "const long n", "__global long *err", "const long slot"]
    params += [f"const long kn{d}, const long ks{d}" for d in range(ndim)]
    offset = " + ".join(["ioff"] + [f"k{d} * ks{d}" for d in range(ndim)])
    body = ["const long i = get_global_id(0);", "if (i >= rows * n) return;", "const long o = i / n;"]
    body += digits("o", "k", ndim) + [f"const long q = {offset};"]
    body += ["const long v = (long)idx[q];",
             "if (v < 0 || v >= n) { if (atomic_cmpxchg((__global int *)(err + 4 * slot), 0, 1) == 0) "
             "{ err[4 * slot + 1] = v; err[4 * slot + 2] = 0; err[4 * slot + 3] = n; } out[i] = 0; return; }",
             "out[i] = (v == i % n);"]
    return (f"__kernel void {name}(\n        " + ",\n        ".join(params) + ")\n{\n"
            + "\n".join("    " + ln for ln in body) + "\n}\n")


@lowers(OneHot)
def lower_one_hot(node: Apply, ctx: LowerContext) -> Lowered:
    """one_hot(idx, like): one work-item per output element; like's values are never read."""
    idx = tensor_inputs(node)[0]
    name, src = content_named(f"one_hot_{idx.dtype}_{idx.ndim}d", lambda n: one_hot_source(n, idx.dtype, idx.ndim))
    ctx.publish({name: src})
    rt = ctx.runtime
    slot = ctx.checks.slot(node, lambda bad, axis, n: f"OneHot: class index {bad} is out of range for {n} classes")

    def run(ins: list) -> list:
        iv, like = ins
        n = like.shape[-1]
        out = rt.empty(iv.shape + (n,), "bool", f"output of {node.op}")
        if out.size:
            args = [out.buffer, iv.buffer, np.int64(iv.offset), np.int64(iv.size), np.int64(n), ctx.checks.buffer(),
                    np.int64(slot)]
            for d in range(iv.ndim):
                args += [np.int64(iv.shape[d]), np.int64(iv.strides[d])]
            _launch(rt, rt.kernel(src, name), out.size, args)
            ctx.checks.ran()
        return [out]
    return Lowered(run)
