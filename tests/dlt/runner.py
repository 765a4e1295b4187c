"""Run the vendored Deep Learning Tutorials (tests/dlt/code) against symgraph, ported by the import
change alone.

``tutorials(directory)`` is a ``with`` block in which ``import logistic_sgd`` (and every other
vendored module, including the tutorials' imports of each other) loads the vendored file's source
after ``port_source`` (tests/theano_docs/imports.py: every ``theano`` import pointed at
``symgraph.compat.theano``, nothing else changed), executed as a module of that name. The block
runs in ``directory`` (where the caller writes the synthetic datasets, data.py, and where the
tutorials write their pickles and filter images); on leaving it the working directory, the
modules, numpy's global random state and symgraph's flags are restored.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import io
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

import symgraph

try:
    from theano_docs.imports import port_source
except ImportError:  # run as tests.dlt
    from tests.theano_docs.imports import port_source

CODE = os.path.join(os.path.dirname(__file__), "code")
# top-level names: the modules in code/ and its packages (hmc/)
MODULES = sorted(f[:-3] if f.endswith(".py") else f for f in os.listdir(CODE)
                 if f.endswith(".py") or os.path.isfile(os.path.join(CODE, f, "__init__.py")))


def source_file(name: str) -> str | None:
    """The vendored file of module ``name`` (``'mlp'``, ``'hmc'``, ``'hmc.hmc'``), or None."""
    if name.split(".")[0] not in MODULES:
        return None
    base = os.path.join(CODE, *name.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


def ported_source(name: str) -> str:
    """The vendored tutorial ``name`` (e.g. ``'mlp'``) with the import change applied."""
    path = source_file(name)
    if path is None:
        raise ModuleNotFoundError(f"no vendored tutorial module {name!r} in {CODE}")
    with open(path) as f:
        return port_source(f.read())


class _PortedLoader(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the vendored tutorial modules by their own names and executes their ported source."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        origin = source_file(fullname)
        if origin is None:
            return None
        is_package = origin.endswith("__init__.py")
        return importlib.util.spec_from_loader(fullname, self, origin=origin, is_package=is_package)

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        filename = source_file(module.__name__)
        module.__file__ = filename
        if filename is not None and filename.endswith("__init__.py"):
            module.__path__ = [os.path.dirname(filename)]
        with warnings.catch_warnings():  # the tutorials' docstrings hold LaTeX: "\\f", "\\i" escapes
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            code = compile(ported_source(module.__name__), filename or module.__name__, "exec")
        exec(code, module.__dict__)


def _ours(name: str) -> bool:
    """Whether module ``name`` is a vendored tutorial's (top-level or inside hmc/)."""
    return name.split(".")[0] in MODULES


@contextlib.contextmanager
def tutorials(directory: str, **flags: Any) -> Iterator[Any]:
    """Inside the block, ``load(name)`` imports the ported tutorial ``name``; the working directory
    is ``directory`` and ``symgraph.config`` has ``flags`` (e.g. ``backend='opencl'``)."""
    finder = _PortedLoader()
    cwd, rng_state = os.getcwd(), np.random.get_state()
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if _ours(name)}
    sys.meta_path.insert(0, finder)
    os.chdir(directory)
    try:
        with symgraph.config.change_flags(**flags):
            yield importlib.import_module
    finally:
        os.chdir(cwd)
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if _ours(name)]:
            sys.modules.pop(name)
        sys.modules.update(saved)
        np.random.set_state(rng_state)


class Run:
    """What one call of a tutorial's entry function left: its return value, everything it printed
    (stdout and stderr), what ``inspect(module)`` returned inside the block, and the directory
    it ran in (with the files it wrote)."""

    def __init__(self, result: Any, out: str, inspected: Any, directory: str) -> None:
        self.result, self.out, self.inspected, self.directory = result, out, inspected, directory

    def numbers(self, pattern: str) -> list[float]:
        """The number each printed line matching ``pattern`` (one group) shows, in order."""
        return [float(m) for m in re.findall(pattern, self.out)]


def run(directory: str, module: str, function: str | None, flags: dict | None = None,
        inspect: Callable[[ModuleType], Any] | None = None, **kwargs: Any) -> Run:
    """Import the ported tutorial ``module`` in ``directory`` and call ``function(**kwargs)`` (if
    given) with symgraph's ``flags``; then ``inspect(module)`` while its modules are still
    importable (e.g. to unpickle the model it saved)."""
    out = io.StringIO()
    try:
        with tutorials(directory, **(flags or {})) as load, \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            mod = load(module)
            result = getattr(mod, function)(**kwargs) if function else None
            inspected = inspect(mod) if inspect else None
    except BaseException:
        sys.stdout.write(out.getvalue())  # what the tutorial printed, shown with the failure
        raise
    return Run(result, out.getvalue(), inspected, directory)
