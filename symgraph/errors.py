"""symgraph's exceptions. Each subclasses the matching builtin (TypeError, ValueError, ...)
so ``except ValueError`` in user code keeps working."""
from __future__ import annotations

import numpy as np


class SymgraphError(Exception):
    """Base of every error symgraph raises on purpose."""


class MethodNotDefined(SymgraphError, TypeError):
    """An Op or Type subclass lacks a method its caller needs."""


class GraphTypeError(SymgraphError, TypeError):
    """A node was built from inputs of the wrong type (dtype, ndim, non-symbolic value)."""


class ShapeError(SymgraphError, ValueError):
    """Shapes that cannot work together (certain at build time, or seen at call time)."""


class InputError(SymgraphError, TypeError):
    """A compiled function was called or built with bad inputs."""


class MissingInputError(SymgraphError, ValueError):
    """A graph's outputs depend on a variable that is neither one of its inputs, a constant nor
    a shared variable (Theano's ``MissingInputError``)."""


class GradientError(SymgraphError, TypeError):
    """The gradient asked for does not exist or is undefined."""


class DisconnectedInputError(GradientError, ValueError):
    """``grad`` was asked for a variable the cost does not depend on."""


class RewriteError(SymgraphError, RuntimeError):
    """A graph rewrite raised or broke an invariant: a bug in symgraph, never the user's."""


class NanGuardError(SymgraphError, FloatingPointError):
    """``nan_guard=True``: a node produced NaN or Inf."""


class LinAlgError(SymgraphError, np.linalg.LinAlgError):
    """A linear-algebra op met a matrix it cannot handle (not positive definite, singular, no
    convergence); ``except numpy.linalg.LinAlgError`` catches it too."""


class BackendError(SymgraphError, RuntimeError):
    """A backend could not lower or run a graph (kernel build failure, unsupported device)."""


def node_context(node, input_values=None) -> str:
    """Describe a node for an error message: op, input types (or runtime shapes) and the user line."""
    parts = [f"Op: {node.op}"]
    if input_values is not None:
        desc = []
        for v in input_values:
            shape, dtype = getattr(v, "shape", None), getattr(v, "dtype", None)
            desc.append(f"{dtype}{list(shape)}" if shape is not None else type(v).__name__)
        parts.append("Input values: " + ", ".join(desc))
    else:
        parts.append("Input types: " + ", ".join(str(i.type) for i in node.inputs))
    if node.trace is not None:
        parts.append("Built at (most recent user line):\n  " + str(node.trace).replace("\n", "\n  "))
    return "\n".join(parts)
