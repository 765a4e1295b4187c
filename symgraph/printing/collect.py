"""Turn whatever the user hands a printer (a variable, a list, an Apply, a FunctionGraph or a
compiled Function) into one GraphView: inputs, outputs, updates and the nodes between them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeGuard

from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.traversal import ancestors, toposort


@dataclass
class Group:
    """Outer Apply nodes that the compact view draws inside one labelled box: what one kernel
    runs, say, or any other grouping a backend wants to show. The view draws each fused node
    (one with an inner graph) as its own cluster already; a group may hold such nodes too."""

    label: str
    nodes: list[Apply]
    kernel: bool = False
    """The box is one kernel: its fused members' inner ops are drawn straight in it, with no
    cluster of their own (what runs is the kernel, not the graph's Composite nodes)."""


@dataclass
class GraphView:
    """What every printer draws: ``outputs`` (in order), ``updates`` as (shared variable, new
    value) pairs, declared ``inputs`` (may be empty: then the leaves are the inputs) and the
    Apply ``nodes`` in topological order. ``title`` names a compiled function."""

    outputs: list[Variable]
    updates: list[tuple[Variable, Variable]] = field(default_factory=list)
    inputs: list[Variable] = field(default_factory=list)
    nodes: list[Apply] = field(default_factory=list)
    title: str = ""
    names: dict = field(default_factory=dict)  # id(var) -> name, for outputs renamed by rewrites
    groups: list[Group] = field(default_factory=list)  # boxes drawn around outer nodes (compact view)

    def name_of(self, v: Variable) -> str | None:
        """The variable's name, or the name the user gave the output it replaced."""
        return v.name if v.name is not None else self.names.get(id(v))

    def __post_init__(self) -> None:
        self.input_ids = set(map(id, self.inputs))
        self.root_ids = set(map(id, self.roots))
        self.output_ids = set(map(id, self.outputs))

    @property
    def roots(self) -> list[Variable]:
        """The variables whose graphs are drawn: the outputs, then the update values."""
        return self.outputs + [v for _, v in self.updates]

    def variables(self) -> list[Variable]:
        """Every variable of the graph (declared inputs and shared variables included)."""
        seen: dict[int, Variable] = {id(v): v for v in self.inputs}
        for v in ancestors(self.roots, blockers=self.inputs):
            seen.setdefault(id(v), v)
        for s, _ in self.updates:
            seen.setdefault(id(s), s)
        return list(seen.values())


def collect(obj: Any) -> GraphView:
    """The GraphView of ``obj``; TypeError (naming what is accepted) for anything else."""
    fgraph = getattr(obj, "graph", None)
    spec = getattr(obj, "spec", None)
    if fgraph is not None and spec is not None and hasattr(fgraph, "outputs"):  # a compiled Function
        return _function_view(obj, fgraph, spec)
    if hasattr(obj, "outputs") and hasattr(obj, "inputs") and hasattr(obj, "clients"):  # FunctionGraph
        return _view(list(obj.outputs), inputs=list(obj.inputs))
    if isinstance(obj, Apply):
        return _view(list(obj.outputs))
    if isinstance(obj, Variable):
        return _view([obj])
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(v, Variable) for v in obj):
        return _view(list(obj))
    raise TypeError(f"cannot print {type(obj).__name__} {obj!r}: expected a symbolic variable, a list of "
                    "variables, an Apply node, a FunctionGraph or a compiled sg.function")


def _view(outputs: list[Variable], inputs: list[Variable] | None = None,
          updates: list | None = None, title: str = "") -> GraphView:
    inputs = inputs or []
    updates = updates or []
    nodes = toposort(outputs + [v for _, v in updates], blockers=inputs)
    return GraphView(outputs, updates, inputs, nodes, title)


def _function_view(f: Any, fgraph: Any, spec: Any) -> GraphView:
    """A compiled function: fgraph.outputs = user outputs then one value per update;
    fgraph.inputs = user inputs then the shared variables (CompileSpec's layout)."""
    outs = list(fgraph.outputs)
    updates = spec.update_pairs(fgraph)
    names = ", ".join(spec.input_names)
    title = f"{spec.name}({names}) [{getattr(f, 'backend', '?')}]"
    view = _view(outs[:spec.n_outputs], inputs=list(fgraph.inputs), updates=updates, title=title)
    for mine, theirs in zip(view.outputs, f.maker.outputs):
        if theirs.variable.name is not None:
            view.names[id(mine)] = theirs.variable.name
    view.groups = kernel_groups(f, view.nodes)
    return view


def kernel_groups(f: Any, nodes: list[Apply]) -> list[Group]:
    """What runs, for a compiled function whose backend generates kernels (OpenCL): one group per
    kernel of ``f.kernels``, holding the outer nodes that run it (a matmul with its fused
    epilogue is one node, one kernel). A node with several variants of its kernel (contiguous and
    strided, a reduction's row, column and tree kernels), one of which is picked at run time,
    is one group labelled with all of them. Nodes without a kernel of their own (views, host
    fallbacks, transfers) belong to no group. Empty for other backends."""
    backend = getattr(getattr(f, "_impl", None), "backend", None)
    names_of = getattr(backend, "kernel_names", None)
    kernels = getattr(f, "kernels", None) or {}
    if names_of is None or not kernels:
        return []
    by_kernels: dict[tuple[str, ...], list[Apply]] = {}
    for node in nodes:
        names = tuple(n for n in names_of(node) if n in kernels)
        if names:
            by_kernels.setdefault(names, []).append(node)
    return [Group("\n".join(names), members, kernel=True) for names, members in by_kernels.items()]


def role(v: Variable, view: GraphView) -> str:
    """How a variable takes part: 'shared', 'constant', 'input' (no owner), 'output' (of the user's
    outputs; update values are not) or 'intermediate'."""
    if getattr(v, "is_shared", False):
        return "shared"
    if isinstance(v, Constant):
        return "constant"
    if v.owner is None or id(v) in view.input_ids:
        return "input"
    if id(v) in view.output_ids:
        return "output"
    return "intermediate"


def inner_graph(node: Apply) -> tuple[list[Variable], list[Variable]] | None:
    """The (inputs, outputs) of the inner graph of a node whose op holds one (a fused Composite,
    a kernel), else None. An op with ``expand(inputs)`` (Composite) is expanded on placeholder
    inputs named i0, i1, ...; otherwise ``op.fgraph``, ``op.inner_inputs/inner_outputs`` or
    ``op.inputs/outputs`` holding Variables are used. An expanded graph is new objects on every
    call: whoever keys anything on them must keep them alive for as long as the keys are used."""
    op = node.op
    expand = getattr(op, "expand", None)
    if callable(expand):
        ins = [v.type.make_variable(f"i{k}") for k, v in enumerate(node.inputs)]
        outs = expand(ins)
        if outs is not None:  # ordinary ops expand to nothing
            return ins, list(outs)
    for holder in (getattr(op, "fgraph", None), op):
        if holder is None:
            continue
        for ins_attr, outs_attr in (("inner_inputs", "inner_outputs"), ("inputs", "outputs")):
            i, o = getattr(holder, ins_attr, None), getattr(holder, outs_attr, None)
            if _variables(i) and _variables(o):
                return list(i), list(o)
    return None


def inner_graphs(node: Apply) -> dict[str, tuple[list[Variable], list[Variable]]]:
    """The inner graphs of an op that holds them by role (``op.inner_graphs``: an ifelse's
    'then' and 'else' branches), each as (inputs, outputs); empty for other ops. The inner
    graphs read the node's last inputs, in order (the ones before, an ifelse's condition, the
    node reads itself), as the emitter binds them."""
    graphs = getattr(node.op, "inner_graphs", None)
    if not isinstance(graphs, dict):
        return {}
    return {role: (list(g.inputs), list(g.outputs)) for role, g in graphs.items()}


def _variables(seq: Any) -> TypeGuard[list[Variable] | tuple[Variable, ...]]:
    return isinstance(seq, (list, tuple)) and len(seq) > 0 and all(isinstance(v, Variable) for v in seq)


def is_transfer(op: Any) -> bool:
    """Host<->device copies: ops whose class name says 'Transfer' or that set ``is_transfer``."""
    return bool(getattr(op, "is_transfer", False)) or "Transfer" in type(op).__name__


def op_label(op: Any) -> str:
    """The op as printed everywhere (``str(op)``: 'add', 'DimShuffle{1,0}', 'Composite{...}')."""
    return str(op)



def limited_nodes(view: GraphView, max_nodes: int | None) -> tuple[list[Apply], int]:
    """At most ``max_nodes`` Apply nodes, those nearest the outputs first (breadth-first from
    the roots), in topological order; and how many were left out."""
    nodes = view.nodes
    if max_nodes is None or len(nodes) <= max_nodes:
        return nodes, 0
    if max_nodes < 0:
        raise ValueError(f"max_nodes must be None or >= 0, got {max_nodes}")
    blocked = set(map(id, view.inputs))
    keep: set[int] = set()
    frontier = [v.owner for v in view.roots if v.owner is not None and id(v) not in blocked]
    while frontier and len(keep) < max_nodes:
        nxt: list[Apply] = []
        for node in frontier:
            if id(node) in keep or len(keep) >= max_nodes:
                continue
            keep.add(id(node))
            nxt.extend(i.owner for i in node.inputs if i.owner is not None and id(i) not in blocked)
        frontier = nxt
    kept = [n for n in nodes if id(n) in keep]
    return kept, len(nodes) - len(kept)


def letters(k: int) -> str:
    """0 -> 'A', 25 -> 'Z', 26 -> 'BA' ...: Theano's debugprint ids (base 26 in letters)."""
    out = ""
    while True:
        out = chr(ord("A") + k % 26) + out
        k //= 26
        if k == 0:
            return out

