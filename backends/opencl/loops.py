"""Rows of device arrays for loops (symgraph/compile/loop.py): a sequence's row t is a view, a
trace row is written by a device copy, and a while loop's trace grows by a device copy: a loop
whose values live on the device never copies them to the host; a while loop reads its stop
condition every SPECULATE steps (StopFlags), not after each step."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from symgraph.backends.opencl.kernels_copy import copy_into
from symgraph.backends.opencl.runtime import DeviceArray, Runtime

SPECULATE = 8  # a while loop's steps between two reads of its stop condition


def row(buf: DeviceArray, t: int) -> DeviceArray:
    """Row ``t`` of ``buf`` (a view: no copy, no kernel)."""
    if not 0 <= t < buf.shape[0]:
        raise IndexError(f"row {t} of a device array of shape {buf.shape}")
    return buf.view(buf.shape[1:], buf.strides[1:], buf.offset + t * buf.strides[0])


def store(buf: DeviceArray, t: int, value: DeviceArray) -> None:
    """``buf[t] = value`` on the device."""
    copy_into(row(buf, t), value)


def contiguous(x: Any) -> Any:
    """``x``, or a contiguous device copy of it when it is a strided device view (a loop constant
    read by every step: the kernels' contiguous paths are much faster than their strided ones)."""
    if not isinstance(x, DeviceArray) or x.is_contiguous:
        return x
    out = x.runtime.empty(x.shape, x.dtype, "loop constant")
    copy_into(out, x)
    return out


def first_rows(buf: DeviceArray, rows: int) -> DeviceArray:
    """The first ``rows`` rows of ``buf`` (a view)."""
    return buf.view((rows,) + buf.shape[1:], buf.strides, buf.offset)


def make_rows(rt: Runtime) -> Callable[..., DeviceArray]:
    """``empty(shape, dtype)``: a new device buffer for a loop's trace or stacked output."""
    def empty(shape: Any, dtype: Any) -> DeviceArray:
        return rt.empty(shape, dtype, "loop trace")
    return empty


def grown(buf: DeviceArray, rows: int, keep: int) -> DeviceArray:
    """A new buffer of ``rows`` rows whose first ``keep`` rows are ``buf``'s (a device copy)."""
    out = buf.runtime.empty((rows,) + buf.shape[1:], buf.dtype, "loop trace")
    if keep:
        copy_into(first_rows(out, keep), first_rows(buf, keep))
    return out


def make_resize(rt: Runtime) -> Callable[[DeviceArray, int], DeviceArray]:
    """``resize(buf, rows)``: the first rows of ``buf``, or a bigger buffer with ``buf``'s rows first."""
    def resize(buf: DeviceArray, rows: int) -> DeviceArray:
        return first_rows(buf, rows) if rows <= buf.shape[0] else grown(buf, rows, buf.shape[0])
    return resize


class StopFlags:
    """A while loop's stop conditions, checked every ``k`` steps instead of after each one (a read
    of a device flag waits for the queue): each step's condition is copied into a device buffer of
    ``k`` flags (or noted on the host when it was computed there), and ``first()`` reads the
    buffer once and says which pending step stopped the loop. The emitter keeps the carries of the
    pending steps, so the loop ends exactly where it would have (symgraph/compile/loop.py)."""

    def __init__(self, rt: Runtime, k: int):
        self.k, self.n, self.rt = k, 0, rt
        self.dev: DeviceArray | None = None  # made when a condition is computed on the device
        self.host: list[bool | None] = [None] * k

    def add(self, cond: Any) -> bool:
        """Note the condition of the next pending step; True when ``k`` steps are pending."""
        if isinstance(cond, DeviceArray):
            if self.dev is None:
                self.dev = self.rt.empty((self.k,), "bool", "loop stop flags")
            copy_into(row(self.dev, self.n), cond)
            self.host[self.n] = None
        else:
            self.host[self.n] = bool(cond)
        self.n += 1
        return self.n == self.k

    def first(self) -> int:
        """The index among the pending steps of the first whose condition holds, or -1; the pending
        steps are cleared (one read of the device flags, only when some were computed there)."""
        pending, self.n = self.n, 0
        if pending == 0:
            return -1
        device = (first_rows(self.dev, pending).to_host()
                  if self.dev is not None and any(h is None for h in self.host[:pending]) else None)
        for j in range(pending):
            flag = self.host[j] if self.host[j] is not None else bool(device[j])  # type: ignore[index]
            if flag:
                return j
        return -1


def make_stop_flags(rt: Runtime, k: int) -> Callable[[], StopFlags]:
    """``stop_flags()``: a new StopFlags of ``k`` pending steps on ``rt``."""
    return lambda: StopFlags(rt, k)
