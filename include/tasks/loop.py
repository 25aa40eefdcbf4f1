"""Task bodies of the closed loop: after a monitor ran, refresh the window's health and
evaluate the response rules."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from include.modelwatch.api import urls
from include.tasks.common import log_page, monitoring_db, run_id, window

log = logging.getLogger(__name__)


def evaluate_models(
    conn,
    models: list[str],
    source: str,
    as_of: Callable[[str], datetime],
    rid: str,
    window: tuple[datetime | None, datetime | None] = (None, None),
) -> tuple[dict[str, int], list[int]]:
    """Evaluate the response rules of ``source`` for each model at ``as_of(model)``: logs each evaluation, counts
    the new decisions per action (metric ``loop.actions``) and returns them with the triggers that changed."""
    from include.modelwatch.loop import responses
    from include.modelwatch.metrics import get_metrics
    from include.tasks.notify import base_url, deliver_pending

    counts: dict[str, int] = {}
    changed: list[int] = []
    url = base_url()
    for model in models:
        ev = responses.evaluate(conn, model, source=source, as_of=as_of(model), run_id=rid, window=window, base_url=url)
        log.info("%s", ev.summary())
        if ev.changed and ev.trigger_id is not None:
            changed.append(ev.trigger_id)
        if ev.external and not ev.replayed and any(a["action"] == "fire" for a in ev.actions):
            log.info("%s is external: retrain requested from its owner; %s", model, deliver_pending(conn, model))
        for a in ev.actions:
            if not ev.replayed:
                counts[a["action"]] = counts.get(a["action"], 0) + 1
                get_metrics().incr("loop.actions", model, source, a["action"])
    return counts, changed


def respond(source: str, context: dict[str, Any]) -> dict[str, Any]:
    """Refresh the window's health rows, then evaluate the rules of ``source`` for every model
    with a champion, at the window's end.

    Both drift_hourly and performance_daily call this after writing their
    results for a window, so the health row of that window is recomputed by
    whichever finishes last, from both inputs (order-independent). Logs each
    decision (fired, upgraded, suppressed, cancelled) with its reason; after
    ``performance`` also brings the retrain feedback up to date. The log ends
    with one ``summary:`` line.
    Returns counts per action and whether any trigger changed (the asset event).
    """
    from include.modelwatch.data import storage
    from include.modelwatch.loop import responses, triggers
    from include.modelwatch.loop.feedback import update_feedback
    from include.modelwatch.monitoring.performance import store
    from include.tasks.performance import settings

    start, end = window(context)
    rid = run_id(context)
    _, max_age = settings()
    with monitoring_db() as conn:
        with storage.transaction(conn) as cur:
            health = store.refresh_health(cur, end, store.thresholds_for(max_age))
        models = responses.models_with_champion(conn)
        counts, changed = evaluate_models(conn, models, source, lambda _: end, rid, window=(start, end))
        feedback = update_feedback(conn, as_of=end, run_id=rid) if source == "performance" else []
        pending = triggers.pending_count(conn)
    for h in health:
        log.info(
            "health %s v%s as of %s: %s (drift score %s, %s data-quality failure(s))%s",
            h["model_name"],
            h["model_version"],
            end.isoformat(),
            h["status"],
            h["drift_score"],
            h["dq_failures"],
            "; " + "; ".join(h["reasons"]) if h["reasons"] else "",
        )
    for row in feedback:
        log.info(
            "feedback: trigger %s (%s, %s): accuracy %s (v%s) -> %s (v%s, n=%s), improved=%s, period complete %s",
            row["trigger_id"],
            row["rule_name"],
            row["outcome"],
            row["before_value"],
            row["version_before"],
            row["after_value"],
            row["version_after"],
            row["n_after"],
            row["improved"],
            row["evaluated_at"],
        )
    log.info(
        "summary: closed loop (%s, window %s .. %s): %s; %d health row(s) refreshed; %d feedback row(s) written "
        "or corrected; %d pending trigger(s) in total",
        source,
        start.isoformat(),
        end.isoformat(),
        ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no decisions",
        len(health),
        len(feedback),
        pending,
    )
    log_page(log, "alerts and triggers", urls.alerts_path())
    return {
        "source": source,
        "models": models,
        "actions": counts,
        "changed_triggers": changed,
        "pending": pending,
        "feedback_rows": len(feedback),
        "health_refreshed": len(health),
    }


def announce(result: dict[str, Any]) -> str:
    """Let the trigger-table Asset event through only when a trigger changed."""
    from airflow.sdk.exceptions import AirflowSkipException

    if not result or not result.get("changed_triggers"):
        raise AirflowSkipException("no trigger created, upgraded or cancelled: retrain_gated is not woken")
    return f"triggers changed: {result['changed_triggers']}"
