"""performance_daily's task body for an external model on the embedded PostgreSQL: its own class
list (``down``/``up``), no artifact, outcomes without a realized return (migration 019)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from include.modelwatch.data import storage
from include.modelwatch.monitoring.performance import store

MODEL, CLASSES = "ext_updown", ["down", "up"]
START, END = datetime(2024, 3, 18, tzinfo=UTC), datetime(2024, 3, 23, tzinfo=UTC)
#: 15 business days 03-01..03-21, two symbols a day; every third prediction is wrong -> accuracy 20/30
DAYS = list(pd.bdate_range("2024-03-01", "2024-03-21"))


def _q(db, sql, params=None):
    out = storage.fetch_dicts(db, sql, params)
    db.rollback()
    return out


def _seed(db, probabilities=None) -> None:
    with storage.transaction(db) as cur:
        cur.execute(
            "INSERT INTO model_versions (model_name, version, algorithm, features, classes, horizon_days, status) "
            "VALUES (%s, 1, 'external', '[\"x\"]', %s, 1, 'candidate')",
            (MODEL, json.dumps(CLASSES)),
        )
        for metric, value in (("accuracy", 0.6), ("macro_f1", 0.6)):  # no trading baselines
            cur.execute(
                "INSERT INTO backtest_baseline (model_name, model_version, metric, value, period_start, period_end, "
                "n_predictions) VALUES (%s, 1, %s, %s, '2023-01-01', '2023-12-31', 500)",
                (MODEL, metric, value),
            )
        i = 0
        for day in [*DAYS, pd.Timestamp("2024-03-22")]:
            for symbol in ("AAA", "BBB"):
                ts = day.to_pydatetime().replace(hour=21, tzinfo=UTC)
                pred = "up" if i % 2 == 0 else "down"
                p_up = 0.7 if pred == "up" else 0.35
                probs = probabilities or {"down": 1 - p_up, "up": p_up}
                cur.execute(
                    "INSERT INTO predictions (model_name, model_version, ts, symbol, features, predicted_label, "
                    "probabilities, confidence) VALUES (%s, 1, %s, %s, %s, %s, %s, %s) RETURNING prediction_id",
                    (MODEL, ts, symbol, json.dumps({"x": float(i)}), pred, json.dumps(probs), max(p_up, 1 - p_up)),
                )
                pid = cur.fetchone()[0]
                if day < pd.Timestamp("2024-03-22"):  # the last day's outcomes have not matured
                    realized = pred if i % 3 else ("down" if pred == "up" else "up")
                    cur.execute(
                        "INSERT INTO outcomes (prediction_id, realized_return, realized_label, r_multiple, "
                        "horizon_days, matured_at) VALUES (%s, NULL, %s, NULL, 1, %s)",
                        (pid, realized, ts + timedelta(days=3 if day.weekday() == 4 else 1)),
                    )
                i += 1


def test_load_predictions_makes_the_models_probability_columns(db):
    _seed(db)
    df = store.load_predictions(db, MODEL, 1, START - timedelta(days=30), END, START, classes=CLASSES)
    db.rollback()
    assert len(df) == 32 and [c for c in df.columns if c.startswith("p_")] == ["p_down", "p_up"]
    assert df["p_up"].iloc[0] == pytest.approx(0.7) and df["realized_return"].isna().all()
    assert df["realized_label"].notna().sum() == 30
    empty = store.load_predictions(db, MODEL, 1, END, END + timedelta(days=1), END, classes=CLASSES)
    db.rollback()
    assert empty.empty and list(empty.columns) == store.prediction_columns(CLASSES)


def test_load_predictions_refuses_probabilities_without_a_class(db):
    _seed(db, probabilities={"down": 0.4, "flat": 0.6})
    with pytest.raises(ValueError, match=r"lack the probability of class\(es\) \['up'\]"):
        store.load_predictions(db, MODEL, 1, START - timedelta(days=30), END, START, classes=CLASSES)
    db.rollback()


def test_performance_daily_evaluates_an_external_model(db, monkeypatch):
    from include.tasks import performance as perf_tasks

    _seed(db)
    monkeypatch.setattr(perf_tasks, "settings", lambda: (0.1, 365))
    ctx = {"params": {"window_start": START.isoformat(), "window_end": END.isoformat()}, "run_id": "ext-1"}
    summary = perf_tasks.evaluate({"model_name": MODEL, "version": 1, "aliases": ["champion"]}, ctx)
    assert summary["n_matured"] == 30 and summary["accuracy"] == pytest.approx(20 / 30)
    assert summary["hit_rate"] is None and summary["estimate"]["n"] == 2

    snap = _q(db, "SELECT * FROM live_performance_daily WHERE model_name = %s AND symbol = '*'", (MODEL,))
    assert len(snap) == 1
    s = snap[0]
    assert (s["n"], s["n_trades"], s["n_days"]) == (30, 0, 15)
    assert s["accuracy"] == pytest.approx(20 / 30)
    for col in ("hit_rate", "win_rate", "profit_factor", "avg_rr", "sharpe", "max_drawdown"):
        assert s[col] is None, col
    assert set(s["per_class"]) == {f"{k}_{c}" for k in ("precision", "recall", "f1", "support") for c in CLASSES}
    assert s["per_class"]["support_down"] + s["per_class"]["support_up"] == 30
    assert len(_q(db, "SELECT 1 FROM live_performance_daily WHERE model_name = %s", (MODEL,))) == 3  # *, AAA, BBB

    cmp = {r["metric"]: r for r in _q(db, "SELECT * FROM live_vs_backtest_comparison WHERE model_name = %s", (MODEL,))}
    assert cmp["accuracy"]["is_primary"] and cmp["accuracy"]["baseline_value"] == 0.6
    assert cmp["accuracy"]["status"] in ("ok", "degraded") and cmp["accuracy"]["n_days"] == 15
    for metric in ("hit_rate", "profit_factor", "sharpe"):
        assert (cmp[metric]["status"], cmp[metric]["live_value"], cmp[metric]["degraded"]) == (
            "no_baseline",
            None,
            None,
        )
    # no artifact: nothing in the interpretability log; the health row is written
    assert _q(db, "SELECT * FROM interpretability_log WHERE model_name = %s", (MODEL,)) == []
    assert len(_q(db, "SELECT status FROM model_health_daily WHERE model_name = %s", (MODEL,))) == 1
    est = {r["metric"]: r for r in _q(db, "SELECT * FROM performance_estimates WHERE model_name = %s", (MODEL,))}
    assert set(est) == {"accuracy", "macro_f1"} and est["accuracy"]["n_predictions"] == 2
