"""Stabilize: replace formulas that overflow or lose precision by their stable forms.

These change results only where the original was wrong: ``log(sigmoid(-800))`` is ``-inf``
before and ``-800`` after; ``log(1 + 1e-20)`` is ``0`` before and ``1e-20`` after.
"""
from __future__ import annotations

from symgraph.rewrite.core import rule
from symgraph.rewrite.patterns import E, elem, fit, is_const
from symgraph.tensor.nnet import LogSoftmax, OneHot, Softmax
from symgraph.tensor.reduction import CAReduce

S = "stabilize"


def _one_minus(var):
    """``x`` when ``var`` is ``1 - x``, else None."""
    node = elem(var, "sub")
    if node is not None and is_const(node.inputs[0], 1):
        return node.inputs[1]
    return None


def _one_plus(var):
    """``x`` when ``var`` is ``1 + x`` or ``x + 1``, else None."""
    node = elem(var, "add")
    if node is None:
        return None
    a, b = node.inputs
    return b if is_const(a, 1) else a if is_const(b, 1) else None


@rule(S, "log")
def log_sigmoid(fgraph, node):
    """log(sigmoid(x)) -> -softplus(-x); log(1 - sigmoid(x)) -> -softplus(x)"""
    x = node.inputs[0]
    sig = elem(x, "sigmoid")
    if sig is not None:
        return fit(E["neg"](E["softplus"](E["neg"](sig.inputs[0]))), node.out)
    inner = _one_minus(x)
    sig = elem(inner, "sigmoid") if inner is not None else None
    if sig is not None:
        return fit(E["neg"](E["softplus"](sig.inputs[0])), node.out)


@rule(S, "log1p")
def log1p_neg_sigmoid(fgraph, node):
    """log1p(-sigmoid(x)) -> -softplus(x)"""
    neg = elem(node.inputs[0], "neg")
    sig = elem(neg.inputs[0], "sigmoid") if neg is not None else None
    if sig is not None:
        return fit(E["neg"](E["softplus"](sig.inputs[0])), node.out)


@rule(S, "log")
def log1p(fgraph, node):
    """log(1 + x) -> log1p(x); log(1 - x) -> log1p(-x)"""
    x = node.inputs[0]
    inner = _one_plus(x)
    if inner is not None:
        return fit(E["log1p"](inner), node.out)
    inner = _one_minus(x)
    if inner is not None:
        return fit(E["log1p"](E["neg"](inner)), node.out)


@rule(S, "sub")
def expm1(fgraph, node):
    """exp(x) - 1 -> expm1(x)"""
    a, b = node.inputs
    ex = elem(a, "exp")
    if ex is not None and is_const(b, 1):
        return fit(E["expm1"](ex.inputs[0]), node.out)


@rule(S, "log")
def log_softmax(fgraph, node):
    """log(softmax(x)) -> log_softmax(x); log(sum(switch(one_hot, softmax(x), 0))) (the
    crossentropy with class indices) -> sum(switch(one_hot, log_softmax(x), 0)): the sum adds
    one picked value to zeros, so taking the log first is exact"""
    x = node.inputs[0]
    if x.owner is not None and type(x.owner.op) is Softmax:
        return fit(LogSoftmax(x.owner.op.axis)(x.owner.inputs[0]), node.out)
    red = x.owner
    if red is None or type(red.op) is not CAReduce or red.op.scalar_op != "add":
        return None
    sw = elem(red.inputs[0], "switch")
    if sw is None:
        return None
    cond, picked, other = sw.inputs
    if cond.owner is None or type(cond.owner.op) is not OneHot or not is_const(other, 0) \
            or picked.owner is None or type(picked.owner.op) is not Softmax \
            or red.op.axis != (picked.ndim - 1,) or picked.owner.op.axis != picked.ndim - 1:
        return None
    logp = LogSoftmax(picked.owner.op.axis)(picked.owner.inputs[0])
    return fit(red.op(E["switch"](cond, logp, other)), node.out)
