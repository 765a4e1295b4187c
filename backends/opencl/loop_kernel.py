"""The one-kernel loop (issue 15, build item 6): a ``sg.scan`` whose body is small elementwise
(random draws included: dropout, noise), reduction and product work runs every step in ONE
OpenCL kernel launch, instead of launching
each body kernel at each step (on pocl a launch costs 15-85 us: W2's 5000 Adam steps launched
14 kernels a step).

``for_node`` decides at compile time whether a Scan node's body can run that way
(backends/opencl/loop_plan.py ``unsupported``); the generated function then calls the node's
``LoopKernel`` first, and runs today's step-by-step loop only when it declines (compile/loop.py
``emit_loop``)::

    _w18 = _loop_kernel(_k34, adam_t, shared1, ..., v15, x, y)   # Scan{for}: one kernel for every step
    if _w18 is not None:
        v16, v17, ..., v29, = _w18
    else:
        <the step-by-step loop>

At each call the LoopKernel specialises the body on the shapes of its inputs (cached by shape):
a LoopPlan places every value, loop_source.py prints the kernel, named ``loop_<scan>_<hash>``
in ``f.kernels``. It declines (None) when the plan does not fit (a shape the body cannot take
as one kernel) or is too big for one work-group (``fits``): those calls run step by step, and
``f.kernels['loop_<scan>']`` lists them with the reason.
"""
from __future__ import annotations

import hashlib
import warnings
from typing import Any

import numpy as np

from symgraph.backends.opencl import loops
from symgraph.backends.opencl.kernels_copy import copy_into
from symgraph.backends.opencl.loop_plan import Decline, LoopPlan, Step, comment, unsupported
from symgraph.backends.opencl.loop_source import kernel_source
from symgraph.backends.opencl.loop_support import index_inputs
from symgraph.backends.opencl.runtime import DeviceArray, Runtime
from symgraph.errors import BackendError
from symgraph.graph.basic import Apply
from symgraph.scan.op import Scan, check_steps
from symgraph.tensor.gradient_ops import check_shape_vectors

MAX_WORK = 1 << 20
"""The most element operations per step (``LoopPlan.work``) a one-kernel loop takes on a CPU
device: above it, each step's kernels launched over every core are as fast. Measured on the
2-core pocl machine with a body ``c = tanh(c * a + x_t)`` and a column sum of c, 100 steps,
microseconds per step (one kernel / per-step launches; a shared, loaded machine): 256 elements
4 / 1319, 16384: 76 / 1042, 65536: 296 / 1858, 524288: 3081 / 5232, 1048576 (work 2M): 25598 /
26344, 4194304: 46195 / 48990. W7's loops (work 2^19 each) take the same time either way."""
GPU_MAX_WORK = 1 << 16
"""The same limit on other devices (one work-group against the whole device: not measured here)."""
MAX_BYTES = 16 << 20
"""The most bytes one step's state (carries, rows, constants, intermediate values) may take."""
CPU_LOCAL = 1
"""Work-items of the loop kernel's one work-group on a CPU device (pocl runs a work-group on one
core; its work-items as a loop: one item whose loops the compiler vectorises is measured fastest)."""
GPU_LOCAL = 256
"""Work-items of its work-group on other devices."""
FIRST_CHUNK = 16
"""Steps of a while loop's first launch; each later launch runs twice as many as the one before."""


class LoopKernel:
    """Runs every step of one Scan node in one kernel launch, specialised on the call's shapes
    (see the module doc). Calling it returns the node's outputs, or None to decline."""

    def __init__(self, rt: Runtime, node: Apply, name: str, kernels: dict[str, str], local: int | None = None):
        self.rt, self.node, self.name, self.kernels = rt, node, name, kernels
        self.op = node.op_as(Scan)
        self.local = local or (CPU_LOCAL if rt.is_cpu else GPU_LOCAL)
        self.chunked = rt.is_cpu
        self.specs: dict[tuple, _Spec | None] = {}
        self.declined: dict[tuple, str] = {}
        self.dtypes = [np.dtype(v.dtype) for v in self.op.body_inputs]
        first_const = self.op.n_seqs + self.op.n_carries  # loop constants only: a carry's value changes
        self.index_inputs = sorted(j for j in index_inputs(self.op.body) if j >= first_const)
        kernels[name] = self._summary()

    def _summary(self) -> str:
        lines = [f"/* ONE-KERNEL LOOP: {self.op} runs every step in one launch of a kernel specialised on the",
                 "   shapes of each call (listed below as they are built); calls it declines run step by step."]
        lines += [f"   declined for input shapes {list(shapes)}{_with(values)}: {why}"
                  for (shapes, values), why in self.declined.items()]
        return "\n".join(lines) + " */\n"

    def __call__(self, ins: list) -> list | None:
        op = self.op
        ns, nc = op.n_seqs, op.n_carries
        arrays = [self._device(x, dt) for x, dt in zip(ins[1:], self.dtypes)]
        n = check_steps(ins[0], arrays[:ns], self.node)
        values = tuple((j, int(ins[1 + j])) for j in self.index_inputs if not isinstance(ins[1 + j], DeviceArray))
        key = (tuple(a.shape for a in arrays), values)
        if key not in self.specs:
            self.specs[key] = self._specialise(key)
        spec = self.specs[key]
        if spec is None:
            return None
        seqs, inits, consts = arrays[:ns], arrays[ns:ns + nc], arrays[ns + nc:]
        return spec.run(n, seqs, inits, consts)

    def _device(self, x: Any, dtype: np.dtype) -> DeviceArray:
        """An input as a contiguous device array (host scalars uploaded, strided views copied)."""
        if isinstance(x, DeviceArray):
            return loops.contiguous(x)
        return self.rt.to_device(np.array(x, dtype=dtype, order="C"), "loop input")

    def _specialise(self, key: tuple) -> _Spec | None:
        try:
            plan = LoopPlan(self.op, [tuple(s) for s in key[0]], dict(key[1]))
            why = fits(plan, self.rt.is_cpu, self.rt.device.max_parameter_size)
            if not why and self.local > 1 and _draws_in_loops(plan.steps, False):
                why = ("random draws inside a nested loop, in a work-group of several items (pocl 3.1 gave "
                       "other numbers run to run; one item does not)")
        except Decline as e:
            why = str(e)
        if why:
            self.declined[key] = why
            self.kernels[self.name] = self._summary()
            return None
        stem = f"{self.name}_{hashlib.sha1(repr(key).encode()).hexdigest()[:6]}"
        source = kernel_source(stem, plan, self.local, self.chunked)
        try:
            kernel = self.rt.kernel(source, stem)
        except BackendError as e:  # never expected; the step-by-step loop still computes the call
            warnings.warn(f"opencl backend: the one-kernel loop of {self.op} did not build; its calls run step by "
                          f"step\n{e}", RuntimeWarning, stacklevel=2)
            self.declined[key] = "its kernel did not build (see the warning)"
            self.kernels[self.name] = self._summary()
            return None
        self.kernels[stem] = source
        return _Spec(self.rt, plan, kernel, self.local)


def _with(values: tuple) -> str:
    return f" and index values {dict(values)}" if values else ""


def _draws_in_loops(steps: list[Step], inside: bool) -> bool:
    """Whether a step with random draws runs inside a nested loop."""
    return any((inside and bool(s.draws)) or _draws_in_loops(s.inner(), inside or s.kind == "loop") for s in steps)


def fits(plan: LoopPlan, cpu: bool = True, max_arguments: int = 1024) -> str:
    """Why ``plan`` is too big for one work-group ('' when it fits): more than MAX_WORK (on a CPU
    device; else GPU_MAX_WORK) element operations or MAX_BYTES of state per step, or more
    kernel arguments than ``max_arguments`` bytes hold (the device's CL_DEVICE_MAX_PARAMETER_SIZE)."""
    limit = MAX_WORK if cpu else GPU_MAX_WORK
    if plan.work() > limit:
        return f"{plan.work()} element operations per step, more than {limit}"
    if plan.arguments() * 8 > max_arguments:
        return f"{plan.arguments()} kernel arguments, more than the device takes"
    if plan.state_bytes() > MAX_BYTES:
        return f"{plan.state_bytes()} bytes of state per step, more than {MAX_BYTES}"
    return ""


class _Spec:
    """One specialisation: the built kernel and what a call allocates around it."""

    def __init__(self, rt: Runtime, plan: LoopPlan, kernel: Any, local: int):
        self.rt, self.plan, self.kernel, self.local = rt, plan, kernel, local
        self.body_constants = [rt.to_device(c, "loop body constant") for c in plan.body_constants]

    def run(self, n: int, seqs: list, inits: list, consts: list) -> list | None:
        """The loop's outputs, or None when an index the kernel read was out of range (the call
        then runs step by step, which raises numpy's IndexError with the node's context)."""
        rt, plan = self.rt, self.plan
        for check, sources in plan.host_checks:  # sg.grad's broadcast checks on shapes passed in
            check_shape_vectors(check, [src if kind == "known" else consts[src].to_host() for kind, src in sources])
        if n == 0:
            return self._empty(inits)
        ab = [(rt.empty(a.shape, a.dtype, "loop carry", kernel_output=True),
               rt.empty(a.shape, a.dtype, "loop carry", kernel_output=True)) for a in inits]
        fixed: list = []
        for a in seqs:
            fixed += [a.buffer, np.int64(a.offset)]
        for a, (ca, cb) in zip(inits, ab):
            fixed += [a.buffer, np.int64(a.offset), ca.buffer, cb.buffer]
        for a in consts:
            fixed += [a.buffer, np.int64(a.offset)]
        fixed += [c.buffer for c in self.body_constants]
        scratch = [rt.alloc(max(count, 1) * 8, "loop scratch") for count in plan.scratch.values()]
        bad = rt.to_device(np.zeros(1, np.int32), "loop index flag") if plan.checks_indices else None
        tail = [bad.buffer] if bad is not None else []
        ran, rows = self._until(n, fixed, scratch, tail) if plan.op.until else self._for(n, fixed, scratch + tail)
        if bad is not None and bad.to_host()[0]:  # an index out of range: numpy's error, from the step-by-step loop
            return None
        finals = [b if (ran - 1) % 2 == 0 else a for a, b in ab]  # step t writes b when t is even
        return finals + rows

    def _rows(self, n: int) -> list[DeviceArray]:
        """Buffers of ``n`` rows for the traces and the stacked outputs."""
        op, rt = self.plan.op, self.rt
        shapes = [(tuple(self.plan.carry_shapes[j]), v.type.dtype) for j, v in enumerate(op.carry_inputs)
                  if op.traced[j]]
        shapes += [(row, v.type.dtype) for v, row in
                   zip(op.body.outputs[op.n_carries:op.n_carries + op.n_ys], self.plan.y_rows)]
        return [rt.empty((n,) + row, dt, "loop trace", kernel_output=True) for row, dt in shapes]

    def _launch(self, t0: int, end: int, fixed: list, rows: list, tail: list) -> None:
        """Steps ``t0`` .. ``end`` - 1 in one launch."""
        args = [np.int64(t0), np.int64(end)] + fixed + [r.buffer for r in rows] + tail
        self.kernel(self.rt.queue, (self.local,), (self.local,), *args)

    def _for(self, n: int, fixed: list, scratch: list) -> tuple[int, list]:
        rows = self._rows(n)
        self._launch(0, n, fixed, rows, scratch)
        return n, rows

    def _until(self, n: int, fixed: list, scratch: list, tail: list) -> tuple[int, list]:
        """A while loop: launches of FIRST_CHUNK, then twice as many steps, each followed by one
        read of ``done`` (the steps run, and whether the last one's condition held). Trace rows
        grow with the launches, never to ``n``: a loop of 10**6 allowed steps that stops at 10
        allocates 16 rows."""
        rt = self.rt
        flags = [rt.empty((1,), "bool", "loop stop flag", kernel_output=True),
                 rt.empty((2,), "int64", "loop steps run", kernel_output=True)]
        t0, chunk = 0, FIRST_CHUNK
        rows = self._rows(min(n, chunk))
        while True:
            end = min(n, t0 + chunk)
            if rows and rows[0].shape[0] < end:  # room for this launch's rows, kept doubling
                rows = [loops.grown(r, max(end, 2 * r.shape[0]), t0) for r in rows]
            self._launch(t0, end, fixed, rows, scratch + [f.buffer for f in flags] + tail)
            ran, stopped = (int(v) for v in flags[1].to_host())
            if stopped or end == n:
                return ran, [loops.first_rows(r, ran) for r in rows]
            t0, chunk = end, 2 * chunk

    def _empty(self, inits: list) -> list:
        """No step runs: copies of the initial carries, empty traces and stacked outputs."""
        rt, op = self.rt, self.plan.op
        finals = []
        for a in inits:
            out = rt.empty(a.shape, a.dtype, "loop carry", kernel_output=True)
            copy_into(out, a)
            finals.append(out)
        traces = [rt.empty((0,) + a.shape, a.dtype, "loop trace") for j, a in enumerate(inits) if op.traced[j]]
        ys = [rt.empty((0,) + row, v.type.dtype, "loop output")
              for v, row in zip(op.body.outputs[op.n_carries:op.n_carries + op.n_ys], self.plan.y_rows)]
        return finals + traces + ys


def for_node(rt: Runtime, node: Apply, kernels: dict[str, str], index: int) -> LoopKernel | None:
    """The LoopKernel of a Scan node, or None when its body cannot run as one kernel (then
    ``kernels['loop<index>_<name>']`` says why: every call of that loop runs step by step)."""
    op = node.op_as(Scan)
    label = "".join(c if c.isalnum() else "_" for c in (op.name or "scan"))[:24].strip("_") or "scan"
    why = unsupported(op, rt.fp64)
    if why is not None:
        what = comment(f"{op} runs step by step: {why}")
        kernels[f"loop{index}_{label}"] = f"/* ONE-KERNEL LOOP: {what} */\n"
        return None
    return LoopKernel(rt, node, f"loop{index}_{label}", kernels)


__all__ = ["LoopKernel", "for_node", "fits", "MAX_WORK", "GPU_MAX_WORK", "MAX_BYTES"]
