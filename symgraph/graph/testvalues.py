"""Test values (Theano's build-time debugging): with ``config.compute_test_value`` on, each node
runs on its inputs' test values as it is built, so a shape or dtype error shows at the user line
that built the node."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from symgraph.errors import node_context

if TYPE_CHECKING:  # annotations only: symgraph.graph.basic imports this module
    from symgraph.graph.basic import Apply, Variable


class NoTestValue(Exception):
    """``v`` has no test value: none was set, and it is neither a constant nor a shared variable."""


def get_test_value(v: Variable) -> Any:
    """``v``'s test value: the one set on its tag, else its own (``Variable.default_test_value``)."""
    tag = v.__dict__.get("_tag")
    if tag and "test_value" in tag:
        return tag["test_value"]
    return v.default_test_value()


def compute_test_values(node: Apply, mode: str) -> None:
    """Run ``node`` on its inputs' test values (``config.compute_test_value``) and store the
    results as its outputs' test values. An input without one is skipped ('ignore'), warned
    about ('warn') or an error ('raise'); an op that fails on the test values raises here, at
    the user line that built the node, naming the op and the input shapes."""
    try:
        values = [get_test_value(v) for v in node.inputs]
    except NoTestValue as missing:
        msg = (f"{node.op}: input {missing.args[0]} has no test value (set x.tag.test_value, or "
               f"config.compute_test_value = 'off')")
        if mode == "raise":
            raise ValueError(f"{msg}\n{node_context(node)}") from None
        if mode == "warn":
            warnings.warn(msg, stacklevel=4)
        return
    try:
        outputs = node.op.perform(node, values)
    except Exception as e:
        context = node_context(node, values)
        try:
            err = type(e)(f"{e}\n(computing test values)\n{context}")
        except Exception:
            raise e from None
        raise err from None
    for out, value in zip(node.outputs, outputs):
        out.tag["test_value"] = value
