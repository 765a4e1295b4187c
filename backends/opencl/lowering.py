"""The registry of device lowerings: ``@lowers('OpClassName')`` registers
``fn(node, ctx) -> Lowered | None`` (None = this node cannot run on the device; the compiler then
inserts an explicit host fallback and warns)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from symgraph.graph.basic import Apply
from symgraph.backends.opencl.runtime import Runtime

LOWERINGS: dict[str, Callable] = {}


def lowers(*op_class_names: str) -> Callable:
    """Register a lowering for the op classes with these names (names, so that op modules that
    land later or are reloaded need no import here)."""
    def register(fn: Callable) -> Callable:
        for name in op_class_names:
            LOWERINGS[name] = fn
        return fn
    return register


@dataclass
class Lowered:
    """How one node runs: ``run(inputs) -> outputs``. Inputs listed in ``host_inputs`` arrive as
    numpy values (shape arguments and such); the others as DeviceArrays. ``kind`` is 'kernel'
    (launches device kernels), 'view' (metadata only), 'meta' (reads only shapes, whatever side the
    inputs are on; outputs on the host) or 'host' (small host computation on shapes).
    ``inputs`` are the variables ``run`` receives (default: all of the node's inputs)."""
    run: Callable[[list], list]
    inputs: list | None = None
    kind: str = "kernel"
    host_inputs: frozenset = frozenset()
    host_outputs: bool = False


@dataclass
class LowerContext:
    """What a lowering needs: the runtime, a place to publish generated kernel sources, and the
    variables whose values live on the host (shape arithmetic), which kernels take by value."""
    runtime: Runtime
    kernels: dict = field(default_factory=dict)
    host: set = field(default_factory=set)

    def kernel_name(self, node: Apply, what: str | None = None) -> str:
        """A readable kernel name stem for ``node`` (e.g. ``mul``; kernels add a content hash)."""
        base = what or str(node.op)
        return "".join(c if c.isalnum() else "_" for c in base).strip("_")[:40] or "op"

    def publish(self, sources: dict[str, str]) -> None:
        """Expose generated kernel sources as ``f.kernels``."""
        self.kernels.update(sources)


def lowering_for(node: Apply) -> Callable | None:
    """The registered lowering of ``node``'s op class (walking base classes), if any."""
    for cls in type(node.op).__mro__:
        fn = LOWERINGS.get(cls.__name__)
        if fn is not None:
            return fn
    return None


def device_ok(node: Apply) -> bool:
    """True when every input and output dtype of ``node`` has a device representation."""
    from symgraph.backends.opencl.kernels_scalar import supported_dtype
    return all(hasattr(v.type, "dtype") and supported_dtype(v.type.dtype) for v in node.inputs + node.outputs)

