"""Where the one-kernel loop's values live (backends/opencl/loop_plan.py places them): a ``Slot``
is a C pointer expression with static shape and element strides, or a literal; views of a slot
(DimShuffle, basic indexing, a region of a concatenation) are slots over the same memory."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class Decline(Exception):
    """These shapes (or this node) do not fit the one-kernel loop: the call runs step by step."""


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

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def contiguous(self) -> bool:
        return all(n == 1 or s == c for n, s, c in zip(self.shape, self.strides, c_strides(self.shape)))


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
    return Slot(ptr, tuple(view.shape), tuple(view.strides), src.dtype, src.key)


__all__ = ["Decline", "Slot", "c_strides", "index_view"]
