"""Reading a saved file's zip archive without trusting it (used by ``symgraph.serialize``).

Every size is checked against the archive before anything is allocated: a member cannot
declare more bytes than deflate could have packed into its compressed size, and an array
member's ``.npy`` header must declare exactly the bytes the member holds. Only ``graph.json``
and ``a<k>.npy`` members of plain numeric dtypes in C order are accepted, and the JSON is
parsed with no NaN/Infinity and bounded nesting. Anything else raises ``BadArchive`` with what
was wrong (``serialize`` turns it into ``CorruptFileError``).
"""
from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
import zlib
from typing import IO, Any, cast

import numpy as np

GRAPH_MEMBER = "graph.json"
MAX_JSON_DEPTH = 100
# deflate emits at best 258 bytes per ~2 bits of a stream: about 1032 bytes out per byte in
_MAX_DEFLATE_RATIO = 1032
_SLACK = 1024
_ARRAY_MEMBER = re.compile(r"a(0|[1-9][0-9]{0,8})\.npy\Z")
_CHUNK = 1 << 22


class BadArchive(Exception):
    """The archive is not a well-formed symgraph file; the message says what is wrong."""


def read_archive(source: str | IO[bytes]) -> tuple[Any, dict[str, np.ndarray]]:
    """The parsed ``graph.json`` and the arrays (by key ``a<k>``) of the archive at ``source``
    (a path or a binary file object). Missing files raise ``FileNotFoundError`` as usual."""
    try:
        with zipfile.ZipFile(source) as zf:
            infos = _checked_members(zf, _archive_size(source))
            header = parse_json(_read_member(zf, infos[GRAPH_MEMBER]))
            arrays = {name[:-4]: _read_array(zf, info) for name, info in infos.items() if name != GRAPH_MEMBER}
    except BadArchive:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError, RuntimeError,
            zlib.error, struct.error, UnicodeError) as e:
        raise BadArchive(f"it is not a complete symgraph file ({type(e).__name__}: {e})") from None
    except OSError as e:
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise BadArchive(f"it is not a complete symgraph file ({type(e).__name__}: {e})") from None
    return header, arrays


def _archive_size(source: Any) -> int:
    if hasattr(source, "seek"):
        here = source.tell()
        size = source.seek(0, io.SEEK_END)
        source.seek(here)
        return size
    with open(source, "rb") as fh:
        return fh.seek(0, io.SEEK_END)


def _checked_members(zf: zipfile.ZipFile, archive_size: int) -> dict[str, zipfile.ZipInfo]:
    """The members by name, refusing unknown names, duplicates, encryption, other compression
    methods and sizes the archive cannot hold."""
    infos: dict[str, zipfile.ZipInfo] = {}
    total_packed = 0
    for info in zf.infolist():
        name = info.filename
        if name != GRAPH_MEMBER and not _ARRAY_MEMBER.match(name):
            raise BadArchive(f"it holds a member {name!r}; a symgraph file holds only {GRAPH_MEMBER} and "
                             f"a<k>.npy arrays")
        if name in infos:
            raise BadArchive(f"it holds the member {name!r} twice")
        if info.flag_bits & 0x1:
            raise BadArchive(f"its member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BadArchive(f"its member {name!r} uses compression method {info.compress_type}; symgraph "
                             "files are stored or deflated")
        limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
            info.compress_size * _MAX_DEFLATE_RATIO + _SLACK
        if info.file_size > limit:
            raise BadArchive(f"its member {name!r} declares {info.file_size} bytes, more than its "
                             f"{info.compress_size} compressed bytes can hold")
        total_packed += info.compress_size
        infos[name] = info
    if total_packed > archive_size:
        raise BadArchive(f"its members declare {total_packed} compressed bytes; the file has {archive_size}")
    if GRAPH_MEMBER not in infos:
        raise BadArchive(f"it has no {GRAPH_MEMBER}")
    return infos


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with zf.open(info) as member:
        data = member.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise BadArchive(f"its member {info.filename!r} holds {len(data)} bytes, not the {info.file_size} declared")
    return data


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member, allocated only once its header agrees with the member's size."""
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise BadArchive(f"{info.filename} has .npy format version {version}")
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = reader(member)
        header_bytes = member.tell() if member.seekable() else None
        _check_array_header(info.filename, shape, fortran_order, dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if header_bytes is not None and header_bytes + nbytes != info.file_size:
            raise BadArchive(f"{info.filename} declares a {dtype}{list(shape)} array ({nbytes} bytes) but holds "
                             f"{info.file_size - header_bytes} bytes of data")
        if nbytes > info.file_size:
            raise BadArchive(f"{info.filename} declares a {dtype}{list(shape)} array ({nbytes} bytes) in a member of "
                             f"{info.file_size} bytes")
        array = np.empty(shape, dtype)
        view = array.reshape(-1).view(np.uint8).data if array.size else memoryview(b"")
        filled = 0
        # ZipFile.open gives a ZipExtFile, which reads into a buffer (typeshed types it IO[bytes])
        stream = cast(zipfile.ZipExtFile, member)
        while filled < nbytes:
            got = stream.readinto(view[filled:filled + _CHUNK])
            if not got:
                raise BadArchive(f"{info.filename} ends after {filled} of its {nbytes} bytes of data")
            filled += got
        if member.read(1):
            raise BadArchive(f"{info.filename} holds more data than its {dtype}{list(shape)} header declares")
    return array


def _check_array_header(name: str, shape: tuple, fortran_order: bool, dtype: np.dtype) -> None:
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biufc":
        raise BadArchive(f"{name} holds dtype {dtype}; symgraph saves only plain numeric arrays")
    if fortran_order:
        raise BadArchive(f"{name} is in Fortran order; symgraph saves C-ordered arrays")
    if not all(type(n) is int and n >= 0 for n in shape):
        raise BadArchive(f"{name} declares shape {shape!r}")


def parse_json(raw: bytes) -> Any:
    """``raw`` parsed as strict JSON: no NaN/Infinity, nesting at most ``MAX_JSON_DEPTH``."""
    def refuse(token: str) -> Any:
        raise BadArchive(f"{GRAPH_MEMBER} holds {token}, which is not JSON (symgraph writes no NaN or Infinity)")
    try:
        value = json.loads(raw, parse_constant=refuse, parse_float=_finite_float)
    except BadArchive:
        raise
    except RecursionError:
        raise BadArchive(f"{GRAPH_MEMBER} is nested too deeply") from None
    except (ValueError, TypeError) as e:
        raise BadArchive(f"{GRAPH_MEMBER} is not valid JSON ({e})") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise BadArchive(f"{GRAPH_MEMBER} is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadArchive(f"{GRAPH_MEMBER} holds the number {text[:40]}, which overflows a float")
    return value


def json_depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value`` (0 for a scalar), computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, depth = stack.pop()
        items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if items is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((x, depth + 1) for x in items)
    return deepest


__all__ = ["BadArchive", "read_archive", "parse_json", "json_depth", "GRAPH_MEMBER", "MAX_JSON_DEPTH"]
