"""The README's Python examples run as written (each block on its own, with numpy, symgraph and
symgraph.tensor imported as the README imports them), and the values its comments promise hold."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
import symgraph.tensor as T

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("k", range(len(BLOCKS)))
def test_readme_block_runs(k, capsys):
    namespace = {"np": np, "sg": sg, "T": T}
    exec(compile(BLOCKS[k], f"README.md python block {k}", "exec"), namespace)  # the README is ours, not input


def test_the_loop_example_prints_what_the_readme_says():
    block = next(b for b in BLOCKS if "sg.until" in b)
    namespace = {"np": np, "sg": sg, "T": T}
    exec(compile(block, "README.md loop block", "exec"), namespace)
    np.testing.assert_array_equal(namespace["sg"].function([], namespace["vals"])(), [2, 4, 8, 16, 32, 64, 128])
