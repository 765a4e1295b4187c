"""Safe persistence: ``sg.save(obj, path)`` / ``sg.load(path)`` for graphs, compiled functions
and shared variables, in a documented file that loading never executes.

The file is a zip (readable by ``np.load(path, allow_pickle=False)``) holding:

* ``graph.json``: ``{"format": "symgraph", "version": 1, "sha256": ..., "body": ...}`` where
  ``body`` lists ``variables`` (type, name, and for leaves: input, constant or shared; a shared
  variable also records ``host`` when device backends keep it on the host and its
  ``default_update``, the id of that graph's variable: random streams' keys and counters),
  ``nodes`` (op class name, its ``__props__``, input and output variable ids, the user line
  that built it) and ``root`` (what was saved: a variable, function, random stream, list or
  dict of them);
* ``a0.npy``, ``a1.npy``, ...: constants and shared values, written without pickle.

``sha256`` covers the body and every array, so a tampered or damaged file is refused.
Ops are looked up by class name in a registry of symgraph's own Op classes (plus any class
passed to ``register_op``) and rebuilt as ``cls(**props)``: nothing named in the file is
imported or called. Functions are saved as their user-level graph (inputs, outputs,
updates, backend, mode) and recompiled on load.

``pickle`` also works for variables and functions (a function pickles as this format's bytes),
but unpickling runs arbitrary code: never unpickle files you do not trust.
"""
from __future__ import annotations

import copyreg
import hashlib
import importlib
import io
import json
import math
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from symgraph import scalar
from symgraph.archive import GRAPH_MEMBER, BadArchive, read_archive
from symgraph.compile.function import Function, _apply_givens, function
from symgraph.compile.io import In, Out
from symgraph.compile.shared import SharedVariable
from symgraph.errors import BackendError, SymgraphError
from symgraph.graph.basic import Apply, Constant, Op, SourceLine, Variable
from symgraph.graph.inner import InnerGraph
from symgraph.graph.traversal import graph_inputs, toposort
from symgraph.random import MRG_RandomStreams, RandomStream, RandomStreams
from symgraph.safe_text import printable
from symgraph.tensor.type import TensorConstant, TensorType

FORMAT, VERSION = "symgraph", 1
_OP_MODULES = ("symgraph.tensor", "symgraph.gradient", "symgraph.tensor.composite", "symgraph.tensor.fused",
               "symgraph.ifelse", "symgraph.compile.placement")


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


def _op_name(op: Op, registry: dict[str, type]) -> str:
    cls = type(op)
    for name, c in registry.items():
        if c is cls:
            return name
    raise SerializationError(f"cannot save op {op}: its class {cls.__module__}.{cls.__qualname__} is not "
                             f"defined by symgraph; call symgraph.serialize.register_op({cls.__name__}) "
                             f"before saving and before loading")


# --- values inside op props ------------------------------------------------------------------

def _enc(value: Any, arrays: list, where: str) -> Any:
    """A JSON-able, tagged form of a prop value (tuples, slices, dtypes, scalar ops, arrays...)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, scalar.ScalarOp):
        return {"scalar_op": value.name}
    if isinstance(value, tuple):
        return {"tuple": [_enc(v, arrays, where) for v in value]}
    if isinstance(value, list):
        return {"list": [_enc(v, arrays, where) for v in value]}
    if isinstance(value, slice):
        return {"slice": [_enc(v, arrays, where) for v in (value.start, value.stop, value.step)]}
    if isinstance(value, np.dtype):
        return {"dtype": value.str}
    if isinstance(value, np.generic):
        return {"np_scalar": _add_array(np.asarray(value), arrays)}
    if isinstance(value, np.ndarray):
        return {"array": _add_array(value, arrays)}
    if isinstance(value, TensorType):
        return {"tensor_type": _enc_type(value)}
    if isinstance(value, Op):
        return {"op": _enc_op(value, arrays, op_registry())}
    if isinstance(value, InnerGraph):
        return {"inner_graph": _enc_inner(value, arrays)}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _enc(v, arrays, where) for k, v in value.items()}}
    raise SerializationError(f"cannot save {where}: value {value!r} of type {type(value).__name__} has no "
                             f"safe encoding (supported: numbers, strings, tuples, lists, slices, dtypes, "
                             f"arrays, scalar ops, ops, tensor types, dicts)")


def _dec(value: Any, arrays: dict, registry: dict) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if not (isinstance(value, dict) and len(value) == 1):
        raise CorruptFileError(f"unexpected prop encoding {value!r}")
    (tag, v), = value.items()
    if tag == "float" and v in ("nan", "inf", "-inf"):
        return float(v)
    if tag == "scalar_op":
        if v not in scalar.SCALAR_OPS:
            raise UnknownOpError(f"the file uses elementwise op {v!r}, which this symgraph does not define")
        return scalar.SCALAR_OPS[v]
    if tag in ("tuple", "list", "slice") and isinstance(v, list):
        items = [_dec(x, arrays, registry) for x in v]
        return tuple(items) if tag == "tuple" else items if tag == "list" else slice(*items)
    if tag == "dtype":
        return np.dtype(str(v))
    if tag == "np_scalar":
        return _array(arrays, v)[()]
    if tag == "array":
        return _array(arrays, v)
    if tag == "tensor_type":
        return _dec_type(v)
    if tag == "op":
        return _dec_op(v, arrays, registry)
    if tag == "dict" and isinstance(v, dict):
        return {k: _dec(x, arrays, registry) for k, x in v.items()}
    if tag == "inner_graph" and isinstance(v, dict):
        return _dec_inner(v, arrays)
    raise CorruptFileError(f"unknown prop encoding tag {tag!r}")


def _enc_inner(graph: InnerGraph, arrays: list) -> dict:
    """An inner graph (an op's parameter) in the file's own graph encoding, its arrays among the file's."""
    writer = _Writer()
    writer.arrays = arrays
    for v in graph.inputs:
        writer._new(v, {"kind": "input"})
    outputs = [writer.var(v) for v in graph.outputs]
    return {"variables": writer.variables, "nodes": writer.nodes, "inputs": list(range(len(graph.inputs))),
            "outputs": outputs}


def _dec_inner(d: dict, arrays: dict) -> InnerGraph:
    reader = _Reader({"variables": d.get("variables", []), "nodes": d.get("nodes", [])}, arrays, None)
    inputs = [reader._get(k) for k in d.get("inputs", [])]
    if any(v.owner is not None or isinstance(v, Constant) for v in inputs):
        raise CorruptFileError("an inner graph's inputs must be free variables")
    return InnerGraph(inputs, [reader._get(k) for k in d.get("outputs", [])])


def _add_array(arr: np.ndarray, arrays: list) -> str:
    if arr.dtype.hasobject:
        raise SerializationError(f"cannot save an array of dtype {arr.dtype} (object arrays need pickle)")
    arrays.append(arr if arr.flags.c_contiguous else arr.copy(order="C"))
    return f"a{len(arrays) - 1}"


def _array(arrays: dict, key: Any) -> np.ndarray:
    if key not in arrays:
        raise CorruptFileError(f"the file refers to array {key!r}, which it does not contain")
    return arrays[key]


def _enc_type(t: Any) -> dict:
    if not isinstance(t, TensorType):
        raise SerializationError(f"cannot save a variable of type {t} ({type(t).__name__}): only tensors")
    return {"dtype": t.dtype, "shape": list(t.shape)}


def _dec_type(d: Any) -> TensorType:
    try:
        return TensorType(d["dtype"], tuple(d["shape"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptFileError(f"bad tensor type {d!r} in file ({e})") from None


def _enc_op(op: Op, arrays: list, registry: dict) -> dict:
    name = _op_name(op, registry)
    props = {p: _enc(getattr(op, p), arrays, f"prop {p!r} of op {op}") for p in op.__props__}
    return {"class": name, "props": props}


def _dec_op(d: dict, arrays: dict, registry: dict) -> Op:
    name = d.get("class") if isinstance(d, dict) else None
    if name not in registry:
        raise UnknownOpError(f"the file uses op {name!r}, which is not a symgraph op or a registered one "
                             f"(register_op(cls) for your own ops); known: {sorted(registry)}")
    cls = registry[name]
    props = {k: _dec(v, arrays, registry) for k, v in d.get("props", {}).items()}
    if set(props) != set(cls.__props__):
        raise CorruptFileError(f"op {name}: the file gives props {sorted(props)}, the class has {list(cls.__props__)}")
    try:
        return cls(**props)
    except (TypeError, ValueError, LookupError) as e:
        raise CorruptFileError(f"cannot rebuild op {name}: {printable(str(e)[:300])} (props "
                               f"{printable(str(props)[:300])})") from None


# --- writing ---------------------------------------------------------------------------------

class _Writer:
    """Collects variables, nodes and arrays for one file; shared storage is written once."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.variables: list[dict] = []
        self.nodes: list[dict] = []
        self.ids: dict[Variable, int] = {}
        self.registry = op_registry()
        self.defaults: list[SharedVariable] = []  # shared variables whose default update is written last

    def var(self, v: Variable) -> int:
        """The id of ``v``, writing the graph that computes it first."""
        if v not in self.ids:
            for node in toposort([v], blockers=list(self.ids)):
                for inp in node.inputs:
                    if inp not in self.ids:
                        self._leaf(inp)
                self._node(node)
            if v not in self.ids:
                self._leaf(v)
        return self.ids[v]

    def _new(self, v: Variable, record: dict) -> None:
        record.update(type=_enc_type(v.type), name=v.name)
        self.ids[v] = len(self.variables)
        self.variables.append(record)

    def _leaf(self, v: Variable) -> None:
        if isinstance(v, SharedVariable):
            record = {"kind": "shared", "value": _add_array(v.get_value(borrow=True), self.arrays)}
            if v.host_resident:
                record["host"] = True
            self._new(v, record)
            if v.default_update is not None:
                self.defaults.append(v)
        elif isinstance(v, Constant):
            self._new(v, {"kind": "constant", "value": _add_array(np.asarray(v.data), self.arrays),
                          "weak": bool(getattr(v, "weak", False))})
        elif v.owner is None:
            self._new(v, {"kind": "input"})
        else:
            raise SerializationError(f"internal: {v} has an owner but was written as a leaf")

    def _node(self, node: Apply) -> None:
        outs = []
        for o in node.outputs:
            self._new(o, {"kind": "output"})
            outs.append(self.ids[o])
        trace = node.trace
        self.nodes.append({"op": _enc_op(node.op, self.arrays, self.registry),
                           "inputs": [self.ids[i] for i in node.inputs], "outputs": outs,
                           "trace": None if trace is None else [trace.filename, trace.lineno, trace.function,
                                                                 trace.text]})

    def finish(self) -> None:
        """Write the default updates of the shared variables written (after everything else, so a
        default update's graph never interleaves with another's)."""
        while self.defaults:
            v = self.defaults.pop()
            self.variables[self.ids[v]]["default_update"] = self.var(v.default_update)

    def root(self, obj: Any) -> Any:
        """The tagged description of the saved object."""
        if isinstance(obj, Function):
            return {"function": self.function(obj)}
        if isinstance(obj, RandomStream):
            stream = {"class": type(obj).__name__, "seed": obj.default_seed,
                      "key": self.var(obj.key), "counters": [self.var(c) for c in obj.counters]}
            if isinstance(obj, RandomStreams):  # Theano's port: a key per draw site too
                stream["site_keys"] = [self.var(k) for k in obj.site_keys]
            return {"random_stream": stream}
        if isinstance(obj, Variable):
            return {"var": self.var(obj)}
        if isinstance(obj, (list, tuple)):
            return {type(obj).__name__: [self.root(o) for o in obj]}
        if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
            return {"dict": {k: self.root(v) for k, v in obj.items()}}
        raise SerializationError(f"sg.save saves variables, compiled functions, shared variables, random streams "
                                 f"and lists/tuples/str-keyed dicts of them; got {type(obj).__name__}")

    def function(self, f: Function) -> dict:
        outs = [o.variable for o in f.maker.outputs]
        upd = list(f.updates)
        states = [i.update for i in f.maker.inputs if i.update is not None]
        if f.givens:  # (variable, value) pairs, as sg.function recorded them
            targets = _apply_givens(outs + [v for _, v in upd] + states, f.givens)
            outs, rest = targets[:len(outs)], targets[len(outs):]
            upd, states = [(s, t) for (s, _), t in zip(upd, rest)], rest[len(upd):]
        inputs = [self.var(v) for v in f.inputs]
        compiled = set(f.graph.inputs)  # givens the Function did not record show up here
        for leaf in graph_inputs([*outs, *(t for _, t in upd), *states]):
            if not isinstance(leaf, Constant) and leaf not in compiled:
                raise SerializationError(f"cannot save {f}: it was compiled with givens replacing {leaf}, "
                                         "which this Function does not record; save its graph instead")
        d = {"inputs": inputs, "outputs": [self.var(v) for v in outs],
             "single": f.outputs is not None and not isinstance(f.outputs, (list, tuple)),
             "no_outputs": f.outputs is None, "updates": [[self.var(s), self.var(t)] for s, t in upd],
             "backend": f.backend, "mode": f.mode, "name": f.spec.name,
             "allow_input_downcast": f.spec.allow_downcast, "nan_guard": f.spec.nan_guard}
        if any(o.borrow for o in f.maker.outputs):
            d["borrow_outputs"] = [o.borrow for o in f.maker.outputs]
        options = [self.input_options(f, k, i, states) for k, i in enumerate(f.maker.inputs)]
        if any(o is not None for o in options):
            d["input_options"] = options
        return d

    def input_options(self, f: Function, k: int, i: In, states: list[Variable]) -> dict | None:
        """sg.In's options of input ``k`` (None: a plain input); its stored value as it is now."""
        if i.name == i.variable.name and i.value is None and not (i.mutable or i.borrow or i.strict) \
                and i.allow_downcast is None:
            return None
        stored = f.spec.args[k].container
        update = None
        if i.update is not None:
            update = self.var(states[sum(j.update is not None for j in f.maker.inputs[:k])])
        return {"name": i.name, "value": None if stored is None else _enc(stored.to_host(), self.arrays, "a default"),
                "update": update, "mutable": i.mutable, "borrow": i.borrow, "strict": i.strict,
                "allow_downcast": i.allow_downcast}


def _checksum(body_json: bytes, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(body_json)
    for key in sorted(arrays, key=lambda k: (len(k), k)):
        a = arrays[key]
        h.update(f"\n{key} {a.dtype.str} {a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _canonical(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def dumps(obj: Any) -> bytes:
    """The bytes ``save`` would write for ``obj``."""
    w = _Writer()
    root = w.root(obj)
    w.finish()
    body = {"variables": w.variables, "nodes": w.nodes, "root": root}
    arrays = {f"a{k}": a for k, a in enumerate(w.arrays)}
    header = {"format": FORMAT, "version": VERSION, "sha256": _checksum(_canonical(body), arrays), "body": body}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(GRAPH_MEMBER, json.dumps(header, indent=1, allow_nan=False))
        for key, a in arrays.items():
            with z.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, a, allow_pickle=False)
    return buf.getvalue()


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` (a variable, list of outputs, compiled function, shared variable, or a
    list/dict of them) to ``path``; the file is replaced atomically, so a crash never leaves half."""
    data = dumps(obj)
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


# --- reading ---------------------------------------------------------------------------------

def _read(source: Any) -> tuple[dict, dict[str, np.ndarray]]:
    try:
        header, arrays = read_archive(source)
    except BadArchive as e:
        raise CorruptFileError(f"{_where(source)}: {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CorruptFileError(f"{_where(source)} is not a symgraph file (format {header.get('format')!r})"
                               if isinstance(header, dict) else f"{_where(source)} is not a symgraph file")
    if header.get("version") != VERSION:
        raise FormatVersionError(f"{_where(source)} has format version {header.get('version')!r}; this symgraph "
                                 f"reads version {VERSION}")
    body = header.get("body")
    if _checksum(_canonical(body), arrays) != header.get("sha256"):
        raise CorruptFileError(f"{_where(source)} fails its checksum: the file was modified or damaged")
    if not isinstance(body, dict):
        raise CorruptFileError(f"{_where(source)} has no graph body")
    return body, arrays


def _where(source: Any) -> str:
    return repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "the data"


def _dec_trace(tr: Any) -> SourceLine | None:
    """A node's recorded user line: shown as the file recorded it, never read from the local disk
    (version-1 files written before the text was recorded show no text)."""
    if tr is None:
        return None
    if not (isinstance(tr, list) and len(tr) in (3, 4) and type(tr[1]) is int
            and all(isinstance(tr[k], str) for k in (0, 2, *range(3, len(tr))))):
        raise CorruptFileError(f"bad trace {str(tr)[:200]} in file: expected [file, line, function, text]")
    return SourceLine(tr[0], tr[1], tr[2], recorded=tr[3] if len(tr) == 4 else "")


class _Reader:
    """Rebuilds variables, nodes and functions from a checked body."""

    def __init__(self, body: dict, arrays: dict, backend: str | None) -> None:
        self.arrays, self.backend, self.registry = arrays, backend, op_registry()
        records = body["variables"]
        self.vars: list[Variable | None] = [None] * len(records)
        for k, r in enumerate(records):
            if r["kind"] != "output":
                self.vars[k] = self._leaf(r)
        for n in body["nodes"]:
            self._node(n, records)
        if any(v is None for v in self.vars):
            raise CorruptFileError("some variables in the file are computed by no node")
        for k, r in enumerate(records):
            if r["kind"] == "shared" and "default_update" in r:
                self.vars[k].default_update = self._get(r["default_update"])

    def _leaf(self, r: dict) -> Variable:
        t, name = _dec_type(r["type"]), r.get("name")
        if r["kind"] == "input":
            return t.make_variable(name)
        value = _array(self.arrays, r["value"])
        if value.dtype != t.numpy_dtype or value.ndim != t.ndim or \
                any(s is not None and s != n for s, n in zip(t.shape, value.shape)):
            raise CorruptFileError(f"value of {name or 'a variable'} is {value.dtype}{list(value.shape)}, "
                                   f"its type says {t}")
        if r["kind"] == "shared":
            shared = SharedVariable(t, t.filter(np.array(value, copy=True)), name)
            shared.host_resident = bool(r.get("host", False))
            return shared
        if r["kind"] == "constant":
            data = np.array(value, copy=True)
            data.setflags(write=False)
            return TensorConstant(t, data, name, weak=bool(r.get("weak", False)))
        raise CorruptFileError(f"unknown variable kind {r['kind']!r}")

    def _node(self, n: dict, records: list) -> None:
        op = _dec_op(n["op"], self.arrays, self.registry)
        inputs = [self._get(i) for i in n["inputs"]]
        node = op.make_node(*inputs)
        outs = n["outputs"]
        if len(node.outputs) != len(outs):
            raise CorruptFileError(f"op {op} has {len(node.outputs)} outputs, the file says {len(outs)}")
        for o, k in zip(node.outputs, outs):
            if self.vars[k] is not None:
                raise CorruptFileError(f"variable {k} is computed twice in the file")
            saved = _dec_type(records[k]["type"])
            if o.type != saved:
                raise CorruptFileError(f"op {op} now gives {o.type}, the file says {saved}")
            o.name = records[k].get("name")
            self.vars[k] = o
        node.trace = _dec_trace(n.get("trace"))

    def _get(self, k: Any) -> Variable:
        if type(k) is not int or not 0 <= k < len(self.vars) or self.vars[k] is None:
            raise CorruptFileError(f"the file refers to variable {k!r} before defining it")
        return self.vars[k]

    def root(self, r: Any) -> Any:
        (tag, v), = r.items()
        if tag == "var":
            return self._get(v)
        if tag in ("list", "tuple"):
            items = [self.root(x) for x in v]
            return items if tag == "list" else tuple(items)
        if tag == "dict":
            return {k: self.root(x) for k, x in v.items()}
        if tag == "function":
            return self.function(v)
        if tag == "random_stream":
            return self.random_stream(v)
        raise CorruptFileError(f"unknown root tag {tag!r}")

    def random_stream(self, d: dict) -> RandomStream:
        """A stream reading the loaded key and call counters (shared with loaded functions)."""
        classes = {c.__name__: c for c in (RandomStream, RandomStreams, MRG_RandomStreams)}
        if d.get("class") not in classes:
            raise CorruptFileError(f"unknown random stream class {d.get('class')!r}")
        stream = object.__new__(classes[d["class"]])
        stream.default_seed = int(d["seed"])
        stream.key = self._get(d["key"])
        stream.counters = [self._get(k) for k in d["counters"]]
        site_keys: list[Any] = []
        if isinstance(stream, RandomStreams):
            if not isinstance(d.get("site_keys"), list) or len(d["site_keys"]) != len(stream.counters):
                raise CorruptFileError("a saved RandomStreams needs one key per draw site (site_keys)")
            site_keys = [self._get(k) for k in d["site_keys"]]
        if not all(isinstance(v, SharedVariable) for v in [stream.key, *stream.counters, *site_keys]):
            raise CorruptFileError("a random stream's key, counters and site keys must be shared variables")
        if isinstance(stream, RandomStreams):
            stream.site_keys = site_keys
        return stream

    def function(self, d: dict) -> Function:
        outs: list = [self._get(k) for k in d["outputs"]]
        borrow = d.get("borrow_outputs")
        if borrow is not None:
            if not (isinstance(borrow, list) and len(borrow) == len(outs) and all(isinstance(b, bool) for b in borrow)):
                raise CorruptFileError("a saved function's borrow_outputs must be one true/false per output")
            outs = [Out(v, borrow=b) for v, b in zip(outs, borrow)]
        outputs = None if d["no_outputs"] else outs[0] if d["single"] else outs
        updates = [(self._get(s), self._get(t)) for s, t in d["updates"]]
        inputs: list = [self._get(k) for k in d["inputs"]]
        options = d.get("input_options")
        if options is not None:
            if not (isinstance(options, list) and len(options) == len(inputs)):
                raise CorruptFileError("a saved function's input_options must have one entry per input")
            inputs = [v if o is None else self.input(v, o) for v, o in zip(inputs, options)]
        return function(inputs, outputs, updates=updates,
                        backend=self.backend or d["backend"], mode=d["mode"], name=d["name"],
                        on_unused_input="ignore", allow_input_downcast=d["allow_input_downcast"],
                        nan_guard=d["nan_guard"], no_default_updates=True)  # the saved updates list them all


    def input(self, v: Variable, o: Any) -> In:
        """An sg.In from its saved options, each checked (a wrong type is a corrupt file)."""
        flags = ("mutable", "borrow", "strict")
        if not (isinstance(o, dict) and set(o) == {"name", "value", "update", "allow_downcast", *flags}
                and all(isinstance(o[k], bool) for k in flags) and o["allow_downcast"] in (None, True, False)
                and (o["name"] is None or isinstance(o["name"], str))):
            raise CorruptFileError(f"unreadable options of a saved function's input: {o!r}"[:200])
        value = None if o["value"] is None else _dec(o["value"], self.arrays, self.registry)
        update = None if o["update"] is None else self._get(o["update"])
        return In(v, name=o["name"], value=value, update=update, mutable=o["mutable"], borrow=o["borrow"],
                  strict=o["strict"], allow_downcast=o["allow_downcast"])


def loads(data: bytes, backend: str | None = None) -> Any:
    """The object stored in ``data`` (bytes from ``dumps``)."""
    return _load(io.BytesIO(data), backend)


def load(path: str | os.PathLike, backend: str | None = None) -> Any:
    """Read what ``save`` wrote; functions are recompiled (on ``backend`` if given, else the saved one)."""
    return _load(path, backend)


def _load(source: Any, backend: str | None) -> Any:
    body, arrays = _read(source)
    try:
        return _Reader(body, arrays, backend).root(body["root"])
    except (SerializationError, BackendError):
        raise  # already says what is wrong; a backend this machine lacks is no fault of the file
    except (SymgraphError, LookupError, TypeError, ValueError, AttributeError, RecursionError, OverflowError,
            MemoryError) as e:
        raise CorruptFileError(f"{_where(source)} has a malformed graph ({type(e).__name__}: "
                               f"{printable(str(e)[:1000])})") from None


# Pickle (unsafe for untrusted files, as all pickle) goes through dumps/loads: see the
# __reduce__ methods of Function, ScalarOp and Container.

__all__ = ["save", "load", "dumps", "loads", "register_op", "op_registry", "SerializationError",
           "UnknownOpError", "CorruptFileError", "FormatVersionError"]


def _reduce_function(f: Function) -> tuple:
    """Pickle a compiled function through this format (unpickling recompiles). Pickle itself is
    unsafe for untrusted files; sg.load never runs code from the file."""
    return loads, (dumps(f),)


copyreg.pickle(Function, _reduce_function)
