"""Shared variables: symbolic variables with a value that persists across calls (parameters).

The value lives in a Container. A backend may keep a newer copy on its device
(``container.device``); ``container.value`` is then None until someone asks for the host copy.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.compile.link import new_serial
from symgraph.config import config
from symgraph.graph.basic import Variable
from symgraph.tensor.type import TensorType, TensorVariable


class Container:
    """Holds a shared variable's current value: on the host (``value``) and/or on a device."""

    __slots__ = ("value", "device", "type", "name", "serial", "__weakref__")

    def __init__(self, type: TensorType, value: np.ndarray, name: str | None):
        self.type, self.value, self.device, self.name = type, value, None, name
        self.serial = new_serial()  # its place in the global lock order (see compile/link.py)

    def to_host(self) -> np.ndarray:
        """The host value, fetched from the device copy when that is the newer one."""
        if self.value is None:
            self.value = self.device.to_host()
        return self.value

    def __reduce__(self) -> tuple:
        return Container, (self.type, self.to_host(), self.name)  # device buffers do not pickle

    def set(self, value: np.ndarray) -> None:
        """Make ``value`` current on the host and forget any device copy."""
        self.value, self.device = value, None


class SharedVariable(TensorVariable):
    """A tensor variable whose value is stored between calls; ``get_value``/``set_value`` copy."""

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

    def get_value(self, borrow: bool = False) -> np.ndarray:
        """The current value: a copy, or the stored array itself with ``borrow=True`` (do not mutate it)."""
        value = self.container.to_host()
        return value if borrow else value.copy()

    def set_value(self, value: Any, borrow: bool = False) -> None:
        """Replace the value (checked against the type; copied unless ``borrow``)."""
        arr = self.type.filter(value, what=f"set_value of shared variable {self.name or ''}".rstrip())
        if not borrow or arr is value:
            arr = np.array(arr, copy=True)
        self.container.set(arr)

    def clone(self) -> "SharedVariable":
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
