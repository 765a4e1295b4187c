"""Global settings: ``sg.config.floatX``, ``backend``, ``device`` and friends.

Each flag has a default, an environment variable that overrides it at import, and a check;
``change_flags`` sets some for the length of a ``with`` block.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

_FLOAT_DTYPES = ("float32", "float64")
_BACKENDS = ("numpy", "opencl", "dask")


def _choice(name: str, choices: tuple) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"config.{name} must be one of {list(choices)}, got {value!r}")
        return value
    return check


THEANO_MODE_NAMES = {"FAST_RUN": "fast_run", "FAST_COMPILE": "fast_compile", "NONE": "none"}


def _mode(value: Any) -> Any:
    """A mode name: symgraph's, Theano's spelling of one ('FAST_RUN'), or a registered special
    mode ('DebugMode', 'NanGuardMode', ...: every function is compiled in it). A name read from
    the environment while symgraph is still importing (before its modes are registered) is
    checked when a function compiles."""
    value = THEANO_MODE_NAMES.get(value, value)
    if value in ("fast_run", "fast_compile", "none"):
        return value
    special = getattr(sys.modules.get("symgraph.rewrite"), "MODE_NAMES", None)
    if special is None or value in special:
        return value
    raise ValueError(f"config.mode must be one of {['fast_run', 'fast_compile', 'none', *sorted(special)]} "
                     f"(or Theano's FAST_RUN, FAST_COMPILE), got {value!r}")


def _device(value: Any) -> Any:
    if value is None or value == "cpu" or str(value).startswith("opencl"):
        return value
    raise ValueError(f"config.device must be None, 'cpu', 'opencl' or 'opencl:P:D', got {value!r}")


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def _bytes(value: Any) -> int:
    n = int(value)
    if n < 0:
        raise ValueError(f"config.host_memory_pad must be a number of bytes >= 0, got {value!r}")
    return n


# name: (default, environment variable, check)
_FLAGS: dict[str, tuple[Any, str, Callable[[Any], Any]]] = {
    "floatX": ("float64", "SYMGRAPH_FLOATX", _choice("floatX", _FLOAT_DTYPES)),
    "backend": ("numpy", "SYMGRAPH_BACKEND", _choice("backend", _BACKENDS)),
    "device": (None, "SYMGRAPH_DEVICE", _device),
    "mode": ("fast_run", "SYMGRAPH_MODE", _mode),
    "on_unused_input": ("raise", "SYMGRAPH_ON_UNUSED_INPUT", _choice("on_unused_input", ("raise", "warn", "ignore"))),
    "rewrite_errors": ("raise", "SYMGRAPH_REWRITE_ERRORS", _choice("rewrite_errors", ("raise", "warn"))),
    "nan_guard": (False, "SYMGRAPH_NAN_GUARD", _bool),
    # Theano's build-time debugging: evaluate each node on its inputs' tag.test_value as it is built
    "compute_test_value": ("off", "SYMGRAPH_COMPUTE_TEST_VALUE",
                           _choice("compute_test_value", ("off", "ignore", "warn", "raise"))),
    "print_test_value": (False, "SYMGRAPH_PRINT_TEST_VALUE", _bool),
    "profile": (False, "SYMGRAPH_PROFILE", _bool),
    "rewrite_history": (False, "SYMGRAPH_REWRITE_HISTORY", _bool),
    # where a device backend runs each node on a device sharing host memory (backends/opencl/placement.py):
    # 'auto' by size (calibrated), 'host' every node it can, 'device' every node it can as a kernel
    "placement": ("auto", "SYMGRAPH_PLACEMENT", _choice("placement", ("auto", "host", "device"))),
    # freed host memory malloc keeps for the next call instead of handing it back to the kernel
    # (symgraph/compile/host_memory.py); 0 leaves the C allocator's settings alone
    "host_memory_pad": (32 * 2**20, "SYMGRAPH_HOST_MEMORY_PAD", _bytes),
}


class Config:
    """Attribute access to the flags; assignment is checked."""

    def __init__(self) -> None:
        values = {}
        for name, (default, env, check) in _FLAGS.items():
            raw = os.environ.get(env)
            try:
                values[name] = check(raw) if raw not in (None, "") else default
            except ValueError as e:  # say where the bad value came from: the environment
                raise ValueError(f"environment variable {env}={raw!r} is not valid: {e}") from None
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"sg.config has no flag {name!r}; flags: {sorted(_FLAGS)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _FLAGS:
            raise AttributeError(f"sg.config has no flag {name!r}; flags: {sorted(_FLAGS)}")
        self._values[name] = _FLAGS[name][2](value)

    @contextlib.contextmanager
    def change_flags(self, **flags: Any) -> Iterator[Config]:
        """Set flags inside a ``with`` block and restore them after, even on error."""
        old = {name: getattr(self, name) for name in flags}
        try:
            for name, value in flags.items():
                setattr(self, name, value)
            yield self
        finally:
            self._values.update(old)

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"


config = Config()
