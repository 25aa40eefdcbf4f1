"""The drift window's reads and writes in PostgreSQL (the drift task's SQL, one place).

Reads take a connection and never commit or roll back; writes take a cursor
of the caller's :func:`storage.transaction`, so a window's verdict, its rows
and its alert change commit together. Larger statements live in
``sql/dml/drift_*.sql``.

Serialization (defect 6): hysteresis judges a window with the windows before
it, so :func:`lock_model` takes a per-model transaction advisory lock before
:func:`previous_windows` reads them; two windows of one model are decided one
after the other, each seeing what the other committed. (The DAG also runs
one window at a time, ``max_active_runs=1``, so catch-up is in window order.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from include.modelwatch.data import storage
from include.modelwatch.monitoring.drift.config import DriftConfig
from include.modelwatch.monitoring.drift.hysteresis import HysteresisResult, update_alert_state
from include.modelwatch.monitoring.drift.stats import counts_from_buckets
from include.modelwatch.vocabulary import prob_columns

#: Key namespace of the per-model advisory lock of drift decisions.
LOCK_NAMESPACE = "modelwatch.drift"


def _key(model_name: str, version: int, start: datetime, end: datetime) -> dict[str, Any]:
    return {"model": model_name, "version": int(version), "start": start, "end": end}


def count_window(conn, model_name: str, version: int, start: datetime, end: datetime) -> int:
    """Predictions of the version in [start, end)."""
    rows = storage.fetch_dicts(
        conn,
        "SELECT count(*) AS n FROM predictions WHERE model_name = %(model)s AND model_version = %(version)s "
        "AND ts >= %(start)s AND ts < %(end)s",
        _key(model_name, version, start, end),
    )
    return int(rows[0]["n"])


def window_frame(conn, model_name: str, version: int, start: datetime, end: datetime, every: int = 1) -> pd.DataFrame:
    """The window's predictions (every ``every``-th by id) as a frame: feature
    columns, ``p_<class>`` probabilities, confidence, predicted and realized
    label (outcomes matured before ``end``), ``correct`` (None if not matured)."""
    rows = storage.fetch_dicts(
        conn,
        storage.read_sql("dml/drift_window_predictions.sql"),
        {**_key(model_name, version, start, end), "every": max(1, int(every))},
    )
    if not rows:
        return pd.DataFrame()
    feats = pd.DataFrame([r["features"] for r in rows])
    for c in feats.columns:  # numbers as float; a category (text) column of an external model stays text
        if not pd.api.types.is_numeric_dtype(feats[c]) and not feats[c].map(lambda v: isinstance(v, str)).any():
            feats[c] = feats[c].astype(float)
    probs = pd.DataFrame([r["probabilities"] for r in rows]).astype(float)
    probs.columns = prob_columns(probs.columns)
    df = pd.concat([feats, probs], axis=1)
    df["confidence"] = [float(r["confidence"]) for r in rows]
    df["predicted_label"] = [r["predicted_label"] for r in rows]
    df["realized_label"] = [r["realized_label"] for r in rows]
    df["correct"] = [None if r["realized_label"] is None else r["realized_label"] == r["predicted_label"] for r in rows]
    return df


def missing_features(conn, model_name: str, version: int, start: datetime, end: datetime) -> dict[str, Any]:
    """Rows of the window scored with missing features (``predictions.data_quality =
    'missing_features'``): ``{"rows": n, "features": {feature: rows missing it}}``."""
    rows = storage.fetch_dicts(
        conn, storage.read_sql("dml/drift_missing_features.sql"), _key(model_name, version, start, end)
    )
    return {
        "rows": sum(int(r["n"]) for r in rows if r["feature"] == ""),
        "features": {r["feature"]: int(r["n"]) for r in rows if r["feature"] != ""},
    }


def binned_counts(
    conn, model_name: str, version: int, start: datetime, end: datetime, profile: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bucket counts of the window against the profile's fine edges, counted in
    PostgreSQL: ``(numeric_counts, categorical_counts)`` as
    :func:`evaluate_binned` takes them."""
    params = _key(model_name, version, start, end)
    num = profile.get("numeric", {})
    edges = json.dumps([{"feature": f, "edges": ref["fine_edges"]} for f, ref in num.items()])
    buckets: dict[str, list[tuple[int, int]]] = {f: [] for f in num}
    nulls: dict[str, int] = {f: 0 for f in num}
    for r in storage.fetch_dicts(conn, storage.read_sql("dml/drift_bin_counts.sql"), {**params, "edges": edges}):
        if r["bucket"] is None:
            nulls[r["feature"]] += int(r["n"])
        else:
            buckets[r["feature"]].append((int(r["bucket"]), int(r["n"])))
    numeric = {
        f: {"counts": counts_from_buckets(buckets[f], len(num[f]["fine_edges"])), "n_null": nulls[f]}
        for f in num
        if buckets[f] or nulls[f]
    }
    labels = storage.fetch_dicts(conn, storage.read_sql("dml/drift_label_counts.sql"), params)
    categorical = {"predicted_label": {"levels": {r["predicted_label"]: int(r["n"]) for r in labels}, "n_null": 0}}
    features = [f for f in profile.get("categorical", {}) if f != "predicted_label"]
    if features:  # an external model's category features
        levels: dict[str, dict[str, int]] = {f: {} for f in features}
        level_nulls: dict[str, int] = dict.fromkeys(features, 0)
        sql = storage.read_sql("dml/drift_level_counts.sql")
        for r in storage.fetch_dicts(conn, sql, {**params, "features": features}):
            if r["level"] is None:
                level_nulls[r["feature"]] += int(r["n"])
            else:
                levels[r["feature"]][r["level"]] = int(r["n"])
        categorical.update({f: {"levels": levels[f], "n_null": level_nulls[f]} for f in features})
    return numeric, categorical


def matured_frame(
    conn, model_name: str, version: int, start: datetime, end: datetime, classes: Sequence[str]
) -> pd.DataFrame:
    """Probabilities, realized label and ``correct`` of the window's matured rows
    (concept drift in binned mode: no features leave the database)."""
    matured = storage.fetch_dicts(
        conn, storage.read_sql("dml/drift_matured_outcomes.sql"), _key(model_name, version, start, end)
    )
    frame = pd.DataFrame([r["probabilities"] for r in matured], columns=list(classes)).astype(float)
    frame.columns = prob_columns(classes)
    frame["realized_label"] = [r["realized_label"] for r in matured]
    frame["correct"] = [r["realized_label"] == r["predicted_label"] for r in matured]
    return frame


def baseline_metrics(conn, model_name: str, version: int) -> dict[str, float]:
    """Backtest accuracy and macro AUC of the version (the concept-drift baseline)."""
    rows = storage.fetch_dicts(
        conn,
        "SELECT metric, value FROM backtest_baseline WHERE model_name = %(model)s "
        "AND model_version = %(version)s AND metric IN ('accuracy', 'roc_auc_ovr')",
        {"model": model_name, "version": int(version)},
    )
    return {r["metric"]: float(r["value"]) for r in rows if r["value"] is not None}


def reference_bins(conn, model_name: str, version: int) -> dict[str, dict[str, Any]]:
    """The reference profile's bins of a version, without its samples and nulls (read inside PostgreSQL):
    ``{feature: {"kind": "numeric", "edges": [...], "counts": [...]}}`` or ``{"kind": "categorical",
    "levels": {level: count}}``. Empty if the version has no profile."""
    rows = storage.fetch_dicts(
        conn,
        "SELECT f.key AS feature, 'numeric' AS kind, f.value -> 'edges' AS edges, f.value -> 'counts' AS counts, "
        "NULL::jsonb AS levels FROM model_versions mv, jsonb_each(mv.reference_profile -> 'numeric') f "
        "WHERE mv.model_name = %(model)s AND mv.version = %(version)s "
        "UNION ALL SELECT f.key, 'categorical', NULL, NULL, f.value -> 'levels' "
        "FROM model_versions mv, jsonb_each(mv.reference_profile -> 'categorical') f "
        "WHERE mv.model_name = %(model)s AND mv.version = %(version)s",
        {"model": model_name, "version": int(version)},
    )
    return {r["feature"]: {k: r[k] for k in ("kind", "edges", "counts", "levels") if r[k] is not None} for r in rows}


def lock_model(cur, model_name: str) -> None:
    """Per-model transaction advisory lock: held until the caller's transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))", {"key": f"{LOCK_NAMESPACE}:{model_name}"})


def previous_windows(cur, model_name: str, version: int, start: datetime, limit: int) -> list[tuple[bool, str | None]]:
    """``(drifted, alert_state)`` of the ``limit`` evaluated windows before
    ``start``, newest first. Call it after :func:`lock_model` in the same
    transaction."""
    cur.execute(
        "SELECT drifted, alert_state FROM drift_windows WHERE model_name = %(model)s AND model_version = %(version)s "
        "AND window_start < %(start)s AND status = 'evaluated' ORDER BY window_start DESC LIMIT %(limit)s",
        {"model": model_name, "version": int(version), "start": start, "limit": int(limit)},
    )
    return [(bool(r[0]), r[1]) for r in cur.fetchall()]


def decide_alert_state(
    cur, model_name: str, version: int, start: datetime, drifted: bool, config: DriftConfig
) -> tuple[list[bool], HysteresisResult]:
    """Hysteresis of the window at ``start``: takes the model's lock, reads the
    earlier evaluated windows under it and applies :func:`update_alert_state`.
    Returns ``(history oldest first incl. this window, result)``. The lock is
    held until the caller's transaction ends, so write the window's row in the
    same transaction: a concurrent run of the next window waits for it and
    then sees it."""
    lock_model(cur, model_name)
    prev = previous_windows(cur, model_name, version, start, config.fire_m + config.resolve_k)
    history = [d for d, _ in reversed(prev)] + [bool(drifted)]
    state = (prev[0][1] if prev else None) or "clear"
    return history, update_alert_state(history, state, config)


def clear_window(cur, model_name: str, version: int, start: datetime) -> None:
    """Remove the window's previous verdict and rows (re-runs replace, never duplicate)."""
    key = {"model": model_name, "version": int(version), "start": start}
    cur.execute(
        "DELETE FROM drift_results WHERE model_name = %(model)s AND model_version = %(version)s "
        "AND window_start = %(start)s",
        key,
    )
    cur.execute(
        "DELETE FROM drift_windows WHERE model_name = %(model)s AND model_version = %(version)s "
        "AND window_start = %(start)s",
        key,
    )


def insert_window(
    cur,
    model_name: str,
    version: int,
    start: datetime,
    end: datetime,
    *,
    status: str,
    n_rows: int,
    run_id: str,
    drift_score: float | None = None,
    level: str | None = None,
    n_drifted: int = 0,
    drifted: bool = False,
    alert_state: str | None = None,
    summary: Mapping[str, Any] | None = None,
) -> None:
    """The window's one ``drift_windows`` row."""
    cur.execute(
        "INSERT INTO drift_windows (model_name, model_version, window_start, window_end, status, n_rows, drift_score, "
        "level, n_drifted, drifted, alert_state, summary, run_id) VALUES (%(model)s, %(version)s, %(start)s, %(end)s, "
        "%(status)s, %(n)s, %(score)s, %(level)s, %(n_drifted)s, %(drifted)s, %(alert_state)s, %(summary)s, "
        "%(run_id)s)",
        {
            **_key(model_name, version, start, end),
            "status": status,
            "n": int(n_rows),
            "score": drift_score,
            "level": level,
            "n_drifted": int(n_drifted),
            "drifted": bool(drifted),
            "alert_state": alert_state,
            "summary": json.dumps(dict(summary or {}), default=str),
            "run_id": run_id,
        },
    )


def insert_results(
    cur, model_name: str, version: int, start: datetime, end: datetime, rows: Sequence[tuple[str, Mapping[str, Any]]]
) -> None:
    """``drift_results`` rows: ``(kind, row)`` with kind 'feature' | 'prediction' | 'concept'."""
    key = _key(model_name, version, start, end)
    cur.executemany(
        "INSERT INTO drift_results (model_name, model_version, window_start, window_end, kind, feature, test, "
        "statistic, p_value, severity, drifted, n_current, details) VALUES (%(model)s, %(version)s, %(start)s, "
        "%(end)s, %(kind)s, %(feature)s, %(test)s, %(statistic)s, %(p_value)s, %(severity)s, %(drifted)s, "
        "%(n_current)s, %(details)s)",
        [
            {
                **key,
                "kind": kind,
                "feature": r["feature"],
                "test": r["test"],
                "statistic": r["statistic"],
                "p_value": r["p_value"],
                "severity": r["severity"],
                "drifted": r["drifted"],
                "n_current": r.get("n_current"),
                "details": json.dumps(r.get("details") or {}, default=str),
            }
            for kind, r in rows
        ],
    )


def replace_quality_results(
    cur, subject: str, start: datetime, end: datetime, results: Sequence[tuple[str, str, bool, Any]], run_id: str
) -> None:
    """The window's Great Expectations results in ``data_quality_results`` (replacing a re-run's)."""
    cur.execute(
        "DELETE FROM data_quality_results WHERE source = 'drift_window' AND subject = %(subject)s "
        "AND window_start = %(start)s",
        {"subject": subject, "start": start},
    )
    cur.executemany(
        "INSERT INTO data_quality_results (source, subject, window_start, window_end, expectation, column_name, "
        "success, observed, run_id) VALUES ('drift_window', %(subject)s, %(start)s, %(end)s, %(expectation)s, "
        "%(column)s, %(success)s, %(observed)s, %(run_id)s) ON CONFLICT DO NOTHING",
        [
            {
                "subject": subject,
                "start": start,
                "end": end,
                "expectation": exp,
                "column": col,
                "success": ok,
                "observed": json.dumps(obs, default=str),
                "run_id": run_id,
            }
            for exp, col, ok, obs in results
        ],
    )
