"""Task bodies of ``performance_daily``: one model version's live performance as of
the window end, compared with its backtest, estimated where labels are missing,
summed up as model health, with the window's SHAP log.

Everything is keyed on the window end ("as of"); a prediction counts only when
its outcome matured before it. One transaction per version: a failure leaves
the database as it was.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from include.tasks.common import monitoring_db, run_id, window

#: Evaluation period: the last EVAL_DAYS entry days with matured outcomes.
EVAL_DAYS = 63
#: Calendar days of predictions read per run (evaluation period + calibration data).
#: Three years: the label-free estimator's calibration uses all of it.
LOOKBACK_DAYS = 1096
#: Label-free estimator (CBPE): calibration fitted on every matured prediction of the
#: lookback before the CHECK_ROWS most recent ones, on which its own calibration is
#: checked (why all of them: ``performance.fit_calibrator``).
FIT_MIN_ROWS = 100
CHECK_ROWS, CHECK_MIN_ROWS = 126, 100
#: Block bootstrap of the comparison.
N_BOOT, ALPHA, MIN_DAYS = 1000, 0.05, 10
ESTIMATED_METRICS = {"accuracy": "expected_accuracy", "macro_f1": "expected_macro_f1"}
_PER_CLASS = ("precision", "recall", "f1", "support")
_SNAPSHOT_COLS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "hit_rate", "win_rate", "profit_factor",
                  "avg_rr", "sharpe", "max_drawdown", "brier", "ece", "avg_confidence")


def active_targets() -> list[dict[str, Any]]:
    """Every version holding an alias, with its aliases (only the champion's evidence moves the alert)."""
    from include.modelwatch import registry

    with monitoring_db() as conn:
        return [{"model_name": r["model_name"], "version": r["version"], "aliases": r["aliases"]}
                for r in registry.active_versions(conn)]


def _settings() -> tuple[float, int]:
    from airflow.sdk import Variable

    tol = float(Variable.get("modelwatch_performance_tolerance", default="0.10"))
    age = int(Variable.get("modelwatch_max_model_age_days", default="30"))
    if not 0 <= tol < 1:
        raise ValueError(f"variable modelwatch_performance_tolerance must be in [0, 1), got {tol}")
    return tol, age


def _frame(conn, mv, start, end, window_start):
    """Predictions of ``mv`` in [start, end) with outcomes matured before ``end``
    (features only from ``window_start``: the SHAP log needs no more)."""
    import pandas as pd

    from include.modelwatch.data import storage

    rows = storage.fetch_dicts(conn, storage.read_sql("dml/perf_select_predictions.sql"),
                               {"model": mv.model_name, "version": mv.version, "start": start, "end": end,
                                "window_start": window_start})
    conn.rollback()
    if not rows:
        return pd.DataFrame(columns=["prediction_id", "ts", "symbol", "timeframe", "predicted_label", "confidence",
                                     "realized_label", "realized_return", "r_multiple", "horizon_days", "matured_at",
                                     "p_SELL", "p_HOLD", "p_BUY", "features"])
    df = pd.DataFrame([{k: v for k, v in r.items() if k not in ("features", "probabilities")} for r in rows])
    probs = pd.DataFrame([r["probabilities"] for r in rows]).astype(float).add_prefix("p_")
    df = pd.concat([df, probs], axis=1)
    df["features"] = [r["features"] for r in rows]
    for col in ("confidence", "realized_return", "r_multiple"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df


def _matured(df, end):
    from include.modelwatch.monitoring import performance as perf

    outcome_cols = ["prediction_id", "realized_label", "realized_return", "r_multiple", "horizon_days", "matured_at"]
    preds = df.drop(columns=[c for c in outcome_cols if c != "prediction_id"] + ["features"])
    outs = df.loc[df["realized_label"].notna(), outcome_cols]
    return perf.filter_matured(preds, outs, end)


def _json(v: Any) -> Any:
    return None if v is None else float(v)


def evaluate(target: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Live metrics, live vs backtest, label-free estimate, health and SHAP log of one version."""
    import pandas as pd

    from include.modelwatch.loop import alerts
    from include.modelwatch import registry
    from include.modelwatch.data import storage
    from include.modelwatch.monitoring import performance as perf
    from include.modelwatch.metrics import get_metrics

    tol, max_age = _settings()
    rid = run_id(context)
    start, end = window(context)
    with monitoring_db() as conn:
        mv = registry.get_version(conn, target["model_name"], int(target["version"]))
        where = f"{mv.label} window {start:%Y-%m-%d}..{end:%Y-%m-%d}"
        df = _frame(conn, mv, min(start, end - timedelta(days=LOOKBACK_DAYS)), end, start)
        matured = _matured(df, end)
        period = perf.trailing_period(matured, EVAL_DAYS)
        horizon = mv.horizon_days or (int(period["horizon_days"].median()) if len(period) else 1)

        # 1. live metrics: the version as a whole ('*') and per symbol / timeframe
        snapshots = [("*", "*", perf.live_metrics(period, horizon))]
        for (sym, tf), part in (period.groupby(["symbol", "timeframe"], sort=True) if len(period) else []):
            snapshots.append((sym, tf, perf.live_metrics(part, horizon)))

        # 2. live vs backtest, block bootstrap over entry days
        base = {r["metric"]: r["value"] for r in storage.fetch_dicts(
            conn, "SELECT metric, value FROM backtest_baseline WHERE model_name = %s AND model_version = %s",
            (mv.model_name, mv.version))}
        conn.rollback()
        daily = perf.daily_stats(period)
        block = perf.comparison_block_length(len(daily), horizon)
        comparisons = [perf.compare_to_baseline(daily, base, m, tol, horizon=horizon, block=block, n_boot=N_BOOT,
                                                alpha=ALPHA, min_days=MIN_DAYS) for m in perf.COMPARED_METRICS]
        primary = comparisons[0]
        decision = perf.degradation_decision(primary)

        # 3. label-free estimate of the window's predictions without a matured outcome
        in_window = df[(df["ts"] >= pd.Timestamp(start)) & (df["ts"] < pd.Timestamp(end))]
        unlabeled = in_window[~in_window["prediction_id"].isin(set(matured["prediction_id"]))]
        estimate, unchecked, check = _estimate(perf, matured, unlabeled)
        realized = _realizations(perf, conn, mv, end, df, matured, horizon)

        # 4. health
        drift_score, dq_failures = _drift_and_dq(conn, mv, end)
        age = (end.date() - mv.train_end).days if mv.train_end else None
        rel_drop = None if primary["rel_diff"] is None else -primary["rel_diff"]
        health, reasons = perf.health_status(
            drift_score, primary["degraded"], rel_drop, dq_failures, age if age is not None else 0,
            perf.HealthThresholds(age_warning_days=max_age, age_critical_days=3 * max_age))

        # 6. interpretability of the window's predictions
        interp = _interpretability(mv, in_window)

        with storage.transaction(conn) as cur:
            cur.execute(storage.read_sql("dml/perf_clear_window.sql"), {"model": mv.model_name, "version": mv.version, "end": end})
            eval_start = daily.index.min().date() if len(daily) else None
            eval_end = daily.index.max().date() if len(daily) else None
            for sym, tf, m in snapshots:
                per_class = {f"{k}_{c}": m[f"{k}_{c}"] for c in perf.CLASSES for k in _PER_CLASS}
                cur.execute(
                    "INSERT INTO live_performance_daily (model_name, model_version, window_start, window_end, symbol, timeframe, "
                    "eval_start, eval_end, n, n_trades, n_days, " + ", ".join(_SNAPSHOT_COLS) + ", per_class, run_id) "
                    "VALUES (" + ", ".join(["%s"] * (13 + len(_SNAPSHOT_COLS))) + ")",
                    (mv.model_name, mv.version, start, end, sym, tf, eval_start, eval_end, m["n"], m["n_trades"], m["n_days"],
                     *[_json(m[c]) for c in _SNAPSHOT_COLS], json.dumps(per_class), rid))
            ids = []
            for c in comparisons:
                cur.execute(
                    "INSERT INTO live_vs_backtest_comparison (model_name, model_version, window_start, window_end, metric, is_primary, "
                    "live_value, baseline_value, rel_diff, ci_low, ci_high, rel_ci_low, rel_ci_high, threshold, tolerance_rel, "
                    "degraded, status, n_days, n, block_length, n_boot, alpha, run_id) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING comparison_id",
                    (mv.model_name, mv.version, start, end, c["metric"], c["metric"] == perf.PRIMARY_METRIC,
                     *[_json(c[k]) for k in ("live", "baseline", "rel_diff", "ci_low", "ci_high", "rel_ci_low", "rel_ci_high", "threshold")],
                     tol, c["degraded"], c["status"], c["n_days"], snapshots[0][2]["n"], c["block"], N_BOOT, ALPHA, rid))
                ids.append(int(cur.fetchone()[0]))
            for metric, key_ in ESTIMATED_METRICS.items():
                cur.execute(storage.read_sql("dml/perf_upsert_estimate.sql"), {
                    "model": mv.model_name, "version": mv.version, "start": start, "end": end, "metric": metric,
                    "n": estimate["n"], "ids": [int(i) for i in unlabeled["prediction_id"]],
                    "estimate": _json(estimate[key_]), "estimate_unchecked": _json(unchecked[key_]), "status": estimate["status"],
                    "reason": estimate["reason"], "calibration": json.dumps(check, default=str), "run_id": rid})
            for r in realized:
                cur.execute(
                    "UPDATE performance_estimates SET realized = %s, abs_error = abs(estimate - %s), "
                    "abs_error_unchecked = abs(estimate_unchecked - %s), realized_n = %s, realized_as_of = %s "
                    "WHERE model_name = %s AND model_version = %s AND window_end = %s AND metric = %s",
                    (r["realized"], r["realized"], r["realized"], r["n"], end, mv.model_name, mv.version, r["window_end"], r["metric"]))
            cur.execute(
                "INSERT INTO model_health_daily (model_name, model_version, window_end, status, reasons, drift_score, perf_metric, "
                "perf_rel_drop, perf_degraded, dq_failures, model_age_days, run_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (mv.model_name, mv.version, end, health, json.dumps(reasons), drift_score, perf.PRIMARY_METRIC,
                 rel_drop, primary["degraded"], dq_failures, age, rid))
            for f, row in interp.items():
                cur.execute(
                    "INSERT INTO interpretability_log (model_name, model_version, window_start, window_end, feature, importance_gain, "
                    "mean_abs_shap, shap_rank, n_predictions, run_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (mv.model_name, mv.version, start, end, f, row["gain"], row["shap"], row["rank"], len(in_window), rid))
            alert = _alert(cur, alerts, mv, target, decision, primary, ids, start, end, rid)

    overall = snapshots[0][2]
    m = get_metrics()
    for name in ("hit_rate", "win_rate", "profit_factor", "sharpe", "accuracy"):
        m.gauge(f"performance.{name}", overall[name], mv.model_name, mv.version)
    m.gauge("performance.estimated_accuracy", estimate["expected_accuracy"], mv.model_name, mv.version)
    if realized:
        last = [r for r in realized if r["metric"] == "accuracy"]
        m.gauge("performance.realized_accuracy", last[-1]["realized"] if last else None, mv.model_name, mv.version)
    m.gauge("health.status", perf.HEALTH_CODES[health], mv.model_name, mv.version)
    summary = {"model_name": mv.model_name, "version": mv.version, "as_of": end.isoformat(), "health": health,
               "n_matured": overall["n"], "accuracy": overall["accuracy"], "hit_rate": overall["hit_rate"],
               "primary": {k: primary[k] for k in ("metric", "live", "baseline", "ci_low", "ci_high", "status")},
               "alert": alert, "estimate": {"status": estimate["status"], "accuracy": estimate["expected_accuracy"], "n": estimate["n"]},
               "realized_filled": len(realized)}
    print(_report(where, overall, comparisons, estimate, check, realized, health, reasons, alert, interp))
    return summary


def _estimate(perf, matured, unlabeled) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """CBPE estimate of ``unlabeled`` with a calibrator fitted and checked on matured data:
    (estimate, the same numbers ignoring the check, the check)."""
    fit, recent = perf.calibration_split(matured, CHECK_ROWS)
    if len(fit) < FIT_MIN_ROWS:
        check = {"reliable": False, "n_fit": len(fit), "n": len(recent),
                 "reason": f"only {len(fit)} matured predictions to fit the calibrator (< {FIT_MIN_ROWS})"}
        est = perf.estimate_performance(unlabeled, None, check)
        return est, est, check
    cal = perf.fit_calibrator(fit, min_rows=FIT_MIN_ROWS)
    check = {**perf.calibration_check(recent, cal, min_rows=CHECK_MIN_ROWS), "n_fit": len(fit)}
    return perf.estimate_performance(unlabeled, cal, check), perf.estimate_performance(unlabeled, cal), check


def _realizations(perf, conn, mv, end, df, matured, horizon) -> list[dict[str, Any]]:
    """Realized values of earlier estimates whose predictions have all matured by ``end``."""
    from include.modelwatch.data import storage

    pending = storage.fetch_dicts(conn, storage.read_sql("dml/perf_realize_estimates.sql"),
                                  {"model": mv.model_name, "version": mv.version, "end": end})
    conn.rollback()
    out = []
    for p in pending:
        if p["n_predictions"] == 0 or int(p["n_matured"]) < p["n_predictions"]:
            continue
        rows = matured[matured["prediction_id"].isin(set(p["prediction_ids"]))]
        if len(rows) < p["n_predictions"]:  # older than the lookback or rejected by the horizon check
            continue
        value = perf.live_metrics(rows, horizon)[p["metric"]]
        out.append({"window_end": p["window_end"], "metric": p["metric"], "realized": _json(value), "n": len(rows)})
    return out


def _drift_and_dq(conn, mv, end) -> tuple[float | None, int]:
    """Latest evaluated drift score and the data-quality failures of the last 30 days, as of ``end``."""
    from include.modelwatch.data import storage

    d = storage.fetch_dicts(conn, "SELECT drift_score FROM drift_windows WHERE model_name = %s AND model_version = %s "
                            "AND window_end <= %s AND status = 'evaluated' ORDER BY window_end DESC LIMIT 1",
                            (mv.model_name, mv.version, end))
    q = storage.fetch_dicts(conn, "SELECT count(*) AS n FROM data_quality_results WHERE subject = %s AND NOT success "
                            "AND window_end <= %s AND window_end > %s", (mv.label, end, end - timedelta(days=30)))
    conn.rollback()
    return (d[0]["drift_score"] if d else None), int(q[0]["n"])


def _interpretability(mv, in_window) -> dict[str, dict[str, Any]]:
    """Per feature: gain share of the model and mean |SHAP| over the window's predictions."""
    import pandas as pd

    from include.modelwatch.monitoring import performance as perf
    from include.modelwatch import registry

    from include.modelwatch.training import training
    model = training.deserialize_model(registry.read_artifact(mv))
    gain = perf.importance_shares(training.feature_importance_gain(model, mv.features))
    shap = dict.fromkeys(mv.features)
    if len(in_window):
        X = pd.DataFrame(list(in_window["features"]))
        missing = [f for f in mv.features if f not in X.columns]
        if missing:
            raise ValueError(f"{mv.label}: predictions lack feature column(s) {missing}")
        shap = dict(zip(mv.features, (float(v) for v in training.shap_contributions(model, X[mv.features].astype(float))), strict=True))
    order = sorted((f for f in mv.features if shap[f] is not None), key=lambda f: -shap[f])
    rank = {f: i + 1 for i, f in enumerate(order)}
    return {f: {"gain": gain[f], "shap": shap[f], "rank": rank.get(f)} for f in mv.features}


def _alert(cur, alerts, mv, target, decision, primary, ids, start, end, rid) -> str:
    """Raise / resolve the model's ``performance`` alert; only the champion's evidence counts."""
    if "champion" not in (target.get("aliases") or ["champion"]):
        return f"none ({mv.label} is not the champion)"
    if decision.action == "raise":
        ch = alerts.raise_alert(
            cur, model_name=mv.model_name, model_version=mv.version, kind="performance", severity=decision.severity,
            title=f"{mv.label}: live {primary['metric']} below backtest",
            message=decision.reason, window_start=start, window_end=end, score=decision.score, run_id=rid,
            evidence={"comparison_ids": ids, "metric": primary["metric"], "ci": [primary["ci_low"], primary["ci_high"]],
                      "live": primary["live"], "baseline": primary["baseline"], "tolerance_rel": primary["tolerance_rel"],
                      "n_days": primary["n_days"], "block": primary["block"]})
        return f"{ch.action} ({decision.severity}, performance_drop {decision.score:.3f})"
    if decision.action == "resolve":
        cur.execute("SELECT model_version FROM alerts WHERE model_name = %s AND kind = 'performance' AND status <> 'resolved'",
                    (mv.model_name,))
        row = cur.fetchone()
        if row and row[0] in (None, mv.version):
            alerts.resolve_alert(cur, model_name=mv.model_name, kind="performance", at=end, resolution=decision.reason)
            return "resolved"
        return "none"
    return "unchanged (undecidable)"


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def _report(where, overall, comparisons, estimate, check, realized, health, reasons, alert, interp) -> str:
    lines = [f"Performance report, {where}",
             f"  matured predictions: {overall['n']} over {overall['n_days']} entry days ({overall['n_trades']} trades)",
             f"  accuracy {_fmt(overall['accuracy'])}, macro F1 {_fmt(overall['macro_f1'])}, hit rate {_fmt(overall['hit_rate'])}, "
             f"profit factor {_fmt(overall['profit_factor'], '.2f')}, Sharpe {_fmt(overall['sharpe'], '.2f')}, "
             f"max drawdown {_fmt(overall['max_drawdown'])}, Brier {_fmt(overall['brier'])}, ECE {_fmt(overall['ece'])}",
             "  live vs backtest (95% block-bootstrap CI):"]
    for c in comparisons:
        lines.append(f"    {c['metric']:<14} live {_fmt(c['live'])} [{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}] "
                     f"vs {_fmt(c['baseline'])} ({_fmt(c['rel_diff'], '+.1%')}) -> {c['status']}")
    if estimate["status"] == "ok":
        lines.append(f"  label-free estimate of {estimate['n']} unmatured predictions: accuracy {_fmt(estimate['expected_accuracy'])}, "
                     f"macro F1 {_fmt(estimate['expected_macro_f1'])} ({estimate['reason']})")
    else:
        withheld = "; withheld, no number reported" if estimate["status"] == "unreliable" else ""
        lines.append(f"  label-free estimate of {estimate['n']} unmatured predictions: {estimate['status']} ({estimate['reason']}){withheld}")
    for r in realized:
        lines.append(f"  realized {r['metric']} of the estimate as of {r['window_end']:%Y-%m-%d}: {_fmt(r['realized'])}")
    top = sorted((f for f in interp if interp[f]["rank"]), key=lambda f: interp[f]["rank"])[:3]
    if top:
        lines.append("  top features by mean |SHAP|: " + ", ".join(f"{f} {interp[f]['shap']:.3f}" for f in top))
    lines.append(f"  health: {health}" + (" - " + "; ".join(reasons) if reasons else ""))
    lines.append(f"  performance alert: {alert}")
    return "\n".join(lines)
