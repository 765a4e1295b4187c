"""``sg.function``: check the user's inputs/outputs/updates, build a FunctionGraph, rewrite it,
and hand it to a backend, which returns the callable that a Function wraps."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from symgraph.backends import get_backend
from symgraph.compile.debugmode import debug_wrap
from symgraph.compile.lowering import python_name
from symgraph.compile.profile import Profile
from symgraph.compile.shared import Container, SharedVariable
from symgraph.config import config
from symgraph.errors import InputError
from symgraph.graph import hooks
from symgraph.graph.basic import Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.traversal import ancestors, clone_replace
from symgraph.rewrite import RewriteHistory, RewriteReport, as_mode, rewrite_graph, sink_everywhere
from symgraph.tensor.type import TensorType, as_tensor_variable


@dataclass
class CompileSpec:
    """What a backend needs beyond the graph: how graph inputs/outputs map to the call.

    ``fgraph.inputs`` = the user's inputs then the shared variables (``containers`` in the same
    order); ``fgraph.outputs`` = the user's outputs then one value per update.
    """
    n_inputs: int
    input_names: list[str]
    containers: list[Container]
    updates: list[tuple[int, int]]  # (fgraph output index, container index)
    n_outputs: int
    return_list: bool
    allow_downcast: bool = False
    nan_guard: bool = False
    name: str = "f"
    options: dict = field(default_factory=dict)
    profile: Profile | None = None  # set: the call protocol times every node and transfer


class Function:
    """A compiled function: call it with numpy values; ``graph`` is the rewritten graph,
    ``source`` (numpy backend) or ``kernels`` (OpenCL) the generated code."""

    def __init__(self, impl: Any, fgraph: FunctionGraph, spec: CompileSpec, inputs: list, outputs: Any,
                 updates: list, backend: str, mode: Any, report: RewriteReport, givens: list | None = None):
        self._impl, self.graph, self.spec = impl, fgraph, spec
        self.givens = givens or []
        self.inputs, self.outputs, self.updates = inputs, outputs, updates
        self.backend, self.mode, self.name, self._report = backend, mode, spec.name, report
        self.history: RewriteHistory | None = None  # the graph after each rewrite pass (history=True)
        self._call = impl.__call__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            args = self._bind(args, kwargs)
        try:
            return self._call(*args)
        except TypeError:
            if len(args) != self.spec.n_inputs:
                raise InputError(f"{self.name}() takes {self.spec.n_inputs} argument(s) "
                                 f"({', '.join(self.spec.input_names)}), got {len(args)}") from None
            raise

    def _bind(self, args: tuple, kwargs: dict) -> tuple:
        names = self.spec.input_names
        values = list(args) + [None] * (len(names) - len(args))
        given = [True] * len(args) + [False] * (len(names) - len(args))
        for k, v in kwargs.items():
            if k not in names:
                raise InputError(f"{self.name}() got an unexpected keyword argument {k!r}; inputs are {names}")
            i = names.index(k)
            if given[i]:
                raise InputError(f"{self.name}() got input {k!r} twice")
            values[i], given[i] = v, True
        if not all(given):
            missing = [n for n, g in zip(names, given) if not g]
            raise InputError(f"{self.name}() is missing input(s) {missing}")
        return tuple(values)

    @property
    def source(self) -> str:
        """The generated Python source (numpy backend)."""
        return getattr(self._impl, "source", "")

    @property
    def kernels(self) -> dict:
        """The generated OpenCL kernel sources by name (OpenCL backend)."""
        return getattr(self._impl, "kernels", {})

    def rewrite_report(self) -> RewriteReport:
        """Which rewrites ran, what they changed, and node counts before and after."""
        return self._report

    @property
    def profile(self) -> Profile | None:
        """Time per node, op, kernel and transfer over the calls so far (``print(f.profile)``),
        for a function compiled with ``profile=True``; else None."""
        return self.spec.profile

    def explore(self, path: str | None = None, **kwargs: Any) -> Any:
        """The interactive page of this function (``sg.printing.to_html``): shown inline in
        Jupyter, written to ``path`` when given."""
        return hooks.explore(self, path, **kwargs)

    def __repr__(self) -> str:
        return f"<symgraph Function {self.name}({', '.join(self.spec.input_names)}) on {self.backend}>"

    def _repr_svg_(self) -> str | None:
        return hooks.repr_svg(self)


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


def _check_inputs(inputs: Any) -> list[Variable]:
    if isinstance(inputs, Variable):
        inputs = [inputs]
    inputs = list(inputs)
    for k, v in enumerate(inputs):
        if not isinstance(v, Variable):
            raise InputError(f"sg.function input {k} must be a symbolic variable, got {type(v).__name__} {v!r}")
        if isinstance(v, SharedVariable):
            raise InputError(f"sg.function input {k} ({v}) is a shared variable; shared variables are "
                             "used implicitly and cannot be inputs (use givens to substitute a value)")
        if isinstance(v, Constant):
            raise InputError(f"sg.function input {k} is a constant ({v}); inputs must be free variables")
        if v.owner is not None:
            raise InputError(f"sg.function input {k} ({v}) is computed by {v.owner.op}; inputs must be free "
                             "variables such as T.dmatrix('x') (use givens to replace an intermediate)")
    seen = set()
    for v in inputs:
        if v in seen:
            raise InputError(f"sg.function got input {v} twice")
        seen.add(v)
    return inputs


def _check_outputs(outputs: Any) -> tuple[list[Variable], bool]:
    if outputs is None:
        return [], True
    single = not isinstance(outputs, (list, tuple))
    outs = [outputs] if single else list(outputs)
    for k, o in enumerate(outs):
        if not isinstance(o, Variable):
            raise InputError(f"sg.function output {k} is not symbolic: got {type(o).__name__} {o!r}; outputs "
                             "must be variables built from the inputs (wrap numbers in T.constant)")
    return outs, not single


def _check_updates(updates: Any) -> list[tuple[SharedVariable, Variable]]:
    pairs, seen = [], set()
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


def function(inputs: Sequence[Variable], outputs: Any = None, updates: Any = None, givens: Any = None,
             backend: str | None = None, mode: Any = "default", name: str | None = None,
             on_unused_input: str = "raise", allow_input_downcast: bool = False,
             nan_guard: bool | None = None, no_default_updates: Any = False, profile: bool | None = None,
             history: bool | None = None, **options: Any) -> Function:
    """Compile a callable from symbolic ``inputs`` to ``outputs`` (a variable or a list),
    applying ``updates`` (shared variable -> new value) after each successful call, and the
    ``default_update`` of every shared variable the function reads that ``updates`` leaves out
    (random streams' call counters), unless ``no_default_updates`` is True (or lists the shared
    variables to leave alone).

    ``profile=True`` times every node and transfer of every call (``f.profile``; default
    ``sg.config.profile``); ``history=True`` records the graph after each rewrite pass
    (``f.history``, the explorer's slider; default ``sg.config.rewrite_history``)."""
    inputs = _check_inputs(inputs)
    outs, return_list = _check_outputs(outputs)
    upd = _check_updates(updates)
    if on_unused_input not in ("raise", "warn", "ignore"):
        raise ValueError(f"on_unused_input must be 'raise', 'warn' or 'ignore', got {on_unused_input!r}")
    targets = outs + [v for _, v in upd]
    givens_pairs = _as_pairs(givens, "givens")
    if givens_pairs:
        targets = _apply_givens(targets, givens_pairs)
    defaults = _default_updates(ancestors(targets), upd, no_default_updates)
    upd, targets = upd + defaults, targets + [v for _, v in defaults]
    needed = ancestors(targets)
    used = set(needed)
    unused = [v for v in inputs if v not in used]
    if unused and on_unused_input != "ignore":
        msg = (f"sg.function: input(s) {unused} are not used to compute the outputs or updates "
               "(pass on_unused_input='ignore' or 'warn' to allow this)")
        if on_unused_input == "raise":
            raise InputError(msg)
        warnings.warn(msg, stacklevel=2)
    shared_vars = [v for v in needed if isinstance(v, SharedVariable)]
    for var, _ in upd:
        if var not in shared_vars:
            shared_vars.append(var)
    fgraph = FunctionGraph(inputs + shared_vars, targets)
    mode = config.mode if mode == "default" else mode
    nan_guard = config.nan_guard if nan_guard is None else nan_guard
    if nan_guard:  # the guard checks every node, so keep nodes unfused and errors precise
        mode = as_mode(mode).excluding("fusion")
    record = RewriteHistory() if (config.rewrite_history if history is None else history) else None
    if record is not None:
        record.attach(fgraph)
    sink_everywhere(fgraph)  # laziness is not an optimization: every mode moves branch-only code into branches
    report = rewrite_graph(fgraph, mode, history=record)
    index = {v: k for k, v in enumerate(shared_vars)}
    spec = CompileSpec(
        n_inputs=len(inputs), input_names=_input_names(inputs),
        containers=[v.container for v in shared_vars],
        updates=[(len(outs) + k, index[var]) for k, (var, _) in enumerate(upd)],
        n_outputs=len(outs), return_list=return_list, allow_downcast=allow_input_downcast,
        nan_guard=nan_guard, name=name or "f", options=options,
        profile=Profile(name or "f") if (config.profile if profile is None else profile) else None)
    backend = backend or config.backend
    impl = get_backend(backend).compile(fgraph, spec)
    impl = debug_wrap(impl, fgraph, spec, mode, report, get_backend(backend).compile)  # DebugMode, MonitorMode
    f = Function(impl, fgraph, spec, inputs, outputs, upd, backend, mode, report, givens_pairs)
    if record is not None:
        record.detach(fgraph)
        if record.steps[-1].sids != [record.sid(n) for n in fgraph.toposort()]:  # the backend placed nodes
            record.snapshot(fgraph, f"{backend} placement")
        f.history = record
    return f


def _default_updates(needed: list, upd: list, no_default_updates: Any) -> list[tuple[SharedVariable, Variable]]:
    """The default updates of the shared variables in ``needed`` that ``upd`` does not update."""
    if no_default_updates is True:
        return []
    skip = {v for v, _ in upd} | (set(no_default_updates) if no_default_updates else set())
    found = [v for v in needed if isinstance(v, SharedVariable) and v.default_update is not None and v not in skip]
    return _check_updates([(v, v.default_update) for v in found])


def _apply_givens(targets: list[Variable], pairs: list[tuple]) -> list[Variable]:
    replace = {}
    for old, new in pairs:
        if not isinstance(old, Variable):
            raise InputError(f"givens: {old!r} is not a symbolic variable")
        new = new if isinstance(new, Variable) else old.type.make_constant(new) \
            if not isinstance(old.type, TensorType) else as_tensor_variable(new)
        if isinstance(old.type, TensorType) and (new.dtype != old.dtype or new.ndim != old.ndim):
            raise InputError(f"givens: {old} ({old.type}) cannot be replaced by {new} ({new.type}): "
                             "dtype and number of dimensions must match")
        replace[old] = new
    new_targets, _ = clone_replace(targets, replace)
    return new_targets


def _input_names(inputs: list[Variable]) -> list[str]:
    taken: set[str] = set()
    return [python_name(v.name, f"in{k}", taken) for k, v in enumerate(inputs)]

