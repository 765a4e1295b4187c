"""Function inputs and outputs with options, as Theano has them: ``sg.In`` and ``sg.Out``.

``sg.function([x, sg.In(y, value=1.0, name='y_in')], sg.Out(z, borrow=True))``:

- ``In(variable, name=None, value=None, update=None, mutable=False, borrow=False, strict=False,
  allow_downcast=None)``: ``value`` is the default used when a call leaves the argument out;
  ``update`` (an expression) is stored as the argument's new value after each call (a state
  held by the function, read when the next call leaves the argument out: it needs ``value``);
  ``name`` is the keyword the argument is given by (the variable's name by default);
  ``mutable=True`` lets the function write into the array passed (the numpy backend then runs
  a unary elementwise step in place in it); ``borrow=True`` lets an output with ``Out(...,
  borrow=True)`` be that same array; ``strict=True`` refuses any conversion (the argument must
  already be an ndarray of the input's dtype); ``allow_downcast`` overrides the function's
  ``allow_input_downcast`` for this argument.
- ``Out(variable, borrow=False)``: ``borrow=True`` lets the returned array share memory with
  the function's storage (an input given with ``In(borrow=True)``, a shared variable's value, a
  constant, another borrowed output) instead of being a fresh copy: faster, and the caller must
  then neither modify it nor keep relying on it after the next call or ``set_value``.

Theano's older tuple forms are accepted too: ``(variable, value)``, ``((variable, update),
value)`` and ``(name, ...)`` in front of either.
"""
from __future__ import annotations

from typing import Any

from symgraph.compile.shared import SharedVariable
from symgraph.errors import InputError
from symgraph.graph.basic import Constant, SourceLine, Variable, user_source_line
from symgraph.tensor.type import TensorType, as_tensor_variable


def _where(line: SourceLine | None) -> str:
    return f"\nGiven at (most recent user line):\n  {line}" if line is not None else ""


class In:
    """A function input with options (see the module docstring): its default ``value`` and
    its ``update``, the keyword ``name``, and how its memory may be used (``mutable``,
    ``borrow``, ``strict``, ``allow_downcast``). The default is checked against the variable's
    type here, on the line that builds the In."""

    def __init__(self, variable: Variable, name: str | None = None, value: Any = None, update: Any = None,
                 mutable: bool = False, borrow: bool = False, strict: bool = False,
                 allow_downcast: bool | None = None):
        self.trace = user_source_line()
        if not isinstance(variable, Variable):
            raise InputError(f"In: the input must be a symbolic variable, got {type(variable).__name__} "
                             f"{variable!r}{_where(self.trace)}")
        if name is not None and not isinstance(name, str):
            raise InputError(f"In({variable}): name must be a string, got {name!r}{_where(self.trace)}")
        self.variable, self.name = variable, name if name is not None else variable.name
        self.mutable, self.borrow, self.strict = bool(mutable), bool(borrow), bool(strict)
        self.allow_downcast = allow_downcast
        self.value = None if value is None else self._checked_value(value)
        self.update = None if update is None else self._checked_update(update)
        if self.update is not None and self.value is None:
            raise InputError(f"In({variable}, update=...) needs value=: the state the first call starts from "
                             f"when the argument is left out{_where(self.trace)}")

    @property
    def required(self) -> bool:
        """True when every call must give this argument (it has no default)."""
        return self.value is None

    def _checked_value(self, value: Any) -> Any:
        if isinstance(value, Variable):
            raise InputError(f"In({self.variable}, value=...): the default must be a number or an array, not the "
                             f"symbolic variable {value}{_where(self.trace)}")
        try:
            return self.variable.type.filter(value, self.strict, bool(self.allow_downcast))
        except Exception as e:
            raise InputError(f"In({self.variable}, value={_short(value)}): the default does not fit the input's type "
                             f"{self.variable.type}: {e}{_where(self.trace)}") from None

    def _checked_update(self, update: Any) -> Variable:
        var = self.variable
        if not isinstance(update, Variable):
            if not isinstance(var.type, TensorType):
                raise InputError(f"In({var}, update=...): the update must be a symbolic expression, got "
                                 f"{_short(update)}{_where(self.trace)}")
            update = as_tensor_variable(update)
        vt, ut = var.type, update.type
        if isinstance(vt, TensorType):
            if not isinstance(ut, TensorType) or ut.dtype != vt.dtype or ut.ndim != vt.ndim:
                raise InputError(f"In({var}, update=...): the update is {ut} but the input is {vt}; "
                                 f"they must have the same dtype and number of dimensions (cast it: "
                                 f"T.cast(update, '{vt.dtype}')){_where(self.trace)}")
            if any(s is not None and u is not None and s != u for s, u in zip(vt.shape, ut.shape)):
                raise InputError(f"In({var}, update=...): the update's static shape {update.type} cannot be "
                                 f"stored in {var.type}{_where(self.trace)}")
        elif update.type != var.type:
            raise InputError(f"In({var}, update=...): the update is {update.type} but the input is "
                             f"{var.type}{_where(self.trace)}")
        return update

    def __repr__(self) -> str:
        opts = [f"name={self.name!r}"] if self.name != self.variable.name else []
        opts += [f"value={_short(self.value)}"] if self.value is not None else []
        opts += ["update=..."] if self.update is not None else []
        opts += [k for k in ("mutable", "borrow", "strict") if getattr(self, k)]
        return f"In({self.variable}{''.join(', ' + o for o in opts)})"


class Out:
    """A function output; ``borrow=True`` lets the returned array share memory with the
    function's storage instead of being a fresh copy (see the module docstring)."""

    def __init__(self, variable: Variable, borrow: bool = False):
        if not isinstance(variable, Variable):
            raise InputError(f"Out: the output must be a symbolic variable, got {type(variable).__name__} "
                             f"{variable!r}{_where(user_source_line())}")
        self.variable, self.borrow = variable, bool(borrow)

    def __repr__(self) -> str:
        return f"Out({self.variable}{', borrow=True' if self.borrow else ''})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_input(spec: Any, k: int) -> In:
    """Input ``k`` of ``sg.function`` as an In: a variable, an In, or one of Theano's tuples
    ``(variable, value)``, ``((variable, update), value)``, ``(name, ...)``."""
    if isinstance(spec, In):
        checked = spec
    elif isinstance(spec, Variable):
        checked = In(spec)
    elif isinstance(spec, (tuple, list)) and spec:
        checked = _from_tuple(spec, k)
    else:
        raise InputError(f"sg.function input {k} must be a symbolic variable or sg.In(...), got "
                         f"{type(spec).__name__} {_short(spec)}")
    _check_free(checked.variable, k)
    return checked


def _from_tuple(spec: tuple | list, k: int) -> In:
    """Theano's tuple shortcuts for an In."""
    name, rest = (spec[0], list(spec[1:])) if isinstance(spec[0], str) else (None, list(spec))
    if len(rest) == 2 and isinstance(rest[0], (tuple, list)) and len(rest[0]) == 2:
        (variable, update), value = rest
    elif len(rest) in (1, 2) and isinstance(rest[0], Variable):
        variable, update, value = rest[0], None, rest[1] if len(rest) == 2 else None
    else:
        raise InputError(f"sg.function input {k}: {_short(spec)} is not an input; write a variable, "
                         "sg.In(variable, value=..., update=...), (variable, value) or ((variable, update), value)")
    if not isinstance(variable, Variable):
        raise InputError(f"sg.function input {k}: {_short(variable)} in {_short(spec)} is not a symbolic variable")
    return In(variable, name=name, value=value, update=update)


def _check_free(v: Variable, k: int) -> None:
    if isinstance(v, SharedVariable):
        raise InputError(f"sg.function input {k} ({v}) is a shared variable; shared variables are "
                         "used implicitly and cannot be inputs (use givens to substitute a value)")
    if isinstance(v, Constant):
        raise InputError(f"sg.function input {k} is a constant ({v}); inputs must be free variables")
    if v.owner is not None:
        raise InputError(f"sg.function input {k} ({v}) is computed by {v.owner.op}; inputs must be free "
                         "variables such as T.dmatrix('x') (use givens to replace an intermediate)")


def as_output(spec: Any, k: int) -> Out:
    """Output ``k`` of ``sg.function`` as an Out."""
    if isinstance(spec, Out):
        return spec
    if not isinstance(spec, Variable):
        raise InputError(f"sg.function output {k} is not symbolic: got {type(spec).__name__} {_short(spec)}; "
                         "outputs must be variables built from the inputs (wrap numbers in T.constant)")
    return Out(spec)
