"""Files that pass the checksum but lie: the sha256 of ``sg.save`` detects damage, not intent
(anyone can recompute it), so every check the loader makes after it must hold on its own. Each
case edits a saved function's JSON body, recomputes the checksum, and expects a clear error."""
from __future__ import annotations

import io
import json
import zipfile
from typing import Any, Callable

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph import serialize, serialize_format
from symgraph.serialize import CorruptFileError, SerializationError


def _saved() -> bytes:
    x = T.dvector("x")
    w = sg.shared(np.arange(3.0), "w")
    return serialize.dumps(sg.function([x], [T.exp(x) * w + 2.0, (x * w).sum(axis=0)], updates=[(w, w + 1)]))


def forge(data: bytes, edit: Callable[[dict, dict], Any]) -> bytes:
    """``data`` with ``edit(body, arrays)`` applied and a checksum that matches again."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(members["graph.json"])
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "graph.json"}
    edit(header["body"], arrays)
    header["sha256"] = serialize_format.checksum(serialize_format.canonical(header["body"]), arrays)
    members["graph.json"] = json.dumps(header).encode()
    for key, a in arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a, allow_pickle=False)
        members[f"{key}.npy"] = buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return out.getvalue()


def _node(body: dict, cls: str) -> dict:
    return next(n for n in body["nodes"] if n["op"]["class"] == cls)


def _var(body: dict, kind: str) -> dict:
    return next(v for v in body["variables"] if v["kind"] == kind)


def _set_array(key: str, value: np.ndarray) -> Callable[[dict, dict], None]:
    def edit(body: dict, arrays: dict) -> None:
        arrays[key] = value
    return edit


# name: (edit, error class, message)
CASES: dict[str, tuple[Callable[[dict, dict], Any], type, str]] = {
    "prop not tagged": (lambda b, a: _node(b, "CAReduce")["op"]["props"].update(axis=[0]),
                        CorruptFileError, r"unexpected prop encoding \[0\]"),
    "unknown prop tag": (lambda b, a: _node(b, "CAReduce")["op"]["props"].update(axis={"pickle": "x"}),
                         CorruptFileError, "unknown prop encoding tag 'pickle'"),
    "props missing": (lambda b, a: _node(b, "CAReduce")["op"]["props"].pop("axis"),
                      CorruptFileError, r"op CAReduce: the file gives props .* the class has"),
    "props rejected by the op": (lambda b, a: _node(b, "CAReduce")["op"]["props"].update(scalar_op="pow"),
                                 SerializationError, "cannot rebuild op CAReduce.*unknown scalar op 'pow'"),
    "node that cannot be built": (lambda b, a: _node(b, "CAReduce")["op"]["props"].update(axis={"tuple": [7]}),
                                  CorruptFileError, r"malformed graph \(ShapeError: sum: axis \(7,\) is out of bounds"),
    "array not in the file": (lambda b, a: _var(b, "shared").update(value="a99"),
                              CorruptFileError, "refers to array 'a99'"),
    "bad tensor type": (lambda b, a: _var(b, "input").update(type={"dtype": "object", "shape": [None]}),
                        CorruptFileError, "bad tensor type"),
    "value disagrees with its type": (_set_array("a0", np.arange(3)), CorruptFileError,
                                      r"value of w is int64\[3\], its type says float64\[\?\]"),
    "unknown variable kind": (lambda b, a: _var(b, "shared").update(kind="module"),
                              CorruptFileError, "unknown variable kind 'module'"),
    "node dropped": (lambda b, a: b["nodes"].pop(), CorruptFileError, "computed by no node"),
    "output count": (lambda b, a: b["nodes"][0]["outputs"].append(0), CorruptFileError,
                     "has 1 outputs, the file says 2"),
    "computed twice": (lambda b, a: b["nodes"][1].update(outputs=b["nodes"][0]["outputs"]),
                       CorruptFileError, r"variable \d+ is computed twice"),
    "type of a result": (lambda b, a: b["variables"][b["nodes"][0]["outputs"][0]].update(
        type={"dtype": "float32", "shape": [None]}), CorruptFileError, r"now gives float64\[\?\], the file says float32"),
    "use before definition": (lambda b, a: b["nodes"][0].update(inputs=[len(b["variables"]) - 1]),
                              CorruptFileError, "refers to variable .* before defining it"),
    "input index not a number": (lambda b, a: b["nodes"][0].update(inputs=["0"]),
                                 CorruptFileError, "refers to variable '0' before defining it"),
    "unknown root": (lambda b, a: b.update(root={"eval": "x"}), CorruptFileError, "unknown root tag 'eval'"),
    "root field missing": (lambda b, a: b["root"]["function"].pop("updates"), CorruptFileError,
                           r"malformed graph \(KeyError: 'updates'\)"),
    "body not an object": (lambda b, a: b.update(variables="x"), CorruptFileError, "malformed graph"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forged_file_with_a_valid_checksum(case):
    edit, error, message = CASES[case]
    data = forge(_saved(), edit)
    with pytest.raises(error, match=message):
        serialize.loads(data)


def test_forge_keeps_an_unedited_file_loadable():
    """The forging helper itself changes nothing but what an edit changes."""
    f = serialize.loads(forge(_saved(), lambda b, a: None))
    out, total = f(np.ones(3))
    np.testing.assert_allclose(out, np.exp(1) * np.arange(3.0) + 2.0)
    assert total == 3.0


def _with_header(data: bytes, raw: bytes) -> bytes:
    """``data`` with graph.json replaced by ``raw`` (checksum untouched)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["graph.json"] = raw
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize("raw, message", [
    (b'{"format": "theano", "version": 1}', r"is not a symgraph file \(format 'theano'\)"),
    (b"[1, 2]", "is not a symgraph file"),
    (b"{not json", "is not valid JSON"),
])
def test_header_that_is_not_ours(raw, message):
    with pytest.raises(CorruptFileError, match=message):
        serialize.loads(_with_header(_saved(), raw))


def test_file_errors_name_the_path(tmp_path):
    path = tmp_path / "forged.sgz"
    path.write_bytes(forge(_saved(), lambda b, a: b.update(root={"eval": "x"})))
    with pytest.raises(CorruptFileError, match="unknown root tag"):
        sg.load(path)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CorruptFileError, match=f"{path.name}.* is not a complete symgraph file"):
        sg.load(path)
