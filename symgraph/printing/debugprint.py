"""``debugprint``: Theano's indented text tree of a graph, one line per variable.

    add [id A] 'z' <float64[?, ?]>
     |x [id B] <float64[?, ?]>
     |y [id C] <float64[?, ?]>

Each variable gets an id the first time it appears; a subexpression used again shows only its
label and id (its subtree was printed above), so graphs with sharing stay linear in size. Ops that
hold inner graphs (an ifelse's branches) are printed again under "Inner graphs:", each inner graph
as its own tree over its inputs, as Theano and PyTensor do.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

from symgraph.graph.basic import Constant, Variable
from symgraph.printing.collect import GraphView, collect, inner_graph, letters, op_label
from symgraph.printing.pprint import pprint_inner


def debugprint(obj: Any, file: TextIO | str | None = None, ids: bool = True,
               print_type: bool = True, depth: int = -1) -> TextIO | str | None:
    """Print the indented tree of ``obj`` (variable, list, Apply, FunctionGraph or compiled Function).

    As in Theano/PyTensor: printed to sys.stdout when ``file`` is None (and None returned, so an
    interactive prompt shows only the tree), written to ``file`` (which is returned) when it is a
    stream, and returned as a string when ``file == "str"``. ``ids=False`` hides the ids; repeated
    subtrees are then shown as ``label ...``. ``depth`` limits how many levels are printed (-1: all).
    """
    view = collect(obj)
    text = "\n".join(_lines(view, ids, print_type, depth)) + "\n"
    if isinstance(file, str):
        if file != "str":
            raise ValueError(f"debugprint: file must be a stream, None or 'str', got {file!r}")
        return text
    if file is None:
        sys.stdout.write(text)
        return None
    file.write(text)
    return file


def _lines(view: GraphView, ids: bool, print_type: bool, depth: int = -1) -> list[str]:
    printer = _TreePrinter(view, ids, print_type, depth)
    lines = [f"Function {view.title}"] if view.title else []
    if view.title and view.outputs:
        lines.append("Outputs:")
    for out in view.outputs:
        lines.extend(printer.tree(out))
    if view.updates:
        lines.append("Updates:")
        for shared, value in view.updates:
            head = f"{printer.label(shared)}{printer.id_of(shared)} <- "
            tree = printer.tree(value)
            lines.append(head + tree[0])
            lines.extend(tree[1:])
    if printer.with_inner:
        lines += ["", "Inner graphs:"]
        lines += printer.inner_sections()
    return lines


class _TreePrinter:
    """Prints trees sharing one id table, so the updates refer to ids given in the outputs."""

    def __init__(self, view: GraphView, ids: bool, print_type: bool, depth: int = -1):
        self.view, self.ids, self.print_type, self.depth = view, ids, print_type, depth
        self.id_table: dict[int, str] = {}
        self.expanded: set[int] = set()
        self.inputs = set(map(id, view.inputs))
        self.with_inner: list = []  # nodes holding inner graphs, in the order they were printed
        self.leaf_names: dict[int, str] = {}  # inner graphs' inputs, shown by position

    def id_of(self, v: Variable) -> str:
        if not self.ids:
            return ""
        if id(v) not in self.id_table:
            self.id_table[id(v)] = letters(len(self.id_table))
        return f" [id {self.id_table[id(v)]}]"

    def label(self, v: Variable) -> str:
        if id(v) in self.leaf_names:
            return self.leaf_names[id(v)]
        if v.owner is None or id(v) in self.inputs:
            return str(v)
        label = _node_label(v.owner)
        return f"{label}.{v.index}" if len(v.owner.outputs) > 1 else label

    def line(self, v: Variable) -> str:
        """One variable's full line: label, id, name (for computed values), type and marks."""
        text = self.label(v) + self.id_of(v)
        name = self.view.name_of(v)
        if v.owner is not None and name is not None and id(v) not in self.inputs:
            text += f" '{name}'"
        if self.print_type:
            text += f" <{v.type}>"
        if getattr(v, "is_shared", False):
            text += " (shared)"
        elif isinstance(v, Constant):
            text += " (constant)"
        return text

    def tree(self, root: Variable) -> list[str]:
        """The lines of ``root``'s tree, walked with an explicit stack (any depth works)."""
        out: list[str] = []
        stack: list[tuple[Variable, int]] = [(root, 0)]
        while stack:
            v, depth = stack.pop()
            prefix = " |" * depth
            owner = None if id(v) in self.inputs else v.owner  # None: a leaf
            if owner is not None and id(owner) in self.expanded:
                out.append(prefix + self.label(v) + (self.id_of(v) if self.ids else " ..."))
                continue
            out.append(prefix + self.line(v))
            if owner is not None and (self.depth < 0 or depth + 1 < self.depth):
                self.expanded.add(id(owner))
                if getattr(owner.op, "inner_graphs", None):
                    self.with_inner.append(owner)
                stack.extend((i, depth + 1) for i in reversed(owner.inputs))
        return out

    def inner_sections(self) -> list[str]:
        """Each recorded node's inner graphs (and theirs, as they are found), one tree per output."""
        out: list[str] = []
        done = 0
        while done < len(self.with_inner):
            node = self.with_inner[done]
            done += 1
            out += ["", f"{self.label(node.outputs[0]).split('.')[0]}{self.id_of(node.outputs[0])}"]
            for role, graph in node.op.inner_graphs.items():
                out.append(f" {role}:")
                for k, v in enumerate(graph.inputs):
                    self.leaf_names[id(v)] = f"i{k}" + (f" ({v.name})" if v.name else "")
                    self.inputs.add(id(v))
                for o in graph.outputs:
                    out += ["  " + line for line in self.tree(o)]
        return out


def _node_label(node: Any) -> str:
    """str(op); a fused op whose str does not show its inner expression gets it appended."""
    label = op_label(node.op)
    inner = inner_graph(node)
    if inner is not None and "{" not in label:
        label += "{" + pprint_inner(*inner) + "}"
    return label
