"""``theano.config`` for ported code (Theano's ``theano.configparser``).

Flags symgraph has are symgraph's own (``floatX``, ``mode``, ``compute_test_value``,
``print_test_value``, ``profile``, ``on_unused_input``: setting one sets ``sg.config``'s);
``optimizer`` and ``device`` are translated (``optimizer='None'`` is mode 'none', ``device='cuda'``
the OpenCL device). Theano's other flags configure machinery symgraph does not have -- a C
compiler and its cache, CUDA and cuDNN, the VM linker, garbage collection, warnings about bugs of
Theano versions before 0.9 -- so they are accepted with Theano's defaults and change nothing.
``cxx`` reads '' (no C compiler: Theano code that checks it takes its Python path). The rewrite
selectors ``optimizer_including`` / ``_excluding`` / ``_requiring`` do change what Theano
computes: setting one raises, naming ``sg.rewrite.Mode(...).excluding(...)``. Both spellings
of a nested flag work: ``config.warn.round`` and ``config.warn__round``; an unknown flag raises
AttributeError, as in Theano.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from symgraph.config import config as sg_config

SHARED = ("floatX", "mode", "compute_test_value", "print_test_value", "profile", "on_unused_input")
_OPTIMIZERS = {"None": "none", "fast_compile": "fast_compile", "merge": "fast_compile", "o1": "fast_compile",
               "fast_run": "fast_run", "o2": "fast_run", "o3": "fast_run", "o4": "fast_run",
               "stabilize": "fast_run", "unsafe": "fast_run"}
_SELECTORS = ("optimizer_including", "optimizer_excluding", "optimizer_requiring",
              "metaopt.optimizer_including", "metaopt.optimizer_excluding")

# Theano's flags that configure what symgraph does not have, with Theano's defaults
NO_EFFECT: dict[str, Any] = {
    "allow_gc": True, "assert_no_cpu_op": "ignore", "base_compiledir": "", "cache_optimizations": False,
    "cast_policy": "custom", "check_input": True, "check_stack_trace": "off", "compiledir": "",
    "compiledir_format": "", "compute_test_value_opt": "off", "contexts": "", "cxx": "",
    "cycle_detection": "regular", "deterministic": "default", "exception_verbosity": "low",
    "force_device": False, "init_gpu_device": "", "int_division": "int", "linker": "vm", "nocleanup": False,
    "on_opt_error": "warn", "on_shape_error": "warn", "openmp": False, "openmp_elemwise_minsize": 200000,
    "optimizer_verbose": False, "pickle_test_value": True, "print_active_device": True,
    "print_global_stats": False, "profile_memory": False, "profile_optimizer": False,
    "reoptimize_unpickled_function": False, "unpickle_function": True, "warn_float64": "ignore",
    "blas.check_openmp": True, "blas.ldflags": "", "conv.assert_shape": False, "ctc.root": "",
    "cmodule.age_thresh_use": 2073600, "cmodule.compilation_warning": False, "cmodule.debug": False,
    "cmodule.preload_cache": False, "cmodule.remove_gxx_opt": False, "cmodule.warn_no_version": False,
    "compile.timeout": 120, "compile.wait": 5, "cuda.include_path": "", "cuda.root": "",
    "DebugMode.check_c": False, "DebugMode.check_finite": True, "DebugMode.check_preallocated_output": "",
    "DebugMode.check_preallocated_output_ndim": 4, "DebugMode.check_py": True, "DebugMode.check_strides": 0,
    "DebugMode.patience": 10, "DebugMode.warn_input_not_reused": True,
    "dnn.base_path": "", "dnn.bin_path": "", "dnn.conv.algo_bwd": "", "dnn.conv.algo_bwd_data": "none",
    "dnn.conv.algo_bwd_filter": "none", "dnn.conv.algo_fwd": "small", "dnn.conv.precision": "as_input_f32",
    "dnn.conv.workmem": "", "dnn.conv.workmem_bwd": "", "dnn.enabled": "auto", "dnn.include_path": "",
    "dnn.library_path": "", "experimental.local_alloc_elemwise": True,
    "experimental.local_alloc_elemwise_assert": True, "experimental.unpickle_gpu_on_cpu": False,
    "gcc.cxxflags": "", "gpu.local_elemwise_fusion": True, "gpuarray.cache_path": "", "gpuarray.preallocate": 0.0,
    "gpuarray.sched": "default", "gpuarray.single_stream": True, "gpuarray.sync": False,
    "gpuelemwise.sync": True, "lib.amdlibm": False, "magma.enabled": False, "magma.include_path": "",
    "magma.library_path": "", "metaopt.verbose": 0, "NanGuardMode.action": "raise",
    "NanGuardMode.big_is_error": True, "NanGuardMode.inf_is_error": True, "NanGuardMode.nan_is_error": True,
    "numpy.seterr_all": "ignore", "numpy.seterr_divide": "None", "numpy.seterr_invalid": "None",
    "numpy.seterr_over": "None", "numpy.seterr_under": "None", "optdb.max_use_ratio": 8.0,
    "optdb.position_cutoff": float("inf"), "profiling.debugprint": False, "profiling.destination": "stderr",
    "profiling.ignore_first_call": False, "profiling.min_memory_size": 1024, "profiling.min_peak_memory": False,
    "profiling.n_apply": 20, "profiling.n_ops": 20, "profiling.output_line_width": 512,
    "profiling.time_thunks": True, "scan.allow_gc": False, "scan.allow_output_prealloc": True, "scan.debug": False,
    "tensor.cmp_sloppy": 0, "tensor.insert_inplace_optimizer_validate_nb": -1, "tensor.local_elemwise_fusion": True,
    "traceback.compile_limit": 0, "traceback.limit": 8, "unittests.rseed": "666", "vm.lazy": None,
    "warn.argmax_pushdown_bug": False, "warn.gpu_set_subtensor1": False, "warn.gpusum_01_011_0111_bug": False,
    "warn.identify_1pexp_bug": False, "warn.ignore_bug_before": "0.9", "warn.inc_set_subtensor1": False,
    "warn.inc_subtensor1_opt": False, "warn.reduce_join": False, "warn.round": False,
    "warn.signal_conv2d_interface": False, "warn.subtensor_merge_bug": False, "warn.sum_div_dimshuffle_bug": False,
    "warn.sum_sum_bug": False, "warn.vm_gc_bug": False,
}


class Section:
    """A group of nested flags (``config.warn``): attribute access reads and sets ``warn.<name>``."""

    def __init__(self, owner: TheanoConfig, prefix: str):
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        return self._owner.get(f"{self._prefix}.{name}")

    def __setattr__(self, name: str, value: Any) -> None:
        self._owner.set(f"{self._prefix}.{name}", value)


class TheanoConfig:
    """Theano's flags over ``sg.config`` (see the module doc)."""

    def __init__(self) -> None:
        object.__setattr__(self, "_values", {**NO_EFFECT, **dict.fromkeys(_SELECTORS, "")})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name.replace("__", "."))

    def __setattr__(self, name: str, value: Any) -> None:
        self.set(name.replace("__", "."), value)

    def get(self, name: str) -> Any:
        """The flag ``name`` ('floatX', 'warn.round', or a section: 'warn')."""
        if name == "mode":  # Theano's spelling of symgraph's modes
            return {"fast_run": "FAST_RUN", "fast_compile": "FAST_COMPILE"}.get(sg_config.mode, sg_config.mode)
        if name in SHARED:
            return getattr(sg_config, name)
        if name == "optimizer":
            return {"none": "None", "fast_compile": "fast_compile"}.get(sg_config.mode, "fast_run")
        if name == "device":
            return "cpu" if sg_config.device in (None, "cpu") else sg_config.device
        if name in self._values:
            return self._values[name]
        if any(k.startswith(name + ".") for k in self._values):
            return Section(self, name)
        raise AttributeError(f"theano.config has no flag {name!r} (symgraph's flags: {sorted(SHARED)}; "
                             f"docs/porting.md)")

    def set(self, name: str, value: Any) -> None:
        """Set the flag ``name`` (see the module doc for what each kind does)."""
        if name in SHARED:
            setattr(sg_config, name, value)
        elif name == "optimizer":
            if str(value) not in _OPTIMIZERS:
                raise ValueError(f"theano.config.optimizer must be one of {sorted(_OPTIMIZERS)}, got {value!r}")
            sg_config.mode = _OPTIMIZERS[str(value)]
        elif name == "device":
            cpu = str(value) == "cpu"
            sg_config.device = "cpu" if cpu else value if str(value).startswith("opencl") else "opencl"
            sg_config.backend = "numpy" if cpu else "opencl"
        elif name in _SELECTORS:
            if value:
                raise ValueError(f"theano.config.{name} is not supported: give the function a mode instead, "
                                 f"sg.function(..., mode=sg.rewrite.Mode().excluding(...)) (or .including)")
        elif name in self._values and not isinstance(self.get(name), Section):
            self._values[name] = value
        else:
            self.get(name)  # raises: no such flag
            raise AttributeError(f"theano.config.{name} is a group of flags, not a flag")

    @contextlib.contextmanager
    def change_flags(self, **flags: Any) -> Iterator[TheanoConfig]:
        """Theano's ``change_flags``: set flags for a ``with`` block, restore them after."""
        names = [k.replace("__", ".") for k in flags]
        old = {n: self.get(n) for n in names}
        old_device = (sg_config.device, sg_config.backend)
        try:
            for n, value in zip(names, flags.values()):
                self.set(n, value)
            yield self
        finally:
            for n, value in old.items():
                if n == "device":
                    sg_config.device, sg_config.backend = old_device
                else:
                    self.set(n, value)


config = TheanoConfig()
change_flags = config.change_flags
