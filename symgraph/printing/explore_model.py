"""What the explorer page shows, as plain data (turned into JSON by ``explore.py``): the SVG of
every graph state, and for every node the facts its panel lists.

For a compiled function: one step per rewrite pass when it was compiled with ``history=True``
(else only the compiled graph), each node's op and parameters, input and output types, the user
line that built it, its lines of ``f.source``, its OpenCL kernel sources, its inner graph (fused
kernels, any op ``collect.inner_graph`` opens), where it came from in the rewrite history, and
its time when the function was profiled. For anything else ``collect`` accepts: the one graph.
"""
from __future__ import annotations

from typing import Any

from symgraph.compile.placement import HostFallback, HostPlaced
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.traversal import toposort
from symgraph.printing.collect import GraphView, collect, inner_graph, op_label
from symgraph.printing.explore_draw import GraphState, draw_state, short, to_svg
from symgraph.rewrite.history import graph_changed

MAX_INNER_DEPTH = 4
MAX_PARAM_CHARS = 400


class PageModel:
    """Collects the page's SVGs, node facts and variable ids while the steps are drawn."""

    def __init__(self, title: str, timeout: float = 120) -> None:
        self.data: dict[str, Any] = {"title": title, "steps": [], "svgs": [], "nodes": {}, "kernels": {},
                                     "source": "", "profile": None, "backend": "", "notes": []}
        self.timeout = timeout
        self._vids: dict[int, str] = {}
        self._keep: list[Any] = []  # variables named here stay alive (their id() is never reused)

    def vid(self, v: Variable) -> str:
        if id(v) not in self._vids:
            self._vids[id(v)] = f"v{len(self._vids)}"
            self._keep.append(v)
        return self._vids[id(v)]

    def svg(self, drawing: Any) -> int:
        self.data["svgs"].append(to_svg(drawing, self.timeout))
        return len(self.data["svgs"]) - 1

    def describe(self, sid: str, node: Apply, trace: Any = None) -> dict:
        """The panel facts of ``node`` (code, kernels, profile and history are added later)."""
        facts = node_facts(node, trace if trace is not None else node.trace)
        self.data["nodes"][sid] = facts
        inner = inner_graph(node)
        if inner is not None and sid.count("/") < MAX_INNER_DEPTH:
            facts["inner"] = self.inner(sid, node, *inner)
        return facts

    def inner(self, sid: str, node: Apply, ins: list[Variable], outs: list[Variable]) -> dict:
        """Draw and describe the inner graph of ``node`` (its nodes are ``sid/0``, ``sid/1``...)."""
        order = toposort(outs, blockers=ins)
        names = {id(v): f"i{k}: {_value_name(outer)}" for k, (v, outer) in enumerate(zip(ins, node.inputs))}
        for k, (v, outer) in enumerate(zip(outs, node.outputs)):
            names.setdefault(id(v), f"out{k}" + (f": {outer.name}" if outer.name else ""))
        state = GraphState([(f"{sid}/{k}", n, tuple(n.inputs)) for k, n in enumerate(order)], list(outs),
                           list(ins), names=names)
        in_ids, out_ids = {id(v) for v in ins}, {id(v) for v in outs}

        def role(v: Variable) -> str:
            return "input" if id(v) in in_ids else "constant" if isinstance(v, Constant) else \
                "output" if id(v) in out_ids else "intermediate"
        drawing = draw_state(f"{sid}/inner".replace("/", "_"), state, lambda v: f"{sid}/{self.vid(v)}", role, _opens)
        for k, n in enumerate(order):
            self.describe(f"{sid}/{k}", n, node.trace)  # fresh nodes: they belong to the outer node's line
        return {"svg": self.svg(drawing), "ops": [op_label(n.op) for n in order],
                "nodes": [f"{sid}/{k}" for k in range(len(order))]}


def _opens(node: Apply) -> bool:
    return inner_graph(node) is not None


def node_facts(node: Apply, trace: Any) -> dict:
    """Op, parameters, input/output names and types, and the user line of ``node``."""
    op = node.op
    params = []
    for key in getattr(op, "__props__", ()):
        value = getattr(op, key, None)
        params.append([key, short(repr(value) if not isinstance(value, str) else value, MAX_PARAM_CHARS)])
    facts: dict[str, Any] = {"op": op_label(op), "op_class": type(op).__name__, "params": params,
             "inputs": [_var_facts(v) for v in node.inputs], "outputs": [_var_facts(v) for v in node.outputs],
             "user": None, "code": [], "kernels": [], "inner": None, "fallback": _is_fallback(op),
             "profile": None, "origin": [], "step": None}
    if trace is not None:
        facts["user"] = {"file": str(trace.filename), "line": int(trace.lineno), "function": str(trace.function),
                         "text": trace.text}
    return facts


def _var_facts(v: Variable) -> dict:
    return {"name": _value_name(v), "type": str(v.type)}


def _value_name(v: Variable) -> str:
    """A variable as the panel names it: its name, a constant's value, or the op computing it."""
    if v.name is not None:
        return v.name
    if isinstance(v, Constant):
        return short(str(v), 40)
    if v.owner is not None:
        suffix = f" [output {v.index}]" if len(v.owner.outputs) > 1 else ""
        return short(op_label(v.owner.op), 40) + suffix
    return "input"


# --- a compiled function -----------------------------------------------------------------------

def function_model(f: Any, timeout: float = 120) -> dict:
    """The page data of compiled function ``f`` (history steps, code, kernels, profile)."""
    view = collect(f)
    page = PageModel(view.title, timeout)
    impl = f._impl
    backend = getattr(impl, "backend", None)
    page.data["backend"] = f.backend
    page.data["source"] = f.source
    history = f.history
    final = f.graph.toposort()
    sid = history.sid if history is not None else _counter({id(n): k for k, n in enumerate(final)})
    roles = _Roles(f)
    if history is not None:
        _history_steps(page, f, history, roles)
    else:
        page.data["notes"].append("compile with sg.function(..., history=True) to step through the rewrites")
    state = GraphState([(sid(n), n, tuple(n.inputs)) for n in final], list(f.graph.outputs), list(f.graph.inputs),
                       roles.updates(f.graph.outputs), roles.names(f.graph.outputs))
    drawing = draw_state("compiled", state, page.vid, roles.role(f.graph.outputs), _opens,
                         _transfers(backend, final, sid))
    step = {"label": f"compiled ({f.backend})", "svg": page.svg(drawing), "nodes": [s for s, _, _ in state.nodes],
            "new": [], "removed": [], "applied": {}, "fired": [], "links": {}, "final": True}
    steps = page.data["steps"]
    if steps and steps[-1]["nodes"] == step["nodes"]:
        steps[-1].update(svg=step["svg"], final=True, label=f"{steps[-1]['label']} = {step['label']}")
    else:
        steps.append(step)
    for s, n, _ in state.nodes:
        page.describe(s, n)
    if history is not None:  # nodes of earlier steps (and those a pass made and removed again)
        for s, n in history.nodes.items():
            if s not in page.data["nodes"]:
                page.describe(s, n)
    _code(page, f, impl, backend, sid, final)
    _profile(page, f.profile, sid)
    if history is not None:
        _origins(page, history)
    return page.data


def _counter(index: dict) -> Any:
    def sid(node: Apply) -> str:
        return f"n{index[id(node)]}"
    return sid


def variable_role(v: Variable, input_ids: set, out_ids: set) -> str:
    """How the page colours a variable: shared, constant, input, output or intermediate."""
    if getattr(v, "is_shared", False):
        return "shared"
    if isinstance(v, Constant):
        return "constant"
    if v.owner is None or id(v) in input_ids:
        return "input"
    return "output" if id(v) in out_ids else "intermediate"


class _Roles:
    """Roles, update pairs and user output names of a compiled function's graph at any step."""

    def __init__(self, f: Any) -> None:
        self.f, self.spec = f, f.spec
        self.inputs = list(f.graph.inputs)
        self.input_ids = {id(v) for v in self.inputs}
        self.user_names = [o.variable.name for o in f.maker.outputs]

    def role(self, outputs: list[Variable]) -> Any:
        out_ids = {id(v) for v in outputs[:self.spec.n_outputs]}
        return lambda v: variable_role(v, self.input_ids, out_ids)

    def updates(self, outputs: list[Variable]) -> list[tuple[Variable, Variable]]:
        """(stored variable, new value): the shared variables' updates, then the inputs' (sg.In(x, update=...))."""
        pairs = [(self.inputs[self.spec.n_inputs + c], outputs[o]) for o, c in self.spec.updates]
        return pairs + [(self.inputs[k], outputs[a.update])
                        for k, a in enumerate(self.spec.args) if a.update is not None]

    def names(self, outputs: list[Variable]) -> dict:
        """Labels of unnamed output boxes: the user's output names, 'new W' for update values."""
        names = {id(v): name for v, name in zip(outputs, self.user_names) if name is not None and v.name is None}
        for shared, value in self.updates(outputs):
            if value.name is None and value.owner is not None:
                names.setdefault(id(value), f"new {shared.name or 'shared value'}")
        return names


def _history_steps(page: PageModel, f: Any, history: Any, roles: _Roles) -> None:
    """One page step per recorded step (a step that changed nothing reuses the previous SVG)."""
    prev = None
    for k, step in enumerate(history.steps):
        if prev is None or graph_changed(prev, step):
            state = GraphState([(s.sid, s.node, s.inputs) for s in step.nodes], step.outputs, roles.inputs,
                               roles.updates(step.outputs), roles.names(step.outputs))
            svg = page.svg(draw_state(f"step{k}", state, page.vid, roles.role(step.outputs), _opens))
        page.data["steps"].append({
            "label": step.label if k else "input graph (before rewriting)", "svg": svg, "nodes": step.sids,
            "new": step.new, "removed": step.removed, "applied": step.applied,
            "fired": [[x.rule, x.old, list(x.new)] for x in step.fired], "links": step.links, "final": False})
        prev = step


def _origins(page: PageModel, history: Any) -> None:
    """Each node's first step and the rules whose replacements made it."""
    made: dict[str, list[str]] = {}
    for step in history.steps:
        for x in step.fired:
            for s in x.new:
                made.setdefault(s, [])
                if x.rule not in made[s]:
                    made[s].append(x.rule)
    first: dict[str, int] = {}
    for k, step in enumerate(page.data["steps"]):
        for s in step["nodes"]:
            first.setdefault(s, k)
    for s, facts in page.data["nodes"].items():
        if "/" not in s:
            facts["origin"], facts["step"] = made.get(s, []), first.get(s)


def _transfers(backend: Any, order: list[Apply], sid: Any) -> dict:
    """(variable id, reader id) -> side, for every input a node reads on the other side."""
    if backend is None or not hasattr(backend, "wanted_sides"):
        return {}
    out = {}
    for node in order:
        try:
            wanted = backend.wanted_sides(node)
        except (KeyError, AttributeError):
            continue
        for v, side in zip(node.inputs, wanted):
            if side is not None and not isinstance(v, Constant) and backend.side(v) != side:
                out[(id(v), sid(node))] = side
    return out


def _code(page: PageModel, f: Any, impl: Any, backend: Any, sid: Any, order: list[Apply]) -> None:
    """Each node's lines of ``f.source`` and its kernel sources."""
    lines = f.source.splitlines()
    by_node: dict[int, list] = {}
    for lineno, (node, _) in sorted(getattr(impl, "_line_nodes", {}).items()):
        if 0 < lineno <= len(lines):
            by_node.setdefault(id(node), []).append([lineno, lines[lineno - 1].strip()])
    kernels = f.kernels
    for node in order:
        facts = page.data["nodes"][sid(node)]
        facts["code"] = by_node.get(id(node), [])
        names = backend.kernel_names(node) if backend is not None and hasattr(backend, "kernel_names") else []
        facts["kernels"] = [n for n in names if n in kernels]
        for n in facts["kernels"]:
            page.data["kernels"][n] = kernels[n]


def _profile(page: PageModel, prof: Any, sid: Any) -> None:
    """Per node: seconds, calls, device seconds, share of the node time and last shapes."""
    if prof is None:
        return
    total, elsewhere = prof.node_seconds, 0
    for k, node in enumerate(prof.nodes):
        try:
            facts = page.data["nodes"].get(sid(node))
        except KeyError:  # a node of the variant a backend compiled for a call's shapes (OpenCL placement)
            facts, elsewhere = None, elsewhere + 1
        if facts is None:
            continue
        facts["profile"] = {"seconds": prof.seconds[k], "calls": prof.calls[k], "device": prof.device[k],
                            "share": prof.seconds[k] / total if total > 0 else 0.0,
                            "shapes": [list(s) for s in prof.shapes[k]] if prof.shapes[k] is not None else None}
    if elsewhere:
        page.data["notes"].append(f"the profile also times {elsewhere} node(s) of a variant compiled for the calls' "
                                  "shapes (OpenCL placement), not drawn here: see the profile's text")
    page.data["profile"] = {"calls": prof.n_calls, "seconds": prof.call_seconds, "node_seconds": total,
                            "text": str(prof),
                            "transfers": [[t.label, t.to, t.calls, t.bytes, t.seconds] for t in prof.transfers]}


# --- anything else collect() accepts ---------------------------------------------------------------

def view_model(obj: Any, timeout: float = 120) -> dict:
    """The page data of a variable, list, Apply or FunctionGraph: its one graph."""
    view: GraphView = collect(obj)
    page = PageModel(view.title or "graph", timeout)
    sids = {id(n): f"n{k}" for k, n in enumerate(view.nodes)}
    state = GraphState([(sids[id(n)], n, tuple(n.inputs)) for n in view.nodes], list(view.roots) + [],
                       list(view.inputs), list(view.updates), dict(view.names))
    out_ids = view.output_ids

    def role(v: Variable) -> str:
        return variable_role(v, view.input_ids, out_ids)
    svg = page.svg(draw_state("graph", state, page.vid, role, _opens))
    page.data["steps"].append({"label": "graph", "svg": svg, "nodes": [s for s, _, _ in state.nodes], "new": [],
                               "removed": [], "applied": {}, "fired": [], "links": {}, "final": True})
    for s, n, _ in state.nodes:
        page.describe(s, n)
    return page.data


def _is_fallback(op: Any) -> bool:
    """A node the device could not run (a HostFallback), not one placed on the host by choice."""
    return isinstance(op, HostFallback) and not isinstance(op, HostPlaced)
