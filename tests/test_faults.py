"""Atomicity under faults: whatever goes wrong mid-call (an op raising, out of memory, a
KeyboardInterrupt between any two nodes, a failing OpenCL kernel), every shared variable keeps
its pre-call value and the function keeps working, on every backend."""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T
from symgraph.graph.basic import Apply, Op

ARMED: dict = {"fault": None}


class Fault(Op):
    """Identity, or raises ``ARMED['fault']`` when one is armed (a stand-in for any failing op)."""

    def make_node(self, x):
        x = T.as_tensor_variable(x)
        return Apply(self, [x], [x.type.make_variable()])

    def perform(self, node, inputs):
        if ARMED["fault"] is not None:
            raise ARMED["fault"]
        return [np.array(inputs[0], copy=True)]


def _model(backend, with_fault=True):
    """A function with two updates, one depending on the (maybe failing) op and one not."""
    x = T.dvector("x")
    w = sg.shared(np.array([1.0, 2.0, 3.0]), "w")
    count = sg.shared(np.int64(0), "count")
    mid = Fault()(x * w) if with_fault else x * w
    out = (T.tanh(mid) + w).sum()
    updates = [(w, w * 0.5 + mid), (count, count + 1)]
    if with_fault and backend == "opencl":  # a user op with no device kernel: OpenCL says so
        with pytest.warns(RuntimeWarning, match="Fault .*runs on the host"):
            return sg.function([x], out, updates=updates, backend=backend), w, count
    return sg.function([x], out, updates=updates, backend=backend), w, count


def _expect_intact(f, w, count, w_before, count_before):
    np.testing.assert_array_equal(w.get_value(), w_before)
    assert count.get_value() == count_before
    x = np.array([0.5, -1.0, 2.0])
    expected = (np.tanh(x * w_before) + w_before).sum()
    np.testing.assert_allclose(f(x), expected, rtol=1e-12)  # still usable, reads the kept values
    np.testing.assert_allclose(w.get_value(), w_before * 0.5 + x * w_before, rtol=1e-12)
    assert count.get_value() == count_before + 1


@pytest.mark.parametrize("fault", [ValueError("injected"), MemoryError("injected"), KeyboardInterrupt(),
                                   ZeroDivisionError("injected"), RuntimeError("injected")],
                         ids=lambda e: type(e).__name__)
def test_op_raising_leaves_shared_state(backend, fault):
    f, w, count = _model(backend)
    f(np.ones(3))  # values move away from their initial ones (and onto the device for OpenCL)
    w_before, count_before = w.get_value(), count.get_value()
    ARMED["fault"] = fault
    try:
        with pytest.raises(type(fault)):
            f(np.ones(3))
    finally:
        ARMED["fault"] = None
    _expect_intact(f, w, count, w_before, count_before)


def test_real_out_of_memory(backend):
    """An allocation far beyond any memory fails cleanly; the next call works."""
    n = T.lscalar("n")
    w = sg.shared(np.array([1.0, 2.0]), "w")
    f = sg.function([n], T.alloc(np.float32(1.0), n, n).sum(), updates=[(w, w + 1)], backend=backend)
    assert f(3) == 9
    with pytest.raises(MemoryError, match="4.00 TiB|could not allocate"):
        f(2 ** 20)  # 4 TiB
    np.testing.assert_array_equal(w.get_value(), [2.0, 3.0])
    assert f(2) == 4
    np.testing.assert_array_equal(w.get_value(), [3.0, 4.0])


def _boundaries(f):
    """(code test, line numbers) where execution stands between two nodes: the node lines of the
    generated function (one call protocol on every backend)."""
    return (lambda code: code.co_filename.startswith("<symgraph ")), set(f._impl._line_nodes)


def test_keyboard_interrupt_at_every_node_boundary(backend):
    """Interrupt the call before its k-th node, for every k: state is always the old one."""
    f, w, count = _model(backend, with_fault=False)
    f(np.ones(3))
    ours, lines = _boundaries(f)
    k, completed = 0, False
    while not completed:
        w_before, count_before = w.get_value(), count.get_value()
        seen = [0]

        def local(frame, event, arg):
            if event == "line" and frame.f_lineno in lines:
                seen[0] += 1
                if seen[0] > k:
                    raise KeyboardInterrupt(f"injected before node {k}")
            return local

        previous = sys.gettrace()  # coverage's tracer, a debugger's: put it back afterwards
        sys.settrace(lambda frame, event, arg: local if ours(frame.f_code) else None)
        try:
            f(np.ones(3))
            completed = True
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(previous)
        if not completed:
            np.testing.assert_array_equal(w.get_value(), w_before, err_msg=f"interrupted before node {k}")
            assert count.get_value() == count_before, f"interrupted before node {k}"
        k += 1
    assert k > 2  # the interrupt really landed between nodes
    _expect_intact(f, w, count, w.get_value(), count.get_value())


def test_failing_kernel_opencl(backend):
    """A device step that fails (as a kernel launch error would) midway through the schedule."""
    if backend != "opencl":
        pytest.skip("OpenCL kernels only")
    import pyopencl as cl
    f, w, count = _model(backend, with_fault=False)
    f(np.ones(3))
    impl = f._impl
    assert impl.kernels, "the OpenCL function has kernels"
    steps = re.findall(r"= (_\w+)\(\[", impl.source)  # the device steps the generated function calls
    name = steps[len(steps) // 2]
    namespace = impl.__call__.__globals__
    run = namespace[name]

    def failing(ins):
        run(ins)  # the kernel was enqueued; then the launch reports an error
        raise cl.RuntimeError("injected kernel failure")
    namespace[name] = failing
    w_before, count_before = w.get_value(), count.get_value()
    try:
        with pytest.raises(cl.RuntimeError, match="injected"):
            f(np.ones(3))
    finally:
        namespace[name] = run
    _expect_intact(f, w, count, w_before, count_before)


def test_error_message_names_the_failing_op(backend):
    f, w, count = _model(backend)
    ARMED["fault"] = ValueError("injected")
    try:
        with pytest.raises(ValueError, match=r"(?s)injected.*Fault.*test_faults.py"):
            f(np.ones(3))
    finally:
        ARMED["fault"] = None
