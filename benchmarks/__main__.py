"""Run the benchmark workloads, each case in a fresh process, and report medians.

    python -m benchmarks [--workloads W1,W5] [--backends numpy,numpy_by_hand,jax] [--repeat 3] [--quick]

Prints a table (the median run's primary metric and its ratio to numpy by hand, measured in the
same run), writes every measurement to benchmarks/results/latest.json and, unless --quick,
the table with the machine description to benchmarks/RESULTS.md (``--render JSON`` rebuilds both
from a saved run without measuring).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

from benchmarks import report
from benchmarks.run_case import BACKENDS, WORKLOADS, variants

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_BACKENDS = ["numpy", "opencl", "numpy_by_hand", "pytensor", "jax"]


def _names(text: str, known, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; choose from {', '.join(known)}")
    return names


def run_case(workload: str, variant: str, backend: str, quick: bool, timeout: float) -> dict:
    """One fresh process for one measurement; its JSON line, or an error/timeout record."""
    cmd = [sys.executable, "-m", "benchmarks.run_case", workload, variant, backend] + (["--quick"] if quick else [])
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"[:200]}


def unavailable(backend: str) -> str | None:
    """Why ``backend`` cannot run here, or None."""
    module = BACKENDS[backend][1]
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install 'symgraph[bench]')"
    if backend == "opencl":
        res = subprocess.run([sys.executable, "-c", "import numpy as np, symgraph as sg, symgraph.tensor as T;"
                              "x = T.fvector(); sg.function([x], x + 1, backend='opencl')(np.ones(3, 'f'))"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        if res.returncode:
            return "OpenCL backend not usable here: " + (res.stderr.strip().splitlines() or ["?"])[-1][:150]
    return None


def compile_bytecode() -> None:
    """Write symgraph's bytecode files, as installing a package does: where Python writes none
    (PYTHONDONTWRITEBYTECODE, as on this project's machines), every case's process would compile
    each module it imports from source, 0.4 s inside a cold W4's sg.function that no installed
    copy pays. The peers' bytecode was written when pip installed them."""
    import compileall
    for package in ("symgraph", "backends"):
        compileall.compile_dir(os.path.join(ROOT, package), quiet=1)


def measure(workloads: list[str], backends: list[str], repeat: int, quick: bool, timeout: float) -> dict:
    """Run every case ``repeat`` times, each in a fresh process; the raw runs and their medians."""
    compile_bytecode()
    skipped = {b: why for b in backends if (why := unavailable(b))}
    for b, why in skipped.items():
        print(f"skipping {b}: {why}", file=sys.stderr)
    results = []
    for w in workloads:
        for v in variants(w, quick):
            for b in backends:
                if b in skipped:
                    continue
                entry = report.combine(w, v, b, [run_case(w, v, b, quick, timeout) for _ in range(repeat)])
                if entry is not None:
                    results.append(entry)
                    print(report.describe(entry), file=sys.stderr)
    return {"machine": report.machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "quick": quick,
            "repeat": repeat, "skipped": skipped, "results": results}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated from {','.join(WORKLOADS)}")
    p.add_argument("--backends", default=",".join(DEFAULT_BACKENDS), help=f"comma-separated from {','.join(BACKENDS)}")
    p.add_argument("--repeat", type=int, default=3, help="fresh processes per case; the median is reported")
    p.add_argument("--quick", action="store_true", help="smaller sizes, one repeat; does not touch RESULTS.md")
    p.add_argument("--timeout", type=float, default=300, help="seconds before a case is given up")
    p.add_argument("--json", default=os.path.join(HERE, "results", "latest.json"))
    p.add_argument("--markdown", default=os.path.join(HERE, "RESULTS.md"))
    p.add_argument("--note", default="", help="a sentence for RESULTS.md (e.g. what else ran meanwhile)")
    p.add_argument("--render", metavar="JSON", help="measure nothing: rebuild the table and RESULTS.md from a saved run")
    args = p.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            doc = json.load(f)
        backends = list(dict.fromkeys(e["backend"] for e in doc["results"]))
        doc["results"] = [report.combine(e["workload"], e["variant"], e["backend"], e["runs"]) for e in doc["results"]]
    else:
        backends = _names(args.backends, BACKENDS, "backends")
        doc = measure(_names(args.workloads, WORKLOADS, "workloads"), backends,
                      1 if args.quick else max(1, args.repeat), args.quick, args.timeout)
    results, skipped = doc["results"], doc["skipped"]
    report.add_ratios(results)
    table = report.table(results, backends, skipped)
    goals = report.goals(results)
    print(table + "\n\n" + goals)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"\nwrote {os.path.relpath(args.json)}", end="")
    if not doc["quick"]:
        with open(args.markdown, "w") as f:
            f.write(report.markdown(doc, table, goals, args.note))
        print(f" and {os.path.relpath(args.markdown)}", end="")
    print()
    return doc


if __name__ == "__main__":
    main()
