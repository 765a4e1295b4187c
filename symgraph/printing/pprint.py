"""``pprint``: a graph as one line of math, e.g. ``sigmoid(dot(x, W) + b)``.

Rules (tested in tests/test_printing_text.py):
- elementwise ops with an ``infix`` symbol in the scalar table print infix; inside an expression
  parentheses appear only where Python's precedence and associativity need them to keep the
  graph's shape (``(x + y) * z``, ``x - (y - z)``, ``-(x ** 2)`` kept for readability);
- a whole expression whose top is a binary infix op is wrapped once, as Theano does:
  ``(x + y)``, ``((x + y) * z)``; unary minus and calls are not: ``-x``, ``exp(x)``;
  function-call arguments are never wrapped: ``sigmoid(dot(x, W) + b)``;
- other ops use call notation: ``exp(x)``, ``dot(x, W)``, ``sum(x, axis=0)`` (parameters that
  are None/False/empty are left out; a 1-tuple shows as its element);
- DimShuffle: ``x.T`` for a full transpose, nothing for pure broadcasting (leading axes added),
  ``x.dimshuffle(1, 'x', 0)`` otherwise; constants print as numbers; fused ops print their
  inner expression with the outer arguments substituted;
- a subexpression longer than MAX_EXPR_CHARS prints as ``name(…)`` (repeated sharing doubles the
  text per level; use debugprint, which shows each subexpression once, for such graphs).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from symgraph.graph.basic import Apply, Constant, Op, Variable
from symgraph.graph.traversal import ancestors, toposort
from symgraph.printing.collect import collect, inner_graph
from symgraph.scalar import ScalarOp

ATOM = 100
UNARY = 8
_BINARY = {"**": 9, "*": 7, "/": 7, "//": 7, "%": 7, "@": 7, "+": 6, "-": 6, "&": 5, "^": 4, "|": 3,
           "<": 2, ">": 2, "<=": 2, ">=": 2, "==": 2, "!=": 2}
_COMPARISON = 2

MAX_EXPR_CHARS = 100_000  # a longer subexpression prints as 'op(…)', so pprint never blows up
Expr = tuple[str, int]  # text and the precedence of its outermost operator
PRINTERS: dict[str, Callable[[Any, list[Expr]], Expr]] = {}  # Op class name -> custom printer


def pprint(obj: Any) -> str:
    """Infix math for a variable; for a list, Apply, FunctionGraph or compiled Function one line
    per output, then ``name <- value`` per update."""
    if isinstance(obj, Variable):
        return _top(_render([obj])[id(obj)])
    view = collect(obj)
    memo = _render(view.roots)
    lines = [_top(memo[id(v)]) for v in view.outputs]
    lines += [f"{s} <- {_top(memo[id(v)])}" for s, v in view.updates]
    return "\n".join(lines)


def pprint_inner(inputs: list[Variable], outputs: list[Variable]) -> str:
    """The inner expression of a fused op, its inputs called by name or i0, i1, ..."""
    seed = {id(v): (v.name or f"i{k}", ATOM) for k, v in enumerate(inputs)}
    memo = _render(outputs, seed)
    return ", ".join(memo[id(o)][0] for o in outputs)


def _top(expr: Expr) -> str:
    """A whole expression: binary infix at the top is wrapped once, as Theano prints ``(x + y)``."""
    text, prec = expr
    return text if prec in (UNARY, ATOM) else f"({text})"


def _render(outputs: list[Variable], seed: dict[int, Expr] | None = None) -> dict[int, Expr]:
    """Text of every variable that ``outputs`` need, bottom-up (no recursion)."""
    memo: dict[int, Expr] = dict(seed or {})
    blockers = list(_seeded(outputs, memo))
    for node in toposort(outputs, blockers=blockers):
        args = [memo.get(id(i)) or _leaf(i) for i in node.inputs]
        for k, out in enumerate(node.outputs):
            text, prec = memo[id(out)] = _apply(node, k, args)
            if len(text) > MAX_EXPR_CHARS:  # shared subexpressions can double the text per level
                memo[id(out)] = (f"{call_name(node.op)}(…)", ATOM)
    for v in outputs:
        memo.setdefault(id(v), _leaf(v))
    return memo


def _seeded(outputs: list[Variable], memo: dict[int, Expr]) -> list[Variable]:
    """Inner-graph inputs that already have a text (they may have owners in a copied graph)."""
    if not memo:
        return []
    return [v for v in ancestors(outputs) if id(v) in memo]


def _leaf(v: Variable) -> Expr:
    if isinstance(v, Constant) and v.name is None:
        text = _number(v.data)
        return text, (UNARY if text.startswith("-") else ATOM)
    return str(v), ATOM


def _number(data: Any) -> str:
    """A constant as Python would write it: 2.0, [2, -1], or array(shape) when large."""
    shape = getattr(data, "shape", None)
    if shape is None or shape == ():
        return repr(data.item() if hasattr(data, "item") else data)
    if data.size <= 6:
        return repr(data.tolist())
    return f"array(shape={shape})"


def _apply(node: Apply, k: int, args: list[Expr]) -> Expr:
    op = node.op
    printer = PRINTERS.get(type(op).__name__)
    inner = inner_graph(node) if printer is None else None
    if inner is not None:
        ins, outs = inner
        return _render([outs[k]], {id(v): a for v, a in zip(ins, args)})[id(outs[k])]
    if printer is not None:
        expr = printer(op, args)
    else:
        sop = getattr(op, "scalar_op", op if isinstance(op, ScalarOp) else None)
        expr = _scalar(sop, args) if isinstance(sop, ScalarOp) else _call(call_name(op), args, _props(node))
    if len(node.outputs) > 1:
        return f"{_wrap(expr, ATOM)}[{k}]", ATOM
    return expr


def _scalar(sop: ScalarOp, args: list[Expr]) -> Expr:
    sym = sop.infix
    if sym and len(args) == 1:
        return sym + _wrap(args[0], _BINARY["**"] + 1), UNARY  # -(x ** 2), not -x ** 2
    if sym and len(args) == 2:
        return _scalar_infix(sym, args)
    if sop.name.startswith("cast_"):
        return f"cast({args[0][0]}, '{sop.name[5:]}')", ATOM
    return _call(sop.name, args)


def _scalar_infix(sym: str, args: list[Expr]) -> Expr:
    """``a sym b`` with the parentheses Python's precedence and associativity need."""
    p = _BINARY[sym]
    left_strict = sym == "**" or p == _COMPARISON  # ** is right-associative; comparisons chain
    right_strict = sym != "**"
    left = _wrap(args[0], p + 1 if left_strict else p)
    right = _wrap(args[1], p + 1 if right_strict else p)
    return f"{left} {sym} {right}", p


def _wrap(expr: Expr, need: int) -> str:
    """The text, parenthesized when its operator binds less tightly than ``need``."""
    text, prec = expr
    return text if prec >= need else f"({text})"


def _call(name: str, args: list[Expr], kwargs: Sequence[str] = ()) -> Expr:
    return f"{name}({', '.join([a[0] for a in args] + list(kwargs))})", ATOM


def call_name(op: Any) -> str:
    """The function name an op prints as: str(op) up to its parameters, in snake case
    ('sum{axis=(0,)}' -> 'sum', 'Dot' -> 'dot', 'ReducedSize{(0,)}' -> 'reduced_size')."""
    return _snake(str(op).split("{", 1)[0].strip() or type(op).__name__)


def _props(node: Apply) -> list[str]:
    """The parameters worth showing as ``key=value``. An op with its own ``__str__`` chose them:
    its ``{...}`` part is reused ('sum{axis=(0,), keepdims}' -> axis=0, keepdims=True); else
    every ``__props__`` entry that is not None/False/empty/a scalar op/the output's dtype."""
    op = node.op
    if type(op).__str__ is not Op.__str__:
        text = str(op)
        inner = text[text.index("{") + 1:text.rindex("}")] if "{" in text and text.endswith("}") else ""
        return [_kwarg(part) for part in _split_top(inner)]
    out = []
    out_dtype = getattr(node.outputs[0].type, "dtype", None) if node.outputs else None
    for key in getattr(op, "__props__", ()):
        value = getattr(op, key, None)
        if value is None or value is False or value == () or isinstance(value, ScalarOp):
            continue
        if key in ("dtype", "acc_dtype") and value == out_dtype:
            continue
        if isinstance(value, tuple) and len(value) == 1:
            value = value[0]
        out.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    return out


def _kwarg(part: str) -> str:
    """'axis=(0,)' -> 'axis=0'; a bare flag 'keepdims' -> 'keepdims=True'."""
    if "=" not in part:
        return f"{part}=True" if part.isidentifier() else part
    key, value = part.split("=", 1)
    single = re.fullmatch(r"\((-?\w+),\)", value.strip())
    return f"{key.strip()}={single.group(1) if single else value.strip()}"


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{" and 1 or (-1 if ch in ")]}" else 0)
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [p for p in parts + [cur.strip()] if p]


def _snake(name: str) -> str:
    """'CrossEntropy' -> 'cross_entropy', 'Dot' -> 'dot'."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _dimshuffle(op: Any, args: list[Expr]) -> Expr:
    (x,) = args
    order, drop = op.new_order, op.drop
    kept = [o for o in order if o != "x"]
    lead = len(order) - len(kept)
    if not drop and tuple(order) == ("x",) * lead + tuple(range(op.input_ndim)):
        return x  # only leading broadcastable axes added: numpy broadcasting does this implicitly
    if not drop and len(order) == len(kept) and kept == list(range(op.input_ndim))[::-1]:
        return _wrap(x, ATOM) + ".T", ATOM
    pattern = ", ".join(repr(o) for o in order)
    return f"{_wrap(x, ATOM)}.dimshuffle({pattern})", ATOM


PRINTERS["DimShuffle"] = _dimshuffle
PRINTERS["MatMul"] = lambda op, args: _scalar_infix("@", args)
PRINTERS["Shape"] = lambda op, args: (_wrap(args[0], ATOM) + ".shape", ATOM)
PRINTERS["Scan"] = lambda op, args: _call("scan", args)  # a loop, not its body's expression
PRINTERS["Shape_i"] = lambda op, args: (f"{_wrap(args[0], ATOM)}.shape[{op.i}]", ATOM)
