"""The graph IR: Type, Variable, Constant, Apply and Op (Theano's model and names).

A Variable is a value in the graph; an Apply node says "this Op applied to these input
Variables produced these output Variables"; the Op holds the computation and is immutable
and hashable by its parameters (``__props__``), so equal Ops merge.
"""
from __future__ import annotations

import linecache
import os
import sys
from typing import Any, Sequence

from symgraph.errors import GradientError, MethodNotDefined
from symgraph.safe_text import printable

def _internal_dirs() -> tuple[str, ...]:
    """Folders whose frames are ours (symgraph and symgraph.backends), skipped when blaming a user line."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../symgraph
    return (here + os.sep, os.path.join(os.path.dirname(here), "backends") + os.sep)


_INTERNAL = _internal_dirs()


class SourceLine:
    """Where the user built a node: file, line number, function and the line's text.

    A line recorded in this process reads its text lazily from the source file. A line
    loaded from a saved file (``recorded`` given) shows the text the file recorded and never
    reads the local disk: the file may name any local path. Its fields are shown with control
    characters escaped."""

    __slots__ = ("filename", "lineno", "function", "recorded")

    def __init__(self, filename: str, lineno: int, function: str, recorded: str | None = None):
        self.filename, self.lineno, self.function = filename, lineno, function
        self.recorded = recorded

    @property
    def text(self) -> str:
        """The source line itself, stripped (empty when the file cannot be read)."""
        if self.recorded is not None:
            return self.recorded
        return linecache.getline(self.filename, self.lineno).strip()

    def __str__(self) -> str:
        text = printable(self.text)
        where = f'File "{printable(self.filename)}", line {self.lineno}, in {printable(self.function)}'
        if self.recorded is not None:
            where += " (as recorded in a loaded file)"
        return f"{where}\n    {text}" if text else where

    def __repr__(self) -> str:
        return f"SourceLine({self.filename!r}, {self.lineno})"


def user_source_line() -> SourceLine | None:
    """The innermost stack frame outside symgraph: the line of user code that is building a node."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame = frame.f_back
    if frame is None:
        return None
    return SourceLine(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


class Type:
    """The kind of value a Variable holds; subclasses define ``filter`` (validate/convert a value)."""

    def filter(self, value: Any, strict: bool = False, allow_downcast: bool = False) -> Any:
        raise MethodNotDefined(f"{type(self).__name__} must define filter")

    def make_variable(self, name: str | None = None) -> "Variable":
        """A new free variable of this type."""
        return self.variable_class(self, None, None, name)

    def make_constant(self, value: Any, name: str | None = None) -> "Constant":
        """A constant of this type holding ``value`` (converted by ``filter``)."""
        return self.constant_class(self, self.filter(value, allow_downcast=True), name)

    variable_class: type = None  # set below
    constant_class: type = None


class Variable:
    """A symbolic value: its ``type``, the ``owner`` Apply that computes it (None for inputs),
    its position ``index`` among the owner's outputs, and an optional ``name``."""

    __array_priority__ = 1000  # so numpy arrays on the left defer to our operators

    def __init__(self, type: Type, owner: "Apply | None" = None, index: int | None = None,
                 name: str | None = None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name
        self.tag: dict = {}

    def clone(self) -> "Variable":
        """A new free variable of the same type and name (no owner)."""
        v = type(self)(self.type, None, None, self.name)
        v.tag = dict(self.tag)
        return v

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        if self.owner is not None:
            op = str(self.owner.op)
            return f"{op}.{self.index}" if len(self.owner.outputs) > 1 else f"{op}.out"
        return f"<{self.type}>"

    def __repr__(self) -> str:
        return str(self)

    def eval(self, inputs_to_values: dict | None = None) -> Any:
        """Compile and run this variable (convenience for interactive use, cached per input set)."""
        from symgraph.compile.function import function
        inputs_to_values = inputs_to_values or {}
        keys = tuple(inputs_to_values)
        cache = self.tag.setdefault("_eval_cache", {})
        if keys not in cache:
            cache[keys] = function(list(keys), self, on_unused_input="ignore")
        return cache[keys](*[inputs_to_values[k] for k in keys])


class Constant(Variable):
    """A Variable with a fixed value (``data``), never an input of a compiled function."""

    def __init__(self, type: Type, data: Any, name: str | None = None):
        super().__init__(type, None, None, name)
        self.data = data

    def signature(self) -> tuple:
        """Hashable key under which equal constants merge."""
        return (self.type, _data_key(self.data))

    def clone(self) -> "Constant":
        """Constants are values: a copy of the graph shares them."""
        return self

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        return _short_repr(self.data)


def _data_key(data: Any) -> Any:
    import numpy as np
    if isinstance(data, np.ndarray):
        return (data.dtype.str, data.shape, data.tobytes())
    return data


def _short_repr(data: Any) -> str:
    import numpy as np
    if isinstance(data, np.ndarray):
        if data.ndim == 0:
            return repr(data.item())
        if data.size <= 6:
            return np.array2string(data, separator=", ")
        return f"array{data.shape}"
    return repr(data)


Type.variable_class = Variable
Type.constant_class = Constant


class Apply:
    """One application of ``op`` to ``inputs``, producing ``outputs``; remembers the user line
    that built it (``trace``) for error messages."""

    __slots__ = ("op", "inputs", "outputs", "trace", "tag")

    def __init__(self, op: "Op", inputs: Sequence[Variable], outputs: Sequence[Variable],
                 trace: SourceLine | None = None):
        self.op = op
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        for i, out in enumerate(self.outputs):
            if out.owner is not None and out.owner is not self:
                raise ValueError(f"output {i} of {op} already belongs to another node")
            out.owner, out.index = self, i
        self.trace = trace if trace is not None else user_source_line()
        self.tag: dict = {}

    @property
    def out(self) -> Variable:
        """The single output (error when there are several)."""
        if len(self.outputs) != 1:
            raise ValueError(f"{self.op} has {len(self.outputs)} outputs; use .outputs")
        return self.outputs[0]

    def clone_with_new_inputs(self, inputs: Sequence[Variable]) -> "Apply":
        """The same op on new inputs, rebuilt through make_node so types are re-inferred."""
        node = self.op.make_node(*inputs)
        node.trace = self.trace
        return node

    def __repr__(self) -> str:
        return f"Apply({self.op}, {self.inputs})"


class Op:
    """Base class of all operations. Subclasses list their parameters in ``__props__``
    (equality and hashing use them) and define make_node, perform, grad and infer_shape."""

    __props__: tuple[str, ...] = ()
    view_map: dict[int, int] = {}  # output index -> input index it may be a view of

    def _props(self) -> tuple:
        return tuple(getattr(self, p) for p in self.__props__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._props() == other._props()

    def __hash__(self) -> int:
        return hash((type(self), self._props()))

    def __str__(self) -> str:
        props = self._props()
        if not props:
            return type(self).__name__
        return f"{type(self).__name__}{{{', '.join(_prop_str(p) for p in props)}}}"

    __repr__ = __str__

    def make_node(self, *inputs: Variable) -> Apply:
        raise MethodNotDefined(f"{type(self).__name__} must define make_node")

    def __call__(self, *inputs: Any) -> Any:
        node = self.make_node(*inputs)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def perform(self, node: Apply, inputs: list) -> list:
        """Compute the outputs from numpy input values (the reference implementation)."""
        raise MethodNotDefined(f"{type(self).__name__} has no perform")

    def grad(self, inputs: list[Variable], output_grads: list[Variable]) -> list[Variable]:
        """Symbolic gradients of a scalar cost w.r.t. each input, given those w.r.t. the outputs.
        Ops that define ``L_op`` instead get this for free (their outputs are rebuilt)."""
        if type(self).L_op is not Op.L_op:
            return self.L_op(inputs, self.make_node(*inputs).outputs, output_grads)
        raise GradientError(f"{self} does not define a gradient")

    def L_op(self, inputs: list[Variable], outputs: list[Variable],
             output_grads: list[Variable]) -> list[Variable]:
        """``grad`` with the node's outputs at hand (PyTensor's form: rules like d exp = exp use them).
        One entry per input: a variable, or None where no gradient flows."""
        return self.grad(inputs, output_grads)

    def infer_shape(self, node: Apply, input_shapes: list[tuple]) -> list[tuple]:
        """Symbolic shapes of the outputs (tuples of scalar int variables or ints)."""
        raise MethodNotDefined(f"{type(self).__name__} does not define infer_shape")


def _prop_str(p: Any) -> str:
    if isinstance(p, tuple):
        return "(" + ", ".join(map(str, p)) + ("," if len(p) == 1 else "") + ")"
    return str(p)
