"""Profiling a compiled function: ``sg.function(..., profile=True)`` (or ``sg.config.profile``).

The call protocol of a profiled function (``symgraph/compile/link.py``) times each node's
statements and each host<->device transfer, and hands the times to a :class:`Profile`, which
``f.profile`` returns. An unprofiled function's source has none of these lines: profiling off
costs nothing.

On a device backend the backend's *timer* (``Backend.profile_timer()``) also makes each node wait
for its device work before the clock is read, and measures the device time between two queue
markers around the node (OpenCL events): the "time" of a node is then what it costs the call,
launch and execution together, and "device" what the device spent on it.

``print(f.profile)`` prints Theano-style tables: time by op class, by op, by node (with the
shapes of the last call), by kernel, and the transfers (calls, bytes, time).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from symgraph.graph.basic import Apply, Variable

_clock = time.perf_counter


@dataclass
class TransferSite:
    """One place in the generated code where a value moves between host and device."""
    label: str            # what moves: 'argument x', 'v12 (input 0 of mul)', 'output 0'
    to: str               # 'host' or 'device'
    variable: Variable | None = None
    reader: Apply | None = None  # the node that needed the value there (None: argument, output)
    calls: int = 0
    bytes: int = 0
    seconds: float = 0.0


class Profile:
    """Times of one compiled function's nodes and transfers, summed over its calls.

    ``nodes[k]`` is the k-th node of the schedule; ``seconds[k]``, ``calls[k]``, ``device[k]``
    (device seconds, None without a device timer) and ``shapes[k]`` (its output shapes in the last
    call) describe it. ``n_calls`` and ``call_seconds`` count whole calls (from inside the call's
    locks). ``reset()`` starts over. Calls of one function from several threads at once (possible
    on the host when it updates nothing) add into the same counters."""

    def __init__(self, name: str = "f", backend: str = "") -> None:
        self.name, self.backend = name, backend
        self.nodes: list[Apply] = []
        self.transfers: list[TransferSite] = []
        self.timer: Any = None
        self.kernel_names: Callable[[Apply], list[str]] = lambda node: []
        self.reset()

    # --- set up by the emitter -----------------------------------------------------------------
    def add_node(self, node: Apply) -> int:
        """Register the next scheduled node; returns its index in the generated code."""
        self.nodes.append(node)
        self.seconds.append(0.0)
        self.calls.append(0)
        self.device.append(None if self.timer is None else 0.0)
        self.shapes.append(None)
        return len(self.nodes) - 1

    def add_transfer(self, label: str, to: str, variable: Variable | None = None,
                     reader: Apply | None = None) -> int:
        """Register a transfer line; returns its index in the generated code."""
        self.transfers.append(TransferSite(label, to, variable, reader))
        return len(self.transfers) - 1

    def reset(self) -> None:
        """Forget every recorded time (the nodes and transfer sites stay)."""
        n = len(getattr(self, "nodes", ()))
        self.seconds: list[float] = [0.0] * n
        self.calls: list[int] = [0] * n
        self.device: list[float | None] = [None if self.timer is None else 0.0] * n
        self.shapes: list[Any] = [None] * n
        for t in getattr(self, "transfers", ()):
            t.calls, t.bytes, t.seconds = 0, 0, 0.0
        self.n_calls, self.call_seconds = 0, 0.0
        self.counters: dict[str, int] = {}
        self._entered: list[float] = []

    # --- called by the generated code -------------------------------------------------------------
    def __enter__(self) -> Profile:
        if self.timer is not None:
            self.timer.begin()
        self._entered.append(_clock())
        return self

    def __exit__(self, *exc: Any) -> None:
        self.call_seconds += _clock() - self._entered.pop()
        self.n_calls += 1
        if self.timer is not None:
            for key, seconds in self.timer.end().items():
                kind, k = key
                if kind == "node":
                    self.device[k] = (self.device[k] or 0.0) + seconds
            for name, count in self.timer.counters().items():
                self.counters[name] = self.counters.get(name, 0) + count

    def start(self) -> float:
        """The clock before a node's (or transfer's) statements."""
        if self.timer is not None:
            self.timer.start()
        return _clock()

    def node(self, k: int, t0: float, *outputs: Any) -> None:
        """Node ``k`` ran from ``t0`` until now (after its device work, on a device backend)."""
        if self.timer is not None:
            self.timer.stop(("node", k))
        self.seconds[k] += _clock() - t0
        self.calls[k] += 1
        self.shapes[k] = [tuple(getattr(o, "shape", ())) for o in outputs]

    def transfer(self, k: int, t0: float, value: Any) -> None:
        """Transfer ``k`` moved ``value`` from ``t0`` until now."""
        if self.timer is not None:
            self.timer.stop(("transfer", k))
        site = self.transfers[k]
        site.seconds += _clock() - t0
        site.calls += 1
        site.bytes += nbytes(value)

    # --- reading -------------------------------------------------------------------------------
    @property
    def node_seconds(self) -> float:
        """Time spent in the nodes' statements, over all calls."""
        return sum(self.seconds)

    @property
    def transfer_seconds(self) -> float:
        return sum(t.seconds for t in self.transfers)

    def rows(self, key: Callable[[int], str]) -> list[tuple[str, float, int, int]]:
        """(name, seconds, calls, nodes) grouped by ``key(node index)``, slowest first."""
        groups: dict[str, list] = {}
        for k in range(len(self.nodes)):
            g = groups.setdefault(key(k), [0.0, 0, 0])
            g[0] += self.seconds[k]
            g[1] += self.calls[k]
            g[2] += 1
        return sorted(((n, s, c, a) for n, (s, c, a) in groups.items()), key=lambda r: -r[1])

    def kernel_rows(self) -> list[tuple[str, float, float | None, int, int]]:
        """(kernel, seconds, device seconds, calls, nodes) for the nodes that launch kernels."""
        groups: dict[str, list] = {}
        for k, node in enumerate(self.nodes):
            names = self.kernel_names(node)
            if not names:
                continue
            g = groups.setdefault(" + ".join(names), [0.0, None, 0, 0])
            g[0] += self.seconds[k]
            device = self.device[k]
            if device is not None:
                g[1] = (g[1] or 0.0) + device
            g[2] += self.calls[k]
            g[3] += 1
        return sorted(((n, *v) for n, v in groups.items()), key=lambda r: -r[1])

    def summary(self, file: TextIO | None = None, n_rows: int = 20) -> None:
        """Print the tables (to ``file``, default sys.stdout)."""
        (file or sys.stdout).write(str(self) if n_rows == 20 else format_profile(self, n_rows))

    def __str__(self) -> str:
        return format_profile(self, 20)

    def __repr__(self) -> str:
        return (f"<Profile of {self.name} [{self.backend}]: {self.n_calls} calls, "
                f"{self.call_seconds:.3e} s, {self.node_seconds:.3e} s in {len(self.nodes)} nodes>")


def nbytes(value: Any) -> int:
    """The size in bytes of a host array, a device array or a scalar."""
    n = getattr(value, "nbytes", None)
    if n is not None:
        return int(n)
    size, dtype = getattr(value, "size", None), getattr(value, "dtype", None)
    return int(size) * dtype.itemsize if size is not None and dtype is not None else 0


def node_name(node: Apply) -> str:
    """A node as the tables print it: its op, and the user line that built it."""
    where = ""
    if node.trace is not None:
        where = f"  ({node.trace.filename.rsplit('/', 1)[-1]}:{node.trace.lineno})"
    return f"{node.op}{where}"


def format_profile(p: Profile, n_rows: int = 20) -> str:
    """The Theano-style text of ``p``."""
    total = p.node_seconds or 1e-300
    per_call = p.call_seconds / p.n_calls if p.n_calls else 0.0
    lines = ["Function profiling", "==================",
             f"  Message: {p.name} [{p.backend}]",
             f"  Time in {p.n_calls} calls to Function.__call__: {p.call_seconds:.6e}s",
             f"  Time in Function.__call__ per call: {per_call:.6e}s",
             f"  Time in {len(p.nodes)} nodes: {p.node_seconds:.6e}s ({_pct(p.node_seconds, p.call_seconds)})",
             f"  Time in {len(p.transfers)} transfer sites: {p.transfer_seconds:.6e}s "
             f"({_pct(p.transfer_seconds, p.call_seconds)})"]
    rest = p.call_seconds - p.node_seconds - p.transfer_seconds
    lines.append(f"  Rest of the call protocol (argument checks, updates, outputs): {rest:.6e}s "
                 f"({_pct(rest, p.call_seconds)})")
    if p.timer is not None:
        device_total = sum(d or 0.0 for d in p.device)
        lines.append(f"  Device time (between queue markers around each node): {device_total:.6e}s")
    if p.counters:
        lines.append("  Device runtime copies: " + ", ".join(f"{k} {v}" for k, v in sorted(p.counters.items())))
    lines.append("")
    head = "<% time> <sum %> <apply time> <time per call> <#call> <#apply> <{}>"
    for title, key in (("Class", lambda k: type(p.nodes[k].op).__name__), ("Ops", lambda k: str(p.nodes[k].op))):
        lines += [title, "-" * len(title), "  " + head.format(title[:-1] if title == "Ops" else "Class name")]
        lines += _grouped(p.rows(key), total, n_rows)
        lines.append("")
    lines += ["Apply", "-----", "  <% time> <sum %> <apply time> <time per call> <#call> <id> <Apply name>"]
    order = sorted(range(len(p.nodes)), key=lambda k: -p.seconds[k])
    cum = 0.0
    for k in order[:n_rows]:
        cum += p.seconds[k]
        per = p.seconds[k] / p.calls[k] if p.calls[k] else 0.0
        shapes = "" if p.shapes[k] is None else f"  output shapes {p.shapes[k]}"
        lines.append(f"  {_pct(p.seconds[k], total):>7} {_pct(cum, total):>7} {p.seconds[k]:11.3e}s "
                     f"{per:11.3e}s {p.calls[k]:>7} {k:>4}   {node_name(p.nodes[k])}{shapes}")
    lines += _more(len(order), n_rows) + [""]
    kernels = p.kernel_rows()
    if kernels:
        lines += ["Kernels", "-------", "  <% time> <time> <device time> <#call> <#apply> <kernel>"]
        for name, sec, dev, calls, napply in kernels[:n_rows]:
            dev_text = "-" if dev is None else f"{dev:.3e}s"
            lines.append(f"  {_pct(sec, total):>7} {sec:11.3e}s {dev_text:>12} {calls:>7} {napply:>7}   {name}")
        lines += _more(len(kernels), n_rows) + [""]
    if p.transfers:
        lines += ["Transfers", "---------", "  <#call> <bytes per call> <total bytes> <time> <to> <value>"]
        for t in sorted(p.transfers, key=lambda t: -t.bytes):
            per = t.bytes // t.calls if t.calls else 0
            lines.append(f"  {t.calls:>7} {per:>16,} {t.bytes:>13,} {t.seconds:11.3e}s {t.to:>6}   {t.label}")
        lines.append("")
    return "\n".join(lines) + "\n"


def _grouped(rows: list, total: float, n_rows: int) -> list[str]:
    out, cum = [], 0.0
    for name, sec, calls, napply in rows[:n_rows]:
        cum += sec
        per = sec / calls if calls else 0.0
        out.append(f"  {_pct(sec, total):>7} {_pct(cum, total):>7} {sec:11.3e}s {per:11.3e}s {calls:>7} "
                   f"{napply:>7}   {name}")
    return out + _more(len(rows), n_rows)


def _more(n: int, shown: int) -> list[str]:
    return [f"   ... ({n - shown} more rows)"] if n > shown else []


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole > 0 else "-"
