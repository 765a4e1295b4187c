"""OpenCL C for one scalar-table op on given dtypes: C types, literals, the working-type
conversions, and helper functions with Python semantics (integer division, modulo, integer
powers). Everything op-specific (the C text per dtype kind, vector safety, the working type)
is a fact in the op's row of the table (symgraph/scalar.py)."""
from __future__ import annotations

import math

import numpy as np

from symgraph.errors import BackendError
from symgraph.scalar import ScalarOp

C_TYPES = {"bool": "uchar", "int8": "char", "uint8": "uchar", "int16": "short", "uint16": "ushort",
           "int32": "int", "uint32": "uint", "int64": "long", "uint64": "ulong",
           "float32": "float", "float64": "double"}


_CTYPE: dict = {}
"""``ctype`` by the dtype (or dtype name) it was asked for: a long program's source asks tens of
thousands of times, and numpy's dtype-name lookup is slow."""


def ctype(dtype) -> str:
    """The OpenCL C type storing ``dtype`` (bool is stored as uchar 0/1)."""
    try:
        return _CTYPE[dtype]
    except (KeyError, TypeError):  # (TypeError: an unhashable dtype-like)
        pass
    name = np.dtype(dtype).name
    try:
        t = C_TYPES[name]
    except KeyError:
        raise BackendError(f"the opencl backend has no device type for dtype {name}") from None
    if len(_CTYPE) < 256:
        _CTYPE[dtype] = t
    return t


def supported_dtype(dtype) -> bool:
    """True when kernels can hold ``dtype`` (not float16/complex)."""
    return np.dtype(dtype).name in C_TYPES


def kind(dtype) -> str:
    """'f' float, 'i' signed int, 'u' unsigned int, 'b' bool."""
    return np.dtype(dtype).kind


def literal(value, dtype) -> str:
    """A C literal of ``dtype`` for a Python/numpy scalar."""
    dtype = np.dtype(dtype)
    k = dtype.kind
    if k == "b":
        return "1" if bool(value) else "0"
    if k == "f":
        v = float(value)
        if math.isnan(v) or math.isinf(v):
            text = "NAN" if math.isnan(v) else "INFINITY" if v > 0 else "(-INFINITY)"
            return text if dtype == np.float32 else f"((double){text})"
        text = repr(v) + ("f" if dtype == np.float32 else "")
        return f"({text})" if v < 0 else text
    v, t = int(value), ctype(dtype)
    if t == "int" and 0 <= v < 2**31:
        return str(v)
    return f"(({t}){v}{'UL' if k == 'u' else 'L'})"


def _helper_suffix(dtype) -> str:
    return ctype(dtype).replace(" ", "_")


def _work_dtype(sop: ScalarOp, arg_dtypes: list, out_dtype: np.dtype) -> np.dtype:
    """The type the row's C expression computes in (its ``work`` fact, see symgraph/scalar.py)."""
    if sop.work == "args":
        return np.result_type(*arg_dtypes)
    if sop.work == "first":
        return np.dtype(arg_dtypes[0])
    return out_dtype


_EXPRESSIONS: dict = {}
"""``expression``'s parts by (op, argument dtypes, output dtype, width): the C text with each
argument's place, each argument's conversion, the helpers (a long program repeats a few ops)."""


def expression(sop: ScalarOp, args: list[str], arg_dtypes: list, out_dtype, width: int = 1) -> tuple[str, set[str]]:
    """The C expression computing ``sop`` on ``args`` (C names of the given dtypes), and the names
    of the helper functions it needs (see ``helpers``). ``width`` > 1: the values are vectors.
    Arguments are converted to the working type first (bool: ``!= 0``); the row's C text for that
    type's kind does the rest (a cast row's text is the conversion alone)."""
    try:
        key = (sop.name, tuple(arg_dtypes), out_dtype, width)
        parts = _EXPRESSIONS.get(key)
    except TypeError:  # an unhashable dtype-like
        key, parts = None, None
    if parts is None:
        parts = _expression_parts(sop, arg_dtypes, out_dtype, width)
        if key is not None and len(_EXPRESSIONS) < 4096:
            _EXPRESSIONS[key] = parts
    text, conversions, needed = parts
    return text.format(*(c.format(a) for c, a in zip(conversions, args))), set(needed)


def _expression_parts(sop: ScalarOp, arg_dtypes: list, out_dtype, width: int) -> tuple[str, tuple, frozenset]:
    """``expression`` for any argument names: the row's C text (``{k}`` for argument k), each
    argument's conversion to the working type (``{}`` for its name), and the helpers."""
    out_dtype = np.dtype(out_dtype)
    T = ctype(out_dtype) + (str(width) if width > 1 else "")
    work = _work_dtype(sop, arg_dtypes, out_dtype)
    conv = []
    for k, dt in enumerate(arg_dtypes):
        if (sop.work == "select" and k == 0) or np.dtype(dt) == work:
            conv.append("{}")
        else:
            conv.append(f"({ctype(work)}){{}}" if work.kind != "b" else "({} != 0)")
    template = sop.cl_template(work.kind)
    suffix = _helper_suffix(work)
    needed = frozenset(name.format(S=suffix) for name in ("floor_div_{S}", "py_mod_{S}", "int_pow_{S}")
                       if name.split("_{S}")[0] in template)
    return template.replace("{T}", T).replace("{S}", suffix), tuple(conv), needed


def helpers(names: set[str]) -> str:
    """C definitions of helper functions (Python semantics for //, % and integer **)."""
    out = []
    for name in sorted(names):
        base, _, t = name.rpartition("_")
        f = t in ("float", "double")
        u = t.startswith("u")
        if base == "floor_div":
            body = (  # floats: numpy's divmod rule (so -1.0 // inf is -1, not -0)
                    f"if (b == 0) return a / b; {t} m = fmod(a, b); {t} d = (a - m) / b;\n"
                    "    if (m != 0 && ((b < 0) != (m < 0))) d -= 1;\n"
                    f"    if (d == 0) return copysign(({t})0, a / b); {t} fd = floor(d); "
                    "return d - fd > 0.5 ? fd + 1 : fd;"
                    if f else "return b == 0 ? 0 : a / b;" if u else
                    "if (b == 0) return 0; if (b == -1) return -a;\n"
                    f"    {t} q = a / b; return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;")
        elif base == "py_mod":
            body = ("if (b == 0) return NAN; " if f else "if (b == 0) return 0; ") * (not u) + (
                f"{t} r = fmod(a, b); if (r != 0 && ((r < 0) != (b < 0))) r += b; "
                f"else if (r == 0) r = copysign(({t})0, b); return r;" if f else
                "return b == 0 ? 0 : a % b;" if u else
                f"if (b == -1) return 0; {t} r = a % b; return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;")
        else:  # int_pow
            body = ("if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);\n" * (not u) +
                    f"    {t} r = 1; while (b) {{ if (b & 1) r *= a; a *= a; b >>= 1; }} return r;")
        out.append(f"inline {t} {name}({t} a, {t} b) {{\n    {body}\n}}")
    return "\n".join(out)
