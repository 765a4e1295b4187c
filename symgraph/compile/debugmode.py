"""Checking and stepping modes: ``mode='DebugMode'``, ``MonitorMode(pre_func, post_func)`` and
``NanGuardMode`` (Theano's names). They compile like ``fast_run`` and then run the graph node by
node through each op's ``perform`` (symgraph/graph/evaluate.py), with hooks around every node.

DebugMode, on every call:

- runs the rewritten graph with ``perform`` and compares every node with that node alone compiled
  by the backend (where the backend can run it alone), and the function's outputs and updates with
  the compiled function's;
- re-evaluates both sides of every replacement a rewrite made while compiling (recorded by
  ``rewrite_graph``) and checks they agree;
- checks each op's ``infer_shape`` against the real output shapes, that no op wrote into its
  inputs, and (``check_isfinite``) that no op produced NaN or Inf.

The first divergence raises :class:`DebugModeError` naming the node (or the rewrite), the values
and the user line; shared variables keep their values from before the call. MonitorMode calls
``pre_func(i, node, fn)`` / ``post_func(i, node, fn)`` around node ``i`` (``fn.inputs`` and
``fn.outputs`` are lists of one-element storage cells, as in Theano) and returns perform's results.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from symgraph.compile.link import NOT_GIVEN, bind_arguments
from symgraph.compile.schedule import ArgSpec
from symgraph.compile.shape_check import infer_shape_error
from symgraph.errors import NanGuardError, SymgraphError, node_context
from symgraph.graph.basic import Apply, Variable
from symgraph.graph.evaluate import evaluate, leaf_value
from symgraph.graph.fgraph import FunctionGraph
from symgraph.rewrite import MODE_NAMES, Mode, as_mode


class DebugModeError(SymgraphError, AssertionError):
    """DebugMode found a disagreement: backend vs perform, a rewrite that changed a value, a wrong
    ``infer_shape``, an op that wrote into its input, or a NaN/Inf (``check_isfinite``)."""


class NanGuardModeError(NanGuardError, AssertionError):
    """NanGuardMode found NaN, Inf or a huge value (an AssertionError, as in Theano)."""


class _Recorder:
    """A FunctionGraph feature that keeps every replacement made while rewriting."""

    def __init__(self) -> None:
        self.replacements: list[tuple[Variable, Variable, str, Any]] = []

    def on_replace(self, fgraph: FunctionGraph, old: Variable, new: Variable, reason: str) -> None:
        self.replacements.append((old, new, reason, old.owner.trace if old.owner is not None else None))


class DebugMode(Mode):
    """fast_run rewrites, then every call checked node by node (see the module docstring).
    Theano's ``check_c_code``/``check_py_code`` are accepted (symgraph has no C code: the backend's
    code is what is checked against perform)."""

    record_rewrites = _Recorder

    def __init__(self, optimizer: Any = "fast_run", check_isfinite: bool = True, check_per_node: bool = True,
                 check_c_code: bool = True, check_py_code: bool = True, **kwargs: Any):
        super().__init__(optimizer, **kwargs)
        self.check_isfinite, self.check_per_node = check_isfinite, check_per_node


class MonitorMode(Mode):
    """fast_run rewrites, then each call runs node by node with ``pre_func(i, node, fn)`` before and
    ``post_func(i, node, fn)`` after node ``i`` (either may be None)."""

    def __init__(self, pre_func: Callable | None = None, post_func: Callable | None = None,
                 optimizer: Any = "fast_run", linker: Any = None):
        super().__init__(optimizer, linker=linker)
        self.pre_func, self.post_func = pre_func, post_func


class NanGuardMode(MonitorMode):
    """Raise (an AssertionError) as soon as a node reads or produces NaN (``nan_is_error``), Inf
    (``inf_is_error``) or a value above 1e10 in magnitude (``big_is_error``)."""

    def __init__(self, nan_is_error: bool = True, inf_is_error: bool = True, big_is_error: bool = True,
                 optimizer: Any = "fast_run", linker: Any = None):
        super().__init__(None, self._check, optimizer, linker)
        self.nan_is_error, self.inf_is_error, self.big_is_error = nan_is_error, inf_is_error, big_is_error

    def _check(self, i: int, node: Apply, fn: Any) -> None:
        for what, cells in (("input", fn.inputs), ("output", fn.outputs)):
            for k, (value,) in enumerate(cells):
                problem = _bad_value(value, self.nan_is_error, self.inf_is_error, self.big_is_error)
                if problem:
                    raise NanGuardModeError(f"NanGuardMode: {what} {k} of node {i} holds {problem}\n"
                                            f"{node_context(node)}")


MODE_NAMES.update({"DebugMode": DebugMode, "DEBUG_MODE": DebugMode, "MonitorMode": MonitorMode,
                   "NanGuardMode": NanGuardMode})


def _bad_value(value: Any, nan: bool, inf: bool, big: bool) -> str | None:
    arr = np.asarray(value) if isinstance(value, (np.ndarray, np.generic, float, int)) else None
    if arr is None or arr.dtype.kind not in "fc":
        return None
    if nan and np.isnan(arr).any():
        return "NaN"
    if inf and np.isinf(arr).any():
        return "Inf"
    if big and (np.abs(arr[np.isfinite(arr)]) > 1e10).any():
        return "a value above 1e10 in magnitude"
    return None


def debug_wrap(impl: Any, fgraph: FunctionGraph, spec: Any, mode: Any, report: Any,
               compile_fn: Callable) -> Any:
    """``impl`` itself for ordinary modes; for DebugMode/MonitorMode/NanGuardMode a callable that
    runs the graph node by node (``compile_fn(fgraph, spec)`` compiles single nodes for DebugMode)."""
    m = as_mode(mode) if mode is not None else None
    if isinstance(m, MonitorMode):
        return _Monitor(fgraph, spec, m)
    if isinstance(m, DebugMode):
        return _Debug(impl, fgraph, spec, m, (report or {}).get("replacements", []), compile_fn)
    return impl


class _Interpreter:
    """Shared by the modes: argument conversion, shared values, and committing updates."""

    def __init__(self, fgraph: FunctionGraph, spec: Any):
        self.fgraph, self.spec = fgraph, spec
        self.order = fgraph.toposort()
        self.source = ""

    def env(self, args: list) -> dict:
        """The graph inputs' values for a call whose arguments ``bind_arguments`` put in order."""
        spec = self.spec
        values = []
        for v, a, arg in zip(self.fgraph.inputs, spec.args or [ArgSpec()] * spec.n_inputs, args):
            arg = a.container.to_host() if arg is NOT_GIVEN else arg
            values.append(v.type.filter(arg, a.strict, spec.allow_downcast if a.allow_downcast is None
                                        else a.allow_downcast))
        values += [np.array(c.to_host(), copy=True) for c in spec.containers]
        return dict(zip(self.fgraph.inputs, values))

    def stores(self) -> list[tuple[int, Any]]:
        """(graph output index, container) of every update: shared variables' and inputs' states."""
        return ([(o, self.spec.containers[c]) for o, c in self.spec.updates]
                + [(a.update, a.container) for a in self.spec.args if a.update is not None])

    def results(self, values: dict) -> Any:
        outs = [np.array(values[v], copy=True) if isinstance(values[v], np.ndarray) else values[v]
                for v in self.fgraph.outputs[:self.spec.n_outputs]]
        return outs if self.spec.return_list else outs[0]


class _Monitor(_Interpreter):
    def __init__(self, fgraph: FunctionGraph, spec: Any, mode: MonitorMode):
        super().__init__(fgraph, spec)
        self.mode = mode

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        values = self.env(bind_arguments(self.spec, args, kwargs))
        for i, node in enumerate(self.order):
            fn = SimpleNamespace(inputs=[[values[v] if v in values else leaf_value(v)] for v in node.inputs],
                                 outputs=[[None] for _ in node.outputs])
            if self.mode.pre_func is not None:
                self.mode.pre_func(i, node, fn)
            outs = node.op.perform(node, [cell[0] for cell in fn.inputs])
            for cell, value in zip(fn.outputs, outs):
                cell[0] = value
            values.update(zip(node.outputs, outs))
            if self.mode.post_func is not None:
                self.mode.post_func(i, node, fn)
        for out_idx, container in self.stores():  # all nodes ran: commit the updates together
            container.set(np.array(_value(values, self.fgraph.outputs[out_idx]), copy=True))
        return self.results(values)


def _value(values: dict, v: Variable) -> Any:
    return values[v] if v in values else leaf_value(v)


class _Debug(_Interpreter):
    def __init__(self, impl: Any, fgraph: FunctionGraph, spec: Any, mode: DebugMode, replacements: list,
                 compile_fn: Callable):
        super().__init__(fgraph, spec)
        self.impl, self.mode, self.replacements, self.compile_fn = impl, mode, replacements, compile_fn
        self.source = getattr(impl, "source", "")
        self.kernels = getattr(impl, "kernels", {})
        self._single: dict[Apply, Any] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        bound = bind_arguments(self.spec, args, kwargs)
        env = self.env(bound)
        stores = [c for _, c in self.stores()]
        before = [np.array(c.to_host(), copy=True) for c in stores]
        values = dict(env)
        for node in self.order:
            self._run_node(node, values)
        self._check_rewrites(env)
        result = self.impl.__call__(*bound)
        try:
            self._check_results(result, values)
        except DebugModeError:
            for c, old in zip(stores, before):
                c.set(old)
            raise
        return result

    def _run_node(self, node: Apply, values: dict) -> None:
        ins = [_value(values, v) for v in node.inputs]
        saved = [np.array(x, copy=True) if isinstance(x, np.ndarray) else None for x in ins]
        outs = node.op.perform(node, ins)
        for k, (x, copy_) in enumerate(zip(ins, saved)):
            if copy_ is not None and not _same(copy_, x):
                raise DebugModeError(f"{node.op}.perform wrote into its input {k} (symgraph ops must not "
                                     f"modify their inputs)\n{node_context(node, ins)}")
        values.update(zip(node.outputs, outs))
        problem = infer_shape_error(node, values, outs)
        if problem:
            raise DebugModeError(f"{problem}\n{node_context(node, ins)}")
        if self.mode.check_isfinite:
            for k, o in enumerate(outs):
                bad = _bad_value(o, True, True, False)
                if bad and not any(_bad_value(x, True, True, False) for x in ins):
                    raise DebugModeError(f"output {k} of {node.op} holds {bad} (check_isfinite=True)\n"
                                         f"{node_context(node, ins)}")
        if self.mode.check_per_node:
            self._compare_with_backend(node, ins, outs)

    def _compare_with_backend(self, node: Apply, ins: list, outs: list) -> None:
        single = self._single_node(node)
        if single is None:
            return
        got = single.__call__(*ins)  # backends keep the generated function in __call__
        for k, (o, want, have) in enumerate(zip(node.outputs, outs, got)):
            if not o.type.values_eq_approx(want, have):
                raise DebugModeError(f"the backend's result for output {k} of {node.op} differs from perform:\n"
                                     f"  backend: {_short(have)}\n  perform: {_short(want)}\n"
                                     f"{node_context(node, ins)}")

    def _single_node(self, node: Apply) -> Any:
        """``node`` alone compiled by the backend (None when it cannot be compiled alone)."""
        if node not in self._single:
            try:
                ins = [v.type.make_variable(f"i{k}") for k, v in enumerate(node.inputs)]
                alone = node.op.make_node(*ins)
                fg = FunctionGraph(ins, alone.outputs, clone=False)
                spec = dataclasses.replace(self.spec, n_inputs=len(ins), input_names=[f"i{k}" for k in range(len(ins))],
                                           containers=[], updates=[], args=[], borrow_outputs=(),
                                           n_outputs=len(alone.outputs),
                                           return_list=True, nan_guard=False, name="node")
                self._single[node] = self.compile_fn(fg, spec)
            except Exception:  # an op the backend cannot run alone: perform is then the only reference
                self._single[node] = None
        return self._single[node]

    def _check_rewrites(self, env: dict) -> None:
        memo = dict(env)
        for old, new, rule, trace in self.replacements:
            memo = evaluate([old, new], memo)
            if not old.type.values_eq_approx(memo[old], memo[new]):
                where = f"\nBuilt at (most recent user line):\n  {trace}" if trace is not None else ""
                raise DebugModeError(f"rewrite {rule!r} changed the value of {old} "
                                     f"({old.owner.op if old.owner else 'input'}):\n  before: {_short(memo[old])}\n"
                                     f"  after:  {_short(memo[new])}{where}")

    def _check_results(self, result: Any, values: dict) -> None:
        outs = result if self.spec.return_list else [result]
        for k, (v, got) in enumerate(zip(self.fgraph.outputs, outs)):
            if not v.type.values_eq_approx(_value(values, v), got):
                raise DebugModeError(f"output {k} of the compiled function differs from perform's:\n"
                                     f"  backend: {_short(got)}\n  perform: {_short(_value(values, v))}")
        for out_idx, c in self.stores():
            v = self.fgraph.outputs[out_idx]
            if not v.type.values_eq_approx(_value(values, v), c.to_host()):
                raise DebugModeError(f"the update of {c.name or 'a stored value'} differs from perform's:\n"
                                     f"  backend: {_short(c.to_host())}\n  perform: {_short(_value(values, v))}")


def _same(a: np.ndarray, b: Any) -> bool:
    b = np.asarray(b)
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        text = np.array2string(np.asarray(value), threshold=20, precision=6)
    else:
        text = repr(value)
    return text.replace("\n", "\n           ")


__all__ = ["DebugMode", "MonitorMode", "NanGuardMode", "DebugModeError", "NanGuardModeError", "debug_wrap"]
