"""Stabilize: replace formulas that overflow or lose precision by their stable forms.

These change results only where the original was wrong: ``log(sigmoid(-800))`` is ``-inf``
before and ``-800`` after; ``log(1 + 1e-20)`` is ``0`` before and ``1e-20`` after. Hand-written
sigmoid, softplus, softmax and logsumexp are recognised, so the rules above see them.

``sg.grad`` runs this pass on the cost before differentiating (``symgraph.rewrite.for_grad``),
so gradients are built from the stable forms too: ``grad(-log(softmax(z))[t])`` is
``softmax(z) - onehot(t)``, finite at logits of +-1000.
"""
from __future__ import annotations

from symgraph.rewrite.core import rule
from symgraph.rewrite.patterns import E, elem, fit, is_const, scalar_const
from symgraph.tensor.elemwise import DimShuffle
from symgraph.tensor.gradient_ops import DisconnectedGrad, disconnected_grad
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


# --- hand-written forms of sigmoid, softplus, softmax and logsumexp --------------------------

def _one_plus_exp(var):
    """``u`` when ``var`` is ``1 + exp(u)`` (either order), else None."""
    inner = _one_plus(var)
    ex = elem(inner, "exp") if inner is not None else None
    return ex.inputs[0] if ex is not None else None


def _negated(u):
    """``-u``, without a double negation when ``u`` is ``-v``."""
    neg = elem(u, "neg")
    return neg.inputs[0] if neg is not None else E["neg"](u)


@rule(S, "true_div", "reciprocal")
def sigmoid_by_hand(fgraph, node):
    """1 / (1 + exp(-x)) -> sigmoid(x) (any 1 / (1 + exp(u)) -> sigmoid(-u));
    exp(x) / (1 + exp(x)) -> sigmoid(x): exp overflows where sigmoid saturates"""
    name = node.op.scalar_op.name
    num, den = (None, node.inputs[0]) if name == "reciprocal" else node.inputs
    if num is None or is_const(num, 1):
        u = _one_plus_exp(den)
        return fit(E["sigmoid"](_negated(u)), node.out) if u is not None else None
    ex, u = elem(num, "exp"), _one_plus_exp(den)
    if ex is not None and u is not None and ex.inputs[0] is u:
        return fit(E["sigmoid"](u), node.out)


@rule(S, "log1p")
def softplus_by_hand(fgraph, node):
    """log1p(exp(x)) -> softplus(x) (and so log(1 + exp(x)), through log1p)"""
    ex = elem(node.inputs[0], "exp")
    if ex is not None:
        return fit(E["softplus"](ex.inputs[0]), node.out)


def _sum_of_exp(var):
    """(the CAReduce node, x) when ``var`` is ``sum(exp(x), axis...)`` in exp's dtype, else None."""
    red = var.owner
    if red is None or type(red.op) is not CAReduce or red.op.scalar_op != "add" or not red.op.axis:
        return None
    ex = elem(red.inputs[0], "exp")
    if ex is None or red.outputs[0].dtype != ex.outputs[0].dtype:
        return None
    return red, ex.inputs[0]


@rule(S, "log")
def logsumexp(fgraph, node):
    """log(sum(exp(x), axis)) -> m + log(sum(exp(x - m), axis)) with m = max(x, axis), taken as
    a constant by gradients (so the gradient is softmax(x)) and 0 where it is infinite"""
    found = _sum_of_exp(node.inputs[0])
    if found is None:
        return None
    red, x = found
    shifted = elem(x, "sub")
    if shifted is not None and shifted.inputs[1].owner is not None and \
            isinstance(shifted.inputs[1].owner.op, DisconnectedGrad):
        return None  # already the stable form (this rule's own output)
    top = CAReduce("maximum", red.op.axis, True)(x)
    m = disconnected_grad(E["switch"](E["isinf"](top), scalar_const(0, top.dtype), top))
    total = red.op(E["exp"](E["sub"](x, m)))
    shift = m
    if not red.op.keepdims:
        shift = DimShuffle(x.ndim, [d for d in range(x.ndim) if d not in red.op.axis])(m)
    return fit(E["add"](shift, E["log"](total)), node.out)


@rule(S, "true_div")
def softmax_by_hand(fgraph, node):
    """exp(x) / sum(exp(x), axis=a, keepdims=True) -> softmax(x, axis=a)"""
    ex = elem(node.inputs[0], "exp")
    found = _sum_of_exp(node.inputs[1])
    if ex is None or found is None:
        return None
    red, x = found
    if x is not ex.inputs[0] or len(red.op.axis) != 1 or not red.op.keepdims:
        return None
    return fit(Softmax(red.op.axis[0])(x), node.out)
