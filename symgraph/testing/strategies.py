"""Hypothesis strategies for testing symgraph code: arrays with domain control, mutually
broadcastable shapes (with the static shapes to declare), elementwise ops with their valid
input domains, and random expression graphs drawn from the scalar table.

    from hypothesis import given
    import symgraph.testing.strategies as sgs

    @given(sgs.arrays("float64", shape=(3,), domain="positive"))
    def test_log_grad(x):
        verify_grad(lambda v: T.log(v), [x])

A *domain* says which values to draw: a name from ``DOMAINS`` ('any', 'positive', 'negative',
'unit', 'nonzero', 'away_from_kinks', 'integers'), a ``(lo, hi)`` pair, or a hypothesis
strategy of numbers.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgraph.tensor as T
from symgraph.graph.traversal import toposort
from symgraph.printing import pprint
from symgraph.scalar import SCALAR_OPS, ZERO
from symgraph.tensor.type import TensorType

__all__ = ["DOMAINS", "OP_DOMAINS", "arrays", "scalars", "shapes_for", "broadcastable_shapes",
           "BroadcastShapes", "elemwise_ops", "OpSpec", "expression_graphs", "ExpressionGraph"]


def _away_from_kinks(lo: int = -20, hi: int = 19) -> st.SearchStrategy:
    # k/2 + f with f in [0.1, 0.4]: at least 0.1 from every multiple of 0.5 (kinks of abs, relu,
    # sign, floor, ceil, trunc, round, and of maximum/minimum/clip against whole numbers)
    return st.builds(lambda k, f: k / 2 + f, st.integers(lo, hi), st.floats(0.1, 0.4))


_SIGN = st.sampled_from([-1.0, 1.0])
DOMAINS: dict[str, st.SearchStrategy] = {
    "any": st.floats(-5, 5),
    "positive": st.floats(0.1, 10),
    "negative": st.floats(-10, -0.1),
    "unit": st.floats(-0.9, 0.9),
    "nonzero": st.builds(lambda s, m: s * m, _SIGN, st.floats(0.1, 10)),
    "away_from_kinks": _away_from_kinks(),
    "integers": st.integers(-10, 10).map(float),
    "small_divisors": st.sampled_from([-2.0, -1.0, 1.0, 2.0]),  # x/y never whole when x is away from kinks
    "nonpositive_integers": st.integers(-5, 0).map(float),  # clip's lower bound
    "positive_integers": st.integers(1, 5).map(float),  # clip's upper bound
}

# Per-argument input domains of every elementwise op on which its gradient is defined and
# finite differences are accurate (kinks and poles excluded): each op's row of the scalar table says.
OP_DOMAINS: dict[str, tuple] = {name: sop.domain for name, sop in SCALAR_OPS.items()
                                 if not name.startswith("cast_") and not sop.is_random}


def scalars(domain: Any = "any", dtype: str = "float64") -> st.SearchStrategy:
    """Numbers from ``domain`` (a DOMAINS name, a (lo, hi) pair or a strategy), fit for ``dtype``."""
    kind = np.dtype(dtype).kind
    if kind == "b" or domain == "bool":
        return st.booleans()
    if isinstance(domain, st.SearchStrategy):
        base = domain
    elif isinstance(domain, tuple):
        base = st.floats(*domain)
    elif domain in DOMAINS:
        base = DOMAINS[domain]
    else:
        raise ValueError(f"unknown domain {domain!r}; use one of {sorted(DOMAINS)}, a (lo, hi) pair or a strategy")
    if kind in "iu":
        info = np.iinfo(dtype)
        return base.map(lambda v: int(np.clip(np.rint(v), info.min, info.max)))
    return base


def shapes_for(ttype: TensorType, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Concrete shapes that fit ``ttype``'s static shape (unknown lengths drawn in [min_side, max_side])."""
    return st.tuples(*(st.just(s) if s is not None else st.integers(min_side, max_side) for s in ttype.shape))


def arrays(ttype_or_dtype: Any, shape: Any = None, domain: Any = "any", min_side: int = 1,
           max_side: int = 4) -> st.SearchStrategy:
    """numpy arrays for a TensorType or dtype, with values from ``domain``.

    ``shape``: a tuple, a strategy of tuples, or None (fit the TensorType's static shape, or for a
    bare dtype any shape of 0 to 3 dimensions).

        arrays(T.dmatrix().type, domain="positive")    # 2-d, float64, values in [0.1, 10]
        arrays("float32", shape=(2, 3), domain=(-1, 1))
    """
    if isinstance(ttype_or_dtype, TensorType):
        dtype = ttype_or_dtype.dtype
        if shape is None:
            shape = shapes_for(ttype_or_dtype, min_side, max_side)
    else:
        dtype = np.dtype(ttype_or_dtype).name
        if shape is None:
            shape = hnp.array_shapes(min_dims=0, max_dims=3, min_side=min_side, max_side=max_side)
    elements = scalars(domain, dtype)
    base = "float64" if np.dtype(dtype).kind == "f" else dtype  # draw exactly, then round to dtype
    return hnp.arrays(base, shape, elements=elements).map(lambda a: a.astype(dtype))


class BroadcastShapes(NamedTuple):
    """Shapes that broadcast together: the concrete ``shapes``, the ``static_shapes`` to declare
    (None = unknown; 1 wherever an axis must broadcast) and the broadcast ``result_shape``."""
    shapes: tuple
    static_shapes: tuple
    result_shape: tuple


@st.composite
def broadcastable_shapes(draw: Any, n: int, min_dims: int = 0, max_dims: int = 3, min_side: int = 1,
                         max_side: int = 4, static: str = "mixed") -> BroadcastShapes:
    """``n`` mutually broadcastable shapes and the static shapes to declare for them.

    ``static``: 'mixed' (each non-broadcasting length known or unknown at random), 'known' (all
    known) or 'unknown' (only the broadcasting 1s declared). Use ``min_side=0`` for empty arrays.

        case = data.draw(broadcastable_shapes(2))
        xs = [T.tensor("float64", shape=s) for s in case.static_shapes]
    """
    if static not in ("mixed", "known", "unknown"):
        raise ValueError(f"static must be 'mixed', 'known' or 'unknown', got {static!r}")
    drawn = draw(hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=min_dims, max_dims=max_dims,
                                                   min_side=min_side, max_side=max_side))
    result = drawn.result_shape
    statics = []
    for shape in drawn.input_shapes:
        lead = len(result) - len(shape)
        dims: list[int | None] = []
        for d, s in enumerate(shape):
            if s == 1 and result[lead + d] != 1:
                dims.append(1)  # must be declared: static shapes decide broadcasting
            elif static == "known" or (static == "mixed" and draw(st.booleans())):
                dims.append(s)
            else:
                dims.append(None)
        statics.append(tuple(dims))
    return BroadcastShapes(tuple(drawn.input_shapes), tuple(statics), result)


class OpSpec(NamedTuple):
    """An elementwise op of the scalar table with what a test needs to know about it."""
    name: str
    nin: int
    domains: tuple  # one domain per input (see OP_DOMAINS)
    differentiable: bool  # has a gradient rule (False: piecewise constant, gradient zero)
    float_inputs: bool  # defined on float inputs (bitwise ops are not)


def _spec(name: str) -> OpSpec:
    sop = SCALAR_OPS[name]
    try:
        sop.out_dtype(*(["float64"] * sop.nin))
        floats = True
    except TypeError:
        floats = False
    return OpSpec(name, sop.nin, OP_DOMAINS[name], callable(sop.grad) and sop.grad != ZERO, floats)


def op_specs(names: Sequence[str] | None = None) -> list[OpSpec]:
    """OpSpecs of ``names`` (default: every non-cast, non-random op of the scalar table), sorted by name."""
    names = sorted(OP_DOMAINS) if names is None else names
    missing = [n for n in names if n not in OP_DOMAINS]
    if missing:
        raise KeyError(f"no input domain known for elementwise ops {missing}; add them to OP_DOMAINS")
    return [_spec(n) for n in names]


def elemwise_ops(names: Sequence[str] | None = None, arity: int | None = None,
                 differentiable: bool | None = None, float_inputs: bool | None = True) -> st.SearchStrategy:
    """OpSpecs of elementwise ops, filtered by arity, differentiability and float support.

        spec = data.draw(elemwise_ops(arity=1, differentiable=True))
        x = data.draw(arrays("float64", (3,), domain=spec.domains[0]))
    """
    specs = [s for s in op_specs(names) if (arity is None or s.nin == arity)
             and (differentiable is None or s.differentiable == differentiable)
             and (float_inputs is None or s.float_inputs == float_inputs)]
    if not specs:
        raise ValueError("no elementwise op matches these filters")
    return st.sampled_from(specs)


# --- random expression graphs ------------------------------------------------------------------

_GROWS = {"exp", "exp2", "expm1", "sinh", "cosh"}  # squash their argument so depth cannot overflow
_GRAPH_EXCLUDED = {"mod", "switch", "clip", "maximum", "minimum"}  # need paired arguments: see _BUILDERS
_INPUT_VALUES = _away_from_kinks(-4, 3)  # in [-1.9, 1.9], >= 0.1 from every multiple of 0.5


def _fit(draw: Any, T: Any, a: Any, domain: Any, squash: bool) -> Any:
    """Map a subexpression ``a`` (any real value) smoothly into ``domain``."""
    if isinstance(domain, tuple):
        lo, hi = domain
        return lo + (hi - lo) * T.sigmoid(a)
    if domain == "any":
        return 2 * T.tanh(a) if squash else a
    if domain == "positive":
        return 0.5 + T.sqr(a)
    if domain == "negative":
        return -0.5 - T.sqr(a)
    if domain == "unit":
        return 0.9 * T.tanh(a)
    if domain in ("nonzero", "away_from_kinks"):
        return draw(_SIGN) * (0.5 + T.sqr(a))
    raise ValueError(f"expression_graphs cannot fit an argument into domain {domain!r}")


def _paired(draw: Any, T: Any, name: str, args: list) -> Any:
    """Ops whose kinks depend on two arguments: keep the arguments apart by construction."""
    a, b = args[0], args[1]
    gap = 0.5 + T.sqr(b)
    if name in ("maximum", "minimum"):
        return getattr(T, name)(a, a + draw(_SIGN) * gap)
    if name == "clip":
        gap2 = 0.5 + T.sqr(args[2])
        case = draw(st.sampled_from(["inside", "below", "above"]))
        lo = {"inside": a - gap, "below": a + gap, "above": a - gap - gap2}[case]
        hi = {"inside": a + gap2, "below": a + gap + gap2, "above": a - gap2}[case]
        return T.clip(a, lo, hi)
    if name == "switch":  # the condition compares an input with a multiple of 0.5: no kink
        return T.switch(T.gt(args[3], draw(st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]))), b, args[2])
    if name == "mod":  # the dividend stays in (0.05, 0.45), inside one period: no jump
        return T.mod(0.25 + 0.2 * T.tanh(a), draw(st.sampled_from([1.0, 2.0])))
    raise KeyError(name)


class ExpressionGraph:
    """A random graph: symbolic ``inputs``, its ``output``, a strategy ``values`` drawing input arrays
    on which every op is inside its domain, and the op names used."""

    def __init__(self, inputs: list, output: Any, values: st.SearchStrategy, ops: list):
        self.inputs, self.output, self.values, self.ops = inputs, output, values, ops

    def __call__(self, *new_inputs: Any) -> Any:
        """The output rebuilt on ``new_inputs`` through each op's make_node (types re-inferred),
        so ``verify_grad(graph, values)`` works."""
        memo = dict(zip(self.inputs, new_inputs))
        for node in toposort([self.output]):
            new = node.clone_with_new_inputs([memo.get(i, i) for i in node.inputs])
            memo.update(zip(node.outputs, new.outputs))
        return memo.get(self.output, self.output)

    def __repr__(self) -> str:
        return f"ExpressionGraph({pprint(self.output)})"


_DEFAULT_GRAPH_OPS = sorted(n for n in OP_DOMAINS if SCALAR_OPS[n].nin <= 3 and _spec(n).differentiable
                            and _spec(n).float_inputs and n not in ("identity",))


@st.composite
def expression_graphs(draw: Any, depth: int = 3, ops: Sequence[str] | None = None, n_inputs: int = 2,
                      dtype: str = "float64", shape: tuple = (), constants: bool = True) -> ExpressionGraph:
    """A random elementwise expression graph of at most ``depth`` levels over ``n_inputs`` inputs of
    ``shape`` (declared static) drawn from ``ops`` (default: every differentiable op of the table).

    Arguments are mapped smoothly into each op's domain (``0.5 + sqr(a)`` for log/sqrt, ``0.9 tanh(a)``
    for arcsin, ...) and kinks are kept away by construction, so the graph is smooth at every
    point of ``graph.values``. Gradient property test:

        @given(st.data())
        def test_graph_grad(data):
            g = data.draw(expression_graphs(depth=3))
            verify_grad(lambda *xs: g(*xs).sum(), data.draw(g.values))

    or simply compile ``g.inputs -> g.output`` and compare it with a reference.
    """
    names = list(ops) if ops is not None else _DEFAULT_GRAPH_OPS
    for n in names:
        if n not in OP_DOMAINS or not _spec(n).float_inputs:
            raise ValueError(f"expression_graphs: {n!r} is not an elementwise op on floats")
    inputs = [T.tensor(dtype, shape=shape, name=f"x{k}") for k in range(n_inputs)]
    used: list[str] = []

    def build(level: int) -> Any:
        if level == 0 or (level < depth and draw(st.integers(0, 3)) == 0):
            if constants and draw(st.integers(0, 5)) == 0:
                return T.constant(np.asarray(draw(st.sampled_from([-1.5, -0.5, 0.5, 2.0, 3.0])), dtype=dtype))
            return draw(st.sampled_from(inputs))
        name = draw(st.sampled_from(names))
        used.append(name)
        nin = SCALAR_OPS[name].nin
        args = [build(level - 1) for _ in range(nin)]
        if name in _GRAPH_EXCLUDED:
            if name == "switch":
                args.append(draw(st.sampled_from(inputs)))
            return _paired(draw, T, name, args)
        fitted = [_fit(draw, T, a, d, name in _GROWS) if not isinstance(d, st.SearchStrategy) else a
                  for a, d in zip(args, OP_DOMAINS[name])]
        if name == "pow":
            fitted[1] = 2 * T.tanh(args[1])
        if name in ("int_div", "mod"):
            fitted[1] = T.constant(np.asarray(draw(DOMAINS["small_divisors"]), dtype=dtype))
        return getattr(T, name)(*fitted)

    output = T.as_tensor_variable(build(max(depth, 1)))
    if output.type.shape != tuple(shape):  # every argument was a constant: tie it to an input
        output = output + draw(st.sampled_from(inputs))
    if output.dtype != dtype:
        output = T.cast(output, dtype)
    values = st.tuples(*(arrays(dtype, shape, domain=_INPUT_VALUES) for _ in inputs)).map(list)
    return ExpressionGraph(inputs, output, values, used)
