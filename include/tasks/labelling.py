"""Task bodies of ``label_queue``: refresh the active-learning queue, ask people to label its top items through
Airflow's human-in-the-loop requests, and let the ``active_learning_retrain`` rule write a retraining trigger.

:class:`LabelOperator` is one HITL request per item (mapped): options BUY, SELL, HOLD and Skip, a notes field.
An answer is recorded with the real user's name; a request nobody answered before its response timeout leaves
the item ``pending`` for the next run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator

from include.tasks.common import data_interval, monitoring_db, refusing_artifacts, run_id, window

log = logging.getLogger(__name__)

#: an unanswered request goes back to the queue before the next daily run
RESPONSE_TIMEOUT = timedelta(hours=20)
PRICE_SESSIONS = 10  # closes shown with each item
TOP_FEATURES = 5


def _models(context: dict[str, Any]) -> list[str]:
    from include.modelwatch.loop import responses

    chosen = (context.get("params") or {}).get("model_name")
    if chosen:
        return [chosen]
    with monitoring_db() as conn:
        return responses.models_with_champion(conn)


def refresh_queue(context: dict[str, Any]) -> dict[str, Any]:
    """Outcomes onto matured items and expiry, per model; logs the queue's counts."""
    from include.modelwatch.active_learning import store

    out: dict[str, Any] = {}
    with monitoring_db() as conn:
        for model in _models(context):
            changed = store.refresh(conn, model)
            counts = store.queue_counts(conn, model)
            row = counts[0] if counts else {}
            log.info(
                "%s: %d outcome(s) recorded, %d item(s) expired; queue: %s",
                model,
                changed["outcomes"],
                changed["expired"],
                ", ".join(f"{k} {row.get(k, 0)}" for k in ("pending", "labelled", "skipped", "processed", "expired")),
            )
            out[model] = {**changed, **{k: int(row.get(k, 0)) for k in ("pending", "labelled", "processed", "expired")}}
    log.info("summary: queue refreshed for %d model(s): %s", len(out), out)
    return out


def pick_items(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The top pending items of each model (priority, then age; the model's ``batch_size`` or the ``n`` param),
    each as the keyword arguments of one labelling request: subject and body with what a person needs."""
    from include.modelwatch import registry
    from include.modelwatch.active_learning import review, store
    from include.modelwatch.data import signals
    from include.modelwatch.training import training

    n = (context.get("params") or {}).get("n")
    start, end, rid = *data_interval(context), run_id(context)
    requests: list[dict[str, Any]] = []
    with monitoring_db() as conn:
        for model in _models(context):
            items = store.pick(conn, model, n)
            versions: dict[int, Any] = {}  # version -> (ModelVersion, booster)
            for it in items:
                if it.model_version not in versions:
                    mv = registry.get_version(conn, model, it.model_version)
                    with refusing_artifacts(
                        conn, by="label_queue", start=start, end=end, rid=rid, consequence="no labelling request"
                    ):
                        versions[it.model_version] = (mv, training.deserialize_model(registry.read_artifact(mv)))
                mv, booster = versions[it.model_version]
                bars = signals.read_bars(
                    conn, it.symbol, it.ts.date() - timedelta(days=PRICE_SESSIONS * 2 + 7), it.ts.date() + timedelta(1)
                ).tail(PRICE_SESSIONS)
                closes = list(zip(bars["date"].dt.date, bars["close"], strict=True))
                contrib = review.top_contributions(booster, it, TOP_FEATURES)
                subject, body = review.request(it, closes, contrib, horizon=int(mv.horizon_days or 5))
                requests.append({"item_id": it.item_id, "subject": subject, "body": body})
            log.info("%s: %d item(s) to label: %s", model, len(items), [it.item_id for it in items])
    log.info("summary: %d labelling request(s) opened", len(requests))
    return requests


def record_answer(item_id: int, event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Record a labelling request's answer (label or skip) with the user who gave it."""
    from include.modelwatch.active_learning import review, store
    from include.modelwatch.training.approval import Response

    resp = Response.from_event(event)
    choice = resp.chosen[0] if resp.chosen else None
    notes = ((event.get("params_input") or {}).get("notes") or None) if choice else None
    raw = event.get("responded_at")
    if raw is None:
        raise ValueError(f"item {item_id}: the HITL response has no responded_at")
    at = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    try:
        with monitoring_db() as conn:
            if choice == review.SKIP:
                it = store.skip(conn, item_id, by=resp.who(), at=at, note=notes)
            else:
                it = store.label(conn, item_id, str(choice), by=resp.who(), at=at, note=notes)
    except store.LabelError as exc:  # answered elsewhere meanwhile: not worth a retry (it would ask again)
        log.warning("summary: %s's answer %s was not recorded: %s", resp.who(), choice, exc)
        return {"item_id": item_id, "status": "refused", "label": choice, "by": resp.who(), "reason": str(exc)}
    log.info(
        "summary: %s %s by %s%s", it.label, it.manual_label or "skipped", it.labelled_by, f": {notes}" if notes else ""
    )
    return {"item_id": item_id, "status": it.status, "label": it.manual_label, "by": it.labelled_by}


class LabelOperator(HITLOperator):
    """One labelling request (see the module docstring)."""

    def __init__(self, *, item_id: int, **kwargs: Any) -> None:
        from airflow.sdk import Param

        from include.modelwatch.active_learning.review import OPTIONS

        kwargs.setdefault("options", list(OPTIONS))
        kwargs.setdefault("response_timeout", RESPONSE_TIMEOUT)
        kwargs.setdefault(
            "params", {"notes": Param(None, type=["null", "string"], title="Notes", description="why (optional)")}
        )
        super().__init__(**kwargs)
        self.item_id = item_id

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("error_type") == "timeout":
            log.info(
                "summary: item %s: nobody answered within %s; it stays pending for the next run",
                self.item_id,
                self.response_timeout,
            )
            return {"item_id": self.item_id, "status": "pending", "label": None, "by": None}
        super().execute_complete(context=context, event=event)  # validates the options and params
        return record_answer(self.item_id, event, context)


def respond_to_labels(context: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the ``labelling`` response rules (``active_learning_retrain``: enough labels no retrain used yet,
    old enough to train on) for each model as of its newest scored bar (the data's clock: a retrain triggered now
    trains on data up to it; on a replay the wall clock would reach past the replayed data); returns the changed
    triggers (the Asset event) like the other monitors."""
    from include.modelwatch.active_learning import store
    from include.modelwatch.loop import triggers
    from include.tasks.loop import evaluate_models

    models = _models(context)
    with monitoring_db() as conn:
        with conn.cursor() as cur:
            as_of = {m: store.newest_scored(cur, m) or window(context)[1] for m in models}
        actions, changed = evaluate_models(conn, models, "labelling", as_of.__getitem__, run_id(context))
        pending = triggers.pending_count(conn)
    log.info(
        "summary: labelling rules as of %s: %s; %d pending trigger(s)",
        ", ".join(f"{m} {t.isoformat()}" for m, t in as_of.items()) or "-",
        ", ".join(f"{v} {k}" for k, v in sorted(actions.items())) or "no decisions",
        pending,
    )
    return {"source": "labelling", "actions": actions, "changed_triggers": changed, "pending": pending}
