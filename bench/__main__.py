"""Drift benchmark: ModelWatch vs Evidently vs NannyML vs an np.sort floor.

Run from the repo root: ``.venv/bin/python -m bench`` (``make bench``).
Each tool run is a separate subprocess (bench/peers.py) with a timeout; the
peers live in isolated venvs under bench/.venvs/, created here if missing.
Writes bench/results/drift.json and prints a table; then the label-free
estimator benchmark (bench/estimator.py -> bench/results/estimator.json).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEERS = BENCH / "peers.py"
VENVS = BENCH / ".venvs"
RESULTS = BENCH / "results" / "drift.json"
PEER_REQS = {
    "evidently": ["evidently==0.7.*", "pandas<3"],
    "nannyml": ["nannyml==0.13.*", "statsmodels"],
}
THROUGHPUT_SIZES = [(100_000, 50), (1_000_000, 20), (100_000, 200)]
THROUGHPUT_TIMEOUT = 120  # s per tool run (whole subprocess incl. import + data generation)
ALARM_TIMEOUT = 400
# (rows, windows, scenarios); evidently only at 1k and 10k
ALARM_PLAN = [
    (1_000, 20, ["none", "one_0.25", "cat_0.1"]),
    (10_000, 10, ["none", "one_0.25", "cat_0.1"]),
    (100_000, 10, ["none", "one_0.25", "cat_0.1"]),
    (1_000_000, 5, ["all_0.02"]),
]
EVIDENTLY_ALARM_ROWS = {1_000, 10_000}
ENV = dict(os.environ, NML_DISABLE_USAGE_LOGGING="1", DO_NOT_TRACK="1",
           EVIDENTLY_DISABLE_TELEMETRY="1", MODELWATCH_ROOT=str(ROOT), PYTHONWARNINGS="ignore")


def python_for(tool: str) -> Path:
    if tool in PEER_REQS:
        return VENVS / tool / "bin" / "python"
    return Path(sys.executable)


def ensure_venvs() -> None:
    for tool, reqs in PEER_REQS.items():
        py = python_for(tool)
        if py.exists():
            continue
        print(f"creating peer venv {py.parent.parent} ...", flush=True)
        subprocess.run(["python3", "-m", "venv", str(py.parent.parent)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *reqs], check=True)


def run_peer(tool: str, args: list[str], timeout: float) -> dict:
    cmd = [str(python_for(tool)), str(PEERS), args[0], tool, *args[1:]]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "process_wall_s": time.perf_counter() - t, "timeout_s": timeout}
    wall = time.perf_counter() - t
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        return {"status": "failed", "process_wall_s": wall, "error": " | ".join(err[-3:])[:500]}
    out = json.loads(lines[-1])
    out["process_wall_s"] = wall
    return out


def _ratio(a: dict, b: dict) -> float | None:
    if a.get("status") == "ok" and b.get("status") == "ok" and b["wall_s"] > 0:
        return a["wall_s"] / b["wall_s"]
    return None


def bench_throughput() -> list[dict]:
    rows = []
    for n_rows, n_cols in THROUGHPUT_SIZES:
        res = {}
        for tool in ["modelwatch", "sort", "evidently", "nannyml"]:
            print(f"throughput {n_rows}x{n_cols} {tool} ...", flush=True)
            r = run_peer(tool, ["throughput", str(n_rows), str(n_cols), "7"], THROUGHPUT_TIMEOUT)
            if r.get("status") == "ok":
                r["row_features_per_s"] = n_rows * n_cols / r["wall_s"] if r["wall_s"] > 0 else None
            res[tool] = r
        rows.append({
            "rows": n_rows, "cols": n_cols, "tools": res,
            "ratio_evidently_over_modelwatch": _ratio(res["evidently"], res["modelwatch"]),
            "ratio_nannyml_over_modelwatch": _ratio(res["nannyml"], res["modelwatch"]),
            "ratio_modelwatch_over_sort": _ratio(res["modelwatch"], res["sort"]),
        })
    return rows


def bench_alarm() -> list[dict]:
    rows = []
    for n_rows, windows, scenarios in ALARM_PLAN:
        for scen in scenarios:
            entry = {"rows": n_rows, "windows": windows, "scenario": scen}
            tools = ["modelwatch"] + (["evidently"] if n_rows in EVIDENTLY_ALARM_ROWS else [])
            for tool in tools:
                print(f"alarm {n_rows} {scen} {tool} x{windows} ...", flush=True)
                r = run_peer(tool, ["alarm", str(n_rows), str(windows), scen, "11"], ALARM_TIMEOUT)
                if r.get("status") == "ok":
                    v = [x for x in r["verdicts"] if x is not None]
                    r["drift_rate"] = sum(v) / len(v) if v else None
                entry[tool] = r
            rows.append(entry)
    return rows


def _fmt(x, spec=".2f", na="-") -> str:
    return na if x is None else format(x, spec)


def _cell(r: dict) -> str:
    if r.get("status") != "ok":
        return f"{r.get('status')}"
    return f"{r['wall_s']:.2f}s {r['peak_mb']:.0f}MB {r['row_features_per_s'] / 1e6:.1f}M/s"


def print_tables(result: dict) -> None:
    print("\n== Throughput: one window evaluation (wall s, peak RSS of the process, row-features/s) ==")
    print(f"{'size':<12}{'modelwatch':<26}{'evidently':<26}{'nannyml':<26}{'np.sort floor':<26}"
          f"{'ev/mw':>7}{'nml/mw':>8}{'mw/sort':>8}{'mw profile':>11}")
    for r in result["throughput"]:
        t = r["tools"]
        size = f"{r['rows'] // 1000}k x {r['cols']}" if r["rows"] < 1e6 else f"{r['rows'] // 10**6}M x {r['cols']}"
        prof = t["modelwatch"].get("profile_s")
        print(f"{size:<12}{_cell(t['modelwatch']):<26}{_cell(t['evidently']):<26}{_cell(t['nannyml']):<26}"
              f"{_cell(t['sort']):<26}{_fmt(r['ratio_evidently_over_modelwatch'], '.1f'):>7}"
              f"{_fmt(r['ratio_nannyml_over_modelwatch'], '.1f'):>8}{_fmt(r['ratio_modelwatch_over_sort'], '.1f'):>8}"
              f"{_fmt(prof, '.2f') + 's':>11}")
    print("\n== Alarm quality: share of windows flagged as drifted (20 num + 2 cat features) ==")
    print(f"{'rows':>9} {'windows':>7}  {'scenario':<34}{'modelwatch':>11}{'evidently':>11}")
    names = {"none": "no shift (false alarm rate)", "one_0.25": "0.25 sigma mean shift, 1 feature",
             "cat_0.1": "+0.1 share of one level, 1 cat", "all_0.02": "0.02 sigma shift, all numerics"}
    for r in result["alarm"]:
        def rate(tool):
            x = r.get(tool)
            if x is None:
                return "n/a"
            return _fmt(x.get("drift_rate"), ".2f") if x.get("status") == "ok" else x.get("status")
        print(f"{r['rows']:>9} {r['windows']:>7}  {names[r['scenario']]:<34}{rate('modelwatch'):>11}{rate('evidently'):>11}")


def main() -> None:
    t0 = time.perf_counter()
    ensure_venvs()
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "notes": ("wall_s = one evaluation call only (data generation, imports and, for ModelWatch, "
                  "the reference profile excluded; profile_s reported separately). Evidently/NannyML "
                  "get raw reference+current (their fit is part of the call). peak_mb = ru_maxrss of the "
                  "tool's own subprocess (includes the generated frames; peak_mb_before_call is the level "
                  "before the timed call). Evidently verdict = its default DriftedColumnsCount share >= 0.5. "
                  f"Per-run timeout {THROUGHPUT_TIMEOUT}s (throughput), {ALARM_TIMEOUT}s (alarm)."),
    }
    result["command"] = "make bench"
    result["run_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["machine"]["load_note"] = "machine load is not controlled (a shared 2-core machine)"
    result["throughput"] = bench_throughput()
    result["alarm"] = bench_alarm()
    result["total_s"] = time.perf_counter() - t0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    from bench import estimator

    est = estimator.run()
    print_tables(result)
    estimator.print_table(est)
    print(f"\nwrote {RESULTS.relative_to(ROOT)} and {estimator.RESULTS.relative_to(ROOT)} "
          f"in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
