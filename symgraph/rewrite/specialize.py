"""Specialize: cheaper forms of powers by constants.

x**2 -> sqr(x), x**3 -> sqr(x)*x, x**4 -> sqr(sqr(x)), x**0.5 -> sqrt(x), and for float
results x**-1 -> reciprocal(x), x**-2 -> reciprocal(sqr(x)). ``sqrt`` equals numpy's
``x**0.5`` bit for bit (special values included); the multiplies may differ from ``pow`` in the
last bit.
"""
from __future__ import annotations

from symgraph.rewrite.core import rule
from symgraph.rewrite.patterns import E, const_value, fit, is_float


def _power(x, p: float, out_is_float: bool):
    if p == 2:
        return E["sqr"](x)
    if p == 3:
        return E["mul"](E["sqr"](x), x)
    if p == 4:
        return E["sqr"](E["sqr"](x))
    if p == 0.5 and out_is_float:
        return E["sqrt"](x)
    if p == -1 and out_is_float:
        return E["reciprocal"](x)
    if p == -2 and out_is_float:
        return E["reciprocal"](E["sqr"](x))
    return None


@rule("specialize", "pow")
def pow_specialize(fgraph, node):
    """x ** c for c in {2, 3, 4, 0.5, -1, -2} -> multiplies, sqrt or reciprocal"""
    x, c = node.inputs
    p = const_value(c)
    if p is None or not all(s == 1 for s in c.type.shape) or c.ndim > x.ndim:
        return None
    out_is_float = is_float(node.out)
    if x.dtype != node.out.dtype:
        x = E[f"cast_{node.out.dtype}"](x)  # compute in the result's dtype, as pow did
    new = _power(x, float(p), out_is_float)
    return fit(new, node.out) if new is not None else None
