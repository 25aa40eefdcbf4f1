"""Task bodies of ``drift_hourly``: one model version's window, validated, evaluated, stored."""

from __future__ import annotations

import json
from typing import Any

from include.tasks.common import monitoring_conn, run_id, window


def active_targets() -> list[dict[str, Any]]:
    from include.modelwatch import registry

    conn = monitoring_conn()
    try:
        return [{"model_name": r["model_name"], "version": r["version"]} for r in registry.active_versions(conn)]
    finally:
        conn.close()


def _window_frame(conn, model_name: str, version: int, start, end):
    import pandas as pd

    from include.modelwatch import storage

    rows = storage.fetch_dicts(
        conn,
        storage.read_sql("dml/select_window_predictions.sql"),
        (end, model_name, version, start, end),
    )
    conn.rollback()
    if not rows:
        return pd.DataFrame()
    feats = pd.DataFrame([r["features"] for r in rows]).astype(float)
    probs = pd.DataFrame([r["probabilities"] for r in rows]).astype(float).add_prefix("p_")
    df = pd.concat([feats, probs], axis=1)
    df["confidence"] = [float(r["confidence"]) for r in rows]
    df["predicted_label"] = [r["predicted_label"] for r in rows]
    df["correct"] = [None if r["realized_label"] is None else r["realized_label"] == r["predicted_label"] for r in rows]
    return df


def _spec(mv):
    from include.modelwatch.quality import ColumnSpec, FrameSpec

    cols = [ColumnSpec(f) for f in mv.features]
    cols += [ColumnSpec(f"p_{c}", min_value=0.0, max_value=1.0, max_null_share=0.0) for c in mv.classes]
    cols += [ColumnSpec("confidence", min_value=0.0, max_value=1.0, max_null_share=0.0),
             ColumnSpec("predicted_label", kind="categorical", allowed=tuple(mv.classes), max_null_share=0.0)]
    return FrameSpec(columns=tuple(cols), min_rows=1)


def _concept_rows(df, baseline_accuracy: float | None) -> list[dict[str, Any]]:
    """Concept drift from matured outcomes: error rate against the backtest baseline's."""
    from scipy.stats import binomtest

    matured = df["correct"].dropna()
    if baseline_accuracy is None or len(matured) == 0:
        return []
    errors = int((~matured.astype(bool)).sum())
    n = int(len(matured))
    base_err = 1.0 - baseline_accuracy
    delta = errors / n - base_err
    p = binomtest(errors, n, base_err, alternative="greater").pvalue
    drifted = bool(p < 0.05 and delta >= 0.10)
    return [{"feature": "error_rate", "test": "error_rate_delta", "statistic": delta, "p_value": float(p),
             "severity": float(min(100.0, max(0.0, delta) * 200.0)) if drifted else 0.0, "drifted": drifted,
             "n_current": n, "details": {"baseline_error": base_err, "live_error": errors / n}}]


def evaluate_target(target: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk import Variable

    from include.modelwatch import alerts, decisions, drift, quality, registry, storage
    from include.modelwatch.metrics import get_metrics

    start, end = window(context)
    rid = run_id(context)
    metrics = get_metrics()
    conn = monitoring_conn()
    try:
        mv = registry.get_version(conn, target["model_name"], int(target["version"]))
        if not mv.reference_profile:
            raise ValueError(f"{mv.label}: no drift reference profile stored; re-register the version")
        overrides = json.loads(Variable.get("modelwatch_drift_overrides", default="{}")).get(mv.model_name)
        config = drift.DriftConfig.from_dict(overrides)
        df = _window_frame(conn, mv.model_name, mv.version, start, end)
        report = quality.validate_frame(df, _spec(mv)) if len(df) else None
        path = decisions.choose_drift_path(len(df), report is None or report.success)
        subject = mv.label
        with storage.transaction(conn) as cur:
            cur.execute("DELETE FROM drift_windows WHERE model_name = %s AND model_version = %s AND window_start = %s",
                        (mv.model_name, mv.version, start))
            cur.execute("DELETE FROM data_quality_results WHERE source = 'drift_window' AND subject = %s AND window_start = %s",
                        (subject, start))
            if path == decisions.TASK_RECORD_EMPTY:
                _insert_window(cur, mv, start, end, "empty", 0, None, None, 0, False, None, {}, rid)
                print(f"{mv.label} window {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}: empty (no predictions); recorded, no drift computed")
                return {"model": mv.label, "status": "empty"}
            for exp, col, ok, obs in report.results:
                cur.execute(
                    "INSERT INTO data_quality_results (source, subject, window_start, window_end, expectation, column_name, success, observed, run_id) "
                    "VALUES ('drift_window', %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (subject, start, end, exp, col, ok, json.dumps(obs, default=str), rid),
                )
            if path == decisions.TASK_DQ_ALERT:
                failed = [f.describe() for f in report.failures]
                _insert_window(cur, mv, start, end, "data_quality_failed", len(df), None, None, 0, False, None,
                               {"failed_expectations": failed}, rid)
                alerts.raise_alert(cur, model_name=mv.model_name, model_version=mv.version, kind="data_quality",
                                   severity="critical", title=f"{mv.label}: data quality failed",
                                   message=f"window {start:%Y-%m-%d}..{end:%Y-%m-%d}: " + "; ".join(failed[:5]),
                                   window_start=start, window_end=end, evidence={"failed": failed}, run_id=rid)
                metrics.gauge("data_quality.failures", len(failed), mv.model_name, mv.version)
                print(f"{mv.label} window {start:%Y-%m-%d}..{end:%Y-%m-%d}: DATA QUALITY FAILED, no drift rows written:")
                for line in failed:
                    print("  - " + line)
                return {"model": mv.label, "status": "data_quality_failed", "failed": failed}

            result = drift.evaluate_window(mv.reference_profile, df, config)
            baseline = storage.fetch_dicts(conn, "SELECT value FROM backtest_baseline WHERE model_name=%s AND model_version=%s AND metric='accuracy'",
                                           (mv.model_name, mv.version))
            concept = _concept_rows(df, baseline[0]["value"] if baseline else None)
            drifted = result.drifted or any(r["drifted"] for r in concept)
            cur.execute(
                "SELECT drifted, alert_state FROM drift_windows WHERE model_name = %s AND model_version = %s "
                "AND window_start < %s AND status = 'evaluated' ORDER BY window_start DESC LIMIT %s",
                (mv.model_name, mv.version, start, config.fire_m + config.resolve_k),
            )
            prev = cur.fetchall()
            history = [bool(r[0]) for r in reversed(prev)] + [drifted]
            state = (prev[0][1] if prev else None) or "clear"
            hyst = drift.update_alert_state(history, state, config)
            _insert_window(cur, mv, start, end, "evaluated", len(df), result.drift_score, result.level,
                           result.n_drifted + sum(r["drifted"] for r in concept), drifted, hyst.state,
                           {**result.summary(), "concept": concept}, rid)
            rows = [("feature" if r["feature"] not in ("predicted_label", "confidence") and not r["feature"].startswith("p_") else "prediction", r)
                    for r in result.to_rows()] + [("concept", r) for r in concept]
            for kind, r in rows:
                cur.execute(
                    "INSERT INTO drift_results (model_name, model_version, window_start, window_end, kind, feature, test, statistic, "
                    "p_value, severity, drifted, n_current, details) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (mv.model_name, mv.version, start, end, kind, r["feature"], r["test"], r["statistic"], r["p_value"],
                     r["severity"], r["drifted"], r.get("n_current"), json.dumps(r.get("details") or {}, default=str)),
                )
            top = [f for f in sorted(result.features, key=lambda f: -f.severity) if f.drifted][:5]
            if hyst.state == "firing":
                change = alerts.raise_alert(
                    cur, model_name=mv.model_name, model_version=mv.version, kind="drift",
                    severity="critical" if result.level == "critical" else "warning", score=result.drift_score,
                    title=f"{mv.label}: drift score {result.drift_score:.2f} ({result.level})",
                    message="; ".join(f"{f.feature} psi={f.psi:.3f} p_adj={f.p_adjusted:.2g}" for f in top if f.psi is not None) or "drift persists",
                    window_start=start, window_end=end,
                    evidence={"drift_windows": [str(start)], "top_features": [f.feature for f in top]}, run_id=rid)
                print(f"alert {change.alert_id} {change.action} ({change.severity})")
            elif hyst.transition == "resolve":
                alerts.resolve_alert(cur, model_name=mv.model_name, kind="drift", at=end,
                                     resolution=f"{config.resolve_k} consecutive clean windows")
    finally:
        conn.close()
    metrics.gauge("drift.score", result.drift_score, mv.model_name, mv.version)
    for f in sorted(result.features, key=lambda f: -(f.psi or 0))[:5]:
        metrics.gauge("drift.psi", f.psi, mv.model_name, mv.version, f.feature)
    print(f"{mv.label} window {start:%Y-%m-%d}..{end:%Y-%m-%d} ({len(df)} rows): alert state {hyst.state}"
          + (f" [{hyst.transition}]" if hyst.transition else ""))
    for line in result.summary_lines(top=5):
        print("  " + line)
    for r in concept:
        print(f"  concept: live error {r['details']['live_error']:.3f} vs baseline {r['details']['baseline_error']:.3f} "
              f"(n={r['n_current']}, p={r['p_value']:.3g}){' DRIFT' if r['drifted'] else ''}")
    return {"model": mv.label, "status": "evaluated", "drift_score": result.drift_score, "level": result.level,
            "drifted": drifted, "alert_state": hyst.state}


def _insert_window(cur, mv, start, end, status, n, score, level, n_drifted, drifted, alert_state, summary, rid) -> None:
    cur.execute(
        "INSERT INTO drift_windows (model_name, model_version, window_start, window_end, status, n_rows, drift_score, level, "
        "n_drifted, drifted, alert_state, summary, run_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (mv.model_name, mv.version, start, end, status, n, score, level, n_drifted, drifted, alert_state,
         json.dumps(summary, default=str), rid),
    )
