"""Generate, compile and wrap the Python source of a numpy-backend function."""
from __future__ import annotations

import builtins
import threading
from typing import Any

import numpy as np

from symgraph.compile.function import CompileSpec, python_name
from symgraph.errors import NanGuardError, SymgraphError, node_context
from symgraph.graph.basic import Apply, Constant, Variable
from symgraph.graph.fgraph import FunctionGraph
from symgraph.safe_text import code_comment
from symgraph.backends.numpy.lowering import LOWERINGS, CodeContext
from symgraph.backends.numpy import lower_composite, lower_ops  # noqa: F401  (register lowerings)
from symgraph.tensor.elemwise import Elemwise

_FILENAME_PREFIX = "<symgraph-numpy "


def _alias_roots(fgraph: FunctionGraph, order: list[Apply]) -> dict[Variable, Variable]:
    """For each variable, the variable whose buffer it may share (through view_map chains)."""
    root: dict[Variable, Variable] = {}
    for node in order:
        for o_idx, i_idx in node.op.view_map.items():
            inp = node.inputs[i_idx]
            root[node.outputs[o_idx]] = root.get(inp, inp)
    return root


class NumpyFunction:
    """The generated function and its source. ``__call__`` is the generated function itself,
    stored on the instance so Function calls it with no extra Python frame."""

    def __init__(self, source: str, fn: Any, line_nodes: dict):
        self.source, self.__call__, self._line_nodes = source, fn, line_nodes


def compile(fgraph: FunctionGraph, spec: CompileSpec) -> NumpyFunction:
    """Lower ``fgraph`` to Python source, exec it, and return the callable."""
    ctx = CodeContext()
    order = fgraph.toposort()
    names: dict[Variable, str] = {}
    lines: list[str] = []
    line_nodes: dict[int, tuple[Apply, list[str]]] = {}
    params = spec.input_names
    taken = set(params)
    user_inputs = fgraph.inputs[:spec.n_inputs]
    shared_inputs = fgraph.inputs[spec.n_inputs:]

    # inputs: fast type check, full conversion only when it fails
    for k, (var, pname) in enumerate(zip(user_inputs, params)):
        names[var] = pname
        t = var.type
        cond = [f"{pname}.__class__ is not ndarray", f"{pname}.dtype is not {ctx.ref(t.numpy_dtype, 'dt_' + t.dtype)}",
                f"{pname}.ndim != {t.ndim}"]
        cond += [f"{pname}.shape[{d}] != {s}" for d, s in enumerate(t.shape) if s is not None]
        what = f"argument {k} ({pname}) of {spec.name}"
        filt = ctx.ref(_make_filter(t, spec.allow_downcast, what), f"filter_{pname}")
        lines.append(f"if {' or '.join(cond)}: {pname} = {filt}({pname})")
    for k, var in enumerate(shared_inputs):
        name = python_name(var.name, f"shared{k}", taken)
        names[var] = name
        cont = ctx.ref(spec.containers[k], f"c_{name}")
        lines.append(f"{name} = {cont}.value")
        lines.append(f"if {name} is None: {name} = {cont}.to_host()")

    roots = _alias_roots(fgraph, order)
    external = set(fgraph.inputs)
    last_use = _last_uses(order)
    protected = set(fgraph.outputs)

    def name_of(v: Variable) -> str:
        if v not in names:
            if isinstance(v, Constant):
                data = v.data[()] if isinstance(v.data, np.ndarray) and v.data.ndim == 0 else v.data
                names[v] = ctx.ref(data, f"k{len(ctx.globals)}")
            else:
                names[v] = f"v{len(names)}"
        return names[v]

    for step, node in enumerate(order):
        ins = [name_of(v) for v in node.inputs]
        outs = [name_of(o) for o in node.outputs]
        lower = LOWERINGS.get(type(node.op))
        expr = None
        if lower is not None:
            inplace = _inplace_target(node, step, roots, external, last_use, protected, ins)
            expr = lower(node, ins, ctx, out=inplace) if inplace else lower(node, ins, ctx)
        if expr is not None:
            code = f"{', '.join(outs)} = {expr}"
        else:
            op_ref, node_ref = ctx.ref(node.op, f"op_{node.op}"), ctx.ref(node, "node")
            code = f"{', '.join(outs)}, = {op_ref}.perform({node_ref}, [{', '.join(ins)}])"
        line_nodes[len(lines)] = (node, ins)
        lines.append(f"{code:<60}  # {code_comment(_describe(node))}")
        if spec.nan_guard:
            guard = ctx.ref(nan_guard_check, "nan_guard")
            for o, oname in zip(node.outputs, outs):
                if o.dtype.startswith(("float", "complex")):
                    lines.append(f"{guard}({oname}, {ctx.ref(node, 'node')}, [{', '.join(ins)}])")
        dead = [name_of(v) for v in node.inputs if last_use.get(v) == step and v.owner is not None
                and v not in protected and v.ndim > 0]
        if dead:
            lines.append(f"del {', '.join(dict.fromkeys(dead))}")

    # outputs and updates: copy anything that could alias a caller's array or shared storage
    results = []
    seen_results: set[Variable] = set()
    for k, var in enumerate(fgraph.outputs):
        expr = name_of(var)
        if roots.get(var, var) in external or isinstance(roots.get(var, var), Constant) or var in seen_results:
            expr = f"{expr}.copy()"
        elif var.ndim == 0 and var.owner is not None:
            expr = f"np.asarray({expr})"
        seen_results.add(var)
        results.append(expr)
    out_exprs = results[:spec.n_outputs]
    for out_idx, cont_idx in spec.updates:
        var = fgraph.outputs[out_idx]
        needs_copy = var in fgraph.outputs[:spec.n_outputs]
        value = results[out_idx] if not needs_copy or results[out_idx].endswith(".copy()") else f"{results[out_idx]}.copy()"
        lines.append(f"_new{cont_idx} = {value}")
    for out_idx, cont_idx in spec.updates:
        cont = ctx.ref(spec.containers[cont_idx], f"c_{names[shared_inputs[cont_idx]]}")
        lines.append(f"{cont}.value = _new{cont_idx}; {cont}.device = None")
    if spec.return_list:
        lines.append(f"return [{', '.join(out_exprs)}]")
    else:
        lines.append(f"return {out_exprs[0]}")

    fname = python_name(spec.name, "f", set())
    filename = f"{_FILENAME_PREFIX}{fname} {id(fgraph):x}>"
    # Calls that update shared variables are serialized: each reads the values the previous one wrote.
    head = [f"def {fname}({', '.join(params)}):"]
    if spec.updates:
        head.append(f"    with {ctx.ref(threading.Lock(), 'lock')}:")
    pad = "    " * len(head)
    head.append(f"{pad}try:")
    line_of = {ln + len(head) + 1: entry for ln, entry in line_nodes.items()}  # 1-based line numbers
    on_error = ctx.ref(_error_handler(line_of, filename), "reraise_with_context")
    body = "\n".join(f"{pad}    {ln}" for ln in lines)
    source = "\n".join(head) + f"\n{body}\n{pad}except Exception as e:\n{pad}    raise {on_error}(e)\n"
    namespace = dict(ctx.globals)
    exec(builtins.compile(source, filename, "exec"), namespace)
    return NumpyFunction(source, namespace[fname], line_of)


def _error_handler(line_of: dict, filename: str):
    """The generated code's except clause: the same exception, extended with the failing node
    and the user line that built it (symgraph's own errors pass through unchanged)."""
    def reraise_with_context(e: Exception) -> Exception:
        if isinstance(e, SymgraphError):
            return e
        entry, frame = _failing_node(e, line_of, filename)
        if entry is None:
            return e
        node, in_names = entry
        new = _rewrap(e, node, [frame.get(n) for n in in_names])
        if new is not e:
            new.__cause__ = e
        return new
    return reraise_with_context


def _failing_node(e: BaseException, line_of: dict, filename: str):
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            frame = tb.tb_frame  # values are locals; constants are the generated code's globals
            return line_of.get(tb.tb_lineno), {**frame.f_globals, **frame.f_locals}
        tb = tb.tb_next
    return None, None


def _rewrap(e: Exception, node: Apply, values: list) -> Exception:
    """The same kind of exception, its message extended with the node and the user's line."""
    context = node_context(node, values)
    try:
        return type(e)(f"{e}\n{context}")
    except Exception:  # exception types with unusual constructors keep their own message
        e.add_note(context)
        return e


def _make_filter(t, allow_downcast: bool, what: str):
    def filt(value):
        return t.filter(value, allow_downcast=allow_downcast, what=what)
    return filt


def _last_uses(order: list[Apply]) -> dict[Variable, int]:
    """For each variable, the step of the last node that reads it."""
    last: dict[Variable, int] = {}
    for step, node in enumerate(order):
        for v in node.inputs:
            last[v] = step
    return last


def _inplace_target(node: Apply, step: int, roots: dict, external: set, last_use: dict, protected: set,
                    ins: list[str]) -> str | None:
    """The name of a dead intermediate buffer a unary Elemwise can write into, if any."""
    if not isinstance(node.op, Elemwise) or len(node.inputs) != 1:
        return None
    (x,), out = node.inputs, node.outputs[0]
    if x.owner is None or x.ndim == 0 or x.dtype != out.dtype or x in protected or last_use.get(x) != step:
        return None
    root = roots.get(x, x)
    if root in external or isinstance(root, Constant) or root is not x:
        return None
    return ins[0]


def _describe(node: Apply) -> str:
    where = ""
    if node.trace is not None:
        where = f"  ({node.trace.filename.rsplit('/', 1)[-1]}:{node.trace.lineno})"
    return f"{node.op}{where}"



def nan_guard_check(value: Any, node: Apply, inputs: list) -> None:
    """Raise NanGuardError when ``value`` (a node's output) holds NaN or Inf."""
    if np.isfinite(value).all():
        return
    ranges = []
    for v in inputs:
        a = np.asarray(v)
        if a.size and a.dtype.kind in "fiub":
            with np.errstate(all="ignore"):
                ranges.append(f"{a.dtype}{list(a.shape)} in [{float(np.nanmin(a))}, {float(np.nanmax(a))}]"
                              f"{' with NaN' if a.dtype.kind == 'f' and np.isnan(a).any() else ''}")
        else:
            ranges.append(f"{a.dtype}{list(a.shape)}")
    bad = "NaN" if np.isnan(value).any() else "Inf"
    raise NanGuardError(f"nan_guard: {node.op} produced {bad}\nInput ranges: {'; '.join(ranges)}\n"
                        + node_context(node))
