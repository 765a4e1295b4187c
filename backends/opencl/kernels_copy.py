"""Strided copies on the device: ``dst[view] = src`` or ``dst[view] += src`` where both sides are
strided views (stride 0 broadcasts). Used to make arrays contiguous, and by concatenate, alloc,
set_subtensor and inc_subtensor on slices."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_elemwise import WORK_GROUP, content_named
from symgraph.backends.opencl.runtime import DeviceArray, _cl


def copy_source(name: str, dtype, ndim: int, add: bool) -> str:
    """Kernel walking the destination view's shape in C order, reading the source by its strides."""
    T = ks.ctype(dtype)
    index = ["long r = i;", "long d = doff;", "long s = soff;"]
    for k in reversed(range(ndim)):
        ix = f"r % n{k}" if k else "r"
        index.append(f"{{ const long q = {ix}; d += q * ds{k}; s += q * ss{k};{f' r /= n{k};' if k else ''} }}")
    op = "+=" if add else "="
    store = f"dst[d] {op} src[s];" if not (add and np.dtype(dtype).kind == "b") else "dst[d] = dst[d] | src[s];"
    params = [f"__global {T} *dst", "const long doff", f"__global const {T} *src", "const long soff", "const long n"]
    params += [f"const long n{k}, const long ds{k}, const long ss{k}" for k in range(ndim)]
    head = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" if np.dtype(dtype) == np.float64 else ""
    body = "\n".join("        " + ln for ln in index + [store])
    return (f"{head}__kernel __attribute__((reqd_work_group_size({WORK_GROUP}, 1, 1)))\nvoid {name}(\n        "
            + ",\n        ".join(params) + f")\n{{\n    const long i = get_global_id(0);\n"
            f"    if (i < n) {{\n{body}\n    }}\n}}\n")


def copy_kernel_source(dtype, ndim: int, add: bool = False) -> tuple[str, str]:
    """(name, source) of the strided copy kernel for this dtype, rank and mode."""
    return _copy_kernel_source(np.dtype(dtype).name, int(ndim), bool(add))


@lru_cache(maxsize=256)
def _copy_kernel_source(dtype: str, ndim: int, add: bool) -> tuple[str, str]:
    stem = f"{'add_into' if add else 'copy'}_{dtype}_{ndim}d"
    return content_named(stem, lambda n: copy_source(n, dtype, ndim, add))


def copy_into(dst: DeviceArray, src: DeviceArray, add: bool = False) -> None:
    """``dst = src`` (or ``dst += src``) elementwise, ``src`` broadcast to ``dst``'s shape."""
    rt = dst.runtime
    n = dst.size
    if n == 0:
        return
    if (not add and src.buffer is not dst.buffer and src.dtype == dst.dtype and src.shape == dst.shape
            and src.is_contiguous and dst.is_contiguous):  # one buffer copy (a memcpy on CPU devices)
        item = dst.dtype.itemsize
        _cl().enqueue_copy(rt.queue, dst.buffer, src.buffer, byte_count=n * item,
                           src_offset=src.offset * item, dst_offset=dst.offset * item)
        return
    pad = dst.ndim - src.ndim
    sstr = [0] * pad + [0 if sn == 1 else st for sn, st in zip(src.shape, src.strides)]
    for sn, dn in zip((1,) * pad + src.shape, dst.shape):
        if sn not in (1, dn):
            raise ValueError(f"cannot broadcast shape {src.shape} to {dst.shape}")
    name, source = copy_kernel_source(dst.dtype, dst.ndim, add)
    args = [dst.buffer, np.int64(dst.offset), src.buffer, np.int64(src.offset), np.int64(n)]
    for k in range(dst.ndim):
        args += [np.int64(dst.shape[k]), np.int64(dst.strides[k]), np.int64(sstr[k])]
    rt.kernel(source, name)(rt.queue, (-(-n // WORK_GROUP) * WORK_GROUP,), (WORK_GROUP,), *args)


def contiguous(x: DeviceArray) -> DeviceArray:
    """``x`` itself when C-contiguous, else a contiguous copy made on the device."""
    if x.is_contiguous:
        return x
    out = x.runtime.empty(x.shape, x.dtype, "contiguous copy", kernel_output=True)
    copy_into(out, x)
    return out


def broadcast_view(x: DeviceArray, shape: tuple) -> DeviceArray:
    """``x`` broadcast to ``shape`` as a view (stride 0 on broadcast axes)."""
    pad = len(shape) - x.ndim
    strides = [0] * pad + [0 if xn == 1 and sn != 1 else st for xn, sn, st in zip(x.shape, shape[pad:], x.strides)]
    for xn, sn in zip(x.shape, shape[pad:]):
        if xn not in (1, sn):
            raise ValueError(f"cannot broadcast shape {x.shape} to {tuple(shape)}")
    return x.view(shape, strides, x.offset)


def publish_copy(ctx, dtype, ndim: int, add: bool = False) -> None:
    """Show the copy kernel a lowering will use in ``f.kernels``."""
    name, source = copy_kernel_source(dtype, ndim, add)
    ctx.publish({name: source})

