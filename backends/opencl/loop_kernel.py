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
from symgraph.backends.opencl.loop_plan import Decline, LoopPlan, unsupported
from symgraph.backends.opencl.loop_source import kernel_source
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
        kernels[name] = self._summary()

    def _summary(self) -> str:
        lines = [f"/* ONE-KERNEL LOOP: {self.op} runs every step in one launch of a kernel specialised on the",
                 "   shapes of each call (listed below as they are built); calls it declines run step by step."]
        lines += [f"   declined for input shapes {list(k)}: {why}" for k, why in self.declined.items()]
        return "\n".join(lines) + " */\n"

    def __call__(self, ins: list) -> list | None:
        op = self.op
        ns, nc = op.n_seqs, op.n_carries
        arrays = [self._device(x, dt) for x, dt in zip(ins[1:], self.dtypes)]
        n = check_steps(ins[0], arrays[:ns], self.node)
        key = tuple(a.shape for a in arrays)
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
            plan = LoopPlan(self.op, [tuple(s) for s in key])
            why = fits(plan, self.rt.is_cpu, self.rt.device.max_parameter_size)
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

    def run(self, n: int, seqs: list, inits: list, consts: list) -> list:
        rt, plan, op = self.rt, self.plan, self.plan.op
        nc = op.n_carries
        for check, sources in plan.host_checks:  # sg.grad's broadcast checks on shapes passed in
            check_shape_vectors(check, [src if kind == "known" else consts[src].to_host() for kind, src in sources])
        if n == 0:
            return self._empty(inits)
        ab = [(rt.empty(a.shape, a.dtype, "loop carry", kernel_output=True),
               rt.empty(a.shape, a.dtype, "loop carry", kernel_output=True)) for a in inits]
        traces = [rt.empty((n,) + a.shape, a.dtype, "loop trace", kernel_output=True)
                  for j, a in enumerate(inits) if op.traced[j]]
        ys = [rt.empty((n,) + row, v.type.dtype, "loop output", kernel_output=True)
              for v, row in zip(op.body.outputs[nc:nc + op.n_ys], plan.y_rows)]
        scratch = [rt.alloc(max(count, 1) * 8, "loop scratch") for count in plan.scratch.values()]
        args: list = [np.int64(n)]
        for a in seqs:
            args += [a.buffer, np.int64(a.offset)]
        for a, (ca, cb) in zip(inits, ab):
            args += [a.buffer, np.int64(a.offset), ca.buffer, cb.buffer]
        for a in consts:
            args += [a.buffer, np.int64(a.offset)]
        args += [c.buffer for c in self.body_constants] + [t.buffer for t in traces] + [y.buffer for y in ys]
        self.kernel(rt.queue, (self.local,), (self.local,), *(args + scratch))
        finals = [b if (n - 1) % 2 == 0 else a for a, b in ab]  # step t writes b when t is even
        return finals + traces + ys

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
    """The LoopKernel of a Scan node, or None when its body cannot run as one kernel."""
    op = node.op_as(Scan)
    if unsupported(op, rt.fp64) is not None:
        return None
    label = "".join(c if c.isalnum() else "_" for c in (op.name or "scan"))[:24].strip("_") or "scan"
    return LoopKernel(rt, node, f"loop{index}_{label}", kernels)


__all__ = ["LoopKernel", "for_node", "fits", "MAX_WORK", "GPU_MAX_WORK", "MAX_BYTES"]
