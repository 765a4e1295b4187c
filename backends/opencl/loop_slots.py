"""The one-kernel loop's vocabulary (backends/opencl/loop_plan.py plans with it, loop_source.py and
loop_nest.py print it): a ``Slot`` is where a value lives, a C pointer expression with static
shape and element strides, or a literal; views of a slot (DimShuffle, basic indexing, a region
of a concatenation) are slots over the same memory. A ``Step`` is a unit of one loop step's work."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from symgraph.tensor.composite import Composite


class Decline(Exception):
    """These shapes (or this node) do not fit the one-kernel loop: the call runs step by step."""


def broadcast(shapes: list[tuple], label: str) -> tuple:
    """numpy's broadcast of ``shapes``, or Decline (naming the node ``label``) when they do not."""
    try:
        return tuple(np.broadcast_shapes(*shapes)) if shapes else ()
    except ValueError:
        raise Decline(f"{label}: shapes {shapes} do not broadcast") from None


def c_strides(shape: tuple) -> tuple:
    """C-contiguous element strides of ``shape``."""
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= max(int(n), 1)
    return tuple(reversed(out))


@dataclass(frozen=True)
class Slot:
    """Where a body value lives in the kernel: ``ptr`` (a C pointer expression) with element
    ``strides`` (0 on broadcast axes), or ``literal`` (a C constant) when ``ptr`` is empty;
    ``key`` names the memory (views share their input's), for the barriers."""
    ptr: str
    shape: tuple
    strides: tuple
    dtype: np.dtype
    key: str
    literal: str = ""
    deps: tuple[str, ...] = ()  # memory read to find the slot (a run-time index: ``index_at_run_time``)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def contiguous(self) -> bool:
        return all(n == 1 or s == c for n, s, c in zip(self.shape, self.strides, c_strides(self.shape)))


@dataclass
class Step:
    """One unit of a step's work, run by the whole work-group: ``kind`` is 'elemwise' (``prog``
    over ``ins`` broadcast to ``shape``), 'reduce' (``prog``'s value reduced with ``op`` over
    ``axes`` of ``xshape``; a matrix product is the sum of a product program over the inner axis)
    'branch' (an ``sg.ifelse``: the steps of one of ``branches`` by the condition ``ins[0]``),
    'loop' (a nested scan: the steps ``branches[0]``, ``count`` times), 'check' (every element
    of ``ins[0]``, of ``shape``, in 0 .. ``count`` - 1, else the host's flag: class labels),
    'gather' (``ins[0]`` at the index arrays ``ins[1:]``) or 'scatter' (``ins[0]`` set into, or
    added to, ``outs`` at the index arrays ``ins[1:]``, in order; ``op`` 'set' or 'add');
    a reduction's result goes through ``epi`` (its input ``epi_slot`` reads it, the others are
    ``others``) before the stores: program output q is stored into each slot of ``outs[q]``."""
    kind: str
    label: str
    shape: tuple
    ins: list[Slot]
    outs: list[list[Slot]]
    prog: Composite | None = None
    op: str = ""
    axes: tuple = ()
    keepdims: bool = False
    xshape: tuple = ()
    epi: Composite | None = None
    epi_slot: int = 0
    others: list[Slot] = field(default_factory=list)
    acc: np.dtype | None = None
    acc_slot: Slot | None = None  # a reduction's accumulators (the output's shape), where a form needs them
    draws: dict[int, tuple] = field(default_factory=dict)  # an elementwise program's random step -> its shape
    branches: tuple[list[Step], list[Step]] = field(default_factory=lambda: ([], []))  # 'branch': if ins[0], else
    var: str = ""  # a 'loop' (a nested scan): its steps branches[0] run ``count`` times, ``var`` counting
    count: int = 0

    def inner(self) -> list[Step]:
        """The steps of a branch's two sides."""
        return self.branches[0] + self.branches[1]

    def reads(self) -> set[str]:
        own = {s.key for s in self.ins + self.others if s.ptr}
        own |= {k for s in self.ins + self.others + [d for ds in self.outs for d in ds] for k in s.deps}
        return own.union(*(s.reads() for s in self.inner()))

    def writes(self) -> set[str]:
        own = {s.key for dests in self.outs for s in dests} | ({self.acc_slot.key} if self.acc_slot else set())
        return own.union(*(s.writes() for s in self.inner()))

    def work(self) -> int:
        """Element operations per step (the size rule of loop_kernel.py; a branch: both sides; a
        loop: its steps times its count)."""
        if self.kind == "loop":
            return max(1, self.count) * sum(s.work() for s in self.inner())
        if self.kind == "branch":
            return sum(s.work() for s in self.inner())
        inner = math.prod(self.xshape[a] for a in self.axes) if self.kind == "reduce" else 1
        return max(1, math.prod(self.shape)) * max(1, inner)


def copy_step(src: Slot, dests: list[Slot], label: str = "copy", shape: tuple | None = None) -> Step:
    """A step storing ``src`` into each of ``dests`` (broadcast to ``shape``; by default its own)."""
    return Step("elemwise", label, src.shape if shape is None else shape, [src], [dests],
                prog=Composite.identity(src.dtype.name))


def index_view(src: Slot, index: tuple) -> Slot:
    """``src[index]`` (integers, slices, newaxis) as a slot over ``src``'s memory: numpy computes
    the view's shape, element strides and offset on a stand-in array with ``src``'s strides."""
    if not src.ptr:
        if index != ():
            raise Decline(f"a literal indexed by {index}")
        return src
    span = sum((n - 1) * abs(st) for n, st in zip(src.shape, src.strides) if n)
    room = np.zeros(2 * span + 1, np.uint8)
    stand_in = np.lib.stride_tricks.as_strided(room[span:], src.shape, src.strides)
    try:
        view = stand_in[index + (Ellipsis,)]  # a 0-d view, not a scalar, where integers take every axis
    except IndexError as e:  # the step-by-step loop raises it, with the call's context
        raise Decline(str(e)) from None
    off = view.__array_interface__["data"][0] - stand_in.__array_interface__["data"][0]
    ptr = f"({src.ptr} + {off})" if off else src.ptr
    return Slot(ptr, tuple(view.shape), tuple(view.strides), src.dtype, src.key, deps=src.deps)


__all__ = ["Decline", "Slot", "Step", "broadcast", "c_strides", "copy_step", "index_view"]
