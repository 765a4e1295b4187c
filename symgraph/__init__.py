"""symgraph: a Theano-style symbolic graph compiler with numpy and OpenCL backends.

    import symgraph as sg, symgraph.tensor as T
    x = T.dmatrix('x'); y = T.dmatrix('y')
    f = sg.function([x, y], x + y)
"""
from __future__ import annotations

from symgraph.config import config
from symgraph import tensor
from symgraph.compile import Function, SharedVariable, function, shared
from symgraph.compile.ops import as_op
from symgraph import compile, printing
from symgraph.rewrite import Mode

__version__ = "0.1.0"
_LAZY = {"grad": "gradient", "jacobian": "gradient", "hessian": "gradient", "Lop": "gradient",
         "Rop": "gradient", "gradient": None, "testing": None, "updates": None, "rewrite": None,
         "save": "serialize", "load": "serialize"}


def __getattr__(name: str):
    """Modules with optional dependencies (testing needs hypothesis) load on first use."""
    if name in _LAZY:
        import importlib
        module = importlib.import_module(f"symgraph.{_LAZY[name] or name}")
        return module if _LAZY[name] is None else getattr(module, name)
    raise AttributeError(f"module 'symgraph' has no attribute {name!r}")


__all__ = ["config", "tensor", "function", "shared", "Function", "SharedVariable", "printing", "compile",
           "as_op", "Mode", *_LAZY]
