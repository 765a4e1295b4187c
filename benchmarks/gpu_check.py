"""The GPU check (issue 21, item 5): one run, under five minutes, on a fresh machine with a GPU.

    make gpu-check                      # = python -m benchmarks.gpu_check
    python -m benchmarks.gpu_check [--quick] [--allow-cpu] [--skip-tests] [--budget 285]

1. installs what is missing (pyopencl, whose wheel carries the OpenCL ICD loader, from .whl/ when
   that folder is there -- ``make gpu-wheels`` fills it on a machine with network -- else from the
   package index; this checkout, editable; NVIDIA's OpenCL driver registered with the loader when
   no .icd file names it);
2. lists the OpenCL devices and picks the best GPU; with none it says so, writes the listing to
   the JSON file and exits with status 3 (``--allow-cpu`` runs everything on a CPU device instead:
   it checks this script, its figures are no GPU figures);
3. measures, each in a fresh process on that device (SYMGRAPH_DEVICE): W1 at 10^8 on
   device-resident data (GB/s, % of the data-sheet memory bandwidth, and against a plain buffer
   copy measured in the same run), float32 GEMM 4096^3 (GFLOP/s, % of the FP32 peak), the W3 MLP
   step and the W8 convolution (OpenCL on the GPU against the numpy backend on the host);
4. runs the OpenCL test suite (``pytest tests -k opencl``) on that device with the time left;
5. writes benchmarks/results/gpu.json and prints a table, with the issue's goals met or missed.

Exit status: 0 all passed, 1 a measurement or test failed, 2 the setup failed, 3 no GPU device.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any

from benchmarks import gpu_setup as gs
from benchmarks import report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NO_GPU = 3
# name: (module, argv, full size, quick size, timeout s)
MEASURES: tuple[tuple[str, str, list[str], float, float, float], ...] = (
    ("copy", "benchmarks.gpu_measure", ["copy"], 1e8, 1e6, 60),
    ("W1", "benchmarks.gpu_measure", ["w1"], 1e8, 1e6, 90),
    ("GEMM", "benchmarks.gpu_measure", ["gemm"], 4096, 512, 90),
    ("W3", "benchmarks.run_case", ["W3", "step", "opencl"], 0, 0, 90),
    ("W3 numpy", "benchmarks.run_case", ["W3", "step", "numpy"], 0, 0, 60),
    ("W8", "benchmarks.run_case", ["W8", "N=32", "opencl"], 0, 0, 90),
    ("W8 numpy", "benchmarks.run_case", ["W8", "N=32", "numpy"], 0, 0, 60),
)
GOALS = {"bandwidth": (80.0, 70.0), "gemm": (50.0, 30.0)}  # % of peak: goal, floor


def say(msg: str) -> None:
    print(msg, flush=True)


def pick_device(devices: list[Any], allow_cpu: bool) -> Any | None:
    """The GPU with the most compute units and memory; a CPU device only when ``allow_cpu``."""
    gpus = [d for d in devices if "GPU" in d.type]
    pool = gpus or ([d for d in devices if "CPU" in d.type] if allow_cpu else [])
    return max(pool, key=lambda d: (d.compute_units, d.global_mem), default=None)


def run_json(module: str, argv: list[str], env: dict[str, str], timeout: float) -> dict:
    """Run ``python -m module argv`` in a fresh process; its last stdout line as JSON, or an error record."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        out = {"error": f"exit {proc.returncode}: {tail}"[:300]}
    out["wall_s"] = time.perf_counter() - start
    return out


def measure(env: dict[str, str], quick: bool, deadline: float) -> dict[str, dict]:
    """Every measurement of MEASURES, each given at most what is left before ``deadline``."""
    results = {}
    for name, module, argv, full, small, timeout in MEASURES:
        left = deadline - time.monotonic()
        if left < 5:
            results[name] = {"error": "not run: the time budget was spent"}
            continue
        size = [f"{small if quick else full:g}"] if full else []
        extra = ["--quick"] if quick and module == "benchmarks.run_case" else []
        results[name] = run_json(module, argv + size + extra, env, min(timeout, left))
        say(f"  {name:<9} {json.dumps(results[name])[:200]}")
    return results


def run_tests(env: dict[str, str], budget: float, junit: str) -> dict:
    """``pytest tests -k opencl`` on the chosen device; stopped (as by Ctrl-C, so pytest still reports)
    when ``budget`` seconds are spent. Counts from its JUnit XML, else from its summary line."""
    cmd = [sys.executable, "-m", "pytest", "tests", "-k", "opencl", "-q", "-p", "no:cacheprovider",
           f"--junitxml={junit}", "-o", "junit_family=xunit2"]
    if _has("xdist"):
        cmd += ["-n", str(min(8, os.cpu_count() or 1))]
    if _has("pytest_timeout"):
        cmd += ["--timeout", "120"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=max(1.0, budget))
        stopped = False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        stopped = True
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    counts = junit_counts(junit) or summary_counts(out)
    failed = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {**counts, "seconds": time.monotonic() - start, "stopped_at_budget": stopped, "returncode": proc.returncode,
            "failed_tests": failed[:40], "tail": out.strip().splitlines()[-5:]}


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def junit_counts(path: str) -> dict | None:
    """passed/failed/errors/skipped from a JUnit XML file, or None if there is none."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return {"passed": n["tests"] - n["failures"] - n["errors"] - n["skipped"], "failed": n["failures"],
            "errors": n["errors"], "skipped": n["skipped"]}


def summary_counts(text: str) -> dict:
    """The counts in pytest's last summary line ('3 failed, 10 passed, 2 skipped in 4.2s')."""
    found = dict.fromkeys(("passed", "failed", "errors", "skipped"), 0)
    for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", "\n".join(text.splitlines()[-3:])):
        found["errors" if word.startswith("error") else word] = int(number)
    return found


# --- the report -------------------------------------------------------------------------------

def _metric(results: dict, name: str, key: str) -> float | None:
    value = results.get(name, {}).get("metrics", {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def _pct(value: float | None, peak: float | None) -> float | None:
    return None if value is None or not peak else 100.0 * value / peak


def _goal(pct: float | None, kind: str) -> str:
    goal, floor = GOALS[kind]
    if pct is None:
        return "no peak figure to compare with"
    if pct >= goal:
        return f"goal {goal:.0f}% MET"
    return f"goal {goal:.0f}% missed (floor {floor:.0f}%: {'met' if pct >= floor else 'missed'})"


def summarize(doc: dict) -> list[dict]:
    """One row per figure: what, value, reference, percent, verdict."""
    res, peaks = doc["results"], doc["peaks"]
    w1, copy, gemm = _metric(res, "W1", "GB/s"), _metric(res, "copy", "GB/s"), _metric(res, "GEMM", "GFLOP/s")
    bw_pct, gemm_pct = _pct(w1, peaks["bandwidth_gbs"]), _pct(gemm, peaks["fp32_gflops"])
    rows = [
        {"what": "buffer copy (memory limit measured)", "value": copy, "unit": "GB/s",
         "reference": peaks["bandwidth_gbs"], "pct": _pct(copy, peaks["bandwidth_gbs"]), "verdict": ""},
        {"what": f"W1 n={res.get('W1', {}).get('metrics', {}).get('n', '?')} resident", "value": w1, "unit": "GB/s",
         "reference": peaks["bandwidth_gbs"], "pct": bw_pct,
         "verdict": _goal(bw_pct, "bandwidth") + (f"; {100 * w1 / copy:.0f}% of the copy" if w1 and copy else "")},
        {"what": f"GEMM f32 n={res.get('GEMM', {}).get('metrics', {}).get('n', '?')}", "value": gemm,
         "unit": "GFLOP/s", "reference": peaks["fp32_gflops"], "pct": gemm_pct, "verdict": _goal(gemm_pct, "gemm")},
    ]
    for w in ("W3", "W8"):
        dev, host = _metric(res, w, "ms"), _metric(res, f"{w} numpy", "ms")
        verdict = f"{host / dev:.2f}x as fast as the numpy backend on the host" if dev and host else ""
        rows.append({"what": f"{w} step, OpenCL on the device", "value": dev, "unit": "ms", "reference": host,
                     "pct": None, "verdict": verdict})
    return rows


def render(doc: dict) -> str:
    """The table printed at the end of the check."""
    dev = doc["device"]
    lines = [f"GPU check: {dev['name']} ({dev['spec']}, {dev['type']}, {dev['compute_units']} units) "
             f"on {dev['platform']}, {doc['date']}",
             f"peaks: memory {_num(doc['peaks']['bandwidth_gbs'])} GB/s ({doc['peaks']['bandwidth_source']}), "
             f"FP32 {_num(doc['peaks']['fp32_gflops'])} GFLOP/s ({doc['peaks']['fp32_source']})", "",
             f"| {'measure':<38} | {'value':>12} | {'reference':>10} | {'%':>5} | verdict |",
             "|" + "-" * 40 + "|" + "-" * 14 + "|" + "-" * 12 + "|" + "-" * 7 + "|---------|"]
    for r in summarize(doc):
        pct = "" if r["pct"] is None else f"{r['pct']:.0f}"
        value = "error" if r["value"] is None else f"{_num(r['value'])} {r['unit']}"
        lines.append(f"| {r['what']:<38} | {value:>12} | {_num(r['reference']):>10} | {pct:>5} | {r['verdict']} |")
    for name, r in doc["results"].items():
        if "error" in r:
            lines.append(f"  {name}: {r['error']}")
    t = doc.get("tests")
    if t:
        lines.append(f"\nOpenCL tests on the device: {t['passed']} passed, {t['failed']} failed, {t['errors']} errors, "
                     f"{t['skipped']} skipped in {t['seconds']:.0f} s"
                     + (" (stopped at the time budget)" if t["stopped_at_budget"] else ""))
        lines += ["  " + f for f in t["failed_tests"][:10]]
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "?" if v is None else f"{v:.3g}" if v < 100 else f"{v:.0f}"


def ok(doc: dict) -> bool:
    t = doc.get("tests") or {}
    return not any("error" in r for r in doc["results"].values()) and not t.get("failed") and not t.get("errors")


# --- the run ----------------------------------------------------------------------------------

def setup(install: bool) -> tuple[list[str], dict[str, str]]:
    """Install what is missing (unless ``install`` is False); the steps taken and the environment to run in."""
    env = dict(os.environ)
    steps = []
    if install:
        steps += [gs.ensure_modules(), gs.ensure_symgraph()]
    icd = gs.nvidia_icd(env)
    if icd:
        os.environ["OCL_ICD_VENDORS"] = env["OCL_ICD_VENDORS"]  # before pyopencl first asks for platforms
        steps.append(icd)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return steps, env


def _runtime_module(argv: list[str] | None, steps: list[str]) -> Any:
    """symgraph's OpenCL runtime module; when symgraph was installed just now (this process cannot
    import it yet), the check starts again in a fresh process, once, without installing."""
    try:
        return importlib.import_module("symgraph.backends.opencl.runtime")
    except ImportError:
        if os.environ.get("SG_GPU_CHECK_RESTARTED"):
            raise
    os.environ["SG_GPU_CHECK_RESTARTED"] = "1"
    os.environ["SG_GPU_CHECK_SETUP"] = json.dumps(steps)  # the restarted check reports them
    args = sys.argv[1:] if argv is None else argv
    os.execv(sys.executable, [sys.executable, "-m", "benchmarks.gpu_check", *args, "--no-install"])


def write(doc: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=str)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (checks the script, not the device)")
    p.add_argument("--allow-cpu", action="store_true", help="run on a CPU device when there is no GPU")
    p.add_argument("--skip-tests", action="store_true", help="measure only")
    p.add_argument("--no-install", action="store_true", help="install nothing")
    p.add_argument("--budget", type=float, default=285, help="seconds for the whole check")
    p.add_argument("--peak-bandwidth", type=float, help="the device's memory bandwidth, GB/s")
    p.add_argument("--peak-gflops", type=float, help="the device's FP32 peak, GFLOP/s")
    p.add_argument("--json", default=os.path.join(HERE, "results", "gpu.json"))
    args = p.parse_args(argv)
    deadline = time.monotonic() + args.budget
    doc: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": report.machine()}
    try:
        doc["setup"], env = setup(not args.no_install)
        doc["setup"] = json.loads(os.environ.pop("SG_GPU_CHECK_SETUP", "[]")) + doc["setup"]
        _runtime_module(argv, doc["setup"])  # symgraph importable (restarts the check once if not)
        found = importlib.import_module("symgraph.backends.opencl.devices")._devices()
    except Exception as e:  # noqa: BLE001  (whatever broke, the check reports it and stops)
        doc["status"] = f"setup failed: {type(e).__name__}: {e}"
        say(doc["status"])
        write(doc, args.json)
        return 2
    for step in doc["setup"]:
        say(f"setup: {step}")
    doc["devices"] = [info.describe() for info, _ in found]
    say("OpenCL devices:\n" + ("\n".join("  " + d for d in doc["devices"]) or "  (none)"))
    chosen = pick_device([info for info, _ in found], args.allow_cpu)
    if chosen is None:
        doc["status"] = "no GPU: no OpenCL GPU device on this machine; nothing measured"
        say(f"{doc['status']} (--allow-cpu runs the check on a CPU device). Wrote {os.path.relpath(args.json)}")
        write(doc, args.json)
        return NO_GPU
    cl_device = next(dev for info, dev in found if info is chosen)
    is_gpu = "GPU" in chosen.type
    env["SYMGRAPH_DEVICE"] = chosen.spec
    bw, bw_src = gs.peak_bandwidth_gbs(chosen.name, args.peak_bandwidth)
    fl, fl_src = gs.fp32_peak_gflops(chosen.name, cl_device, is_gpu, args.peak_gflops)
    doc.update(status="measured" if is_gpu else "measured on a CPU device (--allow-cpu): no GPU figures",
               device={"spec": chosen.spec, "name": chosen.name, "type": chosen.type, "platform": chosen.platform,
                       "compute_units": chosen.compute_units, "global_mem": chosen.global_mem,
                       "driver": getattr(cl_device, "driver_version", "?")},
               peaks={"bandwidth_gbs": bw, "bandwidth_source": bw_src, "fp32_gflops": fl, "fp32_source": fl_src},
               quick=args.quick)
    say(f"measuring on {chosen.describe()}")
    doc["results"] = measure(env, args.quick, deadline - (0 if args.skip_tests else 60))
    if not args.skip_tests:
        say("running the OpenCL test suite on the device")
        junit = os.path.join(os.path.dirname(os.path.abspath(args.json)), "gpu-tests.xml")
        doc["tests"] = run_tests(env, deadline - time.monotonic() - 35, junit)
    write(doc, args.json)
    say("\n" + render(doc) + f"\n\nwrote {os.path.relpath(args.json)}")
    return 0 if ok(doc) else 1


if __name__ == "__main__":
    sys.exit(main())
