"""Turn the measurements into medians, ratios, a table, the goal verdicts, and RESULTS.md."""
from __future__ import annotations

import importlib.metadata
import os
import platform

from benchmarks.run_case import BACKENDS, PRIMARY


def combine(workload: str, variant: str, backend: str, runs: list[dict]) -> dict | None:
    """The metrics of the median run (by the primary metric; the faster middle one for an even
    count), so a case's figures stay consistent; None where the backend has no such workload."""
    if all("skipped" in r for r in runs):
        return None
    entry = {"workload": workload, "variant": variant, "backend": backend, "runs": runs}
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        entry["error"] = errors[0]
        return entry
    key = PRIMARY[workload][0]
    ordered = sorted(runs, key=lambda r: r["metrics"][key])
    entry["metrics"] = dict(ordered[(len(ordered) - 1) // 2]["metrics"])  # the median run (lower middle)
    return entry


def add_ratios(results: list[dict]) -> None:
    """Each entry's primary metric divided by numpy-by-hand's for the same case (same run)."""
    base = {(e["workload"], e["variant"]): e["metrics"][PRIMARY[e["workload"]][0]]
            for e in results if e["backend"] == "numpy_by_hand" and "metrics" in e}
    for e in results:
        key = (e["workload"], e["variant"])
        if "metrics" in e and key in base and base[key] > 0:
            e["ratio"] = e["metrics"][PRIMARY[e["workload"]][0]] / base[key]


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def describe(entry: dict) -> str:
    """One line per case for the progress log."""
    what = entry.get("error") or ", ".join(f"{k} {_num(v)}" for k, v in entry["metrics"].items())
    return f"{entry['workload']} {entry['variant']:>10} {entry['backend']:>15}: {what}"


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "—"
    if "error" in entry:
        return "fails: " + entry["error"].split(":")[0]
    metric, unit = PRIMARY[entry["workload"]]
    ratio = f" ({entry['ratio']:.2f}×)" if "ratio" in entry else ""
    return f"{_num(entry['metrics'][metric])} {unit}{ratio}"


def table(results: list[dict], backends: list[str], skipped: dict) -> str:
    """Markdown table: one row per workload size, one column per backend; (×) = ratio to numpy by hand."""
    cols = [b for b in backends if b not in skipped]
    cases = list(dict.fromkeys((e["workload"], e["variant"]) for e in results))
    find = {(e["workload"], e["variant"], e["backend"]): e for e in results}
    lines = ["| workload | size | " + " | ".join(BACKENDS[b][0] for b in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for w, v in cases:
        lines.append(f"| {w} | {v} | " + " | ".join(_cell(find.get((w, v, b))) for b in cols) + " |")
    extra = []
    for e in results:
        others = {k: v for k, v in e.get("metrics", {}).items() if k != PRIMARY[e["workload"]][0]}
        if others:
            extra.append(f"| {e['workload']} | {e['variant']} | {BACKENDS[e['backend']][0]} | "
                         + ", ".join(f"{k} {_num(v)}" for k, v in others.items()) + " |")
    if extra:
        lines += ["", "| workload | size | implementation | other figures |", "|---|---|---|---|"] + extra
    errors = [f"- {e['workload']} {e['variant']} {BACKENDS[e['backend']][0]}: {e['error']}"
              for e in results if "error" in e]
    notes = [f"- {BACKENDS[b][0]} not measured: {why}" for b, why in skipped.items()]
    if errors or notes:
        lines += [""] + errors + notes
    return "\n".join(lines)


# --- goals (issue 9): (label, workload, variant, backend, goal check, minimum check) --------------

def _get(results, w, v, b):
    return next((e for e in results if (e["workload"], e["variant"], e["backend"]) == (w, v, b)), None)


def _or_none(x: float | None) -> float | None:
    return x if x else None


def _over(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def goals(results: list[dict]) -> str:
    """Each goal of issue 9 (and issue 5's W3 goal, issue 17's W8, issue 18's W9, issue 16's W10 and issue 14's W11
    goals) with the figure measured and
    whether the goal or the minimum is met."""
    def metric(w, v, b, key=None):
        e = _get(results, w, v, b)
        return None if e is None or "metrics" not in e else e["metrics"][key or PRIMARY[w][0]]

    def ratio(w, v, b):
        e = _get(results, w, v, b)
        return None if e is None else e.get("ratio")

    w2_peers = [x for x in (metric("W2", "5000 steps", "jax"), metric("W2", "5000 steps", "pytensor")) if x]
    w4_errors = [e for e in results if e["workload"] == "W4" and e["backend"] == "numpy" and "error" in e]
    rows = [
        ("W1 numpy backend no slower than by hand (1e7)", ratio("W1", "1e7", "numpy"), "×", 1.0, 1.0),
        ("W1 OpenCL ≤ 12 ms; at least 3× numpy (1e7)", metric("W1", "1e7", "opencl"), "ms", 12.0,
         (metric("W1", "1e7", "numpy_by_hand") or 0) / 3 or None),
        ("W2 numpy ≤ 0.12 s; at least faster than JAX and PyTensor", metric("W2", "5000 steps", "numpy"), "s",
         0.12, min(w2_peers) if w2_peers else None),
        ("W3 numpy within 1.05× of by hand", ratio("W3", "step", "numpy"), "×", 1.05, 1.05),
        ("W3 OpenCL within 1.5× of by hand", ratio("W3", "step", "opencl"), "×", 1.5, 1.5),
        ("W3 OpenCL within 1.5× of the numpy backend (issue 5)", _over(metric("W3", "step", "opencl"),
                                                                      metric("W3", "step", "numpy")), "×", 1.5, 1.5),
        ("W4 N=1000 ≤ 0.3 s; at least < 1 s", metric("W4", "N=1000", "numpy"), "s", 0.3, 1.0),
        ("W4 N=3000 ≤ 1 s", metric("W4", "N=3000", "numpy"), "s", 1.0, None),
        ("W5 ≤ 1.5 µs per call; at least ≤ 2 µs", metric("W5", "call", "numpy"), "µs", 1.5, 2.0),
        ("W4 OpenCL N=1000 with empty kernel caches ≤ 1.5 s (issue 21)", metric("W4", "N=1000 cold", "opencl"),
         "s", 1.5, _or_none(metric("W4", "N=1000 cold", "jax"))),
        ("W4 OpenCL N=3000 with empty kernel caches ≤ 4 s (issue 21)", metric("W4", "N=3000 cold", "opencl"),
         "s", 4.0, None),
        ("W5 OpenCL ≤ 5 µs per call (issue 21)", metric("W5", "call", "opencl"), "µs", 5.0, None),
        ("W6 OpenCL ≤ 0.05 s total (issue 21)", metric("W6", "1500 steps", "opencl"), "s", 0.05, None)] + [
        (f"{w} OpenCL within 1.2× of the numpy backend (issue 21)",
         _over(metric(w, v, "opencl"), metric(w, v, "numpy")), "×", 1.2, None)
        for w, v in (("W2", "5000 steps"), ("W3", "step"), ("W5", "call"), ("W6", "1500 steps"))] + [
        ("W6 ≤ 0.03 s total; at least ≤ 0.05 s", metric("W6", "1500 steps", "numpy"), "s", 0.03, 0.05),
    ] + [(f"W9 {case} (n=500) within 1.2× of scipy by hand (issue 18)", ratio("W9", f"{case} n=500", "numpy"), "×",
          1.2, 1.2) for case in ("slogdet", "slogdet+grad", "solve", "solve+grad")] + [
("W8 numpy forward within 2.5× of one GEMM of its FLOPs (issue 17)",
         _over(metric("W8", "N=32", "numpy", "fwd_ms"), metric("W8", "N=32", "numpy_by_hand", "gemm_ms")), "×", 2.5,
         None),
        ("W8 numpy forward+backward within 1.5× of JAX (issue 17)",
         _over(metric("W8", "N=32", "numpy"), metric("W8", "N=32", "jax")), "×", 1.5, None),
        ("W8 OpenCL forward+backward within 1.5× of JAX on a CPU device",
         _over(metric("W8", "N=32", "opencl"), metric("W8", "N=32", "jax")), "×", 1.5, None),
        ("W7 RNN fwd+bwd (T=100): numpy backend within 1.5× of JAX (issue 15)",
         _over(metric("W7", "T=100", "numpy"), metric("W7", "T=100", "jax")), "×", 1.5, None),
        ("W7 RNN fwd+bwd (T=100): OpenCL within 1.5× of the numpy backend (issue 15)",
         _over(metric("W7", "T=100", "opencl"), metric("W7", "T=100", "numpy")), "×", 1.5, None),
        ("W2 in one call (sg.scan_updates) ≤ 0.12 s; at least faster than step by step (issue 15)",
         metric("W2", "5000 steps, one call", "numpy"), "s", 0.12, metric("W2", "5000 steps", "numpy")),
        ("W2 in one call on OpenCL (the one-kernel loop) ≤ 0.12 s (issue 15)",
         metric("W2", "5000 steps, one call", "opencl"), "s", 0.12, metric("W2", "5000 steps", "opencl")),
        ("W10 10^7 float32 uniforms on the numpy backend ≤ 100 ms (issue 16)", metric("W10", "uniform 1e7", "numpy"),
         "ms", 100.0, None),
        ("W10 OpenCL uniforms within 1.2× of a write-only kernel (issue 16)",
         metric("W10", "uniform 1e7", "opencl", "vs_write_only"), "×", 1.2, None),
        ("W10 OpenCL dropout fused: ≤ 1.2× the kernel without it (issue 16)",
         metric("W10", "dropout 1e7", "opencl", "vs_no_dropout"), "×", 1.2, None)] + [
        (f"W11 {name}: ifelse(c, expensive(x), x) with c false ≤ 5% of the taken case (issue 14)",
         metric("W11", "branch n=400", b, "vs_taken"), "×", 0.05, None)
        for b, name in (("numpy", "numpy"), ("opencl", "OpenCL"))] + [
        ("W11 a compiled ifelse adds ≤ 1 µs per call on the numpy backend (issue 14)",
         metric("W11", "call", "numpy", "overhead_us"), "µs", 1.0, None)]
    lines = ["| goal | measured | verdict |", "|---|---|---|"]
    for label, value, unit, goal, least in rows:
        if value is None:
            verdict, shown = "not measured", "—"
        else:
            shown = f"{value:.3f} {unit}" if unit == "×" else f"{_num(value)} {unit}"  # a ratio at a bound: 3 decimals
            verdict = ("goal met" if value <= goal else "minimum met" if least is not None and value <= least
                       else "not met")
        lines.append(f"| {label} | {shown} | {verdict} |")
    loss_sym, loss_hand = metric("W2", "5000 steps", "numpy", "final_loss"), metric("W2", "5000 steps",
                                                                                 "numpy_by_hand", "final_loss")
    if loss_sym is not None and loss_hand is not None:
        same = abs(loss_sym - loss_hand) <= 1e-3 * max(1.0, abs(loss_hand))
        lines.append(f"| W2 same final loss as by hand | {loss_sym:.5f} vs {loss_hand:.5f} | "
                     f"{'goal met' if same else 'not met'} |")
    any_w4 = any(e["workload"] == "W4" and e["backend"] == "numpy" for e in results)
    if any_w4:
        lines.append(f"| W4 no recursion-limit failure at any N | "
                     f"{'failures: ' + '; '.join(e['error'] for e in w4_errors) if w4_errors else 'none'} | "
                     f"{'not met' if w4_errors else 'goal met'} |")
    return "\n".join(lines)


def machine() -> dict:
    """CPU, cores, memory, OS, and the versions of Python and the libraries measured."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    versions = {}
    for pkg in ("numpy", "symgraph", "pyopencl", "jax", "pytensor", "numba"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "os": platform.platform(),
            "python": platform.python_version(), "versions": versions}


def markdown(doc: dict, table_md: str, goals_md: str, note: str) -> str:
    """RESULTS.md: how to reproduce, the machine, the table, and the goal verdicts."""
    m = doc["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return f"""# Benchmark results

Measured {doc['date']} with `python -m benchmarks --repeat {doc['repeat']}` (`make bench`): every case runs
in a fresh process, {doc['repeat']} times; the figures are those of the median run, and (×) is the ratio to numpy by hand
measured in the same run (lower is faster). Workloads are defined in issue 9 and `benchmarks/data.py`.
Every case's process asks glibc's malloc to keep freed memory for reuse as symgraph's functions do
(`symgraph/compile/host_memory.py`), so the peers that allocate with numpy (by hand, PyTensor) pay
no more page faults than symgraph does.

**Machine:** {m['cpu']}, {m['cores']} cores, {m['memory']} RAM; {m['os']}; Python {m['python']}; {versions}.
{note}

{table_md}

## Goals (issue 9)

{goals_md}

Reproduce: `python -m benchmarks` (all), or e.g. `python -m benchmarks --workloads W1,W5 --backends numpy,numpy_by_hand`;
`--quick` for a smoke run. Raw figures: `benchmarks/results/latest.json`.
"""
