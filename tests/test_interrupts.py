"""Issue 22 item 6: an interrupt that lands anywhere in a call never leaves a lock held.

CPython raises a KeyboardInterrupt (or any exception a signal handler raises) only where its
evaluation loop checks for pending signals: on entering a Python function, right after a call
returns, and on a loop's backward jump; never inside a C-level ``__enter__`` such as a lock's,
nor between it and the ``with`` block that will call ``__exit__``. The test injects an
interrupt, once, at each of those points of the call protocol in turn (the generated function,
the device's end of call, the commit), keeps the exception alive
as an interactive session would (``sys.last_exc`` holds its traceback and so its frames), and
checks that a call from another thread still finishes (no lock is left held), that updates
were committed all or nothing, and that the next call works."""
from __future__ import annotations

import dis
import inspect
import sys
import threading
import types

import numpy as np

import symgraph as sg
import symgraph.tensor as T
from symgraph.compile import calls, link


def _model(backend: str):
    x = T.dvector("x")
    w = sg.shared(np.array([1.0, 2.0, 3.0]), "w")
    count = sg.shared(np.int64(0), "count")
    f = sg.function([x], (T.tanh(x * w) + w).sum(), updates=[(w, w * 0.5 + x), (count, count + 1)],
                    backend=backend)
    return f, w, count


def _is_protocol(code) -> bool:
    """The generated function and the protocol's own helpers: the commit, the device's end of call
    (and any context manager's ``__enter__``/``__exit__`` these use)."""
    return (code.co_filename.startswith(link.FILENAME_PREFIX) or code is calls.commit.__code__
            or code.co_name in ("__enter__", "__exit__", "end_call"))


def _backward_jumps(code) -> set[int]:
    return {ins.offset for ins in dis.get_instructions(code) if ins.opname.startswith("JUMP_BACKWARD")}


class _Injector:
    """Raises KeyboardInterrupt, once (as a signal would), at the k-th point (0-based) where a
    signal could land while protocol code runs; ``points`` counts the points passed. The points:

    - a protocol frame, or a Python function it calls, starts or resumes ('call' event: CPython
      checks at RESUME), so the callee raises before doing anything;
    - a call made by a protocol frame returns with its effects done: a Python callee's 'return'
      event (a generator's yield is not one: its caller's call of ``next`` returns), a C callee's
      'c_return' (``sys.setprofile`` reports it for calls the interpreter has
      not specialised, hence the fresh copy of the generated code in ``_interrupted_call``);
      the exception then belongs to the call instruction, as one a signal raises there does;
    - a protocol frame's loop jumps back.

    A C function is never interrupted before its effects (it would have to check for signals
    itself, as a blocking lock acquire does, and then it fails without taking the lock)."""

    def __init__(self, k: int):
        self.k, self.points = k, 0

    def _point(self, frame, what: str) -> None:
        self.points += 1
        if self.points == self.k + 1:
            raise KeyboardInterrupt(f"injected at point {self.k}: {what} in {frame.f_code.co_name} "
                                    f"line {frame.f_lineno}")

    def trace(self, frame, event, arg):
        called_by_protocol = frame.f_back is not None and _is_protocol(frame.f_back.f_code)
        if not (_is_protocol(frame.f_code) or called_by_protocol):
            return None
        self._point(frame, "start")
        jumps = _backward_jumps(frame.f_code) if _is_protocol(frame.f_code) else set()
        frame.f_trace_opcodes = bool(jumps)

        def local(frame, event, arg):
            if event == "opcode" and frame.f_lasti in jumps:
                self._point(frame, "loop")
            elif event == "return" and called_by_protocol and not frame.f_code.co_flags & inspect.CO_GENERATOR:
                self._point(frame, "return")
            return local
        return local

    def profile(self, frame, event, arg):
        if event == "c_return" and _is_protocol(frame.f_code):
            self._point(frame, f"{getattr(arg, '__qualname__', arg)} returned")


def _interrupted_call(f, x, k: int):
    """``f(x)`` with an interrupt at point k: the KeyboardInterrupt, or None if the call completed
    before reaching point k. The generated function runs from a fresh copy of its code, which the
    interpreter has not specialised yet, so that every C call reports its return."""
    fn = f._impl.__call__
    fresh = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    inject = _Injector(k)
    previous_trace, previous_profile = sys.gettrace(), sys.getprofile()  # coverage's, a debugger's
    sys.settrace(inject.trace)
    sys.setprofile(inject.profile)
    try:
        fresh(x)
    except KeyboardInterrupt as e:
        return e
    finally:
        sys.setprofile(previous_profile)
        sys.settrace(previous_trace)
    assert inject.points <= k, "an interrupt was swallowed"
    return None


def _call_from_another_thread(f, x, where: str, seconds: float = 30.0) -> None:
    """``f(x)`` on another thread; fails when it does not finish in time (a lock was left held)."""
    done, errors = threading.Event(), []

    def call():
        try:
            f(x)
        except BaseException as e:  # noqa: BLE001 -- reported below
            errors.append(e)
        done.set()
    threading.Thread(target=call, daemon=True).start()
    assert done.wait(seconds), f"a call from another thread hangs: the interrupt {where} left a lock held"
    if errors:
        raise errors[0]


def test_an_interrupt_anywhere_leaves_no_lock_held_and_no_half_update(backend):
    f, w, count = _model(backend)
    x = np.array([0.5, -1.0, 2.0])
    f(x)
    k = 0
    while True:
        w_before, count_before = w.get_value(), int(count.get_value())
        kept = _interrupted_call(f, x, k)  # kept alive, with its frames, while the checks run
        if kept is None:
            break
        where = str(kept)
        if int(count.get_value()) == count_before:  # nothing committed
            np.testing.assert_array_equal(w.get_value(), w_before, err_msg=where)
        else:  # interrupted after the commit: everything committed
            assert count.get_value() == count_before + 1, where
            np.testing.assert_array_equal(w.get_value(), w_before * 0.5 + x, err_msg=where)
        _call_from_another_thread(f, x, where)
        del kept
        k += 1
    assert k > 10, "the interrupt really went through the protocol"
    w_before, count_before = w.get_value(), int(count.get_value())
    f(x)  # the function still works in this thread
    np.testing.assert_allclose(w.get_value(), w_before * 0.5 + x, rtol=1e-12)
    assert count.get_value() == count_before + 1
