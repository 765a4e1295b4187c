"""HostFallback: the explicit op that runs a node on the host inside an OpenCL function. As an
op it must behave like the op it wraps (types, perform, infer_shape, props), wherever its graph
goes next (printing, the numpy backend); on OpenCL, a user op that has only ``perform`` runs
through it, warned and visible."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.compile.placement import HostFallback
from symgraph.graph.basic import Apply, Op
from symgraph.printing import debugprint
from conftest import NO_OPENCL


class Cumsum(Op):
    """A user op with nothing but make_node, perform and infer_shape."""

    __props__ = ()

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node, inputs):
        return [np.cumsum(inputs[0], axis=-1)]

    def infer_shape(self, node, input_shapes):
        return [input_shapes[0]]


def test_wraps_the_op_it_runs():
    x = T.fmatrix("x")
    wrapped = HostFallback(T.nnet.softmax(x).owner.op)
    node = wrapped.make_node(x)
    assert str(wrapped) == f"HostFallback{{{wrapped.op}}}"
    assert [o.type for o in node.outputs] == [T.nnet.softmax(x).type]
    v = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    (got,) = wrapped.perform(node, [v])
    e = np.exp(v - v.max(1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=1e-6)
    shape = wrapped.infer_shape(node, [(3, 4)])
    assert [tuple(int(getattr(s, "data", s)) for s in sh) for sh in shape] == [(3, 4)]
    assert HostFallback(Cumsum()) == HostFallback(Cumsum()) and hash(HostFallback(Cumsum())) == hash(HostFallback(Cumsum()))


def test_a_graph_holding_it_runs_on_the_numpy_backend():
    x = T.dmatrix("x")
    out = HostFallback(Cumsum())(x) * 2
    f = sg.function([x], out, backend="numpy")
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(f(v), 2 * np.cumsum(v, axis=-1))
    assert "HostFallback{" in debugprint(f, file="str")


@pytest.mark.skipif(NO_OPENCL is not None, reason=NO_OPENCL or "")
def test_user_op_with_only_perform_runs_on_opencl_through_it():
    x = T.fmatrix("x")
    w = sg.shared(np.ones(3, "float32"), "w")
    out = Cumsum()(x * w) + 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = sg.function([x], out, updates=[(w, w * 2)], backend="opencl")
    (warned,) = [w_ for w_ in caught if "runs on the host" in str(w_.message)]
    assert "Cumsum" in str(warned.message) and "test_host_fallback.py" in str(warned.message)
    assert [n for n in f.graph.apply_nodes if isinstance(n.op, HostFallback)]
    assert any(src.startswith("/* HOST FALLBACK: Cumsum") for src in f.kernels.values())
    v = np.arange(6, dtype="float32").reshape(2, 3)
    for scale in (1, 2, 4):
        np.testing.assert_allclose(f(v), np.cumsum(v * scale, axis=-1) + 1)
