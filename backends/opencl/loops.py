"""Rows of device arrays for loops (symgraph/compile/loop.py): a sequence's row t is a view, a
trace row is written by a device copy, and a while loop's trace grows by a device copy: a loop
whose values live on the device never copies them to the host."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from symgraph.backends.opencl.kernels_copy import copy_into
from symgraph.backends.opencl.runtime import DeviceArray, Runtime


def row(buf: DeviceArray, t: int) -> DeviceArray:
    """Row ``t`` of ``buf`` (a view: no copy, no kernel)."""
    if not 0 <= t < buf.shape[0]:
        raise IndexError(f"row {t} of a device array of shape {buf.shape}")
    return buf.view(buf.shape[1:], buf.strides[1:], buf.offset + t * buf.strides[0])


def store(buf: DeviceArray, t: int, value: DeviceArray) -> None:
    """``buf[t] = value`` on the device."""
    copy_into(row(buf, t), value)


def first_rows(buf: DeviceArray, rows: int) -> DeviceArray:
    """The first ``rows`` rows of ``buf`` (a view)."""
    return buf.view((rows,) + buf.shape[1:], buf.strides, buf.offset)


def make_rows(rt: Runtime) -> Callable[..., DeviceArray]:
    """``empty(shape, dtype)``: a new device buffer for a loop's trace or stacked output."""
    def empty(shape: Any, dtype: Any) -> DeviceArray:
        return rt.empty(shape, dtype, "loop trace")
    return empty


def make_resize(rt: Runtime) -> Callable[[DeviceArray, int], DeviceArray]:
    """``resize(buf, rows)``: the first rows of ``buf``, or a bigger buffer with ``buf``'s rows first."""
    def resize(buf: DeviceArray, rows: int) -> DeviceArray:
        if rows <= buf.shape[0]:
            return first_rows(buf, rows)
        out = rt.empty((rows,) + buf.shape[1:], buf.dtype, "loop trace")
        if buf.shape[0]:
            copy_into(first_rows(out, buf.shape[0]), buf)
        return out
    return resize
