"""Size-aware placement on devices that share the host's memory (pocl on the CPU, integrated GPUs).

There, a value lives in host memory whether a kernel or numpy computes it, so a node can run on
the host at no transfer cost; what differs is the fixed cost of a kernel launch (tens of
microseconds on pocl) against numpy's per-element speed. Each node goes where it is cheaper, by
a cost model whose four constants are measured once per device (``calibration``) and cached in
a JSON file (``cache_path``): the placement of a graph is a function of that file, the node
sizes and the node kinds, nothing else. On a device with its own memory (a discrete GPU)
every node stays on the device: moving data over the bus is what costs there.

``sg.config.placement`` (``SYMGRAPH_PLACEMENT``; ``sg.function(..., placement=...)`` for one
function) forces it: 'device' runs every node the device can run as a kernel (the test suite's
default, so that it tests the kernels), 'host' runs every node on the host (zero-copy devices
only), 'auto' (the default) decides by size.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np

from symgraph.backends.opencl import kernels_scalar as ks
from symgraph.backends.opencl.loop_plan import unsupported
from symgraph.backends.opencl.runtime import Runtime, _cl
from symgraph.compile.link import NOT_GIVEN
from symgraph.compile.placement import HostFallback, HostPlaced, concrete_shapes
from symgraph.config import config
from symgraph.graph.basic import Apply, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.ifelse import IfElse
from symgraph.scan.op import Scan
from symgraph.tensor.composite import Composite
from symgraph.tensor.elemwise import Elemwise
from symgraph.tensor.fused import Epilogue, ReduceOf
from symgraph.tensor.math import Dot, MatMul
from symgraph.tensor.reduction import CAReduce, ReducedSize
from symgraph.tensor.shape import Shape, Shape_i

MODES = ("auto", "host", "device")
CALIBRATION_VERSION = 2
"""Bumped when the measurement changes: older cache entries are measured again."""


@dataclass(frozen=True)
class Calibration:
    """One device's cost model, in microseconds: a kernel launch costs ``launch_us`` plus
    ``device_ns`` per element and program step; a numpy call costs ``call_us`` plus ``host_ns``
    per element (numpy runs each step of a fused program as its own call)."""
    device: str
    launch_us: float
    device_ns: float
    call_us: float
    host_ns: float
    version: int = CALIBRATION_VERSION

    def host_is_cheaper(self, elements: int, steps: int) -> bool:
        """True when ``steps`` numpy calls over ``elements`` values cost less than one kernel launch
        running the same program."""
        return self.saving_us(elements, steps) > 0

    def saving_us(self, elements: int, steps: int) -> float:
        """Microseconds a call saves by running this node on the host rather than as a kernel."""
        host = steps * (self.call_us + elements * self.host_ns * 1e-3)
        device = self.launch_us + steps * elements * self.device_ns * 1e-3
        return device - host

    def crossover(self, steps: int = 1) -> float:
        """The element count below which a program of ``steps`` steps runs on the host."""
        gain = steps * (self.host_ns - self.device_ns) * 1e-3
        room = self.launch_us - steps * self.call_us
        return float("inf") if gain <= 0 else max(0.0, room / gain)


def cache_path() -> str:
    """The calibration file: ``$SYMGRAPH_CACHE_DIR/placement.json``, else
    ``$XDG_CACHE_HOME/symgraph/placement.json``, else ``~/.cache/symgraph/placement.json``."""
    base = os.environ.get("SYMGRAPH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "symgraph")
    return os.path.join(base, "placement.json")


def device_key(rt: Runtime) -> str:
    """What identifies a device's speed: its platform, name and driver version."""
    driver = getattr(rt.device, "driver_version", "?")
    return f"{rt.info.platform} | {rt.info.name} | {driver} | {rt.info.compute_units} units"


_MEMO: dict[str, Calibration] = {}


def calibration(rt: Runtime) -> Calibration:
    """The device's cost model: read from the cache file, else measured (about a second) and
    written there. Kept for the process once read."""
    key = device_key(rt)
    if key in _MEMO:
        return _MEMO[key]
    path = cache_path()
    entries = _read(path)
    entry = entries.get(key)
    if isinstance(entry, dict) and entry.get("version") == CALIBRATION_VERSION:
        try:
            cal = Calibration(**entry)
        except TypeError:
            cal = None
        if cal is not None:
            _MEMO[key] = cal
            return cal
    cal = measure(rt, key)
    entries[key] = asdict(cal)
    _write(path, entries)
    _MEMO[key] = cal
    return cal


def forget() -> None:
    """Drop the calibrations this process has read (tests point the cache elsewhere)."""
    _MEMO.clear()


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: str, entries: dict) -> None:
    """Write the cache atomically (a concurrent reader sees the old file or the new one)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".placement")
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:  # a read-only home: the measurement is kept for this process only
        pass


_PROGRAM = """__kernel __attribute__((reqd_work_group_size(256, 1, 1)))
void sg_calibrate(__global const float *restrict x, __global float *restrict out, const long n)
{
    const long i = get_global_id(0);  /* 16 elements per work-item, as the elementwise kernels */
    if ((i + 1) * 16 <= n) { const float16 t = tanh(vload16(i, x)); vstore16(t * 1.5f + 0.5f, i, out); }
}
"""
_STEPS = 3  # tanh, mul, add
_SMALL, _LARGE = 16, 1 << 20


def measure(rt: Runtime, key: str) -> Calibration:
    """Time the 3-step program tanh(x) * 1.5 + 0.5 as one kernel (float16 vectors, as the
    elementwise kernels) and as numpy calls, at 16 and at 2^20 elements (medians of several runs;
    kernels launched back to back, as a schedule does)."""
    kernel = rt.kernel(_PROGRAM, "sg_calibrate")
    times = {n: _time_both(rt, kernel, n) for n in (_SMALL, _LARGE)}
    (d_small, h_small), (d_large, h_large) = times[_SMALL], times[_LARGE]
    per = 1e9 / (_LARGE - _SMALL)
    return Calibration(device=key, launch_us=d_small * 1e6,
                       device_ns=max(0.0, (d_large - d_small) * per / _STEPS),
                       call_us=h_small * 1e6 / _STEPS, host_ns=max(0.0, (h_large - h_small) * per / _STEPS))


def _time_both(rt: Runtime, kernel: Any, n: int) -> tuple[float, float]:
    """Seconds per run of the calibration program on ``n`` elements: as one kernel, as numpy calls."""
    cl = _cl()
    x = np.linspace(-2, 2, n, dtype=np.float32)
    buf = cl.Buffer(rt.context, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=x)
    out = cl.Buffer(rt.context, cl.mem_flags.WRITE_ONLY, x.nbytes)
    size = (-(-n // (256 * 16)) * 256,)
    burst = 20 if n == _SMALL else 3

    def device() -> None:
        for _ in range(burst):
            kernel(rt.queue, size, (256,), buf, out, np.int64(n))
        rt.queue.finish()

    def host() -> None:
        for _ in range(burst):
            t = np.tanh(x)
            np.multiply(t, np.float32(1.5), out=t)
            np.add(t, np.float32(0.5), out=t)
    device()  # builds for this size, warms caches
    return _median_time(device) / burst, _median_time(host) / burst


def _median_time(fn: Any, rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def mode_for(rt: Runtime, requested: str | None) -> str:
    """The placement mode a function compiles under: ``requested`` (the function's option), else
    ``sg.config.placement``; 'auto' and 'host' need a device sharing host memory, else 'device'."""
    mode = requested or config.placement
    if mode not in MODES:
        raise ValueError(f"placement must be one of {list(MODES)}, got {mode!r}")
    return mode if rt.zero_copy else "device"


# --- what a node costs --------------------------------------------------------------------------

def work(node: Apply, shapes: dict[Variable, tuple]) -> tuple[int, int] | None:
    """(elements, program steps) a node processes, from the concrete shapes known; None when a
    shape it needs is unknown. Elementwise programs count their steps; reductions the elements
    they read; anything else the larger of what it reads and writes, as one step."""
    op = node.op.op if isinstance(node.op, HostPlaced) else node.op

    def sizes(vs: list[Variable]) -> list[int] | None:
        found = [shapes[v] for v in vs if v in shapes]
        return None if len(found) < len(vs) else [int(np.prod(s, dtype=np.int64)) for s in found]
    outs = sizes(list(node.outputs))
    ins = sizes([v for v in node.inputs if getattr(v.type, "ndim", None) is not None])
    if isinstance(op, Composite):
        return None if outs is None else (max(outs, default=0), len(op.steps))
    if isinstance(op, Elemwise):
        return None if outs is None else (max(outs, default=0), 1)
    if isinstance(op, (CAReduce, ReduceOf, Epilogue)):
        steps = 1 + (len(op.program.steps) if isinstance(op, (ReduceOf, Epilogue)) else 0)
        return None if ins is None else (max(ins, default=0), steps)
    if ins is None or outs is None:
        return None
    return max(ins + outs, default=0), 1


def is_float_product(node: Apply) -> bool:
    """A float matrix product (with or without its epilogue): numpy's BLAS on a CPU device."""
    op = node.op.op if isinstance(node.op, HostPlaced) else node.op
    core = op.core if isinstance(op, Epilogue) else op
    if not isinstance(core, (Dot, MatMul)):
        return False
    return all(np.dtype(getattr(v.type, "dtype", "O")).kind == "f" for v in node.inputs[:2])


def known_shapes(fgraph: FunctionGraph, input_shapes: dict[Variable, tuple]) -> dict[Variable, tuple]:
    """The shapes of ``fgraph``'s inputs known now: ``input_shapes`` (a call's arguments), else a
    fully static type; a shared variable's current value."""
    known: dict[Variable, tuple] = {}
    for v in fgraph.inputs:
        if v in input_shapes:
            known[v] = tuple(int(d) for d in input_shapes[v])
        elif getattr(v, "is_shared", False):
            c = cast(Any, v).container
            value = c.value if c.value is not None else c.device
            if value is not None:
                known[v] = tuple(int(d) for d in value.shape)
        elif None not in (static := getattr(v.type, "shape", (None,))):
            known[v] = tuple(static)
    return known


# --- the decision -----------------------------------------------------------------------------

_METADATA = (Shape, Shape_i, ReducedSize)  # read only shapes: wherever their input is, at no cost


def _placeable(node: Apply) -> bool:
    """Nodes placement decides for: not control flow, not already on the host, not a shape read,
    and only values the device can hold (the rest become host fallbacks anyway)."""
    op = node.op
    if isinstance(op, (HostFallback, IfElse, *_METADATA)):
        return False
    if isinstance(op, Scan) and unsupported(op, fp64=True) is None:
        return False  # its one-kernel loop runs every step in one launch (backends/opencl/loop_kernel.py)
    return all(hasattr(v.type, "dtype") and ks.supported_dtype(v.type.dtype) for v in node.inputs + node.outputs)


def decide(fgraph: FunctionGraph, mode: str, cal: Calibration | None, shapes: dict[Variable, tuple]) -> set[Apply]:
    """The nodes of ``fgraph`` to run on the host under ``mode`` ('device': none; 'host': every
    placeable one; 'auto': float matrix products (numpy's BLAS beats any CPU kernel) and the
    nodes the calibrated model finds cheaper there at the sizes ``shapes`` gives; a node of
    unknown size stays on the device). Views (ops with a ``view_map``) cost nothing anywhere and
    follow their readers, so that no value crosses over just to be viewed."""
    if mode == "device":
        return set()
    order = fgraph.toposort()
    chosen = {n for n in order if isinstance(n.op, HostPlaced)}
    for node in order:
        if node in chosen or not _placeable(node) or node.op.view_map:
            continue
        if mode == "host" or is_float_product(node):
            chosen.add(node)
            continue
        w = work(node, shapes)
        if w is not None and cal is not None and cal.host_is_cheaper(*w):
            chosen.add(node)
    for node in reversed(order):
        if node in chosen or not node.op.view_map or not _placeable(node):
            continue
        readers = [c for o in node.outputs for c, _ in fgraph.clients.get(o, []) if c != "output"]
        source = node.inputs[0].owner
        if mode == "host" or (readers and all(r in chosen for r in readers)) or (not readers and source in chosen):
            chosen.add(node)
    return chosen


def describe(node: Apply, shapes: dict[Variable, tuple], mode: str, cal: Calibration | None) -> str:
    """Why ``node`` runs on the host (the comment of its ``f.kernels`` entry)."""
    if mode == "host":
        return "placement forced to 'host'"
    if node.op.view_map:
        return "a view, read on the host"
    if is_float_product(node):
        return "a float matrix product: numpy's BLAS on the shared memory"
    w = work(node, shapes)
    if w is None or cal is None:
        return "placed on the host"
    return (f"{w[0]} elements x {w[1]} step(s), below the calibrated crossover of "
            f"{cal.crossover(w[1]):.0f} elements (launch {cal.launch_us:.1f} us; cache {cache_path()})")


def undecided(fgraph: FunctionGraph, shapes: dict[Variable, tuple]) -> bool:
    """True when 'auto' placement of some node of ``fgraph`` waits on a size ``shapes`` does not
    fix (an argument's shape): then the placement is made per call, by the arguments' shapes."""
    return any(_placeable(n) and not n.op.view_map and not is_float_product(n) and work(n, shapes) is None
               for n in fgraph.toposort())


PAYBACK_CALLS, LINK_US = 100, 100.0
"""A new placement is compiled at once when its calibrated saving pays for linking the graph
again (about LINK_US microseconds per program step, measured on W4's 1000-op chain) within
PAYBACK_CALLS calls."""
_MAX_SHAPES = 256
"""Argument shapes a SizePlaced function remembers (then it forgets them all and starts again)."""


class SizePlaced:
    """A function compiled under 'auto' placement whose nodes' sizes depend on its arguments: each
    call looks up the placement made for its arguments' shapes (a dict lookup on the tuple of
    shapes); a new placement compiles a new variant, on a copy of the graph, at once when its
    saving pays for the link soon (``_pays_back``), else when a second call asks for it
    (kernels already built are reused). Variants differ only in where nodes run, never
    in the numbers they compute, so a call whose arguments have no ``shape`` (lists, Python
    numbers) may take any.

    The variant placed without the arguments' shapes (the sizes known at compile time decide;
    nodes of unknown size are kernels) is compiled with the function, on its own graph:
    ``f.graph``, ``f.source`` and host-fallback warnings are as at compile time. ``variants``
    maps each placement (the positions, in topological order, of the nodes run on the host) to
    its compiled function (``.fgraph``, ``.source``); ``kernels`` lists every variant's kernels
    and host placements (``onhost...`` entries)."""

    def __init__(self, fgraph: FunctionGraph, spec: Any, rt: Runtime, cal: Calibration,
                 build: Callable[[FunctionGraph, dict[Variable, tuple]], Any]):
        n_inputs = spec.n_inputs
        self._params = list(spec.input_names)  # Python names already (the generated functions' parameters)
        self._args = list(getattr(spec, "args", None) or [None] * n_inputs)
        self._pristine = FunctionGraph(fgraph.inputs, fgraph.outputs)  # a copy, before placement changes fgraph
        self._index = {node: k for k, node in enumerate(self._pristine.toposort())}
        self._inputs, self._cal, self._build, self._own = fgraph.inputs[:n_inputs], cal, build, fgraph
        self.fgraph, self.runtime = fgraph, rt
        self.variants: dict[frozenset, Any] = {}
        self._trusted: Callable | None = None
        self._asked: set[frozenset] = set()  # placements asked for once (compiled when asked again)
        self.variant({})  # at once, on fgraph itself: f.graph, f.source and fallback warnings as at compile time
        self.__call__ = self._caller()

    def signature(self, input_shapes: dict[Variable, tuple]) -> frozenset:
        """The placement for these argument shapes: the positions of the nodes run on the host."""
        shapes = concrete_shapes(self._pristine.toposort(), known_shapes(self._pristine, input_shapes))
        return frozenset(self._index[n] for n in decide(self._pristine, "auto", self._cal, shapes))

    def _caller(self, trusted: bool = False) -> Callable:
        """The call: the variant for the arguments' shapes (``trusted``: its form without argument
        checks). It takes the parameters the generated functions take (``x``, or ``x=NOT_GIVEN``
        for an input that may be left out), so Python binds keywords and refuses a wrong count
        exactly as it does for them."""
        table: dict[Any, Callable] = {}

        def pick(args: tuple, key: Any) -> Callable:
            variant, settled = self._variant_for(args)
            fn = variant.trusted() if trusted else variant.__call__
            if settled:
                if len(table) >= _MAX_SHAPES:
                    table.clear()
                table[key] = fn
            return fn
        names = self._params
        params, optional = [], False
        for name, a in zip(names, self._args):
            optional = optional or getattr(a, "container", None) is not None
            params.append(f"{name}=_not_given" if optional else name)
        args = "".join(f"{n}, " for n in names)
        source = (f"def call({', '.join(params)}):\n"
                  f"    try:\n        key = ({''.join(f'{n}.shape, ' for n in names)})\n"
                  f"    except AttributeError:\n        key = None\n"
                  f"    fn = _table.get(key)\n"
                  f"    if fn is None:\n        fn = _pick(({args}), key)\n"
                  f"    return fn({args})\n")
        namespace = {"_table": table, "_pick": pick, "_not_given": NOT_GIVEN}
        exec(compile(source, "<symgraph placement dispatch>", "exec"), namespace)
        return cast(Callable, namespace["call"])

    def trusted(self) -> Callable:
        """The call without argument checks (``f.trust_input = True``), variant by variant."""
        if self._trusted is None:
            self._trusted = self._caller(trusted=True)
        return self._trusted

    def variant(self, input_shapes: dict[Variable, tuple]) -> Any:
        """The compiled variant for these argument shapes (compiled now if its placement is new)."""
        sig = self.signature(input_shapes)
        if sig not in self.variants:
            graph = self._own if not self.variants else FunctionGraph(self._pristine.inputs, self._pristine.outputs)
            # (the first variant, at compile time, is placed on the function's own graph)
            self.variants[sig] = self._build(graph, input_shapes)
        return self.variants[sig]

    def _variant_for(self, args: tuple) -> tuple[Any, bool]:
        """The variant for ``args``, and whether it is the one for their shapes for good. A new
        placement is compiled the second time a call asks for it (the first call runs the variant
        compiled with the function: a function called once, as a large graph built and run once,
        is not linked twice). Arguments it cannot size (a wrong count, a ragged list) go to the
        variant compiled with the function, whose argument checks report what is wrong."""
        shapes: dict[Variable, tuple] = {}
        if len(args) == len(self._inputs):
            try:
                shapes = {v: tuple(int(d) for d in np.shape(a)) for v, a in zip(self._inputs, args)}
            except Exception:  # a value numpy cannot size: the variant's argument checks report it
                shapes = {}
            if any(len(s) != getattr(v.type, "ndim", len(s)) for v, s in shapes.items()):
                shapes = {}
        sig = self.signature(shapes)
        if sig in self.variants:
            return self.variants[sig], True
        if sig not in self._asked and not self._pays_back(sig, shapes):
            self._asked.add(sig)
            return self._first(), False
        return self.variant(shapes), True

    def _pays_back(self, sig: frozenset, input_shapes: dict[Variable, tuple]) -> bool:
        """Whether compiling placement ``sig`` now pays back within PAYBACK_CALLS calls: the
        calibrated saving per call of the nodes it moves to the host, against linking the graph
        again (LINK_US per program step). Otherwise it is compiled when a second call asks."""
        order = self._pristine.toposort()
        shapes = concrete_shapes(order, known_shapes(self._pristine, input_shapes))
        saving = 0.0
        for k in sig - next(iter(self.variants)):
            w = work(order[k], shapes)
            if w is not None:
                saving += self._cal.saving_us(*w)
        steps = sum(len(n.op.steps) if isinstance(n.op, Composite) else 1 for n in order)
        return saving * PAYBACK_CALLS >= LINK_US * steps

    def _first(self) -> Any:
        """The variant compiled with the function (on its own graph, without the arguments' shapes)."""
        return next(iter(self.variants.values()))

    @property
    def source(self) -> str:
        """The first variant's schedule."""
        return str(self._first().source)

    @property
    def trusted_source(self) -> str:
        return str(self._first().trusted_source)

    @property
    def backend(self) -> Any:
        return self._first().backend

    @property
    def _line_nodes(self) -> dict:
        return dict(self._first()._line_nodes)

    @property
    def kernels(self) -> dict[str, str]:
        """Every variant's kernels and host placements, by name."""
        merged: dict[str, str] = {}
        for k, variant in enumerate(self.variants.values()):
            for name, text in variant.kernels.items():
                merged[name if merged.get(name, text) == text else f"{name}_variant{k}"] = text
        return merged

    @property
    def fallbacks(self) -> list[str]:
        return list(dict.fromkeys(name for v in self.variants.values() for name in v.fallbacks))
