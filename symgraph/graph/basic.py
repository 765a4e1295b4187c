"""The graph IR: Type, Variable, Constant, Apply and Op (Theano's model and names).

A Variable is a value in the graph; an Apply node says "this Op applied to these input
Variables produced these output Variables"; the Op holds the computation and is immutable
and hashable by its parameters (``__props__``), so equal Ops merge.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from symgraph.config import config
from symgraph.errors import GradientError, MethodNotDefined
from symgraph.graph import hooks
from symgraph.graph.source_line import SourceLine, user_source_line
from symgraph.graph.source_line import user_stacklevel as user_stacklevel  # (public here too)
from symgraph.graph.testvalues import NoTestValue, compute_test_values


def _with_user_line(e: Exception, what: str) -> Exception:
    """``e`` (the same kind) with the user line that is running added to its message."""
    line = user_source_line()
    if line is None:
        return e
    try:
        return type(e)(f"{e}\n{what} (most recent user line):\n  {line}")
    except Exception:  # an exception type with an unusual constructor keeps its message
        e.add_note(f"{what}: {line}")
        return e


class Scratchpad(dict):
    """A variable's or node's ``tag``: a dict whose keys also read and write as attributes
    (``x.tag.test_value = ...``, as in Theano). A variable's ``test_value`` is checked against
    its type when it is set, so a wrong test value fails on the line that assigns it."""

    __slots__ = ("_owner",)  # the variable whose test_value this tag checks (unset: none)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"tag has no {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_owner":
            object.__setattr__(self, name, value)
            return
        owner = getattr(self, "_owner", None)
        if name == "test_value" and owner is not None:
            try:
                value = owner.type.filter_test_value(value, owner)
            except Exception as e:
                raise _with_user_line(e, "Set at") from None
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"tag has no {name!r}") from None

    def copy_for(self, owner: Variable | None, private: bool = True) -> Scratchpad:
        """A copy for a clone of the owner (keys starting with '_' dropped unless ``private``)."""
        tag = Scratchpad({k: v for k, v in self.items() if private or not k.startswith("_")})
        if owner is not None:
            tag._owner = owner
        return tag


def copy_tag(src: Variable, dst: Variable, private: bool = True) -> None:
    """Give ``dst`` a copy of ``src``'s tag, if ``src`` has one (most variables never get a tag)."""
    tag = src.__dict__.get("_tag")
    if tag:
        dst.tag = tag.copy_for(dst, private)


class Type:
    """The kind of value a Variable holds; subclasses define ``filter`` (validate/convert a value).

    Types are callable, as in Theano: ``double('x')`` makes a new variable of type ``double``."""

    def filter(self, value: Any, strict: bool = False, allow_downcast: bool = False) -> Any:
        raise MethodNotDefined(f"{type(self).__name__} must define filter")

    def __call__(self, name: str | None = None) -> Variable:
        """A new free variable of this type (Theano's spelling of ``make_variable``)."""
        return self.make_variable(name)

    def values_eq(self, a: Any, b: Any) -> bool:
        """Whether two values of this type are equal (exactly)."""
        return bool(a == b)

    def values_eq_approx(self, a: Any, b: Any) -> bool:
        """Whether two values of this type are equal up to rounding (DebugMode compares with this)."""
        return self.values_eq(a, b)

    def filter_test_value(self, value: Any, var: Variable) -> Any:
        """``value`` checked as a test value of ``var`` (an error naming the variable when it does not fit)."""
        try:
            return self.filter(value)
        except Exception as e:
            raise type(e)(f"test value of {var} ({self}): {e}") from None

    def make_variable(self, name: str | None = None) -> Variable:
        """A new free variable of this type."""
        return self.variable_class(self, None, None, name)

    def make_constant(self, value: Any, name: str | None = None) -> Constant:
        """A constant of this type holding ``value`` (converted by ``filter``)."""
        return self.constant_class(self, self.filter(value, allow_downcast=True), name)

    variable_class: ClassVar[type[Variable]]  # set below, once Variable and Constant are defined
    constant_class: ClassVar[type[Constant]]


class Variable:
    """A symbolic value: its ``type``, the ``owner`` Apply that computes it (None for inputs),
    its position ``index`` among the owner's outputs, and an optional ``name``."""

    __array_priority__ = 1000  # so numpy arrays on the left defer to our operators

    def __init__(self, type: Type, owner: Apply | None = None, index: int | None = None,
                 name: str | None = None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name

    @property
    def tag(self) -> Scratchpad:
        """Free-form annotations (``x.tag.test_value``); made on first use."""
        tag = self.__dict__.get("_tag")
        if tag is None:
            tag = self.__dict__["_tag"] = Scratchpad()
            tag._owner = self
        return tag

    @tag.setter
    def tag(self, value: dict) -> None:
        tag = value if isinstance(value, Scratchpad) else Scratchpad(value)
        tag._owner = self
        self.__dict__["_tag"] = tag

    def clone(self) -> Variable:
        """A new free variable of the same type and name (no owner)."""
        v = type(self)(self.type, None, None, self.name)
        copy_tag(self, v)
        return v

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        if self.owner is not None:
            op = str(self.owner.op)
            return f"{op}.{self.index}" if len(self.owner.outputs) > 1 else f"{op}.out"
        return f"<{self.type}>"

    def __repr__(self) -> str:
        if config.print_test_value and "test_value" in self.__dict__.get("_tag", ()):
            return f"{self}\n{self.tag['test_value']!r}"
        return str(self)

    def eval(self, inputs_to_values: dict | None = None) -> Any:
        """Compile and run this variable (convenience for interactive use, cached per input set)."""
        inputs_to_values = inputs_to_values or {}
        keys = tuple(inputs_to_values)
        cache = self.tag.setdefault("_eval_cache", {})
        if keys not in cache:
            cache[keys] = hooks.compile_function(list(keys), self)
        return cache[keys](*[inputs_to_values[k] for k in keys])

    def default_test_value(self) -> Any:
        """The test value of a variable whose tag sets none: a shared variable's current value,
        else none (NoTestValue; ``config.compute_test_value`` says what that means)."""
        get_value = getattr(self, "get_value", None)
        if get_value is None:
            raise NoTestValue(self)
        return get_value(borrow=True)


class Constant(Variable):
    """A Variable with a fixed value (``data``), never an input of a compiled function."""

    def __init__(self, type: Type, data: Any, name: str | None = None):
        super().__init__(type, None, None, name)
        self.data = data

    def signature(self) -> tuple:
        """Hashable key under which equal constants merge."""
        return (self.type, _data_key(self.data))

    def clone(self) -> Constant:
        """Constants are values: a copy of the graph shares them."""
        return self

    def default_test_value(self) -> Any:
        """A constant's test value is its data."""
        return self.data

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        return _short_repr(self.data)


def _data_key(data: Any) -> Any:
    if isinstance(data, np.ndarray):
        return (data.dtype.str, data.shape, data.tobytes())
    return data


def _short_repr(data: Any) -> str:
    if isinstance(data, np.ndarray):
        if data.ndim == 0:
            return repr(data.item())
        if data.size <= 6:
            return np.array2string(data, separator=", ")
        return f"array{data.shape}"
    return repr(data)


Type.variable_class = Variable
Type.constant_class = Constant


OpT = TypeVar("OpT", bound="Op")


class Apply:
    """One application of ``op`` to ``inputs``, producing ``outputs``; remembers the user line
    that built it (``trace``) for error messages."""

    __slots__ = ("op", "inputs", "outputs", "trace", "tag")

    def __init__(self, op: Op, inputs: Sequence[Variable], outputs: Sequence[Variable],
                 trace: SourceLine | None = None):
        self.op = op
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        for i, out in enumerate(self.outputs):
            if out.owner is not None and out.owner is not self:
                raise ValueError(f"output {i} of {op} already belongs to another node")
            out.owner, out.index = self, i
        self.trace = trace if trace is not None else user_source_line()
        self.tag = Scratchpad()

    def op_as(self, cls: type[OpT]) -> OpT:
        """``self.op``, checked to be a ``cls`` and typed as one: for code that knows which op class
        it handles (a lowering keyed by op class, a rewrite that matched the op)."""
        op = self.op
        if not isinstance(op, cls):
            raise TypeError(f"expected a node of {cls.__name__}, got one of {type(op).__name__} ({op})")
        return op

    @property
    def out(self) -> Variable:
        """The single output (error when there are several)."""
        if len(self.outputs) != 1:
            raise ValueError(f"{self.op} has {len(self.outputs)} outputs; use .outputs")
        return self.outputs[0]

    def clone_with_new_inputs(self, inputs: Sequence[Variable]) -> Apply:
        """The same op on new inputs, rebuilt through make_node so types are re-inferred."""
        node = self.op.make_node(*inputs)
        node.trace = self.trace
        return node

    def __repr__(self) -> str:
        return f"Apply({self.op}, {self.inputs})"


_INSTANCE_METHODS = ("make_node", "perform", "grad", "L_op", "infer_shape")


def positional_arity(fn: Any) -> int:
    """How many positional parameters ``fn`` takes (-1 when it cannot be inspected)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return -1
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _storage_perform(fn: Callable, bound: bool, with_params: bool) -> Callable:
    """Theano's ``perform(node, inputs, output_storage[, params])``, which writes each output into
    ``output_storage[k][0]``, as symgraph's ``perform(node, inputs) -> outputs``."""
    def perform(*args: Any) -> list:
        op, (node, inputs) = (args[0], args[1:]) if bound else (None, args)
        storage: list[list] = [[None] for _ in node.outputs]
        extra = [(op or node.op).get_params(node)] if with_params else []
        fn(*((op,) if bound else ()), node, inputs, storage, *extra)
        return [cell[0] for cell in storage]
    perform.__doc__, perform.__wrapped__ = fn.__doc__, fn  # type: ignore[attr-defined]
    return perform


def _adapt_perform(fn: Callable, bound: bool) -> Callable:
    """``fn`` itself when it has symgraph's signature, else an adapter for Theano's signature."""
    n = positional_arity(fn) - bound
    return _storage_perform(fn, bound, n >= 4) if n >= 3 else fn


def _normalize_view_map(vmap: dict) -> dict:
    """Theano writes ``{out: [in]}``; symgraph keeps ``{out: in}``. A view of several inputs (which
    Theano accepted but did not support) is kept as a tuple, and refused when the op is applied."""
    out: dict = {}
    for o, i in dict(vmap).items():
        if isinstance(i, (list, tuple)):
            i = int(i[0]) if len(i) == 1 else tuple(int(k) for k in i)
        out[int(o)] = i if isinstance(i, tuple) else int(i)
    return out


_FLAGS = config._values  # read directly: Op.__call__ runs for every node built


class Op:
    """Base class of all operations. Subclasses list their parameters in ``__props__``
    (equality and hashing use them) and define make_node, perform, grad and infer_shape.

    Ops written for Theano run unchanged: a ``perform(node, inputs, output_storage)`` that writes
    ``output_storage[k][0]`` is adapted, ``itypes``/``otypes`` give a default ``make_node``, and
    methods assigned to an instance (``mul.perform = fn``) work (such an op equals only itself)."""

    __props__: tuple[str, ...] = ()
    destroy_map: dict = {}  # Theano's in-place declaration; symgraph ops never write their inputs
    itypes: Sequence[Type] | None = None
    otypes: Sequence[Type] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "perform" in cls.__dict__:
            cls.perform = _adapt_perform(cls.__dict__["perform"], bound=True)  # type: ignore[method-assign]
        if "view_map" in cls.__dict__:
            # a class-level dict replaces the view_map property on purpose (Theano's class attribute)
            cls.view_map = _normalize_view_map(cls.__dict__["view_map"])  # type: ignore[method-assign,assignment]

    # Theano's attributes, as properties so that only these names cost anything when set: an
    # instance may be given a name, a view_map in Theano's form, or a perform in Theano's signature
    # (op.txt: ``mul = Op(); mul.perform = fn``). Subclasses that define them shadow the properties.
    @property
    def name(self) -> str:
        """The op's name: the one it was given, else its str (Theano's ``op.name``)."""
        given = self.__dict__.get("_name")
        if given is not None:
            return given
        if self.__dict__.get("_naming"):  # a __str__ that reads .name: fall back to the class name
            return type(self).__name__
        self.__dict__["_naming"] = True
        try:
            return str(self)
        finally:
            del self.__dict__["_naming"]

    @name.setter
    def name(self, value: str) -> None:
        self.__dict__["_name"] = value

    @property
    def given_name(self) -> str | None:
        """The name this op was given, None when it has none (``name`` then derives one from str)."""
        return self.__dict__.get("_name")

    @property
    def view_map(self) -> dict:
        """Output index -> the input index it may be a view of (Theano's ``{out: [in]}`` accepted)."""
        return self.__dict__.get("_view_map", {})

    @view_map.setter
    def view_map(self, value: dict) -> None:
        self.__dict__["_view_map"] = _normalize_view_map(value)

    @property
    def perform(self) -> Callable:
        """Compute the outputs from numpy input values (the reference implementation):
        ``perform(node, inputs) -> list of outputs``. Subclasses define it as a method."""
        fn = self.__dict__.get("_perform")
        if fn is None:
            raise MethodNotDefined(f"{type(self).__name__} has no perform")
        return fn

    @perform.setter
    def perform(self, fn: Callable) -> None:
        self.__dict__["_perform"] = _adapt_perform(fn, bound=False)

    def _props(self) -> tuple:
        return tuple(getattr(self, p) for p in self.__props__)

    def _own_methods(self) -> bool:
        """Methods were assigned to this instance (Theano's ``mul.make_node = ...``): it equals only itself."""
        d = self.__dict__
        return "_perform" in d or any(k in d for k in _INSTANCE_METHODS)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        if self._own_methods() or other._own_methods():
            return self is other
        return self._props() == other._props()

    def __hash__(self) -> int:
        if self._own_methods():
            return id(self)
        return hash((type(self), self._props()))

    def __str__(self) -> str:
        props = self._props()
        if not props:
            return type(self).__name__
        return f"{type(self).__name__}{{{', '.join(_prop_str(p) for p in props)}}}"

    __repr__ = __str__

    def make_node(self, *inputs: Any) -> Apply:
        """Check the inputs and build the node. The default uses ``itypes``/``otypes`` (Theano's
        short form for ops with fixed input and output types)."""
        if self.itypes is None or self.otypes is None:
            raise MethodNotDefined(f"{type(self).__name__} must define make_node (or itypes and otypes)")
        if len(inputs) != len(self.itypes):
            raise TypeError(f"{self} takes {len(self.itypes)} inputs, got {len(inputs)}")
        checked = []
        for k, (x, t) in enumerate(zip(inputs, self.itypes)):
            x = x if isinstance(x, Variable) else t.make_constant(x)
            if x.type != t and not (hasattr(t, "is_super") and t.is_super(x.type)):
                raise TypeError(f"{self}: input {k} ({x}) has type {x.type}, expected {t}")
            checked.append(x)
        return Apply(self, checked, [t() for t in self.otypes])

    def __call__(self, *inputs: Any, return_list: bool = False, **kwargs: Any) -> Any:
        if "_view_map" in self.__dict__:  # set on this instance, perhaps in Theano's unsupported form
            several = {o: i for o, i in self.view_map.items() if isinstance(i, tuple)}
            if several:
                raise ValueError(f"{self}.view_map says output(s) {sorted(several)} may be views of several "
                                 f"inputs ({several}); an output may be a view of one input only")
        node = self.make_node(*inputs, **kwargs)
        if _FLAGS["compute_test_value"] != "off":
            compute_test_values(node, _FLAGS["compute_test_value"])
        if return_list or len(node.outputs) != 1:
            return list(node.outputs)
        return node.outputs[0]

    def get_params(self, node: Apply) -> Any:
        """Theano's op parameters, passed as the last argument of a ``perform`` that takes them."""
        raise MethodNotDefined(f"{type(self).__name__} takes params in perform but defines no get_params")

    def grad(self, inputs: list[Variable], output_grads: list[Variable]) -> list[Variable]:
        """Symbolic gradients of a scalar cost w.r.t. each input, given those w.r.t. the outputs.
        Ops that define ``L_op`` instead get this for free (their outputs are rebuilt). A gradient
        may keep the output's broadcast shape: ``sg.grad`` sums it back to its input's shape."""
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

    def expand(self, inputs: list[Variable]) -> Sequence[Variable] | None:
        """For an op that stands for a subgraph of other ops (a fused node): that subgraph built on
        ``inputs``, one variable per output; None for ordinary ops. The gradient of an op without
        its own ``L_op``/``grad`` is the gradient of its expansion."""
        return None


def _prop_str(p: Any) -> str:
    if isinstance(p, tuple):
        return "(" + ", ".join(map(str, p)) + ("," if len(p) == 1 else "") + ")"
    return str(p)
