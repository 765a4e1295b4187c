"""The table of device lowerings: ``@lowers(OpClass)`` registers ``fn(node, ctx) -> Lowered |
None`` (the seam of symgraph/compile/lowering.py; None = this node cannot run on the device: the
backend then inserts an explicit host fallback and warns; ``EXPAND`` = run the fused node's parts
one by one instead)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.runtime import TRANSFERS, Runtime, _cl
from symgraph.compile.lowering import LoweringTable
from symgraph.errors import node_context
from symgraph.graph.basic import Apply

TABLE = LoweringTable("opencl")
lowers = TABLE.register

EXPAND = "expand"
"""What a lowering of a fused node returns when the device cannot run it as one unit here (for
instance an epilogue reading a value that lives on the host): its parts are scheduled instead."""


@dataclass
class Lowered:
    """How one node runs: ``run(inputs) -> outputs``. Inputs listed in ``host_inputs`` arrive as
    numpy values (shape arguments and such); the others as DeviceArrays. ``kind`` is 'kernel'
    (launches device kernels), 'view' (metadata only), 'meta' (reads only shapes, whatever side the
    inputs are on; outputs on the host) or 'host' (small host computation on shapes).
    ``inputs`` are the variables ``run`` receives (default: all of the node's inputs); those in
    ``any_side`` are read for their shape only and arrive from wherever they live; ``label``
    names the step in the generated source."""
    run: Callable[[list], list]
    inputs: list | None = None
    kind: str = "kernel"
    host_inputs: frozenset = frozenset()
    any_side: frozenset = frozenset()
    host_outputs: bool = False
    label: str = ""


class Checks:
    """Index bounds checks of one function, deferred to the end of each call: kernels that index
    through device values record the first bad index of their node (4 longs per node: flag, bad
    index, axis, axis length) in one small device buffer, which ``verify`` reads once per call
    (counted in TRANSFERS['checks'], not as a data copy) and raises as IndexError."""

    def __init__(self, runtime: Runtime):
        self.runtime, self._buf, self._ran = runtime, None, False
        self.nodes: list[tuple[Apply, Callable[[int, int, int], str]]] = []

    def slot(self, node: Apply, message: Callable[[int, int, int], str]) -> int:
        """Reserve the record of ``node``; ``message(bad, axis, n)`` words its IndexError."""
        self.nodes.append((node, message))
        return len(self.nodes) - 1

    def buffer(self) -> Any:
        """The device buffer of records (zeroed once; re-zeroed after a reported error)."""
        if self._buf is None:
            self._buf = self.runtime.alloc(32 * len(self.nodes), "index checks")
            self._zero()
        return self._buf

    def _zero(self) -> None:
        cl = _cl()
        cl.enqueue_fill_buffer(self.runtime.queue, self._buf, np.int64(0), 0, 32 * len(self.nodes))

    def ran(self) -> None:
        """A checking kernel was launched in this call."""
        self._ran = True

    def verify(self) -> None:
        """Raise IndexError (naming the node and its user line) if a kernel of this call saw a bad index."""
        if not self._ran:
            return
        cl = _cl()
        self._ran = False
        rec = np.empty((len(self.nodes), 4), np.int64)
        cl.enqueue_copy(self.runtime.queue, rec, self._buf, is_blocking=True)
        TRANSFERS["checks"] += 1
        for (node, message), (flag, bad, axis, n) in zip(self.nodes, rec):
            if flag:
                self._zero()
                raise IndexError(f"{message(int(bad), int(axis), int(n))}\n{node_context(node)}")


@dataclass
class LowerContext:
    """What a lowering needs: the runtime, a place to publish generated kernel sources, the
    variables whose values live on the host (shape arithmetic), which kernels take by value, and
    the elementwise nodes that run inside the loop of the reduction that reads them (``fused``)
    instead of on their own."""
    runtime: Runtime
    kernels: dict = field(default_factory=dict)
    host: set = field(default_factory=set)
    checks: Checks | None = None
    fused: set = field(default_factory=set)
    node: Apply | None = None  # the node being lowered: what it publishes is listed in node_kernels
    node_kernels: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.checks is None:
            self.checks = Checks(self.runtime)

    def kernel_name(self, node: Apply, what: str | None = None) -> str:
        """A readable kernel name stem for ``node`` (e.g. ``mul``; kernels add a content hash)."""
        base = what or str(node.op)
        return "".join(c if c.isalnum() else "_" for c in base).strip("_")[:40] or "op"

    def publish(self, sources: dict[str, str]) -> None:
        """Expose generated kernel sources as ``f.kernels`` (and note them as the current node's)."""
        self.kernels.update(sources)
        if self.node is not None:
            self.node_kernels.setdefault(self.node, []).extend(k for k in sources if k not in
                                                               self.node_kernels.get(self.node, ()))


def device_ok(node: Apply) -> bool:
    """True when every input and output dtype of ``node`` has a device representation."""
    return all(hasattr(v.type, "dtype") and ks.supported_dtype(v.type.dtype) for v in node.inputs + node.outputs)
