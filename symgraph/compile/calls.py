"""What the generated function of every compiled function calls at run time (``link.py`` writes
the calls): the lock stripes of shared variables, binding a call's arguments (the slow path and
the interpreting modes), committing updates all or nothing, the update-shape and nan_guard errors,
and re-raising an error with the node and user line."""
from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from symgraph.compile.schedule import ArgSpec
from symgraph.errors import InputError, NanGuardError, SymgraphError, node_context
from symgraph.graph.basic import Apply

# --- locks ---------------------------------------------------------------------------------------

STRIPES = tuple(threading.RLock() for _ in range(16))
"""Calls that update shared variables lock the stripes of those variables' containers, always in
stripe order (no deadlock), with a ``with`` statement (no interrupt can leave one held): two calls
updating the same shared variable never interleave, so no update is lost. Re-entrant, so an op
may call another compiled function."""
_SERIALS = itertools.count()


def new_serial() -> int:
    """A container's place in the global lock order."""
    return next(_SERIALS)


def stripes_of(containers: list) -> list[threading.RLock]:
    """The locks a call updating ``containers`` takes, in the global order."""
    return [STRIPES[k] for k in sorted({c.serial % len(STRIPES) for c in containers})]


# --- run-time helpers the generated code calls ----------------------------------------------------

def commit(staged: tuple, spares: tuple = ()) -> None:
    """Store every update, all or nothing: ``staged`` holds (container, host value, device value)
    triples prepared before any is stored; an interrupt half-way restores the old values. Each
    container in ``spares`` keeps the host value it held as its spare (double buffering: the
    next call may compute the new value into it, see ``take_spare``)."""
    old = [(c, c.value, c.device) for c, _, _ in staged]
    try:
        for c, value, device in staged:
            c.value, c.device = value, device
    except BaseException:
        for c, value, device in old:
            c.value, c.device = value, device
        raise
    if spares:
        before = {id(c): value for c, value, _ in old}
        for c in spares:
            c.spare = before[id(c)]


def _unshared_refs() -> int:
    """What ``sys.getrefcount`` says of an array only one local variable refers to (measured, as
    it differs between Python versions)."""
    s = np.empty(0)
    return sys.getrefcount(s)


_UNSHARED = _unshared_refs()
_GIL = getattr(sys, "_is_gil_enabled", lambda: True)()  # free-threaded builds: no exact refcounts


def take_spare(c: Any) -> np.ndarray | None:
    """The spare buffer of container ``c`` (its value before the last commit that kept one), to
    compute its next value into; None unless nothing else can see that memory: no variable,
    container, output the caller holds, ``get_value(borrow=True)`` result or view refers to it
    (its reference count says so, as numpy's own temporary elision trusts), and it owns its
    writeable memory. Taken, so one call never hands it out twice; a failed call drops it."""
    s = c.spare
    if s is None:
        return None
    c.spare = None
    if (_GIL and s.__class__ is np.ndarray and sys.getrefcount(s) <= _UNSHARED and s.base is None
            and s.flags.writeable):
        return s
    return None


def bad_update(name: str, node: Apply | None, shape: tuple, required: tuple) -> InputError:
    """The error for an update whose value breaks its shared variable's static shape."""
    want = ", ".join(f"dimension {d} of length {n}" for d, n in required)
    where = "\n" + node_context(node) if node is not None else ""
    return InputError(f"the update of shared variable {name} gives a value of shape {tuple(shape)}, but {name} "
                      f"is declared with {want}; no shared variable was changed{where}")


class _NotGiven:
    """The default of a generated function's parameter whose value may be left out."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = _NotGiven()
"""An argument left out of a call: the generated code reads the input's stored value instead."""


def missing_input(fname: str, name: str) -> InputError:
    """The error for a required argument that a call left out."""
    return InputError(f"{fname}() is missing input {name!r} (it has no default: give it by position or keyword)")


def bind_arguments(spec: Any, args: tuple, kwargs: dict) -> list:
    """The arguments of a call in input order, keywords matched to the inputs' names (``NOT_GIVEN``
    where an input with a stored value is left out); a clear InputError for a call that does not
    fit. The generated function binds with Python's own rules; this is the slow path (a keyword
    that is not a Python name, an error message) and the interpreting modes' binding."""
    n, names = spec.n_inputs, spec.input_names
    specs = spec.args or [ArgSpec()] * n
    shown = ", ".join(_describe_arg(names[k], a) for k, a in enumerate(specs))
    if len(args) > n:
        raise InputError(f"{spec.name}() takes {n} argument(s) ({shown}), got {len(args)}")
    values = list(args) + [NOT_GIVEN] * (n - len(args))
    given = [True] * len(args) + [False] * (n - len(args))
    keywords = [a.keyword for a in specs]
    for key, value in kwargs.items():
        if keywords.count(key) != 1:
            named = [kw for kw in keywords if kw is not None]
            unnamed = len(keywords) - len(named)
            why = (f"{keywords.count(key)} inputs are named {key!r}: give them by position" if key in keywords
                   else f"the named inputs are {named}" + (f"; {unnamed} unnamed input(s) can only be given by "
                                                           "position (name a variable to give it by keyword)"
                                                           if unnamed else ""))
            raise InputError(f"{spec.name}() got an unexpected keyword argument {key!r}: {why}")
        k = keywords.index(key)
        if given[k]:
            raise InputError(f"{spec.name}() got input {key!r} twice (by position and by keyword)")
        values[k], given[k] = value, True
    missing = [keywords[k] or names[k] for k in range(n) if not given[k] and specs[k].container is None]
    if missing:
        raise InputError(f"{spec.name}() is missing input(s) {missing} (inputs: {shown})")
    return values


def _describe_arg(name: str, a: ArgSpec) -> str:
    """How an error lists an input: its name, with its stored value when it may be left out."""
    if a.container is None:
        return a.keyword or name
    value = a.container.value
    shown = f"{value.dtype}{list(value.shape)}" if getattr(value, "size", 1) > 4 else repr(value)
    return f"{a.keyword or name}={shown}" + (" (a state: updated by each call)" if a.update is not None else "")


def nan_guard_check(value: np.ndarray, node: Apply, inputs: list) -> None:
    """Raise NanGuardError when ``value`` (a node's output, on the host) holds NaN or Inf."""
    if np.isfinite(value).all():
        return
    ranges = []
    for v in inputs:
        a = np.asarray(v)
        if a.size and a.dtype.kind in "fiub":
            with np.errstate(all="ignore"):
                ranges.append(f"{a.dtype}{list(a.shape)} in [{float(np.nanmin(a))}, {float(np.nanmax(a))}]"
                              f"{' with NaN' if a.dtype.kind == 'f' and np.isnan(a).any() else ''}")
        else:
            ranges.append(f"{a.dtype}{list(a.shape)}")
    bad = "NaN" if np.isnan(value).any() else "Inf"
    raise NanGuardError(f"nan_guard: {node.op} produced {bad}\nInput ranges: {'; '.join(ranges)}\n"
                        + node_context(node))


def rewrap(e: Exception, node: Apply, values: list) -> Exception:
    """The same kind of exception, its message extended with the node and the user's line."""
    context = node_context(node, values)
    try:
        return type(e)(f"{e}\n{context}")
    except Exception:  # exception types with unusual constructors keep their own message
        e.add_note(context)
        return e


def error_handler(line_of: dict, filename: str, before: Callable[[], None] | None) -> Callable:
    """The generated code's except clause: the same exception, extended with the failing node
    and the user line that built it (symgraph's own errors pass through unchanged). ``before``
    runs first (OpenCL: a bad index seen earlier in the call is the first error)."""
    def reraise_with_context(e: Exception) -> Exception:
        if before is not None:
            before()
        if isinstance(e, SymgraphError):
            return e
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != filename:
            tb = tb.tb_next
        if tb is None or tb.tb_lineno not in line_of:
            return e
        node, in_names = line_of[tb.tb_lineno]
        scope = {**tb.tb_frame.f_globals, **tb.tb_frame.f_locals}
        new = rewrap(e, node, [scope.get(n) for n in in_names])
        if new is not e:
            new.__cause__ = e
        return new
    return reraise_with_context


def make_filter(t: Any, allow_downcast: bool, what: str, strict: bool = False) -> Callable:
    """An argument's check and conversion: ``t.filter``, its error naming the argument (``what``)."""
    def filt(value: Any) -> Any:
        return t.filter(value, strict=strict, allow_downcast=allow_downcast, what=what)
    return filt


def type_filter(t: Any, strict: bool, allow_downcast: bool, what: str) -> Callable:
    """A user-defined Type's filter, its refusal naming the argument it refused."""
    def filt(value: Any) -> Any:
        try:
            return t.filter(value, strict, allow_downcast)
        except Exception as e:
            text = repr(value)
            raise InputError(f"{what}: the type {t} refuses {text if len(text) <= 60 else text[:57] + '...'}: "
                             f"{e}") from e
    return filt
