"""theano.compile.monitormode: MonitorMode and the ``detect_nan`` post_func."""
from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.compile.debugmode import MonitorMode  # noqa: F401
from symgraph.printing import debugprint


def detect_nan(i: int, node: Any, fn: Any) -> None:
    """A MonitorMode post_func: print the node and its values when an output holds NaN."""
    for output in fn.outputs:
        value = output[0]
        if isinstance(value, np.ndarray) and value.dtype.kind in "fc" and np.isnan(value).any():
            print("*** NaN detected ***")
            debugprint(node)
            print(f"Inputs : {[cell[0] for cell in fn.inputs]}")
            print(f"Outputs: {[cell[0] for cell in fn.outputs]}")
            break
