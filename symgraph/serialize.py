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
import io
import math
import os
from typing import Any

import numpy as np

from symgraph import scalar
from symgraph.compile.function import Function, _apply_givens, function
from symgraph.compile.io import In, Out
from symgraph.compile.shared import SharedVariable
from symgraph.errors import BackendError, SymgraphError
from symgraph.graph.basic import Apply, Constant, Op, Variable
from symgraph.graph.inner import InnerGraph
from symgraph.graph.traversal import graph_inputs, toposort
from symgraph.random import MRG_RandomStreams, RandomStream, RandomStreams
from symgraph.safe_text import printable
from symgraph.serialize_format import _REGISTERED as _REGISTERED  # (tests register ops and unregister them)
from symgraph.serialize_format import FORMAT as FORMAT  # (public here too)
from symgraph.serialize_format import VERSION as VERSION
from symgraph.serialize_format import (
    CorruptFileError,
    FormatVersionError,
    SerializationError,
    UnknownOpError,
    add_array,
    array_ref,
    decode_trace,
    decode_type,
    encode_type,
    op_name,
    op_registry,
    pack,
    read_checked,
    register_op,
    source_name,
    write_atomically,
)
from symgraph.tensor.type import TensorConstant, TensorType

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
        return {"np_scalar": add_array(np.asarray(value), arrays)}
    if isinstance(value, np.ndarray):
        return {"array": add_array(value, arrays)}
    if isinstance(value, TensorType):
        return {"tensor_type": encode_type(value)}
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
        return array_ref(arrays, v)[()]
    if tag == "array":
        return array_ref(arrays, v)
    if tag == "tensor_type":
        return decode_type(v)
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


def _enc_op(op: Op, arrays: list, registry: dict) -> dict:
    name = op_name(op, registry)
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
        record.update(type=encode_type(v.type), name=v.name)
        self.ids[v] = len(self.variables)
        self.variables.append(record)

    def _leaf(self, v: Variable) -> None:
        if isinstance(v, SharedVariable):
            record: dict[str, Any] = {"kind": "shared", "value": add_array(v.get_value(borrow=True), self.arrays)}
            if v.host_resident:
                record["host"] = True
            self._new(v, record)
            if v.default_update is not None:
                self.defaults.append(v)
        elif isinstance(v, Constant):
            self._new(v, {"kind": "constant", "value": add_array(np.asarray(v.data), self.arrays),
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
            if v.default_update is not None:
                self.variables[self.ids[v]]["default_update"] = self.var(v.default_update)

    def root(self, obj: Any) -> Any:
        """The tagged description of the saved object."""
        if isinstance(obj, Function):
            return {"function": self.function(obj)}
        if isinstance(obj, RandomStream):
            stream = {"class": type(obj).__name__, "seed": obj.default_seed, "rank": obj.rank,
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


def dumps(obj: Any) -> bytes:
    """The bytes ``save`` would write for ``obj``."""
    w = _Writer()
    root = w.root(obj)
    w.finish()
    return pack({"variables": w.variables, "nodes": w.nodes, "root": root}, w.arrays)


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` (a variable, list of outputs, compiled function, shared variable, or a
    list/dict of them) to ``path``; the file is replaced atomically, so a crash never leaves half."""
    write_atomically(dumps(obj), path)


# --- reading ---------------------------------------------------------------------------------

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
            shared_var = self.vars[k]
            if isinstance(shared_var, SharedVariable) and "default_update" in r:
                shared_var.default_update = self._get(r["default_update"])

    def _leaf(self, r: dict) -> Variable:
        t, name = decode_type(r["type"]), r.get("name")
        if r["kind"] == "input":
            return t.make_variable(name)
        value = array_ref(self.arrays, r["value"])
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
            saved = decode_type(records[k]["type"])
            if o.type != saved:
                raise CorruptFileError(f"op {op} now gives {o.type}, the file says {saved}")
            o.name = records[k].get("name")
            self.vars[k] = o
        node.trace = decode_trace(n.get("trace"))

    def _get(self, k: Any) -> Variable:
        v = self.vars[k] if type(k) is int and 0 <= k < len(self.vars) else None
        if v is None:
            raise CorruptFileError(f"the file refers to variable {k!r} before defining it")
        return v

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
        rank = d.get("rank")  # files from before ranks were folded in have none
        if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 0):
            raise CorruptFileError(f"a saved random stream's rank must be an integer >= 0 or null, got {rank!r}")
        stream.rank = rank
        key, counters = self._get(d["key"]), [self._get(k) for k in d["counters"]]
        site_keys: list[Variable] = []
        if isinstance(stream, RandomStreams):
            if not isinstance(d.get("site_keys"), list) or len(d["site_keys"]) != len(counters):
                raise CorruptFileError("a saved RandomStreams needs one key per draw site (site_keys)")
            site_keys = [self._get(k) for k in d["site_keys"]]
        shared = [v for v in [key, *counters, *site_keys] if isinstance(v, SharedVariable)]
        if len(shared) != 1 + len(counters) + len(site_keys):
            raise CorruptFileError("a random stream's key, counters and site keys must be shared variables")
        stream.key, stream.counters = shared[0], shared[1:1 + len(counters)]
        if isinstance(stream, RandomStreams):
            stream.site_keys = shared[1 + len(counters):]
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
    body, arrays = read_checked(source)
    try:
        return _Reader(body, arrays, backend).root(body["root"])
    except (SerializationError, BackendError):
        raise  # already says what is wrong; a backend this machine lacks is no fault of the file
    except (SymgraphError, LookupError, TypeError, ValueError, AttributeError, RecursionError, OverflowError,
            MemoryError) as e:
        raise CorruptFileError(f"{source_name(source)} has a malformed graph ({type(e).__name__}: "
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
