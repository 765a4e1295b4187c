"""Windowed reductions on the device: ``Pool`` (one work-item per output, looping over its
window), and the max-pool gradient as gathers: ``MaxPoolGrad`` gives each input element the sum,
in window order, of the gradients of the windows whose first maximum it is (it re-finds each
window's first maximum), and ``MaxPoolGradGrad`` reads, per window, the value at its first
maximum. No atomics: every result is computed by one work-item in a fixed order, so results are
deterministic and equal the numpy implementation's (``pool_numpy``), ties included.

Inputs are made C-contiguous and seen as (rows, *spatial): all leading axes are pooled alike."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_copy import contiguous
from symgraph.backends.opencl.kernels_elemwise import WORK_GROUP, content_named
from symgraph.backends.opencl.kernels_reduce import digits
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.errors import ShapeError, node_context
from symgraph.graph.basic import Apply
from symgraph.tensor.pooling import MaxPoolGrad, MaxPoolGradGrad, Pool, _Windowed
from symgraph.tensor.type import tensor_inputs, tensor_outputs
from symgraph.tensor.window import out_length, runtime_pads


def _head(dtype: Any) -> str:
    return "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" if np.dtype(dtype) == np.float64 else ""


def _lowest(dtype: Any) -> str:
    dt = np.dtype(dtype)
    return ks.literal(-np.inf, dt) if dt.kind == "f" else ks.literal(np.iinfo(dt).min, dt)


def _params(nd: int) -> list[str]:
    """Per axis: input length, output length, window length, stride, low padding, lhs dilation."""
    return [f"const long in{j}, const long un{j}, const long kn{j}, const long st{j}, const long lo{j}, "
            f"const long ad{j}" for j in range(nd)]


def _better(dtype: Any, v: str, best: str, have: str) -> str:
    """C condition: ``v`` replaces the running first maximum ``best`` (first NaN wins for floats)."""
    nan = f" || (isnan({v}) && !isnan({best}))" if np.dtype(dtype).kind == "f" else ""
    return f"({have} < 0 || {v} > {best}{nan})"


def _window_loop(nd: int, center: str, inner: list[str], indent: str = "") -> list[str]:
    """Loop over the taps t of the window at output position ``{center}0..`` (row-major tap
    number ``t``), with ``q`` the flat input index inside the row; ``inner`` runs for taps that
    meet an input element."""
    lines = [f"{indent}for (long t = 0; t < " + " * ".join(f"kn{j}" for j in range(nd)) + "; t++) {"]
    lines += [indent + "    " + ln for ln in digits("t", "k", nd)]
    lines.append(f"{indent}    long q = 0; int ok = 1;")
    for j in range(nd):
        lines += [f"{indent}    {{ long i = {center}{j} * st{j} + k{j} - lo{j};",
                  f"{indent}      if (i % ad{j}) ok = 0; i /= ad{j};",
                  f"{indent}      if (i < 0 || i >= in{j}) ok = 0;", f"{indent}      q = q * in{j} + i; }}"]
    lines += [f"{indent}    if (!ok) continue;"] + [indent + "    " + ln for ln in inner] + [f"{indent}}}"]
    return lines


def _kernel(name: str, dtype: Any, nd: int, params: list[str], body: list[str]) -> str:
    return (f"{_head(dtype)}__kernel void {name}(\n        " + ",\n        ".join(params + _params(nd)) + ")\n{\n"
            + "\n".join("    " + ln for ln in body) + "\n}\n")


def _sizes(nd: int, prefix: str) -> str:
    return " * ".join(f"{prefix}{j}" for j in range(nd))


def pool_source(name: str, dtype: Any, nd: int, mode: str) -> str:
    """y[row, u] = max or sum of x[row, window(u)]."""
    T = ks.ctype(dtype)
    init = _lowest(dtype) if mode == "max" else f"({T})0"
    step = ([f"acc = {_better(dtype, 'v', 'acc', 'seen')} ? v : acc; seen = 0;"] if mode == "max"
            else ["acc += v;"])
    body = ["const long e = get_global_id(0);", "if (e >= total) return;",
            f"const long row = e / ({_sizes(nd, 'un')}), pos = e % ({_sizes(nd, 'un')});", *digits("pos", "u", nd),
            f"const long base = xoff + row * ({_sizes(nd, 'in')});", f"{T} acc = {init};", "int seen = -1;",
            *_window_loop(nd, "u", [f"const {T} v = x[base + q];", *step]), "y[e] = acc;"]
    return _kernel(name, dtype, nd, [f"__global const {ks.ctype(dtype)} *restrict x", "const long xoff",
                                     f"__global {T} *restrict y", "const long total"], body)


def _first_max(dtype: Any, nd: int, center: str) -> list[str]:
    """Statements setting ``best_t`` (tap number, -1 if none) and ``best_q`` for the window at ``{center}*``."""
    T = ks.ctype(dtype)
    find = [f"const {T} v = x[base + q];",
            f"if {_better(dtype, 'v', 'best', 'best_t')} {{ best = v; best_t = t; best_q = q; }}"]
    return [f"{T} best = {_lowest(dtype)}; long best_t = -1, best_q = 0;", *_window_loop(nd, center, find)]


def grad_source(name: str, dtype: Any, nd: int) -> str:
    """gx[row, i] = sum over windows w containing i, in tap order, of g[row, w] if i is w's first maximum."""
    T = ks.ctype(dtype)
    body = ["const long e = get_global_id(0);", "if (e >= total) return;",
            f"const long row = e / ({_sizes(nd, 'in')}), pos = e % ({_sizes(nd, 'in')});", *digits("pos", "i", nd),
            f"const long base = xoff + row * ({_sizes(nd, 'in')});",
            f"const long gbase = goff + row * ({_sizes(nd, 'un')});", f"{T} acc = 0;",
            *[f"const long cn{j} = kn{j};" for j in range(nd)],
            "for (long tap = 0; tap < " + " * ".join(f"kn{j}" for j in range(nd)) + "; tap++) {",
            *["    " + ln for ln in digits("tap", "c", nd)], "    long w = 0; int hit = 1;"]
    for j in range(nd):  # the window whose tap `tap` is element i (if any)
        body += [f"    long v{j} = i{j} + lo{j} - c{j};", f"    if (v{j} < 0 || v{j} % st{j}) hit = 0;",
                 f"    v{j} /= st{j}; if (v{j} >= un{j}) hit = 0;", f"    w = w * un{j} + v{j};"]
    body += ["    if (!hit) continue;", *["    " + ln for ln in _first_max(dtype, nd, "v")],
             "    if (best_t == tap) acc += g[gbase + w];", "}", "gx[e] = acc;"]
    params = [f"__global const {T} *restrict x", "const long xoff", f"__global const {T} *restrict g",
              "const long goff", f"__global {T} *restrict gx", "const long total"]
    return _kernel(name, dtype, nd, params, body)


def select_source(name: str, dtype: Any, nd: int) -> str:
    """out[row, u] = gg[row, first maximum of window u of x] (0 for a window without elements)."""
    T = ks.ctype(dtype)
    body = ["const long e = get_global_id(0);", "if (e >= total) return;",
            f"const long row = e / ({_sizes(nd, 'un')}), pos = e % ({_sizes(nd, 'un')});", *digits("pos", "u", nd),
            f"const long base = xoff + row * ({_sizes(nd, 'in')});", *_first_max(dtype, nd, "u"),
            f"out[e] = best_t < 0 ? ({T})0 : gg[ggoff + row * ({_sizes(nd, 'in')}) + best_q];"]
    params = [f"__global const {T} *restrict x", "const long xoff", f"__global const {T} *restrict gg",
              "const long ggoff", f"__global {T} *restrict out", "const long total"]
    return _kernel(name, dtype, nd, params, body)


class PoolKernel:
    """One Pool, MaxPoolGrad or MaxPoolGradGrad node."""

    SOURCES: dict[str, Callable[..., str]] = {"Pool": pool_source, "MaxPoolGrad": grad_source,
                                             "MaxPoolGradGrad": select_source}

    def __init__(self, node: Apply, ctx: LowerContext):
        self.node, self.op, self.rt = node, node.op_as(_Windowed), ctx.runtime
        self.kind, self.nd = type(self.op).__name__, len(self.op.window)
        dtype = tensor_inputs(node)[0].dtype
        extra = (node.op_as(Pool).mode,) if self.kind == "Pool" else ()
        self.name, self.source = content_named(f"{self.kind.lower()}_{'_'.join(extra)}_{dtype}_{self.nd}d",
                                               lambda n: self.SOURCES[self.kind](n, dtype, self.nd, *extra))
        ctx.publish({self.name: self.source})

    def __call__(self, ins: list) -> list:
        op, nd = self.op, self.nd
        x = contiguous(ins[0])
        data = [contiguous(v) for v in ins[1:op.n_data]]
        padding = runtime_pads(op.padding, ins[op.n_data:], nd, str(op))
        dil = getattr(op, "lhs_dilation", (1,) * nd)
        in_sp = x.shape[x.ndim - nd:]
        out_sp = tuple(out_length(n, k, s, lo, hi, a) for n, k, s, (lo, hi), a
                       in zip(in_sp, op.window, op.strides, padding, dil))
        lead = x.shape[:x.ndim - nd]
        if self.kind == "MaxPoolGrad" and data[0].shape != lead + out_sp:
            raise ShapeError(f"max-pool gradient: the output gradient has shape {data[0].shape}, the pooled input "
                             f"{lead + out_sp}\n{node_context(self.node, ins)}")
        shape = x.shape if self.kind == "MaxPoolGrad" else lead + out_sp
        out = self.rt.empty(shape, np.dtype(tensor_outputs(self.node)[0].dtype), f"output of {op}")
        if out.size == 0:
            return [out]
        geo = []
        for j in range(nd):
            geo += [np.int64(v) for v in (in_sp[j], out_sp[j], op.window[j], op.strides[j], padding[j][0], dil[j])]
        args = [x.buffer, np.int64(x.offset)]
        for d in data:
            args += [d.buffer, np.int64(d.offset)]
        total = math.prod(shape)
        self.rt.kernel(self.source, self.name)(self.rt.queue, (-(-total // WORK_GROUP) * WORK_GROUP,), (WORK_GROUP,),
                                               *args, out.buffer, np.int64(total), *geo)
        return [out]


@lowers(Pool, MaxPoolGrad, MaxPoolGradGrad)
def lower_pool(node: Apply, ctx: LowerContext) -> Lowered | None:
    """The windowed reductions as one gather kernel each (operands of one dtype)."""
    op = node.op_as(_Windowed)
    if len({v.dtype for v in tensor_inputs(node)[:op.n_data]} | {tensor_outputs(node)[0].dtype}) > 1:
        return None
    hosted = frozenset({op.n_data}) if op.padding is None else frozenset()
    return Lowered(PoolKernel(node, ctx), host_inputs=hosted)
