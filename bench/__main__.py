"""Drift benchmark: ModelWatch vs Evidently vs NannyML, and ModelWatch vs an np.sort floor in its own process.

Run from the repo root: ``.venv/bin/python -m bench`` (``make bench``).
Each tool run is a separate subprocess (bench/peers.py) with a timeout; the
peers live in isolated venvs under bench/.venvs/, created here if missing.
Writes bench/results/drift.json and prints a table; then the label-free
estimator benchmark (bench/estimator.py -> bench/results/estimator.json);
then the API latency benchmark (bench/api_latency.py -> bench/results/api_latency.json;
alone: ``.venv/bin/python -m bench.api_latency``).
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
THROUGHPUT_TIMEOUT = 300  # s per tool run (whole subprocess incl. import + data generation)
ALARM_TIMEOUT = 400
# (rows, windows, scenarios); evidently only at 1k and 10k
# (rows, windows for modelwatch, windows for evidently, scenarios); window w is the
# same data for both, so evidently's verdicts sit beside modelwatch's first ones.
# 300 windows at 1k rows resolve a 1% false-alarm rate; evidently is too slow for more.
ALARM_PLAN = [
    (1_000, 300, 20, ["none"]),
    (1_000, 100, 20, ["one_0.25", "cat_0.1"]),
    (10_000, 20, 10, ["none", "one_0.25", "cat_0.1"]),
    (100_000, 10, 0, ["none", "one_0.25", "cat_0.1"]),
    (1_000_000, 5, 0, ["all_0.02"]),
]
#: heavy-tailed, column-level (bench/peers.py HEAVY_SCENARIOS): (rows, windows for modelwatch, windows for the
#: peers, scenarios); the peers judge the first windows, the same data as modelwatch's first ones
HEAVY_PLAN = [
    (1_000, 300, 20, ["heavy_none"]),
    (1_000, 100, 20, ["t3_scale_1.3", "lognormal_scale_1.3"]),
    (10_000, 20, 10, ["heavy_none", "t3_scale_1.3", "lognormal_scale_1.3"]),
    (100_000, 10, 3, ["heavy_none", "t3_scale_1.3", "lognormal_scale_1.3"]),
]
HEAVY_TOOLS = ["modelwatch", "evidently", "nannyml"]
THROUGHPUT_TOOLS = ["modelwatch", "modelwatch_1t", "evidently", "nannyml"]
NO_TRACE = {"evidently"}  # a second, traced call would take minutes; RSS only
ENV = dict(
    os.environ,
    NML_DISABLE_USAGE_LOGGING="1",
    DO_NOT_TRACK="1",
    EVIDENTLY_DISABLE_TELEMETRY="1",
    MODELWATCH_ROOT=str(ROOT),
    PYTHONWARNINGS="ignore",
)


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


def ratio(a: dict, b: dict) -> float | None:
    if a.get("status") == "ok" and b.get("status") == "ok" and b["wall_s"] > 0:
        return a["wall_s"] / b["wall_s"]
    return None


def _one_off(mw: dict) -> float | None:
    if mw.get("status") != "ok" or mw.get("profile_s") is None:
        return None
    return float(mw["profile_s"] + mw["wall_s"])


def _one_off_ratio(peer: dict, mw: dict) -> float | None:
    one_off = _one_off(mw)
    return peer["wall_s"] / one_off if peer.get("status") == "ok" and one_off else None


def bench_throughput() -> list[dict]:
    rows = []
    for n_rows, n_cols in THROUGHPUT_SIZES:
        res = {}
        for tool in THROUGHPUT_TOOLS:
            print(f"throughput {n_rows}x{n_cols} {tool} ...", flush=True)
            args = ["throughput", str(n_rows), str(n_cols), "7"] + ([] if tool in NO_TRACE else ["trace"])
            r = run_peer(tool, args, THROUGHPUT_TIMEOUT)
            if r.get("status") == "ok":
                r["row_features_per_s"] = n_rows * n_cols / r["wall_s"] if r["wall_s"] > 0 else None
                if "call_peak_mb" in r:  # what the call holds at its peak: its inputs + its own allocations
                    r["peak_over_input"] = (r["input_mb"] + r["call_peak_mb"]) / r["input_mb"]
            res[tool] = r
        rows.append(
            {
                "rows": n_rows,
                "cols": n_cols,
                "tools": res,
                "ratio_evidently_over_modelwatch": ratio(res["evidently"], res["modelwatch"]),
                "ratio_nannyml_over_modelwatch": ratio(res["nannyml"], res["modelwatch"]),
                # the floor (np.sort of every numeric column, reference and current) measured in the engine's
                # own process right before and after its calls
                "ratio_modelwatch_over_floor": res["modelwatch"].get("over_floor"),
                "ratio_evidently_over_modelwatch_1t": ratio(res["evidently"], res["modelwatch_1t"]),
                "ratio_nannyml_over_modelwatch_1t": ratio(res["nannyml"], res["modelwatch_1t"]),
                "ratio_modelwatch_1t_over_floor": res["modelwatch_1t"].get("over_floor"),
                # a one-off comparison: the profile is built, then used once (NannyML's fit is in its call)
                "one_off_modelwatch_s": _one_off(res["modelwatch"]),
                "ratio_nannyml_over_modelwatch_one_off": _one_off_ratio(res["nannyml"], res["modelwatch"]),
            }
        )
    return rows


def _rate(verdicts: list) -> float | None:
    v = [x for x in verdicts if x is not None]
    return sum(v) / len(v) if v else None


def bench_alarm() -> list[dict]:
    rows = []
    for n_rows, mw_windows, ev_windows, scenarios in ALARM_PLAN:
        for scen in scenarios:
            entry = {"rows": n_rows, "windows": mw_windows, "scenario": scen}
            for tool, windows in (("modelwatch", mw_windows), ("evidently", ev_windows)):
                if not windows:
                    continue
                print(f"alarm {n_rows} {scen} {tool} x{windows} ...", flush=True)
                r = run_peer(tool, ["alarm", str(n_rows), str(windows), scen, "11"], ALARM_TIMEOUT)
                if r.get("status") == "ok":
                    r["windows"] = windows
                    r["drift_rate"] = _rate(r["verdicts"])
                entry[tool] = r
            mw, ev = entry.get("modelwatch", {}), entry.get("evidently", {})
            if mw.get("status") == "ok" and ev.get("status") == "ok":  # modelwatch on evidently's windows
                mw["drift_rate_on_evidently_windows"] = _rate(mw["verdicts"][: ev["windows"]])
            rows.append(entry)
    return rows


def _heavy_rates(r: dict, windows: int | None = None) -> dict:
    """Detection (the changed column flagged) and false alarms (any other column flagged) over the windows."""
    ws = r["windows"][:windows] if windows else r["windows"]
    changed = r["changed"]
    other = [any(c != changed for c in w["columns"]) for w in ws]
    out = {"n": len(ws), "false_alarm_rate": sum(other) / len(ws) if ws else None}
    if changed is not None:
        out["detection_rate"] = sum(changed in w["columns"] for w in ws) / len(ws) if ws else None
    return out


def bench_heavy() -> list[dict]:
    rows = []
    for n_rows, mw_windows, peer_windows, scenarios in HEAVY_PLAN:
        for scen in scenarios:
            entry: dict = {"rows": n_rows, "scenario": scen}
            for tool in HEAVY_TOOLS:
                windows = mw_windows if tool == "modelwatch" else peer_windows
                print(f"heavy {n_rows} {scen} {tool} x{windows} ...", flush=True)
                r = run_peer(tool, ["columns", str(n_rows), str(windows), scen, "13"], ALARM_TIMEOUT)
                if r.get("status") == "ok":
                    r.update(_heavy_rates(r))
                    if tool == "modelwatch":
                        r["on_peer_windows"] = _heavy_rates(r, peer_windows)
                    r.pop("windows")  # the verdicts are summarised; the flagged columns per window are not kept
                entry[tool] = r
            rows.append(entry)
    return rows


def _fmt(x, spec=".2f", na="-") -> str:
    return na if x is None else format(x, spec)


def _cell(r: dict) -> str:
    if r.get("status") != "ok":
        return f"{r.get('status')}"
    return f"{r['wall_s']:.2f}s {r['row_features_per_s'] / 1e6:.1f}M/s"


def _mem(r: dict) -> str:
    if r.get("status") != "ok":
        return "-"
    if "call_peak_mb" in r:
        return f"+{r['call_peak_mb']:.0f}MB ({r['peak_over_input']:.2f}x)"
    return f"rss +{r['peak_mb'] - r['peak_mb_before_call']:.0f}MB"


def _size(r: dict) -> str:
    return f"{r['rows'] // 1000}k x {r['cols']}" if r["rows"] < 1e6 else f"{r['rows'] // 10**6}M x {r['cols']}"


def print_tables(result: dict) -> None:
    print("\n== Throughput: one window evaluation (wall s, row-features/s) ==")
    tools = THROUGHPUT_TOOLS
    print(
        f"{'size':<12}"
        + "".join(f"{t:<20}" for t in tools)
        + f"{'ev/mw':>7}{'nml/mw':>8}{'mw/floor':>9}{'nml/mw1t':>9}{'mw1t/floor':>11}{'floor':>8}"
        + f"{'mw profile':>11}{'nml/mw one-off':>15}"
    )
    for r in result["throughput"]:
        t = r["tools"]
        prof = t["modelwatch"].get("profile_s")
        print(
            f"{_size(r):<12}"
            + "".join(f"{_cell(t[x]):<20}" for x in tools)
            + f"{_fmt(r['ratio_evidently_over_modelwatch'], '.1f'):>7}"
            f"{_fmt(r['ratio_nannyml_over_modelwatch'], '.1f'):>8}{_fmt(r['ratio_modelwatch_over_floor'], '.1f'):>9}"
            f"{_fmt(r['ratio_nannyml_over_modelwatch_1t'], '.1f'):>9}"
            f"{_fmt(r['ratio_modelwatch_1t_over_floor'], '.1f'):>11}"
            f"{_fmt(t['modelwatch'].get('floor_s'), '.3f') + 's':>8}{_fmt(prof, '.2f') + 's':>11}"
            f"{_fmt(r['ratio_nannyml_over_modelwatch_one_off'], '.1f'):>15}"
        )
    print(
        "\n== Memory: what the call allocates at its peak (tracemalloc; in brackets: (input + that) / input,"
        " input = reference + current frames) =="
    )
    print(f"{'size':<12}{'input':>9}  " + "".join(f"{t:<22}" for t in tools))
    for r in result["throughput"]:
        t = r["tools"]
        print(
            f"{_size(r):<12}{t['modelwatch'].get('input_mb', 0):>7.0f}MB  "
            + "".join(f"{_mem(t[x]):<22}" for x in tools)
        )
    print("\n== Alarm quality: share of windows flagged as drifted (20 num + 2 cat features) ==")
    print(f"{'rows':>9}  {'scenario':<34}{'modelwatch':>16}{'evidently':>16}{'mw same windows':>17}")
    names = {
        "none": "no shift (false alarm rate)",
        "one_0.25": "0.25 sigma mean shift, 1 feature",
        "cat_0.1": "+0.1 share of one level, 1 cat",
        "all_0.02": "0.02 sigma shift, all numerics",
    }

    def rate(x: dict | None) -> str:
        if x is None:
            return "n/a"
        if x.get("status") != "ok":
            return str(x.get("status"))
        return f"{_fmt(x.get('drift_rate'), '.2f')} ({x['windows']})"

    for r in result["alarm"]:
        same = (r.get("modelwatch") or {}).get("drift_rate_on_evidently_windows")
        print(
            f"{r['rows']:>9}  {names[r['scenario']]:<34}{rate(r.get('modelwatch')):>16}"
            f"{rate(r.get('evidently')):>16}{_fmt(same, '.2f'):>17}"
        )
    print("(in brackets: windows; 'mw same windows' = modelwatch's rate on exactly the windows evidently judged)")
    print(
        "\n== Heavy tails, column level: 10 Student-t(3) + 10 lognormal(0,1) + 2 cat features; detection = the scaled"
        " column flagged, false alarms = windows with any other column flagged =="
    )
    print(f"{'rows':>9}  {'scenario':<28}" + "".join(f"{t:>24}" for t in HEAVY_TOOLS) + f"{'mw on peer windows':>22}")
    heavy_names = {
        "heavy_none": "no change: false alarms",
        "t3_scale_1.3": "t(3) scale x1.3: detection",
        "lognormal_scale_1.3": "lognormal scale x1.3: detection",
    }

    def heavy(x: dict | None, scen: str) -> str:
        if x is None or x.get("status") != "ok":
            return "n/a" if x is None else str(x.get("status"))
        main = x["false_alarm_rate"] if scen == "heavy_none" else x["detection_rate"]
        extra = "" if scen == "heavy_none" else f" fa {_fmt(x['false_alarm_rate'])}"
        return f"{_fmt(main)}{extra} ({x['n']})"

    for r in result.get("heavy", []):
        mw = r.get("modelwatch") or {}
        same = mw.get("on_peer_windows")
        print(
            f"{r['rows']:>9}  {heavy_names[r['scenario']]:<28}"
            + "".join(f"{heavy(r.get(t), r['scenario']):>24}" for t in HEAVY_TOOLS)
            + f"{heavy({'status': 'ok', **same}, r['scenario']) if same else '-':>22}"
        )


def main() -> None:
    t0 = time.perf_counter()
    ensure_venvs()
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "notes": (
            "wall_s = the best of up to 3 evaluation calls (fewer when they take over 10 s; "
            "walls_s lists them), the call only (data generation, imports and, for ModelWatch, "
            "the reference profile excluded; profile_s reported separately). Evidently/NannyML "
            "get raw reference+current (their fit is part of the call). modelwatch uses its default "
            "threads (up to 4, never more than the CPUs), modelwatch_1t one thread. call_peak_mb = "
            "tracemalloc peak of a second, untimed call (what the call allocates; not for evidently, "
            "too slow to repeat); input_mb = reference + current frames; peak_mb = ru_maxrss of the "
            "tool's subprocess. Evidently verdict = its default DriftedColumnsCount share >= 0.5. "
            "floor_s = np.sort of every numeric column of the reference and the current frame, best of 5, "
            "measured in ModelWatch's process right before and after its calls (the smaller of the two); "
            "over_floor = wall_s / floor_s. one_off = profile_s + wall_s (a profile built and used once). "
            "heavy = column-level verdicts on heavy-tailed data (each tool's defaults; NannyML: any method's alert). "
            f"Per-run timeout {THROUGHPUT_TIMEOUT}s (throughput), {ALARM_TIMEOUT}s (alarm)."
        ),
    }
    result["command"] = "make bench"
    result["run_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["machine"]["load_note"] = "machine load is not controlled (a shared 2-core machine)"
    result["throughput"] = bench_throughput()
    result["alarm"] = bench_alarm()
    result["heavy"] = bench_heavy()
    result["total_s"] = time.perf_counter() - t0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    from bench import estimator

    est = estimator.run()
    from bench import ab

    ab_result = ab.run()
    ab.RESULTS.write_text(json.dumps(ab_result, indent=2))
    # the fleet: one drift_hourly run of 50 versions under the real scheduler (its own stack and process)
    subprocess.run([sys.executable, "-m", "bench.fleet"], cwd=ROOT, check=False)
    # the volatility-regime model's skill on the real bars (its own process; bench/results/regime_skill.json)
    subprocess.run([sys.executable, "-m", "bench.regime_skill"], cwd=ROOT, check=False)
    from bench import api_latency

    api = api_latency.run()
    print_tables(result)
    estimator.print_table(est)
    ab.print_tables(ab_result)
    api_latency.print_table(api)
    print(
        f"\nwrote {RESULTS.relative_to(ROOT)}, {estimator.RESULTS.relative_to(ROOT)}, {ab.RESULTS.relative_to(ROOT)} "
        f"and {api_latency.RESULTS.relative_to(ROOT)} in {time.perf_counter() - t0:.0f}s"
    )


if __name__ == "__main__":
    main()
