"""``verify_grad``: check a symbolic gradient against central finite differences (Theano's method).

The output of ``fn`` is projected on a random tensor, ``cost = sum(output * projection)``, so one
scalar gradient checks every output element; ``sg.grad(cost)`` is compared with
``(cost(x + eps e_i) - cost(x - eps e_i)) / 2 eps`` for every input element ``i`` (the numeric cost
is the compiled output projected in float64).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import symgraph as sg
import symgraph.tensor as T

# eps of the finite differences and (abs, rel) tolerances, by the least precise dtype involved.
# Central differences err by ~eps^2 (truncation) plus ~ulp/eps (rounding): eps ~ ulp^(1/3).
DEFAULT_EPS = {"float64": 1e-6, "float32": 1e-3, "float16": 1e-1}
DEFAULT_TOL = {"float64": (1e-4, 1e-4), "float32": (1e-2, 1e-2), "float16": (1e-1, 1e-1)}


class GradientCheckError(AssertionError):
    """The symbolic gradient disagrees with finite differences; the message shows the analytic
    and numeric values, the worst element and the point."""

    def __init__(self, message: str, analytic: list, numeric: list, worst: tuple, point: list):
        super().__init__(message)
        self.analytic, self.numeric, self.worst, self.point = analytic, numeric, worst, point


def _least_precise(dtypes: Sequence[str]) -> str:
    floats = [d for d in dtypes if d in DEFAULT_EPS]
    return max(floats, key=lambda d: DEFAULT_EPS[d]) if floats else "float64"


def numeric_grad(cost: Callable[..., float], point: list[np.ndarray], eps: float) -> list[np.ndarray]:
    """Central finite differences of the scalar function ``cost(*point)`` for every input element
    (the step actually taken is measured after rounding to the input's dtype)."""
    grads = []
    for k, x in enumerate(point):
        g = np.zeros(x.shape, dtype=np.float64)
        args = list(point)
        for i in np.ndindex(*x.shape):
            xp, xm = x.copy(), x.copy()
            xp[i] = x[i] + eps
            xm[i] = x[i] - eps
            step = float(xp[i]) - float(xm[i])
            args[k] = xp
            fp = float(cost(*args))
            args[k] = xm
            fm = float(cost(*args))
            g[i] = (fp - fm) / step
        grads.append(g)
    return grads


def verify_grad(fn: Callable[..., Any], point: Sequence[Any], n_tests: int = 2, rng: Any = None,
                eps: float | None = None, abs_tol: float | None = None, rel_tol: float | None = None,
                backend: str | None = None, mode: Any = "default") -> None:
    """Check ``sg.grad`` of ``fn`` at ``point`` against finite differences; raise GradientCheckError if not.

    ``fn`` takes one symbolic input per array of ``point`` and returns a tensor. Inputs are declared
    with broadcastable (length-1) axes static and the others unknown. Each of the ``n_tests`` rounds
    draws a new random projection of the output. An element fails when both its absolute and its
    relative error exceed the tolerances (defaults depend on the least precise float dtype).

        >>> import numpy as np, symgraph.tensor as T
        >>> verify_grad(lambda x: T.tanh(x) * x, [np.array([0.5, -1.0])])
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    point = [np.array(p) if isinstance(p, np.ndarray) else np.array(p, dtype=sg.config.floatX) for p in point]
    for k, p in enumerate(point):
        if p.dtype.kind != "f":
            raise TypeError(f"verify_grad: point[{k}] has dtype {p.dtype}; gradients are checked for "
                            f"float inputs only")
    inputs = [T.tensor(p.dtype, shape=tuple(1 if s == 1 else None for s in p.shape), name=f"input{k}")
              for k, p in enumerate(point)]
    out = fn(*inputs)
    if isinstance(out, (list, tuple)):
        raise TypeError("verify_grad: fn must return one tensor; check several outputs one at a time")
    out = T.as_tensor_variable(out)
    if not out.dtype.startswith("float"):
        raise TypeError(f"verify_grad: fn returned {out} of type {out.type}; its dtype must be float")
    projection = T.tensor(out.dtype, shape=out.type.shape, name="projection")
    cost = (out * projection).sum() if out.ndim else out * projection
    grads = sg.grad(cost, inputs, disconnected_inputs="ignore")
    kw = {"backend": backend, "mode": mode}
    f_out = sg.function(inputs, out, on_unused_input="ignore", **kw)
    f_grad = sg.function(inputs + [projection], grads, on_unused_input="ignore", **kw)
    dtype = _least_precise([p.dtype.name for p in point] + [out.dtype])
    eps = DEFAULT_EPS[dtype] if eps is None else eps
    abs_tol = DEFAULT_TOL[dtype][0] if abs_tol is None else abs_tol
    rel_tol = DEFAULT_TOL[dtype][1] if rel_tol is None else rel_tol
    out_shape = np.shape(f_out(*point))
    for _ in range(n_tests):
        proj = (rng.random(out_shape) + 0.5).astype(out.dtype)
        analytic = [np.asarray(g, dtype=np.float64) for g in f_grad(*point, proj)]
        # the projection is summed in float64 here, so rounding in the sum of a float32 output does
        # not swamp the difference of the one element that changed
        numeric = numeric_grad(lambda *xs, proj=proj: np.sum(np.asarray(f_out(*xs), np.float64) * proj), point, eps)
        _compare(analytic, numeric, point, abs_tol, rel_tol, eps)


def _compare(analytic: list, numeric: list, point: list, abs_tol: float, rel_tol: float, eps: float) -> None:
    worst, worst_score = None, 0.0
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        if a.shape != n.shape:
            raise GradientCheckError(f"verify_grad: the gradient of input {k} has shape {a.shape}, but the "
                                     f"input has shape {n.shape}", analytic, numeric, (k, None), point)
        abs_err = np.abs(a - n)
        rel_err = abs_err / np.maximum(np.abs(a) + np.abs(n), 1e-8)
        # an element fails when it is past both tolerances; the worst is the largest absolute error
        fails = ((abs_err > abs_tol) & (rel_err > rel_tol)) | np.isnan(a) | np.isnan(n)
        score = np.where(fails, np.nan_to_num(abs_err, nan=np.inf) + 1.0, 0.0)
        if score.size and np.max(score) > worst_score:
            i = np.unravel_index(int(np.argmax(score)), score.shape)
            worst, worst_score = (k, i, float(abs_err[i]), float(rel_err[i])), float(np.max(score))
    if worst is None:
        return
    k, i, abs_err, rel_err = worst
    with np.printoptions(precision=6, threshold=60, edgeitems=3):
        msg = (f"verify_grad: analytic and numeric gradients differ for input {k} at element {tuple(map(int, i))}:\n"
               f"  analytic {float(analytic[k][i])!r}, numeric {float(numeric[k][i])!r} "
               f"(abs err {abs_err:.3g} > {abs_tol:g}, "
               f"rel err {rel_err:.3g} > {rel_tol:g}, eps {eps:g})\n"
               f"  analytic gradient of input {k}:\n{analytic[k]}\n"
               f"  numeric gradient of input {k}:\n{numeric[k]}\n"
               "  point:\n" + "\n".join(f"    input{j} ({p.dtype}{list(p.shape)}): {p!r}"
                                         for j, p in enumerate(point)))
    raise GradientCheckError(msg, analytic, numeric, (k, i), point)
