"""Shared variables: symbolic variables with a value that persists across calls (parameters).

The value lives in a Container. A backend may keep a newer copy on its device
(``container.device``); ``container.value`` is then None until someone asks for the host copy.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from symgraph.compile.calls import new_serial
from symgraph.config import config
from symgraph.graph.basic import Type, Variable
from symgraph.tensor.type import TensorType, TensorVariable


class Container:
    """Holds a stored value, on the host (``value``) and/or on a device: a shared variable's, or
    the default or state of a function input (``sg.In(x, value=...)``), which may be of any Type."""

    __slots__ = ("value", "device", "type", "name", "serial", "spare", "__weakref__")

    def __init__(self, type: Type, value: Any, name: str | None):
        self.type, self.value, self.name = type, value, name
        self.device: Any = None  # a backend's device array holding a newer value, if any
        self.serial = new_serial()  # its place in the global lock order (see compile/calls.py)
        self.spare: Any = None  # a former host value a call may compute the next one into (calls.take_spare)

    def to_host(self) -> np.ndarray:
        """The host value, fetched from the device copy when that is the newer one."""
        if self.value is None:
            self.value = self.device.to_host()
        return self.value

    def __reduce__(self) -> tuple:
        return Container, (self.type, self.to_host(), self.name)  # device buffers do not pickle

    def set(self, value: np.ndarray) -> None:
        """Make ``value`` current on the host and forget any device copy (and the spare buffer)."""
        self.value, self.device, self.spare = value, None, None


def held_size(container: Container) -> float:
    """How many elements a container holds: its static shape's count, else its current host
    value's (inf when neither tells); a backend sizes its per-variable bookkeeping by it."""
    shape = getattr(container.type, "shape", None)
    if shape is not None and all(d is not None for d in shape):
        return math.prod(shape)
    size = getattr(container.value, "size", None)
    return math.inf if size is None else size


def _is_device_array(value: Any) -> bool:
    """A backend's device array (what ``get_value(return_internal_type=True)`` may return)."""
    return hasattr(value, "to_host") and hasattr(value, "runtime") and hasattr(value, "shape")


class SharedVariable(TensorVariable):
    """A tensor variable whose value is stored between calls.

    ``get_value``/``set_value`` copy by default; with ``borrow=True`` they may hand over or take the
    stored object itself (Theano's meaning: faster, and the caller must then not rely on it staying
    unchanged, nor change it while functions use it). ``return_internal_type=True`` returns the
    backend's own object (an OpenCL device array when the newest value is on the device)."""

    is_shared = True
    host_resident = False
    """True for small values that kernels take by value (random keys and call counters): a device
    backend keeps them on the host instead of in device buffers."""
    default_update: Variable | None = None
    """Theano's default update: the new value ``sg.function`` stores after each call of a function
    that reads this variable, unless the call gives its own update for it or is compiled with
    ``no_default_updates`` (random streams advance their call counters this way)."""

    def __init__(self, type: TensorType, value: np.ndarray, name: str | None = None):
        super().__init__(type, None, None, name)
        self.container = Container(type, value, name)

    def get_value(self, borrow: bool = False, return_internal_type: bool = False) -> Any:
        """The current value: a copy, or (``borrow=True``) the stored array itself; with
        ``return_internal_type`` the backend's object when the value lives on a device."""
        c = self.container
        if return_internal_type and c.device is not None:
            if borrow:
                return c.device
            return c.device.runtime.to_device(c.device.to_host(copy=True), f"copy of shared variable {self.name}")
        value = c.to_host()
        return value if borrow else value.copy()

    def set_value(self, value: Any, borrow: bool = False) -> None:
        """Replace the value, checked against the type. It is copied unless ``borrow=True``, in which
        case an array of the right dtype (or a device array from ``get_value(return_internal_type=
        True)``) is stored as it is."""
        what = f"set_value of shared variable {self.name or ''}".rstrip()
        if _is_device_array(value):
            if np.dtype(value.dtype) != self.type.numpy_dtype or len(value.shape) != self.type.ndim:
                raise TypeError(f"{what}: expected {self.type}, got a device array {value.dtype}{list(value.shape)}")
            if borrow:
                self.container.value, self.container.device = None, value
                return
            value = value.to_host(copy=True)
        arr = self.type.filter(value, what=what)
        if not borrow and arr is value:  # filter returned the caller's own array: take a copy
            arr = np.array(arr, copy=True)
        self.container.set(arr)

    def clone(self) -> SharedVariable:
        """A shared variable is one storage: graphs copied for compilation keep it."""
        return self

    @property
    def value(self) -> np.ndarray:
        """Shorthand for ``get_value()`` (a copy)."""
        return self.get_value()


def shared(value: Any, name: str | None = None, borrow: bool = False, shape: tuple | None = None,
           dtype: str | None = None) -> SharedVariable:
    """A shared variable initialised with ``value`` (copied unless ``borrow``). Python floats
    take ``config.floatX``; dimensions are of unknown length unless ``shape`` fixes them."""
    if isinstance(value, (float, list, tuple)) and dtype is None:
        arr = np.asarray(value)
        arr = arr.astype(config.floatX) if arr.dtype == np.float64 else arr
    else:
        arr = np.asarray(value, dtype=dtype)
    if arr.dtype == object:
        raise TypeError(f"sg.shared needs numbers or an array, got {type(value).__name__}")
    if not borrow or arr is not value:
        arr = np.array(arr, copy=True)
    static = tuple(shape) if shape is not None else (None,) * arr.ndim
    ttype = TensorType(arr.dtype.name, static)
    arr = ttype.filter(arr, what="sg.shared value")
    return SharedVariable(ttype, arr, name)
