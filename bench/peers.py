"""Benchmark worker: one tool, one job, in its own process.

Run by ``python -m bench`` in the project venv (modelwatch, sort) or in the
isolated peer venvs (evidently, nannyml)::

    python bench/peers.py throughput TOOL ROWS COLS SEED [trace]
    python bench/peers.py alarm TOOL ROWS WINDOWS SCENARIO SEED

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


def _sort():
    def prepare(ref, numeric, categorical):
        return (ref, numeric)

    def run(state, cur):
        ref, numeric = state
        for c in numeric:
            np.sort(ref[c].to_numpy())
            np.sort(cur[c].to_numpy())
        return None

    return prepare, run, {}


TOOLS = {
    "modelwatch": _modelwatch,
    "modelwatch_1t": _modelwatch_1t,
    "evidently": _evidently,
    "nannyml": _nannyml,
    "sort": _sort,
}


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
    walls = []
    while not walls or (len(walls) < REPEATS and sum(walls) < REPEAT_BELOW_S):
        t = time.perf_counter()
        run(state, cur)
        walls.append(time.perf_counter() - t)
    out = {
        "status": "ok",
        "wall_s": min(walls),
        "walls_s": walls,
        "peak_mb": peak_mb(),
        "peak_mb_before_call": mb_before,
        "input_mb": _frame_mb(ref) + _frame_mb(cur),
        "current_mb": _frame_mb(cur),
    }
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
    else:
        raise SystemExit(f"unknown mode {mode}")
    sys.stdout.write("\n" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
