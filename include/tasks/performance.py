"""Task bodies of ``performance_daily``: one model version's live performance as of
the window end, compared with its backtest, estimated where labels are missing,
summed up as model health, with the window's SHAP log.

Everything is keyed on the window end ("as of"); a prediction counts only when
its outcome matured before it. One transaction per version: a failure leaves
the database as it was.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from include.modelwatch.api import urls
from include.tasks.common import log_page, monitoring_db, refusing_artifacts, run_id, variable, window

log = logging.getLogger(__name__)

#: Calendar days of predictions read per run (evaluation period + calibration data).
#: Three years: the label-free estimator's calibration uses all of it.
LOOKBACK_DAYS = 1096
ESTIMATED_METRICS = {"accuracy": "expected_accuracy", "macro_f1": "expected_macro_f1"}
_PER_CLASS = ("precision", "recall", "f1", "support")


def active_targets() -> list[dict[str, Any]]:
    """Every version holding an alias, with its aliases (only the champion's evidence moves the alert)."""
    from include.modelwatch import registry

    with monitoring_db() as conn:
        targets = [
            {"model_name": r["model_name"], "version": r["version"], "aliases": r["aliases"]}
            for r in registry.active_versions(conn)
        ]
    names = [f"{t['model_name']} v{t['version']} ({'/'.join(t['aliases'] or [])})" for t in targets]
    log.info("%d active model version(s) to evaluate: %s", len(targets), ", ".join(names) or "none")
    return targets


def settings() -> tuple[float, int]:
    """(performance tolerance, max model age in days) from the Airflow Variables."""
    tol = variable("modelwatch_performance_tolerance")
    age = variable("modelwatch_max_model_age_days")
    if not 0 <= tol < 1:
        raise ValueError(f"variable modelwatch_performance_tolerance must be in [0, 1), got {tol}")
    return tol, age


def evaluate(target: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Live metrics, live vs backtest, label-free estimate, health and SHAP log of one version."""
    from include.modelwatch import registry
    from include.modelwatch.data import storage
    from include.modelwatch.loop import alerts
    from include.modelwatch.monitoring import performance as perf
    from include.modelwatch.monitoring.performance import store
    from include.modelwatch.notify import outbox
    from include.modelwatch.training import training
    from include.tasks.notify import base_url, deliver_pending

    tol, max_age = settings()
    rid = run_id(context)
    start, end = window(context)
    base = base_url()
    with monitoring_db() as conn:
        mv = registry.get_version(conn, target["model_name"], int(target["version"]))
        where = f"{mv.label} window {start:%Y-%m-%d}..{end:%Y-%m-%d}"
        classes = list(mv.classes)
        # an external model has no artifact: no interpretability, everything else as for a trained one
        model = None
        if mv.artifact_path is not None:
            with refusing_artifacts(
                conn, by="performance_daily", start=start, end=end, rid=rid, consequence="not evaluated"
            ):
                model = training.deserialize_model(registry.read_artifact(mv))
        df = store.load_predictions(
            conn,
            mv.model_name,
            mv.version,
            min(start, end - timedelta(days=LOOKBACK_DAYS)),
            end,
            start,
            classes=classes,
        )
        try:
            ev = perf.evaluate_window(
                df,
                start=start,
                end=end,
                baseline=store.baseline(conn, mv.model_name, mv.version),
                pending_estimates=store.pending_estimates(conn, mv.model_name, mv.version, end),
                model=model,
                features=list(mv.features),
                tolerance=tol,
                horizon_days=mv.horizon_days,
                train_end=mv.train_end,
                label=mv.label,
                classes=classes,
            )
        except ValueError as exc:  # bad stored data: name the model and the window
            raise ValueError(f"{where}: {exc}") from exc
        snapshots, comparisons, primary = ev.snapshots, ev.comparisons, ev.primary
        estimate, unchecked, check, realized, interp = ev.estimate, ev.unchecked, ev.check, ev.realized, ev.interp

        key = {"model": mv.model_name, "version": mv.version}
        with storage.transaction(conn) as cur:
            store.clear_window(cur, mv.model_name, mv.version, end)
            for sym, tf, m in snapshots:
                # live_performance_daily.per_class is jsonb: any class list fits without a migration
                per_class = {f"{k}_{c}": m[f"{k}_{c}"] for c in classes for k in _PER_CLASS}
                store.insert_snapshot(
                    cur,
                    model=mv.model_name,
                    version=mv.version,
                    start=start,
                    end=end,
                    symbol=sym,
                    timeframe=tf,
                    eval_start=ev.eval_start,
                    eval_end=ev.eval_end,
                    metrics=m,
                    per_class=per_class,
                    run_id=rid,
                )
            ids = [
                store.insert_comparison(
                    cur,
                    model=mv.model_name,
                    version=mv.version,
                    start=start,
                    end=end,
                    comparison=c,
                    is_primary=c["metric"] == perf.PRIMARY_METRIC,
                    n=snapshots[0][2]["n"],
                    n_boot=perf.N_BOOT,
                    alpha=perf.ALPHA,
                    run_id=rid,
                )
                for c in comparisons
            ]
            for metric, key_ in ESTIMATED_METRICS.items():
                store.upsert_estimate(
                    cur,
                    {
                        **key,
                        "start": start,
                        "end": end,
                        "metric": metric,
                        "n": estimate["n"],
                        "ids": [int(i) for i in ev.unlabeled["prediction_id"]],
                        "estimate": perf.optional_float(estimate[key_]),
                        "estimate_unchecked": perf.optional_float(unchecked[key_]),
                        "status": estimate["status"],
                        "reason": estimate["reason"],
                        "calibration": json.dumps(check, default=str),
                        "run_id": rid,
                    },
                )
            for r in realized:
                store.set_realized(cur, model=mv.model_name, version=mv.version, as_of=end, realized=r)
            h = store.insert_health(
                cur,
                model=mv.model_name,
                version=mv.version,
                label=mv.label,
                end=end,
                perf_metric=perf.PRIMARY_METRIC,
                perf_rel_drop=ev.rel_drop,
                perf_degraded=primary["degraded"],
                model_age_days=ev.age,
                thresholds=store.thresholds_for(max_age),
                run_id=rid,
            )
            health, reasons = h["status"], h["reasons"]
            store.insert_interpretability(
                cur,
                model=mv.model_name,
                version=mv.version,
                start=start,
                end=end,
                interp=interp,
                n=len(ev.in_window),
                run_id=rid,
            )
            plan = perf.alert_plan(
                ev.decision,
                primary,
                target.get("aliases"),
                store.open_alert_version(cur, mv.model_name),
                mv.version,
                mv.label,
                comparison_ids=ids,
            )
            alert = plan.outcome
            if plan.action == "raise":
                ch = alerts.raise_alert(
                    cur,
                    model_name=mv.model_name,
                    model_version=mv.version,
                    kind="performance",
                    severity=str(plan.severity),
                    title=str(plan.title),
                    message=str(plan.message),
                    window_start=start,
                    window_end=end,
                    score=plan.score,
                    run_id=rid,
                    evidence=plan.evidence,
                )
                alert = f"{ch.action} {plan.outcome}"
                outbox.enqueue_alert_change(cur, ch, base_url=base, window_start=start, window_end=end)
            elif plan.action == "resolve":
                resolved = alerts.resolve_alert(
                    cur,
                    model_name=mv.model_name,
                    kind="performance",
                    at=end,
                    resolution=str(plan.resolution),
                    window_start=start,
                )
                outbox.enqueue_alert_change(cur, resolved, base_url=base, window_start=start, window_end=end)
        deliver_pending(conn, mv.model_name)

    overall = ev.overall
    summary = {
        "model_name": mv.model_name,
        "version": mv.version,
        "as_of": end.isoformat(),
        "health": health,
        "n_matured": overall["n"],
        "accuracy": overall["accuracy"],
        "hit_rate": overall["hit_rate"],
        "primary": {k: primary[k] for k in ("metric", "live", "baseline", "ci_low", "ci_high", "status")},
        "alert": alert,
        "estimate": {"status": estimate["status"], "accuracy": estimate["expected_accuracy"], "n": estimate["n"]},
        "realized_filled": len(realized),
    }
    log.info("%s", _report(where, overall, comparisons, estimate, check, realized, health, reasons, alert, interp))
    log_page(log, "live vs backtest", urls.model_path(mv.model_name, "timeline"))
    return summary


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def _report(where, overall, comparisons, estimate, check, realized, health, reasons, alert, interp) -> str:
    lines = [
        f"Performance report, {where}",
        f"  matured predictions: {overall['n']} over {overall['n_days']} entry days ({overall['n_trades']} trades)",
        f"  accuracy {_fmt(overall['accuracy'])}, macro F1 {_fmt(overall['macro_f1'])}, "
        f"hit rate {_fmt(overall['hit_rate'])}, "
        f"profit factor {_fmt(overall['profit_factor'], '.2f')}, Sharpe {_fmt(overall['sharpe'], '.2f')}, "
        f"max drawdown {_fmt(overall['max_drawdown'])}, Brier {_fmt(overall['brier'])}, "
        f"ECE {_fmt(overall['ece'])}",
        "  live vs backtest (95% block-bootstrap CI):",
    ]
    for c in comparisons:
        lines.append(
            f"    {c['metric']:<14} live {_fmt(c['live'])} [{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}] "
            f"vs {_fmt(c['baseline'])} ({_fmt(c['rel_diff'], '+.1%')}) -> {c['status']}"
        )
    if estimate["status"] == "ok":
        lines.append(
            f"  label-free estimate of {estimate['n']} unmatured predictions: "
            f"accuracy {_fmt(estimate['expected_accuracy'])}, "
            f"macro F1 {_fmt(estimate['expected_macro_f1'])} ({estimate['reason']})"
        )
    else:
        withheld = "; withheld, no number reported" if estimate["status"] == "unreliable" else ""
        lines.append(
            f"  label-free estimate of {estimate['n']} unmatured predictions: {estimate['status']} "
            f"({estimate['reason']}){withheld}"
        )
    for r in realized:
        lines.append(
            f"  realized {r['metric']} of the estimate as of {r['window_end']:%Y-%m-%d}: {_fmt(r['realized'])}"
        )
    top = sorted((f for f in interp if interp[f]["rank"]), key=lambda f: interp[f]["rank"])[:3]
    if top:
        lines.append("  top features by mean |SHAP|: " + ", ".join(f"{f} {interp[f]['shap']:.3f}" for f in top))
    lines.append(f"  health: {health}" + (" - " + "; ".join(reasons) if reasons else ""))
    lines.append(f"  performance alert: {alert}")
    return "\n".join(lines)
