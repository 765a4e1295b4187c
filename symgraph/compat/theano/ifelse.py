"""theano.ifelse: ``ifelse(condition, then_branch, else_branch)``, lazy (symgraph.ifelse)."""
from symgraph.ifelse import IfElse, ifelse

__all__ = ["IfElse", "ifelse"]
