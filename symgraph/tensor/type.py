"""TensorType (dtype + static shape), tensor variables with numpy-like operators, constants,
the T.matrix/T.dvector/... constructors, and the dtype predicates.

This module sits below every op module, so the operators (``x + y``, ``x.sum()``) call the ops
through ``ops``: the ``symgraph.tensor`` namespace, which ``symgraph/tensor/__init__.py`` sets
once every op module is loaded (dependency inversion: nothing here imports the ops)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import numpy as np

from symgraph.config import config
from symgraph.errors import GraphTypeError, InputError
from symgraph.graph import hooks
from symgraph.graph.basic import Apply, Constant, Type, Variable
from symgraph.scalar import dtype_name

ops: Any = None
"""The ``symgraph.tensor`` namespace (set by ``symgraph/tensor/__init__.py``): what operators call."""

DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128")


class TensorType(Type):
    """An n-dimensional array type: ``dtype`` and static ``shape`` (None = unknown length,
    1 = broadcastable). Equal types compare and hash equal.

    Theano's form ``TensorType(dtype, broadcastable=(False, True))`` (a flag per axis: True = length
    1) is accepted too, also positionally. A type is callable: ``T.dmatrix('x')`` is a new variable."""

    variable_class: ClassVar[type[TensorVariable]]  # set below, once the classes are defined
    constant_class: ClassVar[type[TensorConstant]]

    def __init__(self, dtype: str | np.dtype, shape: Sequence[int | None] | None = None,
                 broadcastable: Sequence[bool] | None = None):
        if shape is not None and broadcastable is None and len(shape) and all(isinstance(s, bool) for s in shape):
            shape, broadcastable = None, shape  # Theano's positional broadcastable pattern
        if broadcastable is not None:
            if shape is not None:
                raise GraphTypeError("TensorType: give shape= or broadcastable=, not both")
            shape = tuple(1 if b else None for b in broadcastable)
        shape = () if shape is None else shape
        if dtype == "floatX":
            dtype = config.floatX
        try:
            dtype = dtype_name(dtype)
        except TypeError:
            raise GraphTypeError(f"unsupported dtype {dtype!r}; supported: {list(DTYPES)}") from None
        if dtype not in DTYPES:
            raise GraphTypeError(f"unsupported dtype {dtype!r}; supported: {list(DTYPES)}")
        self.dtype = dtype
        self.shape = tuple(None if s is None else int(s) for s in shape)
        if any(s is not None and s < 0 for s in self.shape):
            raise GraphTypeError(f"static shape {self.shape} has a negative length")
        self.ndim = len(self.shape)
        self.broadcastable = tuple(s == 1 for s in self.shape)
        self.numpy_dtype = np.dtype(dtype)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.dtype == self.dtype and other.shape == self.shape

    def __hash__(self) -> int:
        return hash((TensorType, self.dtype, self.shape))

    def __str__(self) -> str:
        dims = ", ".join("?" if s is None else str(s) for s in self.shape)
        return f"{self.dtype}[{dims}]" if self.shape else f"{self.dtype}[]"

    __repr__ = __str__

    def values_eq(self, a: Any, b: Any) -> bool:
        """Equal shapes and values (NaN equals NaN)."""
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))

    def values_eq_approx(self, a: Any, b: Any, rtol: float | None = None, atol: float | None = None) -> bool:
        """Equal shapes and values within a tolerance for the dtype (NaN equals NaN, inf equals inf)."""
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype.kind not in "fc" and b.dtype.kind not in "fc":
            return bool(np.array_equal(a, b))
        loose = np.dtype(self.dtype).itemsize <= 4 or self.dtype in ("complex64",)
        rtol = rtol if rtol is not None else (1e-3 if loose else 1e-5)
        atol = atol if atol is not None else (1e-5 if loose else 1e-8)
        return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))

    def filter_test_value(self, value: Any, var: Variable) -> np.ndarray:
        """A test value for ``var``: converted like a call argument (downcasts allowed, as Theano does)."""
        return self.filter(value, allow_downcast=True, what=f"test value of {var}")

    def __reduce__(self) -> tuple:
        return TensorType, (self.dtype, self.shape)

    def make_variable(self, name: str | None = None) -> TensorVariable:
        """A new free tensor variable of this type."""
        return self.variable_class(self, None, None, name)

    def clone(self, dtype: str | None = None, shape: Sequence[int | None] | None = None) -> TensorType:
        """This type with another dtype and/or static shape."""
        return TensorType(dtype or self.dtype, self.shape if shape is None else shape)

    def is_super(self, other: TensorType) -> bool:
        """True when every value of ``other`` is also a value of this type (Theano's Type.is_super)."""
        return (isinstance(other, TensorType) and other.dtype == self.dtype and other.ndim == self.ndim
                and all(s is None or s == o for s, o in zip(self.shape, other.shape)))

    def filter(self, value: Any, strict: bool = False, allow_downcast: bool = False,
               what: str = "value") -> np.ndarray:
        """Check ``value`` against this type and return it as an ndarray of this dtype.

        Safe conversions (int to float, float32 to float64, Python numbers that fit) happen
        silently; anything that could lose precision raises unless ``allow_downcast``. Python
        floats (and lists of them) into a narrower float type are rounded, but a finite value
        that would overflow to inf is refused.
        """
        if isinstance(value, Variable):
            raise InputError(f"{what} must be a number or array, not the symbolic variable {value}")
        if isinstance(value, np.ndarray) and value.dtype == self.numpy_dtype:
            arr = value
        elif strict:
            raise InputError(f"{what}: expected an ndarray of dtype {self.dtype}, got "
                             f"{type(value).__name__} of dtype {getattr(value, 'dtype', '?')}")
        else:
            arr = self._convert(value, allow_downcast, what)
        if arr.ndim != self.ndim:
            raise InputError(f"{what}: expected {self.ndim} dimensions ({self}), got {arr.ndim} "
                             f"(shape {arr.shape})")
        for d, (s, a) in enumerate(zip(self.shape, arr.shape)):
            if s is not None and s != a:
                raise InputError(f"{what}: dimension {d} must have length {s} ({self}), got shape {arr.shape}")
        return arr

    def _convert(self, value: Any, allow_downcast: bool, what: str) -> np.ndarray:
        is_array = isinstance(value, np.ndarray) or np.isscalar(value) and isinstance(value, np.generic)
        try:
            arr = np.asarray(value)
        except Exception as e:  # ragged lists and such
            raise InputError(f"{what}: cannot convert {type(value).__name__} to an array ({e})") from None
        if arr.dtype == self.numpy_dtype:
            return arr
        if arr.dtype == object or arr.dtype.kind in "USV":
            raise InputError(f"{what}: expected numbers of dtype {self.dtype}, got {arr.dtype}")
        if allow_downcast or np.can_cast(arr.dtype, self.numpy_dtype, "safe"):
            return arr.astype(self.numpy_dtype)
        if not is_array:  # Python numbers and lists: accept when the values survive the cast
            with np.errstate(all="ignore"):
                cast = arr.astype(self.numpy_dtype)
            if np.array_equal(cast, arr, equal_nan=True):
                return cast
            if arr.dtype.kind == "f" and self.numpy_dtype.kind == "f":  # rounding is fine, overflow is not
                overflow = np.isinf(cast) & np.isfinite(arr)
                if not overflow.any():
                    return cast
                raise InputError(f"{what}: {float(arr[overflow].flat[0])!r} does not fit in {self.dtype} (it "
                                 f"would become inf; the largest {self.dtype} is "
                                 f"{float(np.finfo(self.numpy_dtype).max)!r}). Scale the data, or pass "
                                 f"allow_input_downcast=True to sg.function to accept inf")
        raise InputError(f"{what}: expected dtype {self.dtype}, got {arr.dtype}; that cast could lose "
                         f"precision. Cast the data, or pass allow_input_downcast=True to sg.function")


class TensorVariable(Variable):
    """A symbolic n-dimensional array, with numpy-like operators and methods (constants are
    tensor variables too: ``TensorConstant`` below)."""

    type: TensorType

    # arithmetic
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.true_div(self, other)
    def __rtruediv__(self, other): return ops.true_div(other, self)
    def __floordiv__(self, other): return ops.int_div(self, other)
    def __rfloordiv__(self, other): return ops.int_div(other, self)
    def __mod__(self, other): return ops.mod(self, other)
    def __rmod__(self, other): return ops.mod(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return ops.abs(self)
    # comparisons (== and != stay identity, as in Theano: use T.eq / T.neq)
    def __lt__(self, other): return ops.lt(self, other)
    def __le__(self, other): return ops.le(self, other)
    def __gt__(self, other): return ops.gt(self, other)
    def __ge__(self, other): return ops.ge(self, other)
    __eq__ = object.__eq__
    __hash__ = object.__hash__
    # logic / bitwise
    def __and__(self, other): return ops.and_(self, other)
    def __rand__(self, other): return ops.and_(other, self)
    def __or__(self, other): return ops.or_(self, other)
    def __ror__(self, other): return ops.or_(other, self)
    def __xor__(self, other): return ops.xor(self, other)
    def __rxor__(self, other): return ops.xor(other, self)
    def __invert__(self): return ops.invert(self)

    def __bool__(self):
        # Theano's rule: a variable is true (so `if not W:` tells a given W from None, as the Deep
        # Learning Tutorials' dA and RBM do), except a truth value (`x > 0`, `T.eq(x, y)`), whose
        # answer is unknown until the graph runs: `if x > 0:` and `a < b < c` raise
        if self.type.dtype == "bool":
            raise TypeError(f"the truth value of symbolic variable {self} is unknown until it is computed; "
                            "use T.switch / T.where for conditions, and 'is None' for identity checks")
        return True

    def __iter__(self):
        if self.type.ndim == 0 or self.type.shape[0] is None:
            raise TypeError(f"cannot iterate over {self} ({self.type}): its length is not known statically")
        return (self[i] for i in range(self.type.shape[0]))

    def __len__(self):
        raise TypeError(f"len() of symbolic variable {self} is unknown; use {self}.shape[0]")

    def __getitem__(self, index): return ops.subtensor(self, index)

    # attributes
    @property
    def ndim(self) -> int: return self.type.ndim
    @property
    def dtype(self) -> str: return self.type.dtype
    @property
    def broadcastable(self) -> tuple: return self.type.broadcastable
    @property
    def shape(self): return ops.shape(self)
    @property
    def size(self): return ops.prod(ops.shape(self))
    @property
    def T(self): return ops.transpose(self)

    # methods mirroring numpy
    def sum(self, axis=None, keepdims=False, dtype=None): return ops.sum(self, axis, keepdims, dtype)
    def prod(self, axis=None, keepdims=False, dtype=None): return ops.prod(self, axis, keepdims, dtype)
    def mean(self, axis=None, keepdims=False, dtype=None): return ops.mean(self, axis, keepdims, dtype)
    def var(self, axis=None, keepdims=False, ddof=0): return ops.var(self, axis, keepdims, ddof)
    def std(self, axis=None, keepdims=False, ddof=0): return ops.std(self, axis, keepdims, ddof)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return ops.min(self, axis, keepdims)
    def argmax(self, axis=None, keepdims=False): return ops.argmax(self, axis, keepdims)
    def argmin(self, axis=None, keepdims=False): return ops.argmin(self, axis, keepdims)
    def all(self, axis=None, keepdims=False): return ops.all(self, axis, keepdims)
    def any(self, axis=None, keepdims=False): return ops.any(self, axis, keepdims)
    def reshape(self, *shape, ndim=None):
        return ops.reshape(self, shape[0] if len(shape) == 1 else shape, ndim=ndim)
    def flatten(self, ndim=1, outdim=None): return ops.flatten(self, ndim, outdim)
    def dimshuffle(self, *pattern):
        return ops.dimshuffle(self, pattern[0] if len(pattern) == 1 and isinstance(pattern[0], (list, tuple))
                             else pattern)
    def transpose(self, *axes): return ops.transpose(self, axes or None)
    def astype(self, dtype): return ops.cast(self, dtype)
    def dot(self, other): return ops.dot(self, other)
    def clip(self, lo, hi): return ops.clip(self, lo, hi)
    def squeeze(self, axis=None): return ops.squeeze(self, axis)
    def round(self): return ops.round(self)
    def copy(self, name=None):
        out = ops.identity(self)
        out.name = name
        return out

    def _repr_svg_(self):
        """Jupyter shows a variable as its graph (None, hence text, when graphviz is missing)."""
        return hooks.repr_svg(self)


class TensorConstant(TensorVariable, Constant):
    """A constant array in the graph: a tensor variable with fixed ``data`` (as in PyTensor).
    ``weak`` constants came from Python numbers and take the dtype of what they combine with
    (NumPy 2's rule for Python scalars)."""

    def __init__(self, type: TensorType, data: Any, name: str | None = None, weak: bool = False):
        Constant.__init__(self, type, data, name)
        self.weak = weak

    def signature(self) -> tuple:
        """Merge key: equal type, value and weakness."""
        return super().signature() + (self.weak,)

    def clone(self) -> TensorConstant:
        """Constants are values: a copy of the graph shares them."""
        return self


TensorType.variable_class = TensorVariable
TensorType.constant_class = TensorConstant


def tensor(dtype: str | None = None, shape: Sequence[int | None] = (), name: str | None = None) -> TensorVariable:
    """A new symbolic input: ``T.tensor('float32', shape=(None, 3), name='x')``."""
    if isinstance(dtype, (tuple, list)):  # T.tensor(shape, dtype) order tolerated
        dtype, shape = None, dtype
    return TensorType(dtype or config.floatX, shape).make_variable(name)


def _maker(ndim: int, kind: str, pattern: tuple | None = None):
    """The unprefixed constructor ``T.matrix(name=None, dtype=None, shape=None)`` (dtype floatX)."""
    def make(name: str | None = None, dtype: str | None = None, shape: Sequence[int | None] | None = None):
        if shape is None:
            shape = pattern or (None,) * ndim
        elif len(shape) != ndim:
            raise GraphTypeError(f"T.{kind} has {ndim} dimensions, but shape={tuple(shape)} was given")
        return tensor(dtype or config.floatX, shape, name)
    make.__name__ = make.__qualname__ = kind
    make.__doc__ = f"A symbolic {ndim}-d input (dtype floatX unless ``dtype`` is given)."
    return make


def _plural(single: Any, kind: str):
    """Theano's plural constructors: ``T.dmatrices('a', 'b')``, ``T.scalars('xyz')`` (one variable per
    character), ``T.dmatrices(3)`` (three unnamed), ``T.dscalars('x')`` (one variable, not a list)."""
    def make(*names: Any, **kwargs: Any):
        if names and isinstance(names[0], (int, np.integer)) and not isinstance(names[0], bool):
            return [single(None, **kwargs) for _ in range(int(names[0]))]
        if len(names) == 1:
            names = names[0]
        if isinstance(names, str) and len(names) == 1:
            return single(names, **kwargs)
        return [single(n, **kwargs) for n in names]
    make.__name__ = make.__qualname__ = kind
    make.__doc__ = f"Several ``{getattr(single, '__name__', kind)}`` variables at once, one per name."
    return make


_KINDS = {"scalar": 0, "vector": 1, "matrix": 2, "tensor3": 3, "tensor4": 4, "tensor5": 5, "tensor6": 6,
          "tensor7": 7, "row": 2, "col": 2}
_PATTERNS = {"row": (1, None), "col": (None, 1)}
_PREFIXES = {"b": "int8", "w": "int16", "i": "int32", "l": "int64", "f": "float32", "d": "float64",
             "c": "complex64", "z": "complex128"}
CONSTRUCTORS: dict[str, Any] = {}  # T.matrix (a function), T.dmatrix (a TensorType), T.dmatrices, ...
for _kind, _nd in _KINDS.items():
    _plural_name = "matrices" if _kind == "matrix" else _kind + "s"
    CONSTRUCTORS[_kind] = _maker(_nd, _kind, _PATTERNS.get(_kind))
    CONSTRUCTORS[_plural_name] = _plural(CONSTRUCTORS[_kind], _plural_name)
    for _p, _dt in _PREFIXES.items():
        CONSTRUCTORS[_p + _kind] = TensorType(_dt, _PATTERNS.get(_kind, (None,) * _nd))
        CONSTRUCTORS[_p + _plural_name] = _plural(CONSTRUCTORS[_p + _kind], _p + _plural_name)


def constant(value: Any, name: str | None = None, dtype: str | None = None) -> TensorConstant:
    """A constant tensor holding ``value`` (an ndarray, list or number)."""
    weak = dtype is None and isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)
    if dtype is None and isinstance(value, (float, list, tuple)):
        arr = np.asarray(value)
        if arr.dtype == np.float64:
            arr = arr.astype(config.floatX)
    else:
        arr = np.asarray(value, dtype=dtype)
    if arr.dtype == object:
        raise GraphTypeError(f"cannot make a constant of {type(value).__name__} {value!r}")
    arr = arr.copy()
    arr.setflags(write=False)
    ttype = TensorType(arr.dtype, arr.shape)
    return TensorConstant(ttype, arr, name, weak=weak)


def as_tensor_variable(x: Any, name: str | None = None, ndim: int | None = None) -> TensorVariable:
    """``x`` itself if it is a tensor variable, else a constant made from it."""
    if isinstance(x, Variable):
        if not isinstance(x, TensorVariable):  # (every variable of a TensorType is one)
            raise GraphTypeError(f"expected a tensor variable, got {x} of type {x.type}")
        v = x
    elif isinstance(x, (list, tuple)) and any(isinstance(e, Variable) for e in x):
        v = ops.stack(list(x))
    else:
        try:
            v = constant(x, name)
        except (TypeError, ValueError) as e:
            raise GraphTypeError(f"cannot turn {type(x).__name__} into a tensor: {e}") from None
    if ndim is not None and v.ndim != ndim:
        raise GraphTypeError(f"expected a {ndim}-d tensor, got {v} with {v.ndim} dimensions ({v.type})")
    return v


def is_inexact(x: Any) -> bool:
    """True for float and complex dtypes (numpy's inexact kinds: the values that carry gradients);
    ``x`` is a dtype, a dtype name or anything with a ``dtype``."""
    return np.dtype(getattr(x, "dtype", x)).kind in "fc"


def is_integer(x: Any) -> bool:
    """True for signed and unsigned integer dtypes (not bool)."""
    return np.dtype(getattr(x, "dtype", x)).kind in "iu"


def tensor_inputs(node: Apply) -> list[TensorVariable]:
    """``node.inputs`` typed as tensor variables, for code that handles a tensor op's node: a tensor
    op's make_node builds its node from tensor variables (as_tensor_variable), which a type checker
    cannot follow through ``Apply``. No check and no copy: the node's own list."""
    return cast("list[TensorVariable]", node.inputs)


def tensor_outputs(node: Apply) -> list[TensorVariable]:
    """``node.outputs`` typed as tensor variables (see ``tensor_inputs``)."""
    return cast("list[TensorVariable]", node.outputs)
