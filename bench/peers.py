"""Benchmark worker: one tool, one job, in its own process.

Run by ``python -m bench`` in the project venv (modelwatch) or in the
isolated peer venvs (evidently, nannyml)::

    python bench/peers.py throughput TOOL ROWS COLS SEED [trace]
    python bench/peers.py alarm TOOL ROWS WINDOWS SCENARIO SEED
    python bench/peers.py columns TOOL ROWS WINDOWS SCENARIO SEED

Data are generated from the seed inside this process (so nothing big crosses
a pipe); the same generator is imported by ``bench.__main__``. One JSON line
is printed on stdout. Works with pandas 2 and 3.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import warnings

import numpy as np
import pandas as pd

LEVELS = np.array(["a", "b", "c", "d", "e"], dtype=object)
BASE_P = np.array([0.2, 0.2, 0.2, 0.2, 0.2])


def columns(n_cols: int, cat_share: float = 0.1) -> tuple[list[str], list[str]]:
    n_cat = max(1, int(round(n_cols * cat_share)))
    return [f"num_{i}" for i in range(n_cols - n_cat)], [f"cat_{i}" for i in range(n_cat)]


def make_frame(
    n_rows: int,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    shift: dict | None = None,
    cat_p: dict | None = None,
) -> pd.DataFrame:
    """Standard normal numerics, uniform 5-level categoricals.

    ``shift``: {column: mean shift in sigma}; ``cat_p``: {column: probabilities}.
    """
    rng = np.random.default_rng(seed)
    shift = shift or {}
    cat_p = cat_p or {}
    data = {}
    for c in numeric:
        data[c] = rng.standard_normal(n_rows) + float(shift.get(c, 0.0))
    for c in categorical:
        data[c] = LEVELS[rng.choice(5, size=n_rows, p=cat_p.get(c, BASE_P))]
    return pd.DataFrame(data)


def scenario_frames(scenario: str, n_rows: int, window: int, seed: int):
    """Alarm-quality windows: 20 numeric + 2 categorical features.

    Reference and current are fresh independent draws of ``n_rows`` each per window.
    Scenarios: none | all_0.02 | one_0.25 | cat_0.1.
    """
    numeric, categorical = [f"num_{i}" for i in range(20)], ["cat_0", "cat_1"]
    ref = make_frame(n_rows, numeric, categorical, seed * 100003 + 2 * window)
    shift, cat_p = {}, {}
    if scenario == "all_0.02":
        shift = {c: 0.02 for c in numeric}
    elif scenario == "one_0.25":
        shift = {"num_0": 0.25}
    elif scenario == "cat_0.1":
        cat_p = {"cat_0": np.array([0.3, 0.175, 0.175, 0.175, 0.175])}
    elif scenario != "none":
        raise ValueError(scenario)
    cur = make_frame(n_rows, numeric, categorical, seed * 100003 + 2 * window + 1, shift, cat_p)
    return ref, cur, numeric, categorical


#: Heavy-tailed scenarios (column-level): num_0..num_9 Student-t with 3 df, num_10..num_19 lognormal(0, 1), and
#: the 2 uniform categoricals; scenario -> (column, factor) whose values are multiplied (a scale change).
HEAVY_SCENARIOS: dict[str, tuple[str, float] | None] = {
    "heavy_none": None,
    "t3_scale_1.3": ("num_0", 1.3),
    "lognormal_scale_1.3": ("num_10", 1.3),
}


def heavy_frame(n_rows: int, seed: int, scale: tuple[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {}
    for i in range(20):
        x = rng.standard_t(3, n_rows) if i < 10 else rng.lognormal(0.0, 1.0, n_rows)
        if scale is not None and scale[0] == f"num_{i}":
            x = x * scale[1]
        data[f"num_{i}"] = x
    for c in ("cat_0", "cat_1"):
        data[c] = LEVELS[rng.choice(5, size=n_rows, p=BASE_P)]
    return pd.DataFrame(data)


def heavy_frames(scenario: str, n_rows: int, window: int, seed: int):
    """Reference and current: fresh independent heavy-tailed draws per window; the scenario's column scaled."""
    if scenario not in HEAVY_SCENARIOS:
        raise ValueError(scenario)
    ref = heavy_frame(n_rows, seed * 100003 + 2 * window)
    cur = heavy_frame(n_rows, seed * 100003 + 2 * window + 1, HEAVY_SCENARIOS[scenario])
    return ref, cur, [f"num_{i}" for i in range(20)], ["cat_0", "cat_1"]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# --------------------------------------------------------------------------- #
# tools: prepare(ref, numeric, categorical) -> state (untimed for modelwatch only)
#        run(state, cur) -> dataset-level drift verdict (bool) or None


def _modelwatch():
    sys.path.insert(0, os.environ.get("MODELWATCH_ROOT", os.getcwd()))
    from include.modelwatch.monitoring import drift

    config = drift.DriftConfig()
    timing = {}

    def prepare(ref, numeric, categorical):
        t = time.perf_counter()
        profile = drift.build_reference_profile(ref, numeric=numeric, categorical=categorical, importance=None)
        timing["profile_s"] = time.perf_counter() - t
        return profile

    def run(profile, cur):
        return bool(drift.evaluate_window(profile, cur, config).drifted)

    return prepare, run, timing


def _modelwatch_1t():
    """ModelWatch with ``threads=1``: the engine's single-core speed."""
    prepare, run, timing = _modelwatch()
    from include.modelwatch.monitoring import drift

    config = drift.DriftConfig(threads=1)
    return prepare, (lambda profile, cur: bool(drift.evaluate_window(profile, cur, config).drifted)), timing


def _evidently():
    from evidently import Report
    from evidently.presets import DataDriftPreset

    def prepare(ref, numeric, categorical):
        return ref

    def run(ref, cur):
        snap = Report([DataDriftPreset()]).run(cur, ref)
        for m in snap.dict()["metrics"]:
            if str(m.get("metric_name", "")).startswith("DriftedColumnsCount"):
                share = float(m["value"]["share"])
                thr = float(m.get("config", {}).get("drift_share", 0.5))
                return share >= thr
        return None

    return prepare, run, {}


def _nannyml():
    import nannyml as nml

    def prepare(ref, numeric, categorical):
        return (ref, numeric, categorical)

    def run(state, cur):
        ref, numeric, categorical = state
        calc = nml.UnivariateDriftCalculator(
            column_names=numeric + categorical,
            treat_as_categorical=categorical,
            continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
            categorical_methods=["chi2", "jensen_shannon"],
            chunk_number=1,
        )
        calc.fit(ref)
        calc.calculate(cur)
        return None

    return prepare, run, {}


# --------------------------------------------------------------------------- #
# column-level verdicts: flagged(ref, cur, numeric, categorical) -> the columns the tool calls drifted, with
# each tool's defaults (ModelWatch: drifted features; Evidently: its per-column ValueDrift test at its default
# method and threshold; NannyML: a column with an alert from any of its methods)


def _modelwatch_columns():
    sys.path.insert(0, os.environ.get("MODELWATCH_ROOT", os.getcwd()))
    from include.modelwatch.monitoring import drift

    config = drift.DriftConfig()

    def flagged(ref, cur, numeric, categorical):
        profile = drift.build_reference_profile(ref, numeric=numeric, categorical=categorical, importance=None)
        result = drift.evaluate_window(profile, cur, config)
        return {"columns": [f.feature for f in result.features if f.drifted], "window": bool(result.drifted)}

    return flagged


def _evidently_columns():
    import re

    from evidently import Report
    from evidently.presets import DataDriftPreset

    name = re.compile(r"ValueDrift\(column=(?P<col>[^,]+),method=(?P<method>[^,]+),threshold=(?P<thr>[^)]+)\)")

    def flagged(ref, cur, numeric, categorical):
        snap = Report([DataDriftPreset()]).run(cur, ref)
        cols = []
        for m in snap.dict()["metrics"]:
            hit = name.fullmatch(str(m.get("metric_name", "")))
            if not hit:
                continue
            value, thr = float(m["value"]), float(hit["thr"])
            # p-value methods drift below the threshold, distances at or above it
            drifted = value < thr if "p_value" in hit["method"] else value >= thr
            if drifted:
                cols.append(hit["col"])
        return {"columns": cols}

    return flagged


#: NannyML derives its KS / Jensen-Shannon alert thresholds from the spread of the reference's chunks (one
#: reference chunk gives a threshold of 0: every column alerts), so its column verdicts use 10 chunks, as its docs
#: do: thresholds from the 10 reference chunks, a column flagged when any method alerts in any current chunk
NANNYML_CHUNKS = 10


def _nannyml_columns():
    import nannyml as nml

    def flagged(ref, cur, numeric, categorical):
        calc = nml.UnivariateDriftCalculator(
            column_names=numeric + categorical,
            treat_as_categorical=categorical,
            continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
            categorical_methods=["chi2", "jensen_shannon"],
            chunk_number=NANNYML_CHUNKS,
        )
        calc.fit(ref)
        df = calc.calculate(cur).filter(period="analysis").to_df()
        cols = sorted({c[0] for c in df.columns if len(c) == 3 and c[2] == "alert" and bool(df[c].any())})
        return {"columns": cols}

    return flagged


COLUMN_TOOLS = {"modelwatch": _modelwatch_columns, "evidently": _evidently_columns, "nannyml": _nannyml_columns}


def columns_job(tool: str, n_rows: int, windows: int, scenario: str, seed: int) -> dict:
    """Per window, the columns each tool flags on the heavy-tailed scenario (window w is the same data for every
    tool); ``changed`` is the scaled column (None: nothing changed)."""
    flagged = COLUMN_TOOLS[tool]()
    out = []
    t = time.perf_counter()
    for w in range(windows):
        ref, cur, numeric, categorical = heavy_frames(scenario, n_rows, w, seed)
        out.append(flagged(ref, cur, numeric, categorical))
    changed = HEAVY_SCENARIOS[scenario]
    return {
        "status": "ok",
        "windows": out,
        "changed": changed[0] if changed else None,
        "wall_s": time.perf_counter() - t,
    }


TOOLS = {
    "modelwatch": _modelwatch,
    "modelwatch_1t": _modelwatch_1t,
    "evidently": _evidently,
    "nannyml": _nannyml,
}


#: timed floor calls, before and after the engine's (the best counts)
FLOOR_REPEATS = 5


def _floor(ref: pd.DataFrame, cur: pd.DataFrame, numeric: list[str]) -> float:
    """The speed floor of a window evaluation: ``np.sort`` of every numeric column of the reference and of the
    current frame (ModelWatch's reference is pre-sorted in its profile, so it only sorts the current window and
    can beat this); best of FLOOR_REPEATS."""
    arrays = [df[c].to_numpy() for df in (ref, cur) for c in numeric]
    best = float("inf")
    for _ in range(FLOOR_REPEATS):
        t = time.perf_counter()
        for a in arrays:
            np.sort(a)
        best = min(best, time.perf_counter() - t)
    return best


def _frame_mb(df: pd.DataFrame) -> float:
    return float(df.memory_usage(deep=True).sum()) / 2**20


#: Timed calls per tool and size: the best of REPEATS, as long as the calls so far
#: took less than REPEAT_BELOW_S together (a shared VM's timings vary by ~30%).
REPEATS, REPEAT_BELOW_S = 3, 10.0


def throughput(tool: str, n_rows: int, n_cols: int, seed: int, trace_memory: bool) -> dict:
    """Time the evaluation call (best of up to REPEATS); then, with ``trace_memory``, repeat it under
    tracemalloc (untimed) for the memory the call itself allocates at its peak
    (numpy and pandas buffers are traced)."""
    prepare, run, timing = TOOLS[tool]()
    numeric, categorical = columns(n_cols)
    ref = make_frame(n_rows, numeric, categorical, seed)
    cur = make_frame(n_rows, numeric, categorical, seed + 1)
    state = prepare(ref, numeric, categorical)  # modelwatch: profile built here, timed separately
    mb_before = peak_mb()
    floor_before = _floor(ref, cur, numeric) if tool.startswith("modelwatch") else None
    walls = []
    while not walls or (len(walls) < REPEATS and sum(walls) < REPEAT_BELOW_S):
        t = time.perf_counter()
        run(state, cur)
        walls.append(time.perf_counter() - t)
    floor_after = _floor(ref, cur, numeric) if tool.startswith("modelwatch") else None
    out = {
        "status": "ok",
        "wall_s": min(walls),
        "walls_s": walls,
        "peak_mb": peak_mb(),
        "peak_mb_before_call": mb_before,
        "input_mb": _frame_mb(ref) + _frame_mb(cur),
        "current_mb": _frame_mb(cur),
    }
    if floor_before is not None and floor_after is not None:
        # the honest floor, measured in this process right before and after the engine's calls
        out["floor_s"] = min(floor_before, floor_after)
        out["floor_before_after_s"] = [floor_before, floor_after]
        out["over_floor"] = out["wall_s"] / out["floor_s"]
    if trace_memory:
        import tracemalloc

        tracemalloc.start()
        run(state, cur)
        out["call_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    out.update(timing)
    return out


def alarm(tool: str, n_rows: int, windows: int, scenario: str, seed: int) -> dict:
    """Verdicts on windows 0..windows-1 (window w is the same data for every tool)."""
    prepare, run, _ = TOOLS[tool]()
    verdicts = []
    t = time.perf_counter()
    for w in range(windows):
        ref, cur, numeric, categorical = scenario_frames(scenario, n_rows, w, seed)
        verdicts.append(run(prepare(ref, numeric, categorical), cur))
    return {"status": "ok", "verdicts": verdicts, "wall_s": time.perf_counter() - t}


def main(argv: list[str]) -> None:
    warnings.filterwarnings("ignore")
    mode, tool = argv[0], argv[1]
    if mode == "throughput":
        out = throughput(tool, int(argv[2]), int(argv[3]), int(argv[4]), trace_memory=argv[5:] == ["trace"])
    elif mode == "alarm":
        out = alarm(tool, int(argv[2]), int(argv[3]), argv[4], int(argv[5]))
    elif mode == "columns":
        out = columns_job(tool, int(argv[2]), int(argv[3]), argv[4], int(argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    sys.stdout.write("\n" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
