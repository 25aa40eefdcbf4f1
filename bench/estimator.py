"""Label-free accuracy estimate on the real S&P 500 / NASDAQ replay: ModelWatch vs NannyML CBPE.

The champion is built exactly as ``make run`` bootstraps it (LightGBM on
1999-2006, purged walk-forward out-of-fold predictions as its reference) and
scores every 2007-2008 session of SPX and IXIC. For each calendar month M:

* **realized**: accuracy of M's predictions once all their outcomes matured;
* **ModelWatch**: what ``performance_daily`` would publish at the start of M
  for M's predictions: isotonic calibrator fitted on every matured prediction
  of its lookback (``LOOKBACK_DAYS``) before the 126 most recent ones, checked
  on those 126 (``performance.estimate_label_free``; out-of-fold 1999-2006
  predictions count as matured history, as if the reference were in the
  predictions table), reported only when the check passes (``ok``), withheld
  otherwise; the unchecked number is reported too;
* **NannyML CBPE**: multiclass CBPE fitted on the out-of-fold reference,
  estimating accuracy per calendar-month chunk (isolated venv, bench/cbpe_worker.py);
* **naive**: the realized accuracy of the predictions that matured in the 21
  sessions before M (what a dashboard without an estimator would show).

Prints the per-month table and the mean absolute errors; writes
bench/results/estimator.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results" / "estimator.json"
CLASSES = ("SELL", "HOLD", "BUY")


def build_predictions() -> tuple[Any, Any]:
    """(reference, live) prediction frames: ts, symbol, p_*, predicted_label, realized_label, matured_at."""
    import numpy as np
    import pandas as pd

    from include.modelwatch import defaults
    from include.modelwatch.data import features
    from include.modelwatch.ops import bootstrap
    from include.modelwatch.training import training

    bars = bootstrap.load_clean_bars(defaults.NATIVE_MODELS[defaults.MODEL_NAME]["symbols"])
    panel = bootstrap.feature_panel(bars)
    panel = panel[panel["label"].notna()].reset_index(drop=True)
    # an outcome matures HORIZON sessions after its signal (the symbol's own calendar)
    panel["matured_at"] = panel.groupby("symbol")["date"].shift(-bootstrap.HORIZON)
    cols = list(features.FEATURE_COLUMNS)
    train = panel[panel["date"] < pd.Timestamp("2007-01-01")].reset_index(drop=True)
    live = panel[(panel["date"] >= pd.Timestamp("2007-01-01")) & (panel["date"] < pd.Timestamp("2009-01-01"))]
    live = live.reset_index(drop=True)
    y = train["label"].astype(str).to_numpy()
    wf = training.walk_forward_evaluate(
        train[cols],
        y,
        train["date"],
        algorithm="lightgbm",
        n_splits=4,
        horizon=bootstrap.HORIZON,
        embargo=bootstrap.HORIZON,
    )
    model = training.train_model("lightgbm", train[cols], y, seed=0)

    def frame(src: pd.DataFrame, proba: np.ndarray) -> pd.DataFrame:
        out = pd.DataFrame(
            {"ts": pd.to_datetime(src["date"].to_numpy()).tz_localize("UTC"), "symbol": src["symbol"].to_numpy()}
        )
        for i, c in enumerate(CLASSES):
            out[f"p_{c}"] = proba[:, i]
        out["predicted_label"] = np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)]
        out["realized_label"] = src["label"].astype(str).to_numpy()
        out["matured_at"] = pd.to_datetime(src["matured_at"].to_numpy()).tz_localize("UTC")
        return out

    held = train.loc[wf.oof.index]
    ref = frame(held, wf.proba)
    cur = frame(live, training.predict_proba(model, live[cols]))
    return ref, cur


def estimates_of_modelwatch(ref, live) -> list[dict[str, Any]]:
    import pandas as pd

    from include.modelwatch.monitoring import performance as perf
    from include.tasks.performance import LOOKBACK_DAYS

    rows = []
    months = pd.period_range("2007-01", "2008-12", freq="M")
    for m in months:
        start = pd.Timestamp(m.start_time).tz_localize("UTC")
        end = pd.Timestamp(m.end_time).tz_localize("UTC")
        unlabeled = live[(live["ts"] >= start) & (live["ts"] <= end)].reset_index(drop=True)
        history = pd.concat([ref, live[live["ts"] < start]], ignore_index=True)
        history = history[history["ts"] >= start - pd.Timedelta(days=LOOKBACK_DAYS)]  # what the task reads
        matured = history[history["matured_at"].notna() & (history["matured_at"] < start)].reset_index(drop=True)
        t = time.perf_counter()
        lfe = perf.estimate_label_free(matured, unlabeled.drop(columns=["realized_label"]))
        est, unchecked, check = lfe.estimate, lfe.unchecked, lfe.check
        secs = time.perf_counter() - t
        realized = float((unlabeled["predicted_label"] == unlabeled["realized_label"]).mean())
        recent = matured[matured["matured_at"] >= start - pd.Timedelta(days=31)]
        naive = float((recent["predicted_label"] == recent["realized_label"]).mean()) if len(recent) else None
        rows.append(
            {
                "month": f"{m}",
                "n": len(unlabeled),
                "realized_accuracy": realized,
                "modelwatch_status": est["status"],
                "modelwatch": est["expected_accuracy"],
                "modelwatch_unchecked": unchecked["expected_accuracy"],
                "naive_last_month": naive,
                "check_reason": check.get("reason"),
                "n_fit": check.get("n_fit"),
                "modelwatch_s": secs,
            }
        )
    return rows


def estimates_of_cbpe(ref, live) -> dict[str, Any]:
    from bench.__main__ import python_for  # the peer venv helper of the drift bench

    DATA.mkdir(parents=True, exist_ok=True)
    ref_csv, ana_csv = DATA / "cbpe_reference.csv", DATA / "cbpe_analysis.csv"
    cols = ["ts", *[f"p_{c}" for c in CLASSES], "predicted_label", "realized_label"]
    for df, path in ((ref, ref_csv), (live, ana_csv)):
        out = df[cols].copy()
        out["ts"] = out["ts"].dt.tz_localize(None)
        out.to_csv(path, index=False)
    cmd = [str(python_for("nannyml")), str(ROOT / "bench" / "cbpe_worker.py"), str(ref_csv), str(ana_csv)]
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ, NML_DISABLE_USAGE_LOGGING="1", PYTHONWARNINGS="ignore"),
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"status": "failed", "error": (proc.stderr or proc.stdout).strip()[-500:]}
    return json.loads(lines[-1])


def _mae(rows: list[dict[str, Any]], key: str) -> tuple[float | None, int]:
    errs = [abs(r[key] - r["realized_accuracy"]) for r in rows if r.get(key) is not None]
    return (sum(errs) / len(errs) if errs else None), len(errs)


def run() -> dict[str, Any]:
    t0 = time.perf_counter()
    print("estimator: building the champion and its 2007-2008 predictions ...", flush=True)
    ref, live = build_predictions()
    rows = estimates_of_modelwatch(ref, live)
    cbpe = estimates_of_cbpe(ref, live)
    by_month = {c["month"]: c["estimated_accuracy"] for c in cbpe.get("chunks", [])}
    for r in rows:
        r["cbpe"] = by_month.get(r["month"])
    summary = {}
    for key in ("modelwatch", "modelwatch_unchecked", "cbpe", "naive_last_month"):
        mae, n = _mae(rows, key)
        summary[key] = {"mae": mae, "months": n}
    ok_months = [r for r in rows if r["modelwatch"] is not None]
    summary["cbpe_on_modelwatch_ok_months"] = {"mae": _mae(ok_months, "cbpe")[0], "months": len(ok_months)}
    result = {
        "reference_rows": len(ref),
        "live_rows": len(live),
        "months": rows,
        "summary": summary,
        "cbpe": {k: v for k, v in cbpe.items() if k != "chunks"},
        "total_s": time.perf_counter() - t0,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    return result


def print_table(result: dict[str, Any]) -> None:
    def f(x):
        return "-" if x is None else f"{x:.3f}"

    print("\n== Label-free accuracy estimate vs realized, S&P 500 + NASDAQ replay 2007-2008 (per month) ==")
    print(f"{'month':<9}{'n':>4}{'realized':>10}{'modelwatch':>12}{'(unchecked)':>12}{'cbpe':>8}{'naive':>8}  status")
    for r in result["months"]:
        print(
            f"{r['month']:<9}{r['n']:>4}{f(r['realized_accuracy']):>10}{f(r['modelwatch']):>12}"
            f"{f(r['modelwatch_unchecked']):>12}{f(r['cbpe']):>8}{f(r['naive_last_month']):>8}  "
            f"{r['modelwatch_status']}"
        )
    s = result["summary"]
    print("MAE vs realized: " + "; ".join(f"{k} {f(v['mae'])} ({v['months']} months)" for k, v in s.items()))
