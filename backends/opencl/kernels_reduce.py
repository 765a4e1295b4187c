"""Reduction kernels (sum, prod, max, min, all, any; argmax, argmin) along any axes of a strided
input. Two variants: one work-item per output element (many short reductions) and one
work-group per output element with a local-memory tree (few long reductions)."""
from __future__ import annotations

import numpy as np

from symgraph.graph.basic import Apply
from symgraph.scalar import SCALAR_OPS
from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.kernels_elemwise import content_named
from symgraph.backends.opencl.lowering import LowerContext, Lowered, lowers
from symgraph.backends.opencl.runtime import DeviceArray, Runtime

GROUP = 128
"""Work-items per work-group in the tree variant."""

_OPS = {"add": "add", "mul": "mul", "maximum": "maximum", "minimum": "minimum", "and": "and_", "or": "or_"}


def _identity(op: str, dtype: np.dtype) -> str:
    if op in ("add", "or"):
        return ks.literal(0, dtype)
    if op in ("mul", "and"):
        return ks.literal(1, dtype)
    big = float("inf") if dtype.kind == "f" else (np.iinfo(dtype).max if dtype.kind in "iu" else 1)
    small = -float("inf") if dtype.kind == "f" else (np.iinfo(dtype).min if dtype.kind in "iu" else 0)
    return ks.literal(small if op == "maximum" else big, dtype)


def _index(prefix: str, var: str, dims: int, out: str) -> list[str]:
    """Statements adding to ``out`` the strided offset of flat index ``var`` over ``dims`` axes."""
    if not dims:
        return []
    lines = [f"long {prefix}r = {var};"]
    for d in reversed(range(dims)):
        step = f"{prefix}r % {prefix}n{d}" if d else f"{prefix}r"
        lines.append(f"{out} += ({step}) * {prefix}s{d};" + (f" {prefix}r /= {prefix}n{d};" if d else ""))
    return lines


def reduce_source(name: str, op: str, in_dtype, out_dtype, n_kept: int, n_red: int, tree: bool,
                  arg: bool = False) -> str:
    """Kernel reducing a strided input over ``n_red`` axes for each of the outputs indexed by ``n_kept`` axes.
    ``op`` is a CAReduce op name, or 'max'/'min' with ``arg`` (writes the flat index)."""
    in_dtype, out_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
    acc_dtype = in_dtype if arg else out_dtype
    A, X, O = ks.ctype(acc_dtype), ks.ctype(in_dtype), ks.ctype(out_dtype)
    load = ("(xv != 0)" if acc_dtype.kind == "b" and in_dtype.kind != "b" else
            f"(({A})xv)" if acc_dtype != in_dtype else "xv")
    if arg:
        cmp = ">" if op == "max" else "<"
        nan = acc_dtype.kind == "f"
        better = f"(v {cmp} a" + (" || (isnan(v) && !isnan(a))" if nan else "") + ")"
        equal = "(v == a" + (" || (isnan(v) && isnan(a))" if nan else "") + ")"
        serial = [f"if ({better}) {{ a = v; ai = j; }}"]
        tree_step = [f"const {A} v = sa[lid + s]; const long vi = si[lid + s]; const {A} a = sa[lid];",
                     f"if ({better} || ({equal} && vi < si[lid])) {{ sa[lid] = v; si[lid] = vi; }}"]
        ident = _identity("maximum" if op == "max" else "minimum", acc_dtype)
        final, helpers = "ai", set()
    else:
        sop = SCALAR_OPS[_OPS[op]]
        comb, helpers = ks.expression(sop, ["a", "v"], [acc_dtype, acc_dtype], acc_dtype)
        serial = [f"a = {comb};"]
        tree_comb, _ = ks.expression(sop, ["sa[lid]", "sa[lid + s]"], [acc_dtype, acc_dtype], acc_dtype)
        tree_step = [f"sa[lid] = {tree_comb};"]
        ident = _identity(op, acc_dtype)
        final = "a" if acc_dtype == out_dtype else f"({O})a"
    params = [f"__global const {X} *restrict x", "const long off", f"__global {O} *restrict out",
              "const long m", "const long len"]
    params += [f"const long kn{d}, const long ks{d}" for d in range(n_kept)]
    params += [f"const long rn{d}, const long rs{d}" for d in range(n_red)]
    head = ("#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
            if np.float64 in (in_dtype, out_dtype) else "")
    body = [f"long base = off;"] + _index("k", "o", n_kept, "base")
    body += [f"{A} a = {ident};", "long ai = 0;" if arg else ""]
    start, stride = ("lid", GROUP) if tree else ("0", 1)
    body += [f"for (long j = {start}; j < len; j += {stride}) {{", "    long p = base;"]
    body += ["    " + ln for ln in _index("r", "j", n_red, "p")]
    body += [f"    const {X} xv = x[p];", f"    const {A} v = {load};"] + ["    " + ln for ln in serial] + ["}"]
    if tree:
        body += [f"__local {A} sa[{GROUP}];", f"__local long si[{GROUP}];" if arg else "",
                 "sa[lid] = a;" + (" si[lid] = ai;" if arg else ""), "barrier(CLK_LOCAL_MEM_FENCE);",
                 f"for (int s = {GROUP // 2}; s > 0; s >>= 1) {{", "    if (lid < s) {"]
        body += ["        " + ln for ln in tree_step]
        body += ["    }", "    barrier(CLK_LOCAL_MEM_FENCE);", "}",
                 f"if (lid == 0) out[o] = {'si[0]' if arg else ('sa[0]' if acc_dtype == out_dtype else f'({O})sa[0]')};"]
        pre = ["const long o = get_group_id(0);", "const long lid = get_local_id(0);"]
        attr = f"__attribute__((reqd_work_group_size({GROUP}, 1, 1)))\n"
    else:
        body += [f"out[o] = {final};"]
        pre = ["const long o = get_global_id(0);", "if (o >= m) return;"]
        attr = ""
    code = "\n".join("    " + ln for ln in pre + body if ln)
    helper_src = ks.helpers(helpers)
    return (f"{head}{helper_src}{chr(10) if helper_src else ''}__kernel {attr}void {name}(\n        "
            + ",\n        ".join(params) + f")\n{{\n{code}\n}}\n")


class ReduceKernel:
    """Runs a reduction of a device array over fixed axes."""

    def __init__(self, runtime: Runtime, node: Apply, ctx: LowerContext, op: str, axes: tuple, keepdims: bool,
                 arg: bool):
        x, out = node.inputs[0], node.outputs[0]
        self.runtime, self.node, self.op, self.arg = runtime, node, op, arg
        self.axes, self.keepdims, self.out_dtype = axes, keepdims, np.dtype(out.dtype)
        n_red, n_kept = len(axes), x.ndim - len(axes)
        stem = ctx.kernel_name(node, f"{'arg' if arg else ''}{op}_{x.dtype}")
        self.names, self.sources = {}, {}
        for tree in (False, True):
            name, src = content_named(stem + ("_tree" if tree else ""), lambda n, t=tree: reduce_source(
                n, op, x.dtype, out.dtype, n_kept, n_red, t, arg))
            self.names[tree], self.sources[name] = name, src
        ctx.publish(self.sources)
        self._src = {t: self.sources[self.names[t]] for t in (False, True)}

    def __call__(self, ins: list[DeviceArray]) -> list[DeviceArray]:
        (x,) = ins
        kept = [d for d in range(x.ndim) if d not in self.axes]
        m = int(np.prod([x.shape[d] for d in kept], dtype=np.int64))
        n = int(np.prod([x.shape[d] for d in self.axes], dtype=np.int64))
        if self.keepdims:
            shape = tuple(1 if d in self.axes else x.shape[d] for d in range(x.ndim))
        else:
            shape = tuple(x.shape[d] for d in kept)
        if n == 0 and (self.arg or self.op in ("maximum", "minimum")):
            what = f"attempt to get {self.node.op} of an empty sequence" if self.arg else \
                "zero-size array to reduction operation with no identity"
            raise ValueError(f"{self.node.op}: {what} (input shape {x.shape})")
        out = self.runtime.empty(shape, self.out_dtype, f"output of {self.node.op}")
        if m == 0:
            return [out]
        tree = n > 256 and m < 4096
        args = [x.buffer, np.int64(x.offset), out.buffer, np.int64(m), np.int64(n)]
        for d in kept:
            args += [np.int64(x.shape[d]), np.int64(x.strides[d])]
        for d in self.axes:
            args += [np.int64(x.shape[d]), np.int64(x.strides[d])]
        k = self.runtime.kernel(self._src[tree], self.names[tree])
        if tree:
            k(self.runtime.queue, (m * GROUP,), (GROUP,), *args)
        else:
            local = 64
            k(self.runtime.queue, (-(-m // local) * local,), (local,), *args)
        return [out]


@lowers("CAReduce")
def lower_careduce(node: Apply, ctx: LowerContext) -> Lowered:
    """sum/prod/max/min/all/any over ``axis``."""
    op = node.op
    return Lowered(ReduceKernel(ctx.runtime, node, ctx, op.scalar_op, tuple(sorted(op.axis)), op.keepdims, False))


@lowers("ArgReduce")
def lower_argreduce(node: Apply, ctx: LowerContext) -> Lowered:
    """argmax/argmin along one axis, or over the flattened array (axis=None)."""
    op, x = node.op, node.inputs[0]
    axes = tuple(range(x.ndim)) if op.axis is None else (op.axis,)
    return Lowered(ReduceKernel(ctx.runtime, node, ctx, op.which, axes, op.keepdims, True))
