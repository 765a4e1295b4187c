"""A classifier's loss in the one-kernel loop (backends/opencl/loop_plan.py plans the rest), as
steps of the loop's own kinds: the softmax family (``categorical_crossentropy(softmax(.))``
becomes a log-softmax), each as the op computes it (no exp overflow): the maximum along the axis,
the sum of ``exp(x - max)`` along it, then elementwise ``exp(x - max) / sum`` (softmax) or
``(x - max) - log(sum)`` (log-softmax); and integer class labels' one-hot rows (``OneHot``: a
range check, then ``label == k`` against the classes 0 .. k - 1)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from symgraph.backends.opencl.loop_slots import Decline, Slot, Step
from symgraph.tensor.composite import Composite

_SHIFTED_EXP = [("sub", (("i", 0), ("i", 1))), ("exp", (("s", 0),))]  # exp(x - max)
_FINISH = {
    False: _SHIFTED_EXP + [("true_div", (("s", 1), ("i", 2)))],  # exp(x - max) / sum
    True: [("sub", (("i", 0), ("i", 1))), ("log", (("i", 2),)), ("sub", (("s", 0), ("s", 1)))],  # (x - max) - log(sum)
}


def softmax_steps(x: Slot, axis: int, log: bool, dests: list[Slot], scratch: Callable[[np.dtype, tuple], Slot],
                  label: str) -> list[Step]:
    """The steps computing ``softmax(x)`` (``log``: log-softmax) along ``axis`` into ``dests``;
    the maximum and the sum go to ``scratch`` slots of the reduced shape (the axis kept, length 1)."""
    dt = x.dtype
    if dt.kind != "f" or x.shape[axis] == 0:
        raise Decline(f"{label}: a softmax of {dt.name} over {x.shape[axis]} elements")
    kept = tuple(1 if d == axis else n for d, n in enumerate(x.shape))
    top, total = scratch(dt, kept), scratch(dt, kept)
    ident = Composite.identity(dt.name)
    names = [dt.name] * 3
    steps = [Step("reduce", f"{label}: maximum", kept, [x], [], prog=ident, op="maximum", axes=(axis,),
                  keepdims=True, xshape=x.shape, acc=dt),
             Step("reduce", f"{label}: sum of exp", kept, [x, top], [],
                  prog=Composite(names[:2], _SHIFTED_EXP, [("s", 1)]), op="add", axes=(axis,), keepdims=True,
                  xshape=x.shape, acc=dt)]
    for step, dest in zip(steps, (top, total)):
        step.acc_slot, step.epi, step.outs = scratch(dt, kept), ident, [[dest]]
    last = len(_FINISH[log]) - 1
    steps.append(Step("elemwise", label, x.shape, [x, top, total], [dests],
                      prog=Composite(names, _FINISH[log], [("s", last)])))
    return steps


def one_hot_steps(labels: Slot, classes: Slot, dests: list[Slot], label: str) -> list[Step]:
    """The steps computing ``labels[..., None] == classes`` (``classes``: 0 .. k - 1, a constant
    vector) into ``dests``, after checking every label is a class (else the host's flag: the call
    runs step by step, where OneHot raises its IndexError)."""
    k = classes.shape[0]
    column = replace(labels, shape=labels.shape + (1,), strides=labels.strides + (0,))  # broadcast over classes
    equal = Composite([labels.dtype.name, classes.dtype.name], [("eq", (("i", 0), ("i", 1)))], [("s", 0)])
    return [Step("check", f"{label}: labels in range", labels.shape, [labels], [], count=k),
            Step("elemwise", label, labels.shape + (k,), [column, classes], [dests], prog=equal)]


__all__ = ["softmax_steps", "one_hot_steps"]
