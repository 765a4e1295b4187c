"""The OpenCL runtime: which device, one context/queue/memory pool per device, a kernel build
cache, and DeviceArray (a strided view of a device buffer) with counted host<->device copies."""
from __future__ import annotations

import contextlib
import math
import re
import sys
import threading
import warnings
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from symgraph.backends.opencl import devices
from symgraph.backends.opencl.devices import DeviceInfo, _cl, choose_device, list_devices  # noqa: F401 (re-exported)
from symgraph.config import config
from symgraph.errors import BackendError

TRANSFERS: Counter = Counter()
"""Host<->device copies made by the backend: keys 'to_device' and 'to_host' count real copies;
'zero_copy_in' / 'zero_copy_out' count arrays shared with the host without a copy (CPU devices);
'checks' counts the small index-check reads (tests read these)."""

WAITS: Counter = Counter()
"""Host waits for the queue (``Runtime.wait``), by reason: 'read' (a value read on the host),
'end_call' (host arrays kept alive for queued commands), 'reuse' (a pooled host buffer handed
to a host-side writer), 'setup' (outside a call), 'host_blas' (numpy's BLAS on device memory).
A call waits only to read what the host needs (tests read these)."""

OPENS: Counter = Counter()
"""Device start-up work: 'runtimes' (a device's context, queue and pool created) and 'programs'
(OpenCL programs built, kernels and the zero-copy probe). A function whose every node runs on the
host adds to neither (tests read these)."""

_RUNTIMES: dict[tuple[int, int], Runtime] = {}
"""Runtimes by (platform index, device index)."""
KERNEL_CACHE = 1024
"""Built kernels a runtime keeps for reuse by later compiles (least recently used dropped first)."""
PROGRAM_CACHE = 64
"""Built programs it keeps for the other kernels of the same source."""

_BUILD_LOCK = threading.Lock()
_ABI_NOTE = re.compile(r"changes the ABI|-Wpsabi")
_DIAGNOSTIC = re.compile(r"\b(?:warning|error|note|remark):")
_LOCATION = re.compile(r":(\d+):\d+:")
_KERNEL_NAME = re.compile(r"__kernel\b(?:\s+__attribute__\(\(.*?\)\))?\s+void\s+(\w+)", re.S)
_SUMMARY = re.compile(r"^\s*\d+ (?:warnings?|errors?) generated\.?\s*$")


def worth_reading(log: str, source: str = "") -> list[str]:
    """The diagnostics of a build log, once each, without pocl's psABI notes on wide vectors
    (see ``Runtime._build``) and clang's "N warnings generated." counts. A diagnostic is its
    first line and the lines up to the next one (clang's source excerpt and caret); a one-line
    diagnostic (pocl's form) gets the line of ``source`` it points at."""
    groups: list[list[str]] = []
    for line in log.splitlines():
        if _SUMMARY.match(line):
            continue
        if _DIAGNOSTIC.search(line) or not groups:
            groups.append([line])
        else:
            groups[-1].append(line)
    lines = source.splitlines()
    kept = []
    for g in groups:
        if _ABI_NOTE.search(g[0]):
            continue
        at = _LOCATION.search(g[0])
        if len(g) == 1 and at and 0 < int(at.group(1)) <= len(lines):
            g = g + ["    " + lines[int(at.group(1)) - 1].strip()]
        kept.append("\n".join(g).rstrip())
    return [d for d in dict.fromkeys(kept) if d.strip()]
_RUNTIMES_LOCK = threading.Lock()


def get_runtime(spec: str | None = None) -> Runtime:
    """The (cached) runtime of the device that ``spec`` names. Where this installation has opened
    that device before (``device_cache``), the runtime is made from the stored facts without
    touching OpenCL, and opens the device on first use; else the device is chosen and opened now."""
    name = str((config.device if spec is None else spec) or "opencl")
    known = devices.lookup(name)
    if known is not None:
        try:
            info = DeviceInfo(**known["info"])
        except TypeError:
            info = None
        if info is not None:
            with _RUNTIMES_LOCK:  # functions compiled in two threads at once share one runtime
                key = (info.platform_index, info.device_index)
                if key not in _RUNTIMES:
                    _RUNTIMES[key] = Runtime(info, None, zero_copy=bool(known.get("zero_copy")))
                return _RUNTIMES[key]
    info, dev = choose_device(spec)
    with _RUNTIMES_LOCK:
        key = (info.platform_index, info.device_index)
        if key not in _RUNTIMES:
            _RUNTIMES[key] = Runtime(info, dev)
        rt = _RUNTIMES[key]
    devices.store(name, asdict(rt.info), rt.zero_copy)
    return rt


class Runtime:
    """One device: its context, in-order queue, memory pool and built kernels. Made without a
    ``device`` (from ``device_cache``'s facts), it opens the device -- pyopencl, context, queue,
    pool -- the first time one of ``context``, ``queue``, ``pool`` or ``device`` is read
    (``__getattr__``: once they exist, reading them costs what any attribute costs)."""

    _LAZY = frozenset({"context", "queue", "pool", "device"})
    context: Any
    queue: Any
    pool: Any
    device: Any

    def __init__(self, info: DeviceInfo, device: Any = None, zero_copy: bool | None = None):
        self.info = info
        self.fp64 = info.fp64
        self.is_cpu = "CPU" in info.type
        self._open_lock = threading.Lock()
        self._host_pool: dict[int, list] = {}
        self._host_pool_lock = threading.Lock()
        self._build_lock = threading.Lock()
        self.call_lock = threading.RLock()
        """Held by every compiled-function call on this device (they share the queue, the cached
        kernels' arguments and the host-buffer pool): calls run one at a time. Re-entrant, so an
        op may call another compiled function. The generated code takes it with a ``with``
        statement on the lock itself (a C-level ``__enter__``), so no interrupt can leave it held."""
        self.end_of_call = _EndOfCall(self)
        self._kept: list = []  # host arrays that commands enqueued by the call under way may still read
        self._kernels: OrderedDict[tuple, Any] = OrderedDict()  # least recently used first
        self._programs: OrderedDict[tuple, Any] = OrderedDict()
        self.zero_copy = bool(zero_copy)
        """On a CPU device whose buffers can alias host memory (pocl's do): device arrays live in
        host memory, inputs are wrapped without a copy and outputs returned without one."""
        if device is not None:
            self._open(device)
        self.host_blas = self.zero_copy
        """Float matrix products on a zero-copy CPU device run in numpy's BLAS on the shared memory
        instead of the tiled kernel (see kernels_matmul.MatmulKernel for the measurement)."""

    def __getattr__(self, name: str) -> Any:
        if name in Runtime._LAZY and "_open_lock" in self.__dict__:
            self._open(None)
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _open(self, device: Any) -> None:
        """Create the context, queue and pool (once; threads wait for the first). Without
        ``device``, the device the stored facts name is found again; if it is not the one they
        describe (an installation the fingerprint missed), its facts are measured afresh and stored."""
        with self._open_lock:
            if "context" in self.__dict__:
                return
            cl = _cl()
            import pyopencl.tools as cltools
            probe = device is not None
            if device is None:
                info, device = choose_device(self.info.spec)
                if not info.same_device(self.info):
                    warnings.warn(f"opencl backend: the device cache ({devices.path()}) described "
                                  f"{self.info.describe()}, found {info.describe()}; measuring it again", stacklevel=3)
                    probe = True
                self.info, self.fp64 = info, info.fp64
            context = cl.Context([device])
            queue = cl.CommandQueue(context)
            self.pool = cltools.MemoryPool(cltools.ImmediateAllocator(queue))
            self.device, self.queue, self.context = device, queue, context
            OPENS["runtimes"] += 1
            if probe:
                self.zero_copy = self.host_blas = self.is_cpu and self._host_memory_is_shared()
                devices.store(self.info.spec, asdict(self.info), self.zero_copy)

    def _host_memory_is_shared(self) -> bool:
        """Probe: a device-side write into a mapped ALLOC_HOST_PTR buffer and into a USE_HOST_PTR
        buffer is visible in the host arrays without unmapping or reading back. The write is a
        buffer-to-buffer copy, which needs no compiler: a probe kernel cost a build of its own
        (0.1-0.2 s on pocl's first compile of a new installation)."""
        cl = _cl()
        user = np.zeros(4, np.int32)
        try:
            own = cl.Buffer(self.context, cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR, 16)
            host, _ = cl.enqueue_map_buffer(self.queue, own, cl.map_flags.READ | cl.map_flags.WRITE, 0, (4,),
                                            np.int32, is_blocking=True)
            host[:] = 0
            buf = cl.Buffer(self.context, cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR, hostbuf=user)
            sevens = cl.Buffer(self.context, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR,
                               hostbuf=np.full(4, 7, np.int32))
            cl.enqueue_copy(self.queue, buf, sevens)
            cl.enqueue_copy(self.queue, own, sevens)
            self.queue.finish()
        except cl.Error:
            return False
        return bool((host == 7).all() and (user == 7).all())

    def __repr__(self) -> str:
        return f"<opencl Runtime {self.info.describe()}>"

    # --- kernels --------------------------------------------------------------------------
    def kernel(self, source: str, name: str, options: Sequence[str] = ()) -> Any:
        """The kernel ``name`` from ``source``, built once per (source, device, options) while it is
        among the KERNEL_CACHE most recently used (compiled functions keep their own kernels)."""
        key = (source, name, tuple(options))
        k = self._kernels.get(key)
        if k is None:
            with self._build_lock:
                k = self._kernels.get(key)
                if k is None:
                    # (cl.Kernel: getattr(program, name) warns when a program's kernel is taken again)
                    k = self._kernels[key] = _SerialKernel(_cl().Kernel(self._program(source, options), name))
                while len(self._kernels) > KERNEL_CACHE:
                    self._kernels.popitem(last=False)
        else:
            with contextlib.suppress(KeyError):  # dropped by another thread's build meanwhile: k still works
                self._kernels.move_to_end(key)
        return k

    def _program(self, source: str, options: Sequence[str]) -> Any:
        """The built program of ``source``, once for all the kernels taken from it (the calibration
        program holds two: built twice, it cost a cold first call about 0.15 s more), while it is
        among the PROGRAM_CACHE most recently used."""
        key = (source, tuple(options))
        program = self._programs.get(key)
        if program is None:
            program = self._programs[key] = self._build(source, list(options))
            while len(self._programs) > PROGRAM_CACHE:
                self._programs.popitem(last=False)
        else:
            self._programs.move_to_end(key)
        return program

    def warm_compiler(self) -> None:
        """Build a trivial program once: pocl's first build of a process loads its compiler (about
        0.6 s; later builds of small programs take about 0.15 s). Its build log is empty, so it
        touches no warnings state, and it may run in a background thread (``calibration.prepare``)."""
        cl = _cl()
        with _BUILD_LOCK:
            OPENS["programs"] += 1
            cl.Program(self.context, "__kernel void sg_warm(__global int *x) { x[0] = 0; }").build()

    def _build(self, source: str, options: list[str]) -> Any:
        """Build ``source``; a failure shows the compiler log and the numbered source.

        pyopencl turns any non-empty build log into a CompilerWarning that says only "set
        PYOPENCL_COMPILER_OUTPUT=1 to see more". pocl's clang fills the log of our vector
        kernels (double16, float16 vload/vstore) with psABI notes on CPUs without AVX-512
        ("AVX vector return of type 'double16' without 'avx512f' enabled changes the ABI"):
        true of how pocl passes wide vectors between its own functions, harmless, and printed
        on every run. So the build's warnings are caught here (under a lock: catch_warnings
        swaps process-wide state, and two builds in two threads must not interleave it), those
        notes are dropped, and whatever else the compiler said is warned as one CompilerWarning
        that shows it. Other warnings raised meanwhile are passed on unchanged."""
        cl = _cl()
        with _BUILD_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                OPENS["programs"] += 1
                program = cl.Program(self.context, source).build(options=options)
            except cl.Error as e:
                numbered = "\n".join(f"{k + 1:4d}  {line}" for k, line in enumerate(source.splitlines()))
                raise BackendError(f"OpenCL kernel build failed on {self.info.name}.\n--- compiler log ---\n{e}\n"
                                   f"--- generated source ---\n{numbered}") from None
        said = []
        for w in caught:
            if issubclass(w.category, cl.CompilerWarning):
                said.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        if said:
            self._report_build_log(program, source, said)
        return program

    def _report_build_log(self, program: Any, source: str, said: list[str]) -> None:
        """Warn with the diagnostics of a build log that need attention (see ``_build``)."""
        cl = _cl()
        try:
            log = program.get_build_info(self.device, cl.program_build_info.LOG) or ""
        except cl.Error:
            log = "\n".join(said)
        worth = worth_reading(log, source)
        if worth:
            names = ", ".join(_KERNEL_NAME.findall(source)) or "a program"
            warnings.warn(f"opencl backend: the OpenCL compiler on {self.info.name} reported, building {names}:\n"
                          + "\n".join(worth), cl.CompilerWarning, stacklevel=3)

    def check_dtype(self, dtype: str, what: str) -> None:
        """Raise a clear error for float64 on a device without fp64."""
        if dtype == "float64" and not self.fp64:
            raise BackendError(f"{what} is float64, but the OpenCL device {self.info.name} has no double precision "
                               "(fp64). Build the graph in float32: sg.config.floatX = 'float32' (or "
                               "SYMGRAPH_FLOATX=float32), or cast the inputs.")

    # --- memory -----------------------------------------------------------------------------
    def alloc(self, nbytes: int, what: str = "array") -> Any:
        """A pooled buffer of at least ``nbytes`` bytes; MemoryError names the allocation."""
        cl = _cl()
        try:
            return self.pool.allocate(max(int(nbytes), 8))
        except (cl.MemoryError, cl.Error, RuntimeError) as e:
            raise MemoryError(f"OpenCL device {self.info.name} could not allocate {nbytes} bytes for {what} "
                              f"({e}); shared variables are unchanged") from None

    def empty(self, shape: Sequence[int], dtype: Any, what: str = "array", kernel_output: bool = False) -> DeviceArray:
        """An uninitialised contiguous device array (in host memory on a zero-copy device).
        ``kernel_output``: only a kernel enqueued next writes it (no host-side writer), so a
        pooled buffer is reused without waiting for the queue (see ``_host_buffer``)."""
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        size = math.prod(shape)
        if not self.zero_copy:
            return DeviceArray(self, self.alloc(size * dtype.itemsize, what), shape, _c_strides(shape), 0, dtype)
        buf, raw = self._host_buffer(max(size, 1) * dtype.itemsize, what, wait=not kernel_output)
        return DeviceArray(self, buf, shape, _c_strides(shape), 0, dtype, host=raw[:size * dtype.itemsize].view(dtype))

    def wait(self, reason: str) -> None:
        """Wait until every queued command has finished (counted in WAITS[reason])."""
        WAITS[reason] += 1
        self.queue.finish()

    def end_call(self) -> None:
        """The end of a compiled-function call (the call lock still held): host arrays handed to
        non-blocking commands (zero-copy inputs, uploads) were kept alive until the queue has
        finished, now. Python would otherwise free a temporary (say, the 0-d array made from an
        np.int64 argument) while a kernel that reads it is still queued. A nested call finishes
        the queue too (it then also frees the outer call's arrays: their commands are done). An
        interrupt before the list is emptied only keeps those arrays alive until a later call."""
        if self._kept:
            self.wait("end_call")
            self._kept.clear()

    def _keep_alive(self, *objs: Any) -> None:
        if self.call_lock._is_owned():  # type: ignore[attr-defined]  # inside a call on this thread
            self._kept.extend(objs)
        else:  # outside a call (e.g. set-up code): wait, so nothing is read after it is freed
            self.wait("setup")

    def _host_buffer(self, nbytes: int, what: str, wait: bool = True) -> tuple[Any, np.ndarray]:
        """A buffer in mapped host memory (ALLOC_HOST_PTR) and its bytes, reused from earlier calls
        once nothing refers to its memory (every DeviceArray and result view holds ``raw``): fresh
        memory would cost page faults on every call. A reused buffer is handed out only after the
        queue has finished: kernels enqueued earlier may still read it, and host-side writers
        (shape vectors, host scalars, copies) do not go through the in-order queue. (Skipping the
        wait gained nothing measurable on the W3 step, and the wait fixed a flaky reshape.) Without
        ``wait`` (a buffer only a kernel will write) there is none: the queue is in order, so that
        kernel runs after every earlier command reading the buffer's old contents."""
        with self._host_pool_lock:  # threads running other functions share the pool
            free = self._host_pool.setdefault(nbytes, [])
            for buf, raw in free:
                if sys.getrefcount(raw) == 3:  # the pool's tuple, ``raw`` and getrefcount's argument
                    if wait:
                        self.wait("reuse")
                    return buf, raw  # a new tuple: raw is claimed before another thread can look
        cl = _cl()
        try:  # host memory owned by the buffer (freed by OpenCL once no pending kernel uses it), mapped once
            buf = cl.Buffer(self.context, cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR, nbytes)
            raw, _ = cl.enqueue_map_buffer(self.queue, buf, cl.map_flags.READ | cl.map_flags.WRITE, 0, (nbytes,),
                                           np.uint8, is_blocking=False)
        except (MemoryError, cl.Error) as e:
            raise MemoryError(f"OpenCL device {self.info.name} could not allocate {nbytes} bytes for "
                              f"{what} ({e}); shared variables are unchanged") from None
        with self._host_pool_lock:
            if len(free) < 16:
                free.append((buf, raw))
            return buf, raw

    def to_device(self, value: np.ndarray, what: str = "array") -> DeviceArray:
        """The host array on the device: wrapped without a copy on a zero-copy device (counted in
        TRANSFERS['zero_copy_in']; the array is borrowed, never written), else copied ('to_device')."""
        cl = _cl()
        if not value.flags.c_contiguous:
            value = np.array(value, order="C")
            TRANSFERS["to_device"] += self.zero_copy  # the host copy is the real transfer here
        if self.zero_copy and value.size and value.flags.writeable:
            buf = cl.Buffer(self.context, cl.mem_flags.READ_ONLY | cl.mem_flags.USE_HOST_PTR, hostbuf=value)
            TRANSFERS["zero_copy_in"] += 1
            arr = DeviceArray(self, buf, value.shape, _c_strides(value.shape), 0, value.dtype,
                              host=value.reshape(-1), borrowed=True)
            arr._host_ref = value
            self._keep_alive(buf, value)
            return arr
        arr = self.empty(value.shape, value.dtype, what)
        if value.size:
            cl.enqueue_copy(self.queue, arr.buffer, value, is_blocking=False)
            TRANSFERS["to_device"] += 1
            self._keep_alive(value)  # the source must outlive the non-blocking copy
        arr._host_ref = value
        return arr


class _SerialKernel:
    """A built kernel that threads may share: setting its arguments and enqueueing it happen
    under one lock. An OpenCL kernel object holds its arguments, so two functions (in two
    threads) launching the same cached kernel would otherwise enqueue each other's arguments."""

    __slots__ = ("kernel", "_lock")

    def __init__(self, kernel: Any):
        self.kernel, self._lock = kernel, threading.Lock()

    def __call__(self, queue: Any, global_size: tuple, local_size: tuple | None, *args: Any) -> Any:
        with self._lock:
            return self.kernel(queue, global_size, local_size, *args)


def _c_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(int(s), 1)
    return tuple(reversed(strides))


class DeviceArray:
    """A strided view of a device buffer: shape, strides and offset are in elements. ``host`` is
    the 1-d host array the whole buffer lives in (zero-copy devices), ``borrowed`` says that memory
    is a caller's array (read only, never handed out as a result)."""

    __slots__ = ("runtime", "buffer", "shape", "strides", "offset", "dtype", "_host_ref", "host", "borrowed")

    def __init__(self, runtime: Runtime, buffer: Any, shape: tuple, strides: tuple, offset: int, dtype: np.dtype,
                 host: np.ndarray | None = None, borrowed: bool = False):
        self.runtime, self.buffer, self.shape = runtime, buffer, tuple(int(n) for n in shape)
        self.strides = tuple(int(s) for s in strides)
        self.offset, self.dtype = int(offset), np.dtype(dtype)
        self._host_ref: np.ndarray | None = None  # a host array the buffer reads (kept alive with it)
        self.host, self.borrowed = host, borrowed

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def is_contiguous(self) -> bool:
        """C-contiguous (length-1 axes may have any stride)."""
        return all(n == 1 or s == c for n, s, c in zip(self.shape, self.strides, _c_strides(self.shape)))

    def view(self, shape: Sequence[int], strides: Sequence[int], offset: int) -> DeviceArray:
        """Another view of the same buffer."""
        out = DeviceArray(self.runtime, self.buffer, tuple(shape), tuple(strides), offset, self.dtype, self.host,
                          self.borrowed)
        out._host_ref = self._host_ref
        return out

    def host_view(self) -> np.ndarray:
        """This view as a numpy view of the buffer's host memory (zero-copy devices only; the
        caller synchronises with the queue first)."""
        item = self.dtype.itemsize
        return np.ndarray(self.shape, self.dtype, self.host, self.offset * item, [s * item for s in self.strides])

    def to_host(self, copy: bool = False) -> np.ndarray:
        """This view's values as a host ndarray: on a zero-copy device a view of the buffer's own
        host memory (counted in 'zero_copy_out') unless ``copy`` or the memory is borrowed; else a
        fresh array copied from the device (counted in TRANSFERS['to_host'])."""
        if self.size == 0:
            return np.empty(self.shape, self.dtype)
        if self.host is not None:
            self.runtime.wait("read")
            view = self.host_view()
            if copy or self.borrowed or any(s == 0 and n > 1 for n, s in zip(self.shape, self.strides)):
                TRANSFERS["to_host"] += 1
                return view.copy()
            TRANSFERS["zero_copy_out"] += 1
            return view
        lo = self.offset + sum(min(0, (n - 1) * s) for n, s in zip(self.shape, self.strides))
        hi = self.offset + sum(max(0, (n - 1) * s) for n, s in zip(self.shape, self.strides)) + 1
        span = np.empty(hi - lo, self.dtype)
        _cl().enqueue_copy(self.runtime.queue, span, self.buffer, src_offset=int(lo) * self.dtype.itemsize,
                           is_blocking=True)
        TRANSFERS["to_host"] += 1
        if self.is_contiguous:
            return span.reshape(self.shape)
        base = span[self.offset - lo:]
        item = self.dtype.itemsize
        return np.lib.stride_tricks.as_strided(base, self.shape, [s * item for s in self.strides]).copy()

    def __repr__(self) -> str:
        return f"DeviceArray({self.dtype}{list(self.shape)}, strides={self.strides}, offset={self.offset})"


class _EndOfCall:
    """The context manager after a device's call lock in the generated ``with`` (see
    ``Runtime.end_call``). Its ``__enter__`` does nothing, so an interrupt landing in it or right
    after it changes no state; its ``__exit__`` ends the call."""

    __slots__ = ("rt",)

    def __init__(self, rt: Runtime):
        self.rt = rt

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.rt.end_call()
