"""Task bodies of ``drift_hourly``: one model version's window, validated, evaluated, stored."""

from __future__ import annotations

import json
from typing import Any

from include.tasks.common import monitoring_db, run_id, window


def active_targets() -> list[dict[str, Any]]:
    from include.modelwatch import registry

    with monitoring_db() as conn:
        return [{"model_name": r["model_name"], "version": r["version"]} for r in registry.active_versions(conn)]


#: Rows of a large (binned-mode) window that the data-quality checks read.
DQ_SAMPLE_ROWS = 50_000


def _window_frame(conn, model_name: str, version: int, start, end, every: int | None = None):
    """The window's predictions (every ``every``-th by id when given) as a frame."""
    import pandas as pd

    from include.modelwatch.data import storage

    if every:
        rows = storage.fetch_dicts(conn, storage.read_sql("dml/select_window_sample.sql"),
                                   {"model": model_name, "version": version, "start": start, "end": end, "every": every})
    else:
        rows = storage.fetch_dicts(conn, storage.read_sql("dml/select_window_predictions.sql"),
                                   (end, model_name, version, start, end))
    conn.rollback()
    if not rows:
        return pd.DataFrame()
    feats = pd.DataFrame([r["features"] for r in rows]).astype(float)
    probs = pd.DataFrame([r["probabilities"] for r in rows]).astype(float).add_prefix("p_")
    df = pd.concat([feats, probs], axis=1)
    df["confidence"] = [float(r["confidence"]) for r in rows]
    df["predicted_label"] = [r["predicted_label"] for r in rows]
    df["realized_label"] = [r["realized_label"] for r in rows]
    df["correct"] = [None if r["realized_label"] is None else r["realized_label"] == r["predicted_label"] for r in rows]
    return df


def _spec(mv):
    from include.modelwatch.data.quality import ColumnSpec, FrameSpec

    cols = [ColumnSpec(f) for f in mv.features]
    cols += [ColumnSpec(f"p_{c}", min_value=0.0, max_value=1.0, max_null_share=0.0) for c in mv.classes]
    cols += [ColumnSpec("confidence", min_value=0.0, max_value=1.0, max_null_share=0.0),
             ColumnSpec("predicted_label", kind="categorical", allowed=tuple(mv.classes), max_null_share=0.0)]
    return FrameSpec(columns=tuple(cols), min_rows=1)


#: Concept drift: smallest practical changes (absolute) and the minimum matured rows.
CONCEPT_ERROR_DELTA = 0.10
CONCEPT_AUC_DELTA = 0.05
CONCEPT_MIN_ROWS = 30
CONCEPT_BOOTSTRAP = 400


def _concept_rows(df, baseline_accuracy: float | None, baseline_auc: float | None, classes) -> list[dict[str, Any]]:
    """Concept drift from matured outcomes against the backtest baseline.

    * error rate: one-sided binomial test of the live error rate against the
      baseline's; drifted if p < 0.05 and the increase >= CONCEPT_ERROR_DELTA.
    * AUC delta (the seed's "AUC delta, concept drift"): live macro one-vs-rest
      AUC minus the baseline's; p = share of CONCEPT_BOOTSTRAP row resamples
      (fixed seed) whose AUC reaches the baseline; drifted if p < 0.05 and the
      drop >= CONCEPT_AUC_DELTA. Needs CONCEPT_MIN_ROWS matured rows.
    """
    import numpy as np
    from scipy.stats import binomtest

    from include.modelwatch.training.training import macro_auc_ovr

    m = df[df["correct"].notna()]
    n = int(len(m))
    out: list[dict[str, Any]] = []
    if n == 0:
        return out
    if baseline_accuracy is not None:
        errors = int((~m["correct"].astype(bool)).sum())
        base_err = 1.0 - baseline_accuracy
        delta = errors / n - base_err
        p = float(binomtest(errors, n, base_err, alternative="greater").pvalue)
        drifted = bool(p < 0.05 and delta >= CONCEPT_ERROR_DELTA)
        out.append({"feature": "error_rate", "test": "error_rate_delta", "statistic": delta, "p_value": p,
                    "severity": float(min(100.0, 100.0 * delta / (2 * CONCEPT_ERROR_DELTA))) if drifted else 0.0,
                    "drifted": drifted, "n_current": n,
                    "details": {"baseline": base_err, "live": errors / n, "label": "error rate"}})
    if baseline_auc is not None and n >= CONCEPT_MIN_ROWS:
        proba = m[[f"p_{c}" for c in classes]].to_numpy(dtype=float)
        y = m["realized_label"].to_numpy(dtype=object)
        live = macro_auc_ovr(y, proba)
        if np.isfinite(live):
            rng = np.random.default_rng(0)
            boots = np.array([macro_auc_ovr(y[idx], proba[idx]) for idx in rng.integers(0, n, size=(CONCEPT_BOOTSTRAP, n))])
            boots = boots[np.isfinite(boots)]
            p = float((1 + np.sum(boots >= baseline_auc)) / (1 + boots.size))
            delta = live - baseline_auc
            drifted = bool(p < 0.05 and -delta >= CONCEPT_AUC_DELTA)
            out.append({"feature": "auc", "test": "auc_delta", "statistic": delta, "p_value": p,
                        "severity": float(min(100.0, 100.0 * -delta / (2 * CONCEPT_AUC_DELTA))) if drifted else 0.0,
                        "drifted": drifted, "n_current": n,
                        "details": {"baseline": baseline_auc, "live": live, "label": "macro AUC (ovr)",
                                    "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]}})
    return out


def _config(mv):
    from airflow.sdk import Variable

    from include.modelwatch.monitoring import drift

    overrides = json.loads(Variable.get("modelwatch_drift_overrides", default="{}")).get(mv.model_name)
    return drift.DriftConfig.from_dict(overrides)


def _count(conn, mv, start, end) -> int:
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM predictions WHERE model_name = %s AND model_version = %s AND ts >= %s AND ts < %s",
                (mv.model_name, mv.version, start, end))
    n = int(cur.fetchone()[0])
    conn.rollback()
    return n


def _binned(conn, mv, start, end, config, n_rows: int):
    """Binned mode: bucket counts from PostgreSQL, labels/probabilities of matured rows only."""
    import pandas as pd

    from include.modelwatch.monitoring import drift

    from include.modelwatch.data import storage
    params = {"model": mv.model_name, "version": mv.version, "start": start, "end": end}
    num = mv.reference_profile.get("numeric", {})
    edges = json.dumps([{"feature": f, "edges": ref["fine_edges"]} for f, ref in num.items()])
    buckets: dict[str, list[tuple[int, int]]] = {f: [] for f in num}
    nulls: dict[str, int] = {f: 0 for f in num}
    for r in storage.fetch_dicts(conn, storage.read_sql("dml/drift_bin_counts.sql"), {**params, "edges": edges}):
        if r["bucket"] is None:
            nulls[r["feature"]] += int(r["n"])
        else:
            buckets[r["feature"]].append((int(r["bucket"]), int(r["n"])))
    numeric = {f: {"counts": drift.counts_from_buckets(buckets[f], len(num[f]["fine_edges"])), "n_null": nulls[f]}
               for f in num if buckets[f] or nulls[f]}
    labels = storage.fetch_dicts(conn, storage.read_sql("dml/drift_label_counts.sql"), params)
    categorical = {"predicted_label": {"levels": {r["predicted_label"]: int(r["n"]) for r in labels}, "n_null": 0}}
    matured = storage.fetch_dicts(conn, storage.read_sql("dml/drift_matured_outcomes.sql"), params)
    conn.rollback()
    result = drift.evaluate_binned(mv.reference_profile, numeric, categorical, n_rows, config)
    frame = pd.DataFrame([r["probabilities"] for r in matured], columns=list(mv.classes)).astype(float).add_prefix("p_")
    frame["realized_label"] = [r["realized_label"] for r in matured]
    frame["correct"] = [r["realized_label"] == r["predicted_label"] for r in matured]
    return result, frame


def _load(conn, target: dict[str, Any], context: dict[str, Any]):
    from include.modelwatch import registry

    mv = registry.get_version(conn, target["model_name"], int(target["version"]))
    if not mv.reference_profile:
        raise ValueError(f"{mv.label}: no drift reference profile stored; re-register the version")
    start, end = window(context)
    return mv, start, end


def _clear_window(cur, mv, start) -> None:
    """Remove the window's previous verdict (re-runs replace, never duplicate)."""
    cur.execute("DELETE FROM drift_results WHERE model_name = %s AND model_version = %s AND window_start = %s",
                (mv.model_name, mv.version, start))
    cur.execute("DELETE FROM drift_windows WHERE model_name = %s AND model_version = %s AND window_start = %s",
                (mv.model_name, mv.version, start))


def route(checked: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each checked version's path (``decisions.choose_drift_path``): path task id -> versions."""
    from include.modelwatch import decisions

    out: dict[str, list[dict[str, Any]]] = {
        decisions.TASK_RECORD_EMPTY: [], decisions.TASK_DQ_ALERT: [], decisions.TASK_COMPUTE_DRIFT: []}
    for c in checked:
        out[decisions.choose_drift_path(c["rows"], c["dq_passed"])].append(c)
    for path, versions in out.items():
        if versions:
            print(f"{path}: " + ", ".join(f"{c['model_name']} v{c['version']}" for c in versions))
    return out


def only_on_path(path: str, checked: dict[str, Any]) -> None:
    """Skip this mapped task instance when its version takes another path."""
    from airflow.sdk.exceptions import AirflowSkipException

    from include.modelwatch import decisions

    chosen = decisions.choose_drift_path(checked["rows"], checked["dq_passed"])
    if chosen != path:
        raise AirflowSkipException(f"{checked['model_name']} v{checked['version']} takes {chosen}, not {path}")


def check_window(target: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Read the window and validate it with Great Expectations; store the
    expectation results. Returns what the branch decides on."""
    from include.modelwatch.data import quality, storage

    with monitoring_db() as conn:
        mv, start, end = _load(conn, target, context)
        n = _count(conn, mv, start, end)
        binned = n >= _config(mv).sql_counts_min_rows
        df = _window_frame(conn, mv.model_name, mv.version, start, end, every=max(1, n // DQ_SAMPLE_ROWS) if binned else None)
        report = quality.validate_frame(df, _spec(mv)) if len(df) else None
        with storage.transaction(conn) as cur:
            cur.execute("DELETE FROM data_quality_results WHERE source = 'drift_window' AND subject = %s AND window_start = %s",
                        (mv.label, start))
            for exp, col, ok, obs in (report.results if report else []):
                cur.execute(
                    "INSERT INTO data_quality_results (source, subject, window_start, window_end, expectation, column_name, success, observed, run_id) "
                    "VALUES ('drift_window', %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (mv.label, start, end, exp, col, ok, json.dumps(obs, default=str), run_id(context)),
                )
    failed = [f.describe() for f in report.failures] if report else []
    mode = "binned" if binned else "rows"
    print(f"{mv.label} window {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}: {n} rows, "
          + ("no data" if report is None else f"{len(report.results)} expectations, {len(failed)} failed")
          + (f" (checked on a sample of {len(df)} rows; drift is binned in PostgreSQL)" if binned else ""))
    return {**target, "rows": n, "mode": mode, "dq_passed": report is None or report.success, "failed": failed}


def record_empty(checked: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from include.modelwatch.data import storage

    with monitoring_db() as conn:
        mv, start, end = _load(conn, checked, context)
        with storage.transaction(conn) as cur:
            _clear_window(cur, mv, start)
            _insert_window(cur, mv, start, end, "empty", 0, None, None, 0, False, None, {}, run_id(context))
    print(f"{mv.label} window {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}: empty (no predictions); recorded, no drift computed")
    return {"model": mv.label, "status": "empty"}


def raise_dq_alert(checked: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from include.modelwatch.loop import alerts
    from include.modelwatch.data import storage
    from include.modelwatch.metrics import get_metrics

    failed = list(checked["failed"])
    with monitoring_db() as conn:
        mv, start, end = _load(conn, checked, context)
        with storage.transaction(conn) as cur:
            _clear_window(cur, mv, start)
            _insert_window(cur, mv, start, end, "data_quality_failed", checked["rows"], None, None, 0, False, None,
                           {"failed_expectations": failed}, run_id(context))
            alerts.raise_alert(cur, model_name=mv.model_name, model_version=mv.version, kind="data_quality",
                               severity="critical", title=f"{mv.label}: data quality failed",
                               message=f"window {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}: " + "; ".join(failed[:5]),
                               window_start=start, window_end=end, evidence={"failed": failed}, run_id=run_id(context))
    get_metrics().gauge("data_quality.failures", len(failed), mv.model_name, mv.version)
    print(f"{mv.label} window {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}: DATA QUALITY FAILED, no drift rows written:")
    for line in failed:
        print("  - " + line)
    return {"model": mv.label, "status": "data_quality_failed", "failed": failed}


def compute_drift(checked: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from include.modelwatch.loop import alerts
    from include.modelwatch.monitoring import drift
    from include.modelwatch.data import storage
    from include.modelwatch.metrics import get_metrics

    rid = run_id(context)
    metrics = get_metrics()
    with monitoring_db() as conn:
        mv, start, end = _load(conn, checked, context)
        config = _config(mv)
        n = _count(conn, mv, start, end)
        if n != checked["rows"]:
            raise RuntimeError(f"{mv.label} window {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}: {n} rows now, "
                               f"{checked['rows']} when validated; predictions changed underneath, re-run the window")
        if checked.get("mode") == "binned":
            result, df = _binned(conn, mv, start, end, config, n)
        else:
            df = _window_frame(conn, mv.model_name, mv.version, start, end)
            result = drift.evaluate_window(mv.reference_profile, df, config)
        baseline = storage.fetch_dicts(conn, "SELECT metric, value FROM backtest_baseline WHERE model_name=%s AND model_version=%s "
                                       "AND metric IN ('accuracy', 'roc_auc_ovr')", (mv.model_name, mv.version))
        conn.rollback()
        base = {r["metric"]: r["value"] for r in baseline}
        concept = _concept_rows(df, base.get("accuracy"), base.get("roc_auc_ovr"), mv.classes)
        drifted = result.drifted or any(r["drifted"] for r in concept)
        with storage.transaction(conn) as cur:
            _clear_window(cur, mv, start)
            cur.execute(
                "SELECT drifted, alert_state FROM drift_windows WHERE model_name = %s AND model_version = %s "
                "AND window_start < %s AND status = 'evaluated' ORDER BY window_start DESC LIMIT %s",
                (mv.model_name, mv.version, start, config.fire_m + config.resolve_k),
            )
            prev = cur.fetchall()
            history = [bool(r[0]) for r in reversed(prev)] + [drifted]
            state = (prev[0][1] if prev else None) or "clear"
            hyst = drift.update_alert_state(history, state, config)
            _insert_window(cur, mv, start, end, "evaluated", n, result.drift_score, result.level,
                           result.n_drifted + sum(r["drifted"] for r in concept), drifted, hyst.state,
                           {**result.summary(), "mode": checked.get("mode", "rows"), "concept": concept}, rid)
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
                    message="; ".join(f"{f.feature} W/sd={drift._fmt(f.wasserstein_norm, '.2f')} psi={f.psi:.3f} p_adj={f.p_adjusted:.2g}"
                                      for f in top if f.psi is not None) or "drift persists",
                    window_start=start, window_end=end,
                    evidence={"drift_windows": [str(start)], "top_features": [f.feature for f in top]}, run_id=rid)
                print(f"alert {change.alert_id} {change.action} ({change.severity})")
            elif hyst.transition == "resolve":
                alerts.resolve_alert(cur, model_name=mv.model_name, kind="drift", at=end,
                                     resolution=f"{config.resolve_k} consecutive clean windows")
    metrics.gauge("drift.score", result.drift_score, mv.model_name, mv.version)
    for f in sorted(result.features, key=lambda f: -(f.psi or 0))[:5]:
        metrics.gauge("drift.psi", f.psi, mv.model_name, mv.version, f.feature)
    print(f"{mv.label} window {start:%Y-%m-%d}..{end:%Y-%m-%d} ({n} rows{', binned in PostgreSQL' if checked.get('mode') == 'binned' else ''}): alert state {hyst.state}"
          + (f" [{hyst.transition}]" if hyst.transition else ""))
    for line in result.summary_lines(top=5):
        print("  " + line)
    for r in concept:
        d = r["details"]
        print(f"  concept: live {d['label']} {d['live']:.3f} vs baseline {d['baseline']:.3f} "
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
