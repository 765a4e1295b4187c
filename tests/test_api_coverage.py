"""Every public function of ``symgraph.tensor`` is exercised by some test: a new function
without a test fails here, naming it."""
from __future__ import annotations

import inspect
import pathlib
import re

import symgraph.tensor as T
from symgraph import scalar

TESTS = pathlib.Path(__file__).parent
# Spellings kept for Theano/PyTensor code, each an alias of a tested function.
ALIASES = {"true_divide": "true_div", "floor_divide": "int_div", "divide": "true_div", "power": "pow",
           "mul_": "mul", "absolute": "abs", "negative": "neg", "square": "sqr", "bitwise_and": "and_",
           "bitwise_or": "or_", "eq_": "eq", "neq_": "neq"}


def public_functions() -> list[str]:
    names = []
    for name in dir(T):
        obj = getattr(T, name)
        if name.startswith("_") or inspect.isclass(obj) or inspect.ismodule(obj) or not callable(obj):
            continue
        if getattr(obj, "__module__", "").startswith("symgraph"):
            names.append(name)
    return sorted(names)


def used_names(text: str) -> set[str]:
    """Names used on the tensor namespace: ``T.where``, ``T.nnet.softmax``, ``sg.tensor.dot``
    (called or passed around). Method calls (``x.sum()``) do not count: a method is another
    entry point, and a bare ``.where(`` would match ``np.where(`` too."""
    return set(re.findall(r"\b(?:T|sg\.tensor)\.(?:nnet\.)?([A-Za-z_][A-Za-z0-9_]*)\b", text))


def test_only_tensor_namespace_uses_count():
    text = "np.where(c, a, b); x.sum(); y.argmin(); T.exp(x); sg.tensor.dot(a, b); f = T.nnet.softmax"
    assert used_names(text) == {"exp", "dot", "softmax"}


def test_every_public_tensor_function_is_tested():
    text = "\n".join(p.read_text() for p in TESTS.glob("test_*.py") if p.name != pathlib.Path(__file__).name)
    used = used_names(text)
    # test_elemwise.py runs every row of the scalar table through getattr(T, name)
    used |= {n for n in scalar.SCALAR_OPS if not n.startswith("cast_")}
    used |= set(T.CONSTRUCTORS)  # test_graph.py::test_every_constructor runs each one
    untested = [n for n in public_functions() if n not in used and ALIASES.get(n) not in used]
    assert not untested, f"public functions of symgraph.tensor without a test: {untested}"


def test_aliases_are_the_same_functions():
    for alias, name in ALIASES.items():
        assert getattr(T, alias) is getattr(T, name), alias


def test_every_package_is_installed():
    """setup.cfg lists its packages by name (backends/ is mapped to symgraph.backends): a package
    missing there works in an editable checkout and is absent from an installed wheel, as
    symgraph.compat.theano.sandbox (MRG_RandomStreams, imported by the Deep Learning Tutorials) was."""
    import configparser

    root = TESTS.parent
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "symgraph").rglob("__init__.py")}
    found |= {"symgraph.backends." + ".".join(p.parent.relative_to(root / "backends").parts)
              for p in (root / "backends").rglob("__init__.py")}
    found = {name.rstrip(".") for name in found}
    assert found - listed == set(), "packages missing from setup.cfg's [options] packages"
