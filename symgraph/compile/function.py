"""``sg.function``: check the user's inputs/outputs/updates, build a FunctionGraph, rewrite it,
and hand it to a backend, which returns the callable that a Function wraps."""
from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Sequence
from typing import Any

from symgraph.backends import get_backend
from symgraph.compile.compiled import CompileSpec, Function
from symgraph.compile.debugmode import debug_wrap
from symgraph.compile.host_memory import keep_freed_memory
from symgraph.compile.io import In, Out, as_input, as_output
from symgraph.compile.lowering import python_name
from symgraph.compile.profile import Profile
from symgraph.compile.schedule import ArgSpec
from symgraph.compile.shared import Container, SharedVariable
from symgraph.config import config
from symgraph.errors import InputError
from symgraph.graph.basic import Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.traversal import ancestors, clone_replace
from symgraph.rewrite import RewriteHistory, as_mode, rewrite_graph, sink_everywhere
from symgraph.tensor.type import TensorType, as_tensor_variable


def _as_pairs(items: Any, what: str) -> list[tuple]:
    if items is None:
        return []
    if isinstance(items, dict):
        return list(items.items())
    pairs = list(items)
    for p in pairs:
        if not (isinstance(p, (tuple, list)) and len(p) == 2):
            raise TypeError(f"{what} must be a dict or a list of (variable, value) pairs; got {p!r}")
    return [tuple(p) for p in pairs]


def _check_inputs(inputs: Any) -> list[In]:
    if isinstance(inputs, (Variable, In)):
        inputs = [inputs]
    ins = [as_input(v, k) for k, v in enumerate(inputs)]
    seen = set()
    for i in ins:
        if i.variable in seen:
            raise InputError(f"sg.function got input {i.variable} twice")
        seen.add(i.variable)
    return ins


def _check_outputs(outputs: Any) -> tuple[list[Out], bool]:
    if outputs is None:
        return [], True
    single = not isinstance(outputs, (list, tuple))
    outs = [outputs] if single else list(outputs)
    return [as_output(o, k) for k, o in enumerate(outs)], not single


def _check_updates(updates: Any) -> list[tuple[SharedVariable, Variable]]:
    pairs: list[tuple[SharedVariable, Variable]] = []
    seen: set[SharedVariable] = set()
    for var, value in _as_pairs(updates, "updates"):
        if not isinstance(var, SharedVariable):
            raise InputError(f"updates: {var!r} is not a shared variable; only sg.shared variables can be updated")
        if var in seen:
            raise InputError(f"updates: shared variable {var} is updated twice")
        seen.add(var)
        value = as_tensor_variable(value)
        if value.dtype != var.dtype:
            raise InputError(f"update of {var} has dtype {value.dtype}, but the shared variable is {var.dtype}; "
                             f"cast it: T.cast(value, '{var.dtype}')")
        if value.ndim != var.ndim:
            raise InputError(f"update of {var} has {value.ndim} dimensions ({value.type}), "
                             f"but the shared variable has {var.ndim} ({var.type})")
        if any(s is not None and v is not None and s != v for s, v in zip(var.type.shape, value.type.shape)):
            raise InputError(f"update of {var} has static shape {value.type}, incompatible with {var.type}")
        pairs.append((var, value))
    return pairs


def _unused_input_policy(given: str | None) -> str:
    """``on_unused_input``: the one given, else ``sg.config.on_unused_input`` (Theano's default)."""
    policy = config.on_unused_input if given is None else given
    if policy not in ("raise", "warn", "ignore"):
        raise ValueError(f"on_unused_input must be 'raise', 'warn' or 'ignore', got {policy!r}")
    return policy


def function(inputs: Sequence[Variable | In], outputs: Any = None, updates: Any = None, givens: Any = None,
             backend: str | None = None, mode: Any = "default", name: str | None = None,
             on_unused_input: str | None = None, allow_input_downcast: bool = False,
             nan_guard: bool | None = None, no_default_updates: Any = False, profile: bool | None = None,
             history: bool | None = None, trust_input: bool = False, **options: Any) -> Function:
    """Compile a callable from symbolic ``inputs`` (variables or ``sg.In``: defaults, states,
    keywords) to ``outputs`` (a variable, an ``sg.Out``, or a list), applying ``updates``
    (shared variable -> new value) after each successful call, and the ``default_update`` of
    every shared variable the function reads that ``updates`` leaves out (random streams' call
    counters), unless ``no_default_updates`` is True (or lists the shared variables to leave alone).

    ``on_unused_input`` ('raise', 'warn' or 'ignore'; default ``sg.config.on_unused_input``)
    says what an input nothing reads gets. ``profile=True`` times every node and transfer of
    every call (``f.profile``; default ``sg.config.profile``); ``history=True`` records the graph
    after each rewrite pass (``f.history``, the explorer's slider; default
    ``sg.config.rewrite_history``);
    ``trust_input=True`` skips the argument checks (``f.trust_input``). Other keywords are the
    backend's own options (OpenCL: ``device``, ``placement``; dask: ``chunks``, ``compute``, ``scheduler``)."""
    backend = backend or config.backend
    _check_options(options, backend)
    keep_freed_memory(config.host_memory_pad)
    ins = _check_inputs(inputs)
    outs, return_list = _check_outputs(outputs)
    upd = _check_updates(updates)
    on_unused_input = _unused_input_policy(on_unused_input)
    targets, upd = _targets(ins, outs, upd, _as_pairs(givens, "givens"), no_default_updates)
    variables = [i.variable for i in ins]
    shared_vars = _shared_variables(variables, targets, upd, on_unused_input)
    fgraph = FunctionGraph(variables + shared_vars, targets)
    mode = config.mode if mode == "default" else mode
    nan_guard = config.nan_guard if nan_guard is None else nan_guard
    if nan_guard:  # the guard checks every node, so keep nodes unfused and errors precise
        mode = as_mode(mode).excluding("fusion")
    record = RewriteHistory() if (config.rewrite_history if history is None else history) else None
    if record is not None:
        record.attach(fgraph)
    prepare = getattr(get_backend(backend), "prepare", None)
    if prepare is not None:  # the backend's own start, in the background while the graph is rewritten
        prepare(options)
    sink_everywhere(fgraph)  # laziness is not an optimization: every mode moves branch-only code into branches
    report = rewrite_graph(fgraph, mode, history=record)
    index = {v: k for k, v in enumerate(shared_vars)}
    spec = CompileSpec(
        n_inputs=len(ins), input_names=_input_names(ins),
        containers=[v.container for v in shared_vars],
        updates=[(len(outs) + k, index[var]) for k, (var, _) in enumerate(upd)],
        n_outputs=len(outs), return_list=return_list, allow_downcast=allow_input_downcast,
        nan_guard=nan_guard, name=name or "f", options=options,
        profile=Profile(name or "f") if (config.profile if profile is None else profile) else None,
        args=_arg_specs(ins, len(outs) + len(upd)), borrow_outputs=tuple(o.borrow for o in outs))
    impl = get_backend(backend).compile(fgraph, spec)
    impl = debug_wrap(impl, fgraph, spec, mode, report, get_backend(backend).compile)  # DebugMode, MonitorMode
    f = Function(impl, fgraph, spec, variables, outputs, upd, backend, mode, report,
                 _as_pairs(givens, "givens"), ins, outs)
    f.trust_input = trust_input
    if record is not None:
        record.detach(fgraph)
        if record.steps[-1].sids != [record.sid(n) for n in fgraph.toposort()]:  # the backend placed nodes
            record.snapshot(fgraph, f"{backend} placement")
        f.history = record
    return f


def _targets(ins: list[In], outs: list[Out], upd: list, givens: list, no_default_updates: Any) -> tuple[list, list]:
    """The graph outputs (the user's outputs, the shared variables' new values, the inputs' new
    states), givens applied, and the updates with the default updates added."""
    main = [o.variable for o in outs] + [v for _, v in upd]
    states = [i.update for i in ins if i.update is not None]
    targets = main + states
    if givens:
        targets = _apply_givens(targets, givens)
    defaults = _default_updates(ancestors(targets), upd, no_default_updates)
    return targets[:len(main)] + [v for _, v in defaults] + targets[len(main):], upd + defaults


def _shared_variables(inputs: list[Variable], targets: list[Variable], upd: list, on_unused_input: str) -> list:
    """The shared variables the targets read or the updates store, after checking that every
    input is used (``on_unused_input``)."""
    needed = ancestors(targets)
    used = set(needed)
    unused = [v for v in inputs if v not in used]
    if unused and on_unused_input != "ignore":
        msg = (f"sg.function: input(s) {unused} are not used to compute the outputs or updates "
               "(pass on_unused_input='ignore' or 'warn' to allow this)")
        if on_unused_input == "raise":
            raise InputError(msg)
        warnings.warn(msg, stacklevel=3)
    shared_vars = [v for v in needed if isinstance(v, SharedVariable)]
    for var, _ in upd:
        if var not in shared_vars:
            shared_vars.append(var)
    return shared_vars


def _arg_specs(ins: list[In], first_state: int) -> list[ArgSpec]:
    """How the call takes each input; the inputs' new states are the graph outputs from ``first_state`` on."""
    specs, k = [], first_state
    for i in ins:
        container = Container(i.variable.type, i.value, i.name) if i.value is not None else None
        specs.append(ArgSpec(i.name, container, k if i.update is not None else None, i.mutable, i.borrow,
                             i.strict, i.allow_downcast))
        k += i.update is not None
    return specs


_THEANO_ONLY = {
    "accept_inplace": "symgraph never puts in-place ops in a user's graph (its backends decide in-place "
                      "writes themselves), so there is nothing to accept",
    "rebuild_strict": "symgraph's givens always keep the replaced variable's dtype and number of dimensions "
                      "(Theano's rebuild_strict=True)",
}


def _check_options(options: dict, backend: str) -> None:
    """Refuse a keyword that neither sg.function nor the backend takes (a misspelling is named)."""
    accepted = tuple(getattr(get_backend(backend), "OPTIONS", ()))
    unknown = [k for k in options if k not in accepted]
    if not unknown:
        return
    key = unknown[0]
    if key in _THEANO_ONLY:
        raise InputError(f"sg.function() does not take Theano's {key}=: {_THEANO_ONLY[key]}; remove it")
    close = difflib.get_close_matches(key, _KEYWORDS + accepted, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    theirs = (f"backend={backend!r} also takes {', '.join(accepted)}" if accepted
              else f"backend={backend!r} takes no options of its own")
    raise InputError(f"sg.function() got an unexpected keyword argument {key!r}{hint}; it takes "
                     f"{', '.join(_KEYWORDS)}; {theirs}")


def _default_updates(needed: list, upd: list, no_default_updates: Any) -> list[tuple[SharedVariable, Variable]]:
    """The default updates of the shared variables in ``needed`` that ``upd`` does not update."""
    if no_default_updates is True:
        return []
    skip = {v for v, _ in upd} | _no_default_updates(no_default_updates)
    found = [v for v in needed if isinstance(v, SharedVariable) and v.default_update is not None and v not in skip]
    return _check_updates([(v, v.default_update) for v in found])


def _no_default_updates(value: Any) -> set[SharedVariable]:
    """The shared variables ``no_default_updates`` lists (Theano's: a bool, or a list of them)."""
    if value is False or value is None:
        return set()
    items = list(value) if isinstance(value, (list, tuple, set, frozenset)) else None
    if items is None or not all(isinstance(v, SharedVariable) for v in items):
        raise InputError(f"no_default_updates must be True, False or a list of shared variables; got {value!r}"[:300])
    return set(items)


def _apply_givens(targets: list[Variable], pairs: list[tuple]) -> list[Variable]:
    replace = {}
    for old, new in pairs:
        if not isinstance(old, Variable):
            raise InputError(f"givens: {old!r} is not a symbolic variable")
        new = new if isinstance(new, Variable) else old.type.make_constant(new) \
            if not isinstance(old.type, TensorType) else as_tensor_variable(new)
        ot, nt = old.type, new.type
        same = isinstance(nt, TensorType) and isinstance(ot, TensorType) and (nt.dtype, nt.ndim) == (ot.dtype, ot.ndim)
        if isinstance(ot, TensorType) and not same:
            raise InputError(f"givens: {old} ({old.type}) cannot be replaced by {new} ({new.type}): "
                             "dtype and number of dimensions must match")
        replace[old] = new
    new_targets, _ = clone_replace(targets, replace)
    return new_targets


def _input_names(ins: list[In]) -> list[str]:
    """The generated function's parameter names: an input's name when it is a Python name used
    by no other input (so Python binds it by keyword), else ``in<k>``."""
    names = [i.name for i in ins]
    taken: set[str] = set()
    return [python_name(n if names.count(n) == 1 else None, f"in{k}", taken) for k, n in enumerate(names)]


_KEYWORDS = tuple(p for p in inspect.signature(function).parameters if p not in ("inputs", "options"))
