"""Functions compiled under 'auto' placement whose node sizes depend on their arguments
(``SizePlaced``): a variant per placement, looked up by the arguments' shapes at each call. The
placement itself, and the cost model behind it, live in ``placement.py``."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np

from symgraph.backends.opencl.placement import Calibration, host_positions, known_shapes
from symgraph.backends.opencl.runtime import Runtime
from symgraph.compile.link import NOT_GIVEN
from symgraph.graph.basic import Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.tensor.composite import Composite

PAYBACK_CALLS, LINK_US, BUILD_US = 100, 5.0, 20_000.0
"""A new placement is compiled at once when its calibrated saving pays for linking the graph
again (about LINK_US microseconds per program step: 2.3 measured on W4's 1000-op chain, whose
kernel sources are generated once per process) within PAYBACK_CALLS calls. Before the variant
compiled with the function has run, its kernels are not built yet: each node the new placement
moves to the host also saves a kernel build (BUILD_US: a small kernel's first build and launch
in a process, from pocl's binary cache, is 20-60 ms; with the cache empty, 0.2-0.6 s)."""
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
    maps each placement (the positions of the nodes run on the host, those of branches and loop
    bodies included: see ``placement.walk``) to its compiled function (``.fgraph``, ``.source``);
    ``kernels`` lists every variant's kernels and host placements (``onhost...`` entries)."""

    def __init__(self, fgraph: FunctionGraph, spec: Any, rt: Runtime, cal: Calibration,
                 build: Callable[[FunctionGraph, dict[Variable, tuple]], Any]):
        n_inputs = spec.n_inputs
        self._params = list(spec.input_names)  # Python names already (the generated functions' parameters)
        self._args = list(getattr(spec, "args", None) or [None] * n_inputs)
        self._pristine = FunctionGraph(fgraph.inputs, fgraph.outputs)  # a copy, before placement changes fgraph
        self._inputs, self._cal, self._build, self._own = fgraph.inputs[:n_inputs], cal, build, fgraph
        self.fgraph, self.runtime = fgraph, rt
        self.variants: dict[frozenset, Any] = {}
        self._trusted: Callable | None = None
        self._asked: set[frozenset] = set()  # placements asked for once (compiled when asked again)
        self._first_ran = False  # has a call run the variant compiled with the function (built its kernels)?
        self.variant({})  # at once, on fgraph itself: f.graph, f.source and fallback warnings as at compile time
        self.__call__ = self._caller()

    def signature(self, input_shapes: dict[Variable, tuple]) -> frozenset:
        """The placement for these argument shapes: the positions (``placement.walk``) of the nodes
        run on the host, those of branches and loop bodies included."""
        return frozenset(self._host(input_shapes))

    def _host(self, input_shapes: dict[Variable, tuple]) -> dict[tuple, float]:
        return host_positions(self._pristine, self._cal, known_shapes(self._pristine, input_shapes))

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
        # one argument: its shape is the key (no tuple to build: this runs on every call)
        key = f"{names[0]}.shape" if len(names) == 1 else f"({''.join(f'{n}.shape, ' for n in names)})"
        source = (f"def call({', '.join(params)}):\n"
                  f"    try:\n        key = {key}\n"
                  f"    except AttributeError:\n        key = None\n"
                  f"    fn = _get(key)\n"
                  f"    if fn is None:\n        fn = _pick(({args}), key)\n"
                  f"    return fn({args})\n")
        namespace = {"_get": table.get, "_pick": pick, "_not_given": NOT_GIVEN}
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
            variant = self.variants[sig]
            self._first_ran = self._first_ran or variant is self._first()
            return variant, True
        if sig not in self._asked and not self._pays_back(sig, shapes):
            self._asked.add(sig)
            self._first_ran = True
            return self._first(), False
        return self.variant(shapes), True

    def _pays_back(self, sig: frozenset, input_shapes: dict[Variable, tuple]) -> bool:
        """Whether compiling placement ``sig`` now pays back within PAYBACK_CALLS calls: the
        calibrated saving per call of the nodes it moves to the host (and, before the first
        variant has run, the kernel builds they no longer need), against linking the graph again
        (LINK_US per program step). Otherwise it is compiled when a second call asks."""
        savings = self._host(input_shapes)
        moved = sig - next(iter(self.variants))
        saving = sum(savings.get(k, 0.0) for k in moved) * PAYBACK_CALLS
        if not self._first_ran:
            saving += BUILD_US * len(moved)
        steps = sum(len(n.op.steps) if isinstance(n.op, Composite) else 1 for n in self._pristine.toposort())
        return saving >= LINK_US * steps

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
