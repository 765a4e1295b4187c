"""The dask backend: the call protocol (symgraph/compile/link.py) around one *builder* step per
node, making dask arrays; ``materialize`` then computes every output and update value in one
scheduler call, and only after it succeeded are the updates committed.

Values are either lazy (dask arrays: arguments, shared variables and everything computed from
their data) or host values known before the computation (constants, shapes, 0-d arguments and
shared variables, and the small arithmetic on them, run with the numpy backend's lowerings). See
``graph.py`` for how the graph is built once per chunk structure and reused, and ``kernels.py``
for how a node's numpy code reaches the workers."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
from dask.base import get_scheduler

from symgraph.backends.dask import fallback
from symgraph.backends.dask.graph import (
    LRU,
    Step,
    Template,
    feed_dask,
    feed_numpy,
    known_chunks,
    lazy,
    placeholder,
    run,
)
from symgraph.backends.dask.lowering import TABLE, DaskLowerContext, as_dask
from symgraph.backends.numpy.lowering import expression, perform_call
from symgraph.compile.link import DEVICE, HOST, Backend, Emitter, LinkedFunction, link
from symgraph.compile.lowering import CodeContext
from symgraph.compile.placement import HostFallback
from symgraph.errors import InputError
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.ifelse import IfElse
from symgraph.scan.op import Scan
from symgraph.tensor.alloc import Alloc, ARange
from symgraph.tensor.reduction import ReducedSize
from symgraph.tensor.shape import Shape, Shape_i
from symgraph.tensor.type import TensorType

OPTIONS = ("chunks", "compute", "scheduler")
SHAPE_ONLY = (Shape, Shape_i, ReducedSize)  # read only their inputs' shapes: known before computing
CREATES = (Alloc, ARange)  # make arrays from host values: lazy, chunked
# run their inner graphs through the generated code of a fallback task, even on host values
# (a loop over 0-d carries: the emitter would plan its body for lazy values)
INNER = (IfElse, Scan)


def _is_tensor(v: Variable) -> bool:
    return isinstance(v.type, TensorType)


def _is_array(v: Variable) -> bool:
    """Can ``v``'s value be a dask array (a tensor of one or more axes)?"""
    return isinstance(v.type, TensorType) and v.type.ndim > 0


class Entry:
    """How one argument or shared variable enters the graph: its chunking, its placeholder."""

    def __init__(self, prefix: str, chunks: Any, what: str):
        self.prefix, self.chunks, self.what = prefix, chunks, what
        self.placeholders = LRU(16)

    def __call__(self, value: Any) -> tuple:
        if isinstance(value, da.Array):
            known_chunks(value, self.what)
            ph = self._placeholder(value.chunks, value.dtype)
            return ph, feed_dask(ph, value)
        value = np.asarray(value)
        spec = self.chunks
        if isinstance(spec, tuple) and len(spec) != value.ndim:
            spec = "auto"  # a per-axis tuple is for the arguments with that many axes
        try:
            chunks = da.core.normalize_chunks(spec, value.shape, dtype=value.dtype)
        except (ValueError, TypeError) as e:
            raise InputError(f"chunks={self.chunks!r} does not fit {self.what} of shape {value.shape}: {e}") from None
        ph = self._placeholder(chunks, value.dtype)
        return ph, feed_numpy(ph, value)

    def _placeholder(self, chunks: tuple, dtype: np.dtype) -> da.Array:
        key = (chunks, dtype.str)
        found = self.placeholders.get(key)
        return found if found is not None else self.placeholders.put(key, placeholder(self.prefix, chunks, dtype))


def _chunk_spec(spec: Any) -> Any:
    """``chunks`` as dask reads it (10**7 given as 1e7 is an int)."""
    if isinstance(spec, float) and spec.is_integer():
        return int(spec)
    if isinstance(spec, tuple):
        return tuple(_chunk_spec(s) for s in spec)
    return spec


class DaskBackend(Backend):
    """dask.array graphs computed by any dask scheduler (threads by default)."""

    name = "dask"

    def __init__(self, options: dict):
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise InputError(f"backend='dask' takes the options {list(OPTIONS)}, got {unknown}")
        self.chunks = options.get("chunks", "auto")
        self.compute = bool(options.get("compute", True))
        self.scheduler = options.get("scheduler")
        self.eager: set[Variable] = set()
        self.builders: dict[Apply, Callable] = {}
        self.here: set[Apply] = set()  # fallbacks run in the generated code, their lazy inputs computed first
        self.feeds: list[str] = []
        self.templates = LRU(8)

    # --- planning ----------------------------------------------------------------------------
    def prepare(self, fgraph: FunctionGraph, spec: Any) -> None:
        if spec.nan_guard:
            raise InputError("nan_guard is not available on the dask backend (it would compute every node "
                             "on its own); debug with backend='numpy'")
        if not self.compute and spec.updates:
            raise InputError("compute=False returns lazy outputs, but this function has updates, which are "
                             "committed only after the computation succeeded; compile it with compute=True")
        self.spec, self.fgraph = spec, fgraph
        # 0-d arguments and shared variables are host values, known before the computation: a slice
        # of a dataset by a minibatch index (Theano's `givens={x: data[i * n:(i + 1) * n]}`) then
        # has known chunks, where a lazy index made every later node's shape unknown
        self.eager.update(v for v in fgraph.inputs if not _is_array(v))
        for node in list(fgraph.toposort()):
            if self._is_eager(node):
                self.eager.update(node.outputs)
                continue
            if not all(map(_is_tensor, node.inputs + node.outputs)):  # a typed list, a type of the user's
                node = fallback.wrap(fgraph, node, "it reads or makes a value that is not a tensor",
                                     "its dask inputs are computed first, then it runs in this process")
                self.eager.update(node.outputs)
                self.here.add(node)
                continue
            eager = [isinstance(v, Constant) or v in self.eager for v in node.inputs]
            lower = TABLE.lookup(node.op)
            build = None if lower is None or isinstance(node.op, HostFallback) else lower(node, DaskLowerContext(eager))
            if build is None:
                if not isinstance(node.op, HostFallback):
                    node = fallback.wrap(fgraph, node, "no dask lowering for this op or these inputs")
                build = fallback.host_fallback(node)
            else:
                build = fallback.unless_lengths_unknown(build, node)
            self.builders[node] = build

    def _is_eager(self, node: Apply) -> bool:
        if isinstance(node.op, SHAPE_ONLY):
            return True
        if isinstance(node.op, CREATES + INNER):
            return False
        return all(isinstance(v, Constant) or v in self.eager for v in node.inputs)

    def side(self, v: Variable) -> str:
        return HOST if isinstance(v, Constant) or v in self.eager else DEVICE

    def wanted_sides(self, node: Apply) -> list[str | None]:
        if node in self.here:
            return [HOST] * len(node.inputs)  # runs here (numpy's code): a lazy input is computed first
        return [None] * len(node.inputs)

    def convert(self, name: str, to: str, ctx: CodeContext) -> str:
        """A lazy value computed now, over this call's data (for a node that runs here)."""
        feeds = f"({', '.join(self.feeds)},)" if self.feeds else "()"
        return f"{ctx.ref(self._runner(), 'compute_now')}(({name},), {feeds})[0]"

    # --- arguments --------------------------------------------------------------------------
    def argument_filter(self, t: Any, allow_downcast: bool, what: str) -> Callable:
        def dask_or_filter(value: Any) -> Any:
            if not isinstance(value, da.Array):
                return t.filter(value, allow_downcast=allow_downcast, what=what)
            if value.ndim != t.ndim:
                raise InputError(f"{what}: expected a {t.ndim}-d array ({t}), got a {value.ndim}-d dask array")
            for d, s in enumerate(t.shape):
                if s is not None and value.shape[d] != s:
                    raise InputError(f"{what}: dimension {d} must have length {s} ({t}), the dask array has "
                                     f"shape {value.shape}")
            if value.dtype != t.numpy_dtype:
                if not (allow_downcast or np.can_cast(value.dtype, t.numpy_dtype, "safe")):
                    raise InputError(f"{what}: expected dtype {t.dtype}, got a dask array of {value.dtype} "
                                     "(pass allow_input_downcast=True to cast it)")
                value = value.astype(t.numpy_dtype)
            return value
        return dask_or_filter

    def _chunks_for(self, name: str | None, shared: bool) -> Any:
        spec = self.chunks
        if isinstance(spec, dict) and all(isinstance(k, str) for k in spec):
            return _chunk_spec(spec.get(name, -1 if shared else "auto"))
        return -1 if shared else _chunk_spec(spec)

    def read_input(self, name: str, v: Variable, ctx: CodeContext) -> list[str]:
        if v in self.eager:  # a 0-d argument: a host value (a 0-d dask array is computed here)
            return [f"{name} = np.asarray({name})"] if _is_tensor(v) else []
        what = f"argument {name} of {self.spec.name}"
        entry = Entry(f"sg-{self.spec.name}-{name}", self._chunks_for(v.name or name, False), what)
        feed = f"_feed_{name}"
        self.feeds.append(feed)
        return [f"{name}, {feed} = {ctx.ref(entry, f'enter_{name}')}({name})"]

    def read_shared(self, name: str, v: Variable, cont: str, ctx: CodeContext) -> list[str]:
        if v in self.eager:  # a 0-d shared variable: its host value
            return super().read_shared(name, v, cont, ctx)
        entry = Entry(f"sg-{self.spec.name}-{name}", self._chunks_for(v.name, True), f"shared variable {name}")
        feed = f"_feed_{name}"
        self.feeds.append(feed)
        return [f"{name} = {cont}.value", f"if {name} is None: {name} = {cont}.to_host()",
                f"{name}, {feed} = {ctx.ref(entry, f'enter_{name}')}({name})"]

    # --- nodes -------------------------------------------------------------------------------
    def lower(self, node: Apply, ins: list[str], outs: list[str], em: Emitter) -> list[str]:
        if node not in self.builders:  # a host value (shape arithmetic): numpy's own lowering
            expr = expression(node, ins, em.ctx)
            if expr is None:
                return [f"{', '.join(outs)}, = {perform_call(node, ins, em.ctx)}"]
            return [f"{', '.join(outs)} = {expr}"]
        step = Step(self.builders[node], str(node.op))
        return [f"{', '.join(outs)}, = {em.ctx.ref(step, f'step_{node.op}')}({', '.join(ins)})"]

    # --- results -----------------------------------------------------------------------------
    def materialize(self, values: list[tuple[str, Variable]], ctx: CodeContext) -> list[str]:
        names = [n for n, v in values if self.side(v) == DEVICE]
        if not names:
            return []
        fn = self._runner() if self.compute else self._lazy_runner()
        target = f"{', '.join(names)}," if names else "_"
        feeds = f"({', '.join(self.feeds)},)" if self.feeds else "()"  # no feed: every input a host value
        return [f"{target} = {ctx.ref(fn, 'compute' if self.compute else 'lazy')}(({', '.join(names)},), {feeds})"]

    def _template(self, arrays: tuple, feeds: tuple) -> Template:
        key = tuple(a.name for a in arrays)
        found = self.templates.get(key)
        if found is None:
            found = self.templates.put(key, Template(list(arrays), [k for f in feeds for k in f.entries]))
        return found

    def _runner(self) -> Callable:
        def compute(arrays: tuple, feeds: tuple) -> list:
            """Every lazy output and update value, computed in one scheduler call."""
            get = get_scheduler(scheduler=self.scheduler, cls=da.Array)
            return run(self._template(arrays, feeds), list(feeds), get)
        return compute

    def _lazy_runner(self) -> Callable:
        def lazy_arrays(arrays: tuple, feeds: tuple) -> list:
            """The outputs as dask arrays over this call's data (compute=False)."""
            return lazy(self._template(arrays, feeds), list(feeds))
        return lazy_arrays

    def output(self, expr: str, v: Variable, side: str, copy: bool, ctx: CodeContext) -> str:
        if not _is_tensor(v):
            return super().output(expr, v, side, copy, ctx)
        if not self.compute:
            return expr if side == DEVICE else f"{ctx.ref(as_dask, 'as_dask')}({expr})"
        return f"np.array({expr})" if copy else f"np.asarray({expr})"

    def staged(self, cont: str, expr: str, side: str) -> str:
        return f"({cont}, {expr}, None)"

    def copy(self, expr: str, side: str, ctx: CodeContext) -> str:
        return f"np.array({expr})"


class DaskFunction(LinkedFunction):
    """A compiled dask function: ``source`` is the Python schedule (one builder step per node and
    one compute call); ``fallbacks`` lists the nodes run as one task on whole arrays."""

    backend: DaskBackend  # link() is given this module's backend

    @property
    def fallbacks(self) -> list[str]:
        return [str(n.op) for n in self.backend.builders if isinstance(n.op, HostFallback)]


def compile(fgraph: FunctionGraph, spec: Any) -> DaskFunction:
    """Lower ``fgraph`` onto dask.array (options: ``chunks``, ``compute``, ``scheduler``)."""
    return link(fgraph, spec, DaskBackend(dict(spec.options)), DaskFunction)
