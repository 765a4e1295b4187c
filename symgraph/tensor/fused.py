"""Fusion decisions as graph nodes: ops that stand for a small subgraph which a backend may run as
one kernel. The fusion pass (symgraph/rewrite/fusion.py) makes them; ``f.graph``, debugprint,
to_dot and save/load see them like any op; each backend lowers them (the numpy backend as the
plain nested expressions, OpenCL as one kernel); ``expand`` gives the subgraph back (gradients,
and backends that cannot run the fused form).

- ``ReduceOf(reduce, program)``: a reduction of an elementwise program's output; the program
  runs inside the reduction's loop, so its result never goes through memory.
- ``Epilogue(core, program, slot, n_core)``: an elementwise program that alone reads the result
  of ``core`` (a matrix product, a reduction or a ReduceOf), run on each result before its one
  store: a bias add and activation, an SGD update, mean's division.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from symgraph.errors import GraphTypeError
from symgraph.graph.basic import Apply, Op, Variable
from symgraph.tensor.composite import Composite
from symgraph.tensor.reduction import CAReduce
from symgraph.tensor.type import TensorVariable, as_tensor_variable


class ReduceOf(Op):
    """``reduce(program(*inputs))``: a CAReduce of a one-output elementwise program."""

    __props__ = ("reduce", "program")

    def __init__(self, reduce: CAReduce, program: Composite):
        if len(program.outputs) != 1:
            raise GraphTypeError(f"ReduceOf needs a program with one output, got {program}")
        self.reduce, self.program = reduce, program

    def __str__(self) -> str:
        return f"{self.reduce}·{self.program}"

    def parts(self, inputs: Sequence[Variable]) -> tuple[Apply, Apply]:
        """The program node on ``inputs`` and the reduction node reading it (fresh, unattached)."""
        inner = self.program.make_node(*inputs)
        return inner, self.reduce.make_node(inner.outputs[0])

    def make_node(self, *args: Any) -> Apply:
        inputs = [as_tensor_variable(i) for i in args]
        _, red = self.parts(inputs)
        return Apply(self, inputs, [red.outputs[0].type.make_variable()])

    def perform(self, node: Apply, inputs: list) -> list:
        inner, red = self.parts(node.inputs)
        return self.reduce.perform(red, self.program.perform(inner, inputs))

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        inner, red = self.parts(node.inputs)
        return self.reduce.infer_shape(red, self.program.infer_shape(inner, input_shapes))

    def expand(self, inputs: list[Variable]) -> list[TensorVariable]:
        (value,) = self.program.expand(inputs)
        return [self.reduce(value)]


class Epilogue(Op):
    """``program`` applied to the output of ``core``: the node's inputs are core's ``n_core``
    inputs, then the program's other inputs (all but input ``slot``, which reads core's result);
    its outputs are the program's."""

    __props__ = ("core", "program", "slot", "n_core")

    def __init__(self, core: Op, program: Composite, slot: int, n_core: int):
        if not 0 <= slot < program.nin:
            raise GraphTypeError(f"Epilogue: slot {slot} is not an input of {program}")
        self.core, self.program, self.slot, self.n_core = core, program, int(slot), int(n_core)

    def __str__(self) -> str:
        return f"{self.core}→{self.program}"

    def split(self, inputs: Sequence[Variable]) -> tuple[list, list]:
        """(core's inputs, the program's inputs with None at ``slot``)."""
        core_ins, others = list(inputs[:self.n_core]), list(inputs[self.n_core:])
        return core_ins, others[:self.slot] + [None] + others[self.slot:]

    def parts(self, inputs: Sequence[Variable]) -> tuple[Apply, Apply]:
        """The core node and the program node reading it (fresh, unattached)."""
        core_ins, prog_ins = self.split(inputs)
        core = self.core.make_node(*core_ins)
        prog_ins[self.slot] = core.outputs[0]
        return core, self.program.make_node(*prog_ins)

    def make_node(self, *args: Any) -> Apply:
        inputs = [as_tensor_variable(i) for i in args]
        if len(inputs) != self.n_core + self.program.nin - 1:
            raise GraphTypeError(f"{self} takes {self.n_core + self.program.nin - 1} inputs, got {len(inputs)}")
        _, prog = self.parts(inputs)
        return Apply(self, inputs, [o.type.make_variable() for o in prog.outputs])

    def perform(self, node: Apply, inputs: list) -> list:
        core, prog = self.parts(node.inputs)
        core_vals, prog_vals = self.split(inputs)
        prog_vals[self.slot] = np.asarray(self.core.perform(core, core_vals)[0])
        return self.program.perform(prog, prog_vals)

    def infer_shape(self, node: Apply, input_shapes: list) -> list:
        core, prog = self.parts(node.inputs)
        core_shapes, prog_shapes = self.split(input_shapes)
        prog_shapes[self.slot] = self.core.infer_shape(core, core_shapes)[0]
        return self.program.infer_shape(prog, prog_shapes)

    def expand(self, inputs: list[Variable]) -> list[TensorVariable]:
        core_ins, prog_ins = self.split(inputs)
        result = self.core(*core_ins)
        prog_ins[self.slot] = result
        return self.program.expand(prog_ins)


__all__ = ["ReduceOf", "Epilogue"]
