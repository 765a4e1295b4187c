"""Device timing for profiled OpenCL functions (``sg.function(..., profile=True)``).

The runtime's everyday queue has profiling off (events with timestamps cost the driver a little
on every launch). A profiled call instead runs on a second, profiling-enabled queue of the same
context: ``begin`` finishes the everyday queue and points the runtime at the profiling one (the
device lock of the call scope is held, so no other call sees the switch), ``end`` finishes it and
switches back, even when the call failed. Around each node the timer enqueues a marker before
and after its commands and waits for the second: the node's device time is the span between the
two markers' completion (OpenCL events), its wall time (measured by the Profile) then includes
the launch and the wait. Unprofiled functions never meet this code.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from symgraph.backends.opencl.runtime import TRANSFERS, Runtime, _cl


class QueueTimer:
    """Times the device work of each node of one profiled function's calls."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._queue: Any = None
        self._saved: Any = None
        self._mark: Any = None
        self._spans: list[tuple[Any, Any, Any]] = []
        self._counts: Counter = Counter()
        self._delta: dict[str, int] = {}

    @property
    def queue(self) -> Any:
        """The profiling-enabled queue (made on first use)."""
        if self._queue is None:
            cl = _cl()
            self._queue = cl.CommandQueue(self.rt.context, self.rt.device,
                                          properties=cl.command_queue_properties.PROFILING_ENABLE)
        return self._queue

    def begin(self) -> None:
        """Start a call: its commands go to the profiling queue from now on."""
        queue = self.queue
        self._spans, self._mark = [], None
        if self.rt.queue is queue:  # a nested call of the same function: already switched
            self._saved = None
            return
        self.rt.queue.finish()
        self._saved, self.rt.queue = self.rt.queue, queue
        self._counts = Counter(TRANSFERS)

    def start(self) -> None:
        """Before a node's commands."""
        self._mark = _cl().enqueue_marker(self.queue)

    def stop(self, key: Any) -> None:
        """After a node's commands: wait for them and remember the markers around them."""
        end = _cl().enqueue_marker(self.queue)
        self.queue.finish()
        if self._mark is not None:
            self._spans.append((key, self._mark, end))
        self._mark = None

    def end(self) -> dict[Any, float]:
        """Finish the call: switch the runtime back; the device seconds per key."""
        try:
            self.queue.finish()
            out: dict[Any, float] = {}
            for key, a, b in self._spans:
                out[key] = out.get(key, 0.0) + max(0, b.profile.end - a.profile.end) * 1e-9
            return out
        finally:
            if self._saved is not None:
                self.rt.queue, self._saved = self._saved, None
                self._delta = {k: v - self._counts.get(k, 0) for k, v in TRANSFERS.items()
                               if v != self._counts.get(k, 0)}
            self._spans = []

    def counters(self) -> dict[str, int]:
        """The runtime's copy counters (runtime.TRANSFERS) during the last call."""
        delta, self._delta = self._delta, {}
        return delta
