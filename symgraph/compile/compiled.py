"""The object ``sg.function`` returns: ``Function`` (call it; ``f.graph``/``f.maker.fgraph``,
``f.source``, ``f[x]`` for stored values, ``f.copy(...)``, ``f.trust_input``), and the
``CompileSpec`` a backend compiles a graph under."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symgraph.backends import get_backend
from symgraph.compile.debugmode import debug_wrap
from symgraph.compile.io import In, Out
from symgraph.compile.link import bind_arguments
from symgraph.compile.profile import Profile
from symgraph.compile.schedule import ArgSpec
from symgraph.compile.shared import Container, SharedVariable
from symgraph.errors import InputError
from symgraph.graph import hooks
from symgraph.graph.basic import Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.graph.traversal import clone_replace
from symgraph.rewrite import RewriteHistory, RewriteReport


@dataclass
class CompileSpec:
    """What a backend needs beyond the graph: how graph inputs/outputs map to the call.

    ``fgraph.inputs`` = the user's inputs then the shared variables (``containers`` in the same
    order); ``fgraph.outputs`` = the user's outputs, then one value per shared-variable update,
    then one per input update (``args[k].update``).
    """
    n_inputs: int
    input_names: list[str]  # the generated function's parameter names
    containers: list[Container]
    updates: list[tuple[int, int]]  # (fgraph output index, container index)
    n_outputs: int
    return_list: bool
    allow_downcast: bool = False
    nan_guard: bool = False
    name: str = "f"
    options: dict = field(default_factory=dict)
    profile: Profile | None = None  # set: the call protocol times every node and transfer
    args: list[ArgSpec] = field(default_factory=list)  # per user input (sg.In's options); empty: all plain
    borrow_outputs: tuple[bool, ...] = ()  # per user output: sg.Out(y, borrow=True)

    def update_pairs(self, fgraph: FunctionGraph) -> list[tuple[Variable, Variable]]:
        """(stored variable, its new value) for every update: the shared variables', then the
        inputs' given with ``sg.In(x, update=...)``."""
        pairs = [(fgraph.inputs[self.n_inputs + c], fgraph.outputs[o]) for o, c in self.updates]
        return pairs + [(fgraph.inputs[k], fgraph.outputs[a.update])
                        for k, a in enumerate(self.args) if a.update is not None]


@dataclass(frozen=True)
class FunctionMaker:
    """Theano's ``f.maker``: the optimized graph (``fgraph``, the same object as ``f.graph``),
    the inputs and outputs as ``sg.In``/``sg.Out``, and the mode."""
    fgraph: FunctionGraph
    inputs: tuple[In, ...]
    outputs: tuple[Out, ...]
    mode: Any


class Function:
    """A compiled function: call it with numpy values (by position, or by keyword: an input's
    name); ``graph`` (``maker.fgraph``) is the rewritten graph, ``source`` the generated code
    (``kernels`` on OpenCL). ``f[x]`` reads and ``f[x] = v`` sets a value the function stores:
    an input's default or state (``sg.In(x, value=..., update=...)``) or a shared variable's."""

    def __init__(self, impl: Any, fgraph: FunctionGraph, spec: CompileSpec, inputs: list, outputs: Any,
                 updates: list, backend: str, mode: Any, report: RewriteReport, givens: list | None = None,
                 ins: list[In] | None = None, outs: list[Out] | None = None):
        self._impl, self.graph, self.spec = impl, fgraph, spec
        self.givens = givens or []
        self.inputs, self.outputs, self.updates = inputs, outputs, updates
        self.backend, self.mode, self.name, self._report = backend, mode, spec.name, report
        self.history: RewriteHistory | None = None  # the graph after each rewrite pass (history=True)
        ins = ins if ins is not None else [In(v) for v in fgraph.inputs[:spec.n_inputs]]
        outs = outs if outs is not None else [Out(v) for v in fgraph.outputs[:spec.n_outputs]]
        self.maker = FunctionMaker(fgraph, tuple(ins), tuple(outs), mode)
        self.value, self.container = _Values(self), _Containers(self)
        self._trust = False
        self._call = impl.__call__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._call(*args, **kwargs) if kwargs else self._call(*args)
        except TypeError as e:
            if e.__traceback__ is None or e.__traceback__.tb_next is not None:
                raise  # raised while running, not by the call's arguments
        # Python refused the arguments: bind them by the inputs' names (a name that is not a
        # Python identifier), or raise an error that lists the inputs
        return self._call(*bind_arguments(self.spec, args, kwargs))

    @property
    def trust_input(self) -> bool:
        """Theano's ``f.trust_input``: when True, calls skip the argument checks and conversions
        (the caller promises ndarrays of the right dtype and number of dimensions; anything else
        gives wrong results or numpy errors). Defaults and keywords still work. DebugMode and
        MonitorMode always check."""
        return self._trust

    @trust_input.setter
    def trust_input(self, value: bool) -> None:
        self._trust = bool(value)
        trusted = getattr(self._impl, "trusted", None)
        self._call = trusted() if self._trust and trusted is not None else self._impl.__call__

    def __getitem__(self, key: Any) -> Any:
        return self.value[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.value[key] = value

    def find(self, key: Any) -> tuple[Container, Any]:
        """The container of a stored value, and the variable it belongs to: ``key`` is an input
        (its variable, its In, its name, its position) with a default or state, or a shared
        variable the function uses (or its name)."""
        spec, fg = self.spec, self.graph
        users = fg.inputs[:spec.n_inputs]
        args = spec.args or [ArgSpec()] * spec.n_inputs
        shared = dict(zip(fg.inputs[spec.n_inputs:], spec.containers))
        k = _input_index(key, users, args, shared, self.name)
        if k is None:
            var = key if isinstance(key, SharedVariable) else next(v for v in shared if v.name == key)
            return shared[var], var
        if args[k].container is None:
            raise InputError(f"{self.name}: input {args[k].keyword or users[k]} has no stored value (it has no "
                             "default: every call gives it; compile with sg.In(x, value=...) to store one)")
        return args[k].container, users[k]

    def copy(self, share_memory: bool = False, swap: dict | None = None, delete_updates: bool = False,
             name: str | None = None, profile: bool | None = None) -> Function:
        """Theano's ``f.copy``: the same compiled graph, recompiled for the same backend without
        rewriting it again. ``swap={old_shared: new_shared}`` makes the copy read and update
        ``new_shared`` instead (same type); ``delete_updates=True`` drops every update;
        ``share_memory=True`` makes the copy share the inputs' stored defaults and states with
        this function (by default it starts from copies of their current values). Shared
        variables are always shared: they are one storage."""
        return copy_function(self, share_memory, swap, delete_updates, name, profile)

    @property
    def source(self) -> str:
        """The generated Python source (``trust_input``: the same lines without the argument checks)."""
        return getattr(self._impl, "trusted_source" if self._trust else "source", "")

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


def _input_index(key: Any, users: list, args: list[ArgSpec], shared: dict, fname: str) -> int | None:
    """The position of the user input ``key`` names, or None for a shared variable."""
    if isinstance(key, In):
        key = key.variable
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if not 0 <= key < len(users):
            raise IndexError(f"{fname} has {len(users)} input(s); there is no input {key}")
        return int(key)
    if isinstance(key, Variable):
        if key in shared:
            return None
        if key in users:
            return users.index(key)
        raise KeyError(f"{key} is neither an input of {fname} nor a shared variable it uses")
    if isinstance(key, str):
        matches = [k for k, a in enumerate(args) if a.keyword == key]
        if len(matches) == 1:
            return matches[0]
        named = [v for v in shared if v.name == key]
        if len(matches) > 1 or len(named) > 1:
            raise KeyError(f"{fname}: several inputs or shared variables are named {key!r}; use the variable")
        if named:
            return None
        known = [a.keyword for a in args if a.keyword] + [v.name for v in shared if v.name]
        raise KeyError(f"{fname} has no input or shared variable named {key!r}; it has {known}")
    raise KeyError(f"{fname}[{key!r}]: give an input (variable, In, name or position) or a shared variable")


class _Values:
    """``f.value[x]``: the stored value itself (not a copy); ``f.value[x] = v`` stores ``v``,
    checked against the type (a shared variable: as ``set_value``)."""

    def __init__(self, f: Function):
        self._f = f

    def __getitem__(self, key: Any) -> Any:
        container, _ = self._f.find(key)
        return container.to_host()

    def __setitem__(self, key: Any, value: Any) -> None:
        container, var = self._f.find(key)
        if isinstance(var, SharedVariable):
            var.set_value(value)
            return
        arg = self._f.spec.args[self._f.graph.inputs.index(var)]
        try:
            stored = var.type.filter(value, arg.strict, bool(arg.allow_downcast))
        except Exception as e:
            raise InputError(f"{self._f.name}[{arg.keyword or var}] = {value!r}: the type {var.type} refuses it: "
                             f"{e}") from e
        container.set(np.array(stored, copy=True) if stored is value and isinstance(stored, np.ndarray) else stored)


class _Containers:
    """``f.container[x]``: the Container holding a stored value (``.value`` is the value itself)."""

    def __init__(self, f: Function):
        self._f = f

    def __getitem__(self, key: Any) -> Container:
        return self._f.find(key)[0]


def copy_function(f: Function, share_memory: bool, swap: dict | None, delete_updates: bool, name: str | None,
                  profile: bool | None) -> Function:
    """``f.copy(...)`` (see Function.copy)."""
    spec, fg = f.spec, f.graph
    replace = _check_swap(f, swap or {})
    keep = spec.n_outputs if delete_updates else len(fg.outputs)
    outs, _ = clone_replace(fg.outputs[:keep], replace)
    fgraph = FunctionGraph([replace.get(v, v) for v in fg.inputs], outs)
    args = [dataclasses.replace(a, container=a.container if share_memory or a.container is None else
                                _copy_container(a.container), update=None if delete_updates else a.update)
            for a in spec.args]
    profiled = spec.profile is not None if profile is None else profile
    new_spec = dataclasses.replace(
        spec, containers=[replace[v].container if v in replace else c for v, c in zip(fg.inputs[spec.n_inputs:],
                                                                                    spec.containers)],
        updates=[] if delete_updates else list(spec.updates), args=args, name=name or spec.name,
        profile=Profile(name or spec.name) if profiled else None)
    compile_fn = get_backend(f.backend).compile
    impl = debug_wrap(compile_fn(fgraph, new_spec), fgraph, new_spec, f.mode, f._report, compile_fn)
    updates = [] if delete_updates else [(replace.get(var, var), value) for var, value in f.updates]
    copy = Function(impl, fgraph, new_spec, f.inputs, f.outputs, updates, f.backend, f.mode, f._report, f.givens,
                    list(f.maker.inputs), list(f.maker.outputs))
    copy.trust_input = f.trust_input
    return copy


def _check_swap(f: Function, swap: dict) -> dict:
    """``swap`` checked: shared variables the function uses -> shared variables of the same type."""
    if not isinstance(swap, dict):
        raise InputError(f"{f.name}.copy(swap=...) takes a dict {{old shared variable: new shared variable}}, "
                         f"got {type(swap).__name__}")
    used = f.graph.inputs[f.spec.n_inputs:]
    for old, new in swap.items():
        if old not in used:
            raise InputError(f"{f.name}.copy(swap=...): {old!r} is not a shared variable that {f.name} uses "
                             f"(it uses {[str(v) for v in used]})")
        if not isinstance(new, SharedVariable):
            raise InputError(f"{f.name}.copy(swap=...): {old} can only be swapped for a shared variable, got "
                             f"{type(new).__name__} {new!r}")
        if new.type != old.type:
            raise InputError(f"{f.name}.copy(swap=...): {new} has type {new.type}, but {old} has {old.type}")
        if new in used and new not in swap:
            raise InputError(f"{f.name}.copy(swap=...): {new} is already used by {f.name}; swapping {old} for it "
                             "would make one storage two inputs")
    return dict(swap)


def _copy_container(c: Container) -> Container:
    value = c.to_host()
    return Container(c.type, np.array(value, copy=True) if isinstance(value, np.ndarray) else value, c.name)
