"""Database reads and writes of ``performance_daily`` (SQL in ``sql/dml/perf_*.sql``).

Reads never commit or roll back: the caller owns the connection's transaction.
Writes take a cursor inside the caller's ``storage.transaction``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from include.modelwatch.data import storage
from include.modelwatch.monitoring.performance.frames import as_classes
from include.modelwatch.monitoring.performance.health import HealthThresholds, health_status
from include.modelwatch.vocabulary import CLASSES, prob_columns


def prediction_columns(classes: Sequence[str] = CLASSES) -> list[str]:
    """Columns of ``load_predictions`` for a model with class list ``classes``: the
    prediction and outcome columns, ``p_<class>`` per class, ``features``."""
    return [
        "prediction_id",
        "ts",
        "symbol",
        "timeframe",
        "predicted_label",
        "confidence",
        "realized_label",
        "realized_return",
        "r_multiple",
        "horizon_days",
        "matured_at",
        *prob_columns(as_classes(classes)),
        "features",
    ]


#: :func:`prediction_columns` of the default class list (SELL/HOLD/BUY).
PREDICTION_COLUMNS = prediction_columns()
SNAPSHOT_METRICS = (
    "accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "hit_rate",
    "win_rate",
    "profit_factor",
    "avg_rr",
    "sharpe",
    "max_drawdown",
    "brier",
    "ece",
    "avg_confidence",
)
#: Data-quality failures count towards health for this many days.
DQ_DAYS = 30


def _sql(name: str) -> str:
    return storage.read_sql(f"dml/{name}.sql")


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def load_predictions(
    conn,
    model: str,
    version: int,
    start: datetime,
    end: datetime,
    window_start: datetime,
    *,
    classes: Sequence[str] = CLASSES,
) -> pd.DataFrame:
    """Predictions of a version in [start, end) with outcomes matured before ``end``
    (features only from ``window_start`` on: the SHAP log needs no more).

    The ``probabilities`` jsonb (class -> probability) becomes one ``p_<class>`` column per
    class of ``classes`` (the version's class list), in that order: the columns are
    ``prediction_columns(classes)``. A prediction without the probability of one of the
    classes raises ValueError; keys of other classes are ignored. ``realized_return`` may
    be NULL (NaN), e.g. for an external model's outcomes."""
    cls = as_classes(classes)
    rows = storage.fetch_dicts(
        conn,
        _sql("perf_select_predictions"),
        {"model": model, "version": version, "start": start, "end": end, "window_start": window_start},
    )
    if not rows:
        return pd.DataFrame(columns=prediction_columns(cls))
    raw = [r["probabilities"] or {} for r in rows]
    missing = sorted({c for p in raw for c in cls if c not in p})
    if missing:
        raise ValueError(
            f"{model} v{version}: predictions lack the probability of class(es) {missing} (classes {list(cls)})"
        )
    df = pd.DataFrame([{k: v for k, v in r.items() if k not in ("features", "probabilities")} for r in rows])
    probs = pd.DataFrame(raw, columns=list(cls)).astype(float)
    probs.columns = prob_columns(cls)
    df = pd.concat([df, probs], axis=1)
    df["features"] = [r["features"] for r in rows]
    for col in ("confidence", "realized_return", "r_multiple"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df


def baseline(conn, model: str, version: int) -> dict[str, float | None]:
    """The version's backtest baseline, metric -> value (canonical metric names)."""
    return {
        r["metric"]: r["value"]
        for r in storage.fetch_dicts(conn, _sql("perf_select_baseline"), {"model": model, "version": version})
    }


def pending_estimates(conn, model: str, version: int, end: datetime) -> list[dict[str, Any]]:
    """Earlier estimates of the version still waiting for their realized value as of ``end``."""
    return storage.fetch_dicts(conn, _sql("perf_realize_estimates"), {"model": model, "version": version, "end": end})


def drift_and_dq(conn, model: str, version: int, label: str, end: datetime) -> tuple[float | None, int]:
    """Drift score of the newest evaluated drift window ending by ``end`` and the data-quality
    failures of the DQ_DAYS days up to ``end``."""
    d = storage.fetch_dicts(conn, _sql("perf_select_drift_score"), {"model": model, "version": version, "end": end})
    q = storage.fetch_dicts(
        conn, _sql("perf_count_dq_failures"), {"label": label, "end": end, "since": end - timedelta(days=DQ_DAYS)}
    )
    return (d[0]["drift_score"] if d else None), int(q[0]["n"])


def clear_window(cur, model: str, version: int, end: datetime) -> None:
    cur.execute(_sql("perf_clear_window"), {"model": model, "version": version, "end": end})


def insert_snapshot(
    cur,
    *,
    model: str,
    version: int,
    start: datetime,
    end: datetime,
    symbol: str,
    timeframe: str,
    eval_start: Any,
    eval_end: Any,
    metrics: Mapping[str, Any],
    per_class: Mapping[str, Any],
    run_id: str,
) -> None:
    cur.execute(
        _sql("perf_insert_snapshot"),
        {
            "model": model,
            "version": version,
            "start": start,
            "end": end,
            "symbol": symbol,
            "timeframe": timeframe,
            "eval_start": eval_start,
            "eval_end": eval_end,
            "n": metrics["n"],
            "n_trades": metrics["n_trades"],
            "n_days": metrics["n_days"],
            **{c: _num(metrics[c]) for c in SNAPSHOT_METRICS},
            "per_class": json.dumps(dict(per_class)),
            "run_id": run_id,
        },
    )


def insert_comparison(
    cur,
    *,
    model: str,
    version: int,
    start: datetime,
    end: datetime,
    comparison: Mapping[str, Any],
    is_primary: bool,
    n: int,
    n_boot: int,
    alpha: float,
    run_id: str,
) -> int:
    c = comparison
    cur.execute(
        _sql("perf_insert_comparison"),
        {
            "model": model,
            "version": version,
            "start": start,
            "end": end,
            "metric": c["metric"],
            "is_primary": is_primary,
            **{
                k: _num(c[k])
                for k in ("live", "baseline", "rel_diff", "ci_low", "ci_high", "rel_ci_low", "rel_ci_high", "threshold")
            },
            "tolerance_rel": c["tolerance_rel"],
            "degraded": c["degraded"],
            "status": c["status"],
            "n_days": c["n_days"],
            "n": n,
            "block": c["block"],
            "n_boot": n_boot,
            "alpha": alpha,
            "run_id": run_id,
        },
    )
    return int(cur.fetchone()[0])


def upsert_estimate(cur, params: Mapping[str, Any]) -> None:
    cur.execute(_sql("perf_upsert_estimate"), dict(params))


def set_realized(cur, *, model: str, version: int, as_of: datetime, realized: Mapping[str, Any]) -> None:
    cur.execute(
        _sql("perf_set_realized"),
        {
            "model": model,
            "version": version,
            "as_of": as_of,
            "window_end": realized["window_end"],
            "metric": realized["metric"],
            "realized": realized["realized"],
            "n": realized["n"],
        },
    )


def insert_interpretability(
    cur,
    *,
    model: str,
    version: int,
    start: datetime,
    end: datetime,
    interp: Mapping[str, Mapping[str, Any]],
    n: int,
    run_id: str,
) -> None:
    """One row per feature of ``interp``; an empty ``interp`` (a model without an artifact)
    writes nothing."""
    for feature, row in interp.items():
        cur.execute(
            _sql("perf_insert_interpretability"),
            {
                "model": model,
                "version": version,
                "start": start,
                "end": end,
                "feature": feature,
                "gain": row["gain"],
                "shap": row["shap"],
                "rank": row["rank"],
                "n": n,
                "run_id": run_id,
            },
        )


def open_alert_version(cur, model: str) -> tuple[bool, int | None]:
    """(is a performance alert open, the version it is about)."""
    cur.execute(_sql("perf_open_alert_version"), {"model": model})
    row = cur.fetchone()
    return (row is not None), (row[0] if row else None)


def insert_health(
    cur,
    *,
    model: str,
    version: int,
    label: str,
    end: datetime,
    perf_metric: str,
    perf_rel_drop: float | None,
    perf_degraded: bool | None,
    model_age_days: int | None,
    thresholds: HealthThresholds,
    run_id: str,
) -> dict[str, Any]:
    """Write the performance inputs of the window's health row and compute its status from
    them and the drift / data-quality inputs present now (see :func:`refresh_health`)."""
    cur.execute(
        _sql("perf_insert_health"),
        {
            "model": model,
            "version": version,
            "end": end,
            "status": "healthy",
            "reasons": "[]",
            "drift_score": None,
            "perf_metric": perf_metric,
            "perf_rel_drop": perf_rel_drop,
            "perf_degraded": perf_degraded,
            "dq_failures": 0,
            "model_age_days": model_age_days,
            "run_id": run_id,
        },
    )
    return _refresh_one(
        cur,
        {
            "model_name": model,
            "model_version": version,
            "window_end": end,
            "perf_rel_drop": perf_rel_drop,
            "perf_degraded": perf_degraded,
            "model_age_days": model_age_days,
        },
        label,
        thresholds,
    )


def _refresh_one(cur, row: Mapping[str, Any], label: str, thresholds: HealthThresholds) -> dict[str, Any]:
    drift, dq = drift_and_dq(cur.connection, row["model_name"], row["model_version"], label, row["window_end"])
    age = row["model_age_days"]
    status, reasons = health_status(
        drift, row["perf_degraded"], row["perf_rel_drop"], dq, age if age is not None else 0, thresholds
    )
    cur.execute(
        _sql("perf_update_health"),
        {
            "model": row["model_name"],
            "version": row["model_version"],
            "end": row["window_end"],
            "status": status,
            "reasons": json.dumps(reasons),
            "drift_score": drift,
            "dq_failures": dq,
        },
    )
    return {
        "model_name": row["model_name"],
        "model_version": row["model_version"],
        "status": status,
        "reasons": reasons,
        "drift_score": drift,
        "dq_failures": dq,
    }


def refresh_health(cur, end: datetime, thresholds: HealthThresholds) -> list[dict[str, Any]]:
    """Recompute every health row of window end ``end`` from its stored performance inputs and
    the drift score and data-quality failures stored now.

    Both monitors of a window call this when they finish (``loop.respond``), so
    whichever finishes last sees both inputs: the row is a function of the
    window's inputs, whatever the order of the runs."""
    cur.execute(_sql("perf_select_health_rows"), {"end": end})
    cols = [c.name for c in cur.description]
    rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    return [_refresh_one(cur, r, f"{r['model_name']} v{r['model_version']}", thresholds) for r in rows]


def thresholds_for(max_age_days: int) -> HealthThresholds:
    """Health limits with the age limits of the ``modelwatch_max_model_age_days`` setting."""
    return HealthThresholds(age_warning_days=max_age_days, age_critical_days=3 * max_age_days)


__all__: Sequence[str] = (
    "baseline",
    "clear_window",
    "drift_and_dq",
    "insert_comparison",
    "insert_health",
    "insert_interpretability",
    "insert_snapshot",
    "load_predictions",
    "open_alert_version",
    "pending_estimates",
    "prediction_columns",
    "refresh_health",
    "set_realized",
    "thresholds_for",
    "upsert_estimate",
)
