"""The symgraph file format's building blocks (``symgraph.serialize`` writes and reads the graphs
with them): its errors, the registry of the op classes a file may name, arrays and tensor types as
the file records them, node traces, and the archive itself (checksum, format and version checks)."""
from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from symgraph.archive import GRAPH_MEMBER, BadArchive, read_archive
from symgraph.errors import SymgraphError
from symgraph.graph.basic import Op, SourceLine
from symgraph.tensor.type import TensorType

FORMAT, VERSION = "symgraph", 1
_OP_MODULES = ("symgraph.tensor", "symgraph.gradient", "symgraph.tensor.composite", "symgraph.tensor.fused",
               "symgraph.ifelse", "symgraph.scan", "symgraph.compile.placement")


class SerializationError(SymgraphError, ValueError):
    """An object cannot be saved, or a file cannot be loaded."""


class UnknownOpError(SerializationError):
    """The file names an op (or scalar op) that this symgraph does not define or register."""


class CorruptFileError(SerializationError):
    """The file is truncated, not a symgraph file, or its contents fail the checksum."""


class FormatVersionError(SerializationError):
    """The file was written in a format version this symgraph cannot read."""


# --- the op registry -------------------------------------------------------------------------

_REGISTERED: dict[str, type] = {}


def register_op(cls: type) -> type:
    """Allow ``load`` to rebuild ops of ``cls`` (an Op subclass defined outside symgraph)."""
    if not (isinstance(cls, type) and issubclass(cls, Op)):
        raise TypeError(f"register_op expects an Op subclass, got {cls!r}")
    _REGISTERED[cls.__name__] = cls
    return cls


def op_registry() -> dict[str, type]:
    """Op classes ``load`` may build, by name: every Op subclass defined in a ``symgraph.``
    module (qualified by module when two share a name) plus registered ones."""
    for module in _OP_MODULES:  # a fixed list of our own modules, never one read from a file
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
    found, stack = [], list(Op.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in found:
            found.append(cls)
            stack.extend(cls.__subclasses__())
    ours = [c for c in found if c.__module__.startswith("symgraph.")]
    counts: dict[str, int] = {}
    for c in ours:
        counts[c.__name__] = counts.get(c.__name__, 0) + 1
    registry = {(c.__name__ if counts[c.__name__] == 1 else f"{c.__module__}.{c.__qualname__}"): c for c in ours}
    registry.update(_REGISTERED)
    return registry


def op_name(op: Op, registry: dict[str, type]) -> str:
    cls = type(op)
    for name, c in registry.items():
        if c is cls:
            return name
    raise SerializationError(f"cannot save op {op}: its class {cls.__module__}.{cls.__qualname__} is not "
                             f"defined by symgraph; call symgraph.serialize.register_op({cls.__name__}) "
                             f"before saving and before loading")


# --- arrays, types and traces as the file records them ------------------------------------------

def add_array(arr: np.ndarray, arrays: list) -> str:
    if arr.dtype.hasobject:
        raise SerializationError(f"cannot save an array of dtype {arr.dtype} (object arrays need pickle)")
    arrays.append(arr if arr.flags.c_contiguous else arr.copy(order="C"))
    return f"a{len(arrays) - 1}"


def array_ref(arrays: dict, key: Any) -> np.ndarray:
    if key not in arrays:
        raise CorruptFileError(f"the file refers to array {key!r}, which it does not contain")
    return arrays[key]


def encode_type(t: Any) -> dict:
    if not isinstance(t, TensorType):
        raise SerializationError(f"cannot save a variable of type {t} ({type(t).__name__}): only tensors")
    return {"dtype": t.dtype, "shape": list(t.shape)}


def decode_type(d: Any) -> TensorType:
    try:
        return TensorType(d["dtype"], tuple(d["shape"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptFileError(f"bad tensor type {d!r} in file ({e})") from None


def decode_trace(tr: Any) -> SourceLine | None:
    """A node's recorded user line: shown as the file recorded it, never read from the local disk
    (version-1 files written before the text was recorded show no text)."""
    if tr is None:
        return None
    if not (isinstance(tr, list) and len(tr) in (3, 4) and type(tr[1]) is int
            and all(isinstance(tr[k], str) for k in (0, 2, *range(3, len(tr))))):
        raise CorruptFileError(f"bad trace {str(tr)[:200]} in file: expected [file, line, function, text]")
    return SourceLine(tr[0], tr[1], tr[2], recorded=tr[3] if len(tr) == 4 else "")


# --- the archive: checksum, format and version ----------------------------------------------

def checksum(body_json: bytes, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(body_json)
    for key in sorted(arrays, key=lambda k: (len(k), k)):
        a = arrays[key]
        h.update(f"\n{key} {a.dtype.str} {a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def canonical(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def read_checked(source: Any) -> tuple[dict, dict[str, np.ndarray]]:
    try:
        header, arrays = read_archive(source)
    except BadArchive as e:
        raise CorruptFileError(f"{source_name(source)}: {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CorruptFileError(f"{source_name(source)} is not a symgraph file (format {header.get('format')!r})"
                               if isinstance(header, dict) else f"{source_name(source)} is not a symgraph file")
    if header.get("version") != VERSION:
        raise FormatVersionError(f"{source_name(source)} has format version {header.get('version')!r}; this symgraph "
                                 f"reads version {VERSION}")
    body = header.get("body")
    if checksum(canonical(body), arrays) != header.get("sha256"):
        raise CorruptFileError(f"{source_name(source)} fails its checksum: the file was modified or damaged")
    if not isinstance(body, dict):
        raise CorruptFileError(f"{source_name(source)} has no graph body")
    return body, arrays


def source_name(source: Any) -> str:
    return repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "the data"


def pack(body: dict, arrays: list[np.ndarray]) -> bytes:
    """The file's bytes: ``graph.json`` (format, version, the checksum of body and arrays, the body)
    and the arrays as ``a0.npy``, ``a1.npy``, ... (written without pickle)."""
    named = {f"a{k}": a for k, a in enumerate(arrays)}
    header = {"format": FORMAT, "version": VERSION, "sha256": checksum(canonical(body), named), "body": body}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(GRAPH_MEMBER, json.dumps(header, indent=1, allow_nan=False))
        for key, a in named.items():
            with z.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, a, allow_pickle=False)
    return buf.getvalue()


def write_atomically(data: bytes, path: str | os.PathLike) -> None:
    """Replace the file at ``path`` by ``data`` atomically: a crash never leaves half a file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".symgraph-save-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
