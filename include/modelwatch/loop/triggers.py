"""Retraining triggers in the database: the per-model lock, the pending trigger and its
changes (insert, upgrade, cancel), the ``closed_loop_actions`` record of every decision,
and the requests of people.

At most one trigger per model is pending: writers serialize on :func:`lock_model`
(a transaction-scoped advisory lock) and the partial unique index
``retraining_triggers_one_pending`` backs it up (:func:`insert_trigger` returns
``None`` instead of making a second one). :func:`create_manual_trigger` needs a
reason and follows the same rule: a stronger request upgrades the pending
trigger, a weaker one is noted on it. :func:`cancel_trigger` cancels a pending
trigger by hand, with a reason. :mod:`responses` applies the rules with the same
helpers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from include.modelwatch.data.storage import fetch_dicts, transaction
from include.modelwatch.loop import rules as R

#: Status (and outcome) of a fired rule's trigger for an external model: a request to its owner, never claimed.
EXTERNAL_RETRAIN_REQUESTED = "external_retrain_requested"


class LoopError(ValueError):
    """A closed-loop request cannot be honoured; the message names model and reason."""


# ------------------------------------------------------------------ trigger rows


def lock_model(cur, model_name: str) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))", {"key": f"modelwatch.loop:{model_name}"})


def champion_row(cur, model_name: str) -> dict[str, Any] | None:
    cur.execute(
        "SELECT v.version, v.train_end FROM model_aliases a JOIN model_versions v "
        "ON v.model_name = a.model_name AND v.version = a.version WHERE a.model_name = %(model)s "
        "AND a.alias = 'champion'",
        {"model": model_name},
    )
    row = cur.fetchone()
    return {"version": int(row[0]), "train_end": row[1]} if row else None


def pending_row(cur, model_name: str) -> dict[str, Any] | None:
    cur.execute(
        "SELECT trigger_id, model_version, rule_name, trigger_type, retrain_mode, priority, triggered_at, evidence "
        "FROM retraining_triggers WHERE model_name = %(model)s AND status = 'pending' FOR UPDATE",
        {"model": model_name},
    )
    row = cur.fetchone()
    if row is None:
        return None
    return dict(
        zip(
            (
                "trigger_id",
                "model_version",
                "rule_name",
                "trigger_type",
                "retrain_mode",
                "priority",
                "triggered_at",
                "evidence",
            ),
            row,
            strict=True,
        )
    )


def as_pending_trigger(p: Mapping[str, Any]) -> R.PendingTrigger:
    return R.PendingTrigger(
        model="",
        rule_name=p["rule_name"] or R.MANUAL_RULE_NAME,
        trigger_type=p["trigger_type"],
        retrain_mode=p["retrain_mode"],
        priority=p["priority"],
        trigger_id=p["trigger_id"],
        created_at=p["triggered_at"],
    )


def record_action(
    cur,
    *,
    model_name: str,
    version: int | None,
    source: str,
    d: R.Decision | None,
    action: str,
    rule_name: str,
    reason: str,
    evidence: Mapping[str, Any],
    as_of: datetime,
    run_id: str | None,
    trigger_id: int | None = None,
    alert_id: int | None = None,
) -> dict[str, Any]:
    ev = dict(evidence)
    metric, observed, threshold = ev.get("metric"), ev.get("observed"), ev.get("threshold")
    cur.execute(
        "INSERT INTO closed_loop_actions (model_name, model_version, source, rule_name, action, trigger_id, alert_id, "
        "metric, observed, threshold, reason, evidence, evaluated_at, run_id) "
        "VALUES (%(model_name)s, %(model_version)s, %(source)s, %(rule_name)s, %(action)s, %(trigger_id)s, "
        "%(alert_id)s, %(metric)s, %(observed)s, %(threshold)s, %(reason)s, %(evidence)s, %(evaluated_at)s, "
        "%(run_id)s) ON CONFLICT (model_name, source, evaluated_at, rule_name, action) DO NOTHING",
        {
            "model_name": model_name,
            "model_version": version,
            "source": source,
            "rule_name": rule_name,
            "action": action,
            "trigger_id": trigger_id,
            "alert_id": alert_id,
            "metric": metric,
            "observed": observed,
            "threshold": threshold,
            "reason": reason,
            "evidence": json.dumps(ev, default=str),
            "evaluated_at": as_of,
            "run_id": run_id,
        },
    )
    return {
        "action": action,
        "rule_name": rule_name,
        "reason": reason,
        "trigger_id": trigger_id,
        "alert_id": alert_id,
        "observed": observed,
        "threshold": threshold,
    }


def cancel_pending(cur, trigger_id: int, reason: str, at: datetime) -> bool:
    cur.execute(
        "UPDATE retraining_triggers SET status = 'cancelled', outcome = %(outcome)s, completed_at = %(at)s, "
        "updated_at = now() WHERE trigger_id = %(trigger_id)s AND status = 'pending' RETURNING trigger_id",
        {"outcome": f"cancelled: {reason}", "at": at, "trigger_id": trigger_id},
    )
    return cur.fetchone() is not None


def external_owner(cur, model_name: str) -> str | None:
    """The owner of an external model ('' when it names none), None for a model ModelWatch retrains itself."""
    cur.execute(
        "SELECT origin, owner FROM monitored_models WHERE model_name = %(model)s",
        {"model": model_name},
    )
    row = cur.fetchone()
    if row is None or row[0] != "external":
        return None
    return row[1] or ""


def request_external_retrain(
    cur,
    *,
    model_name: str,
    version: int,
    d: R.Decision,
    evidence: Mapping[str, Any],
    window: tuple[datetime | None, datetime | None],
    as_of: datetime,
    created_by: str | None,
    owner: str,
    base_url: str,
) -> int:
    """Record a fired rule of an external model as an ``external_retrain_requested`` trigger (nothing claims it)
    and enqueue the request to its owner, in the caller's transaction. Returns the trigger id."""
    from include.modelwatch.notify import outbox

    trigger_id = insert_trigger(
        cur,
        model_name=model_name,
        version=version,
        d=d,
        evidence=evidence,
        window=window,
        as_of=as_of,
        created_by=created_by,
        status=EXTERNAL_RETRAIN_REQUESTED,
    )
    assert trigger_id is not None  # only a pending insert can conflict
    outbox.enqueue_retrain_outcome(
        cur,
        outcome=EXTERNAL_RETRAIN_REQUESTED,
        trigger_id=trigger_id,
        candidate_version=None,
        champion_version=version,
        algorithm=None,
        job_id=None,
        at=as_of,
        base_url=base_url,
        detail=f"ModelWatch cannot retrain {model_name}: it was registered from a reference frame. "
        "Retrain it, then register the new version (python -m include.modelwatch external register).",
        addressed_to=[owner] if "@" in owner else [],
    )
    return trigger_id


def insert_trigger(
    cur,
    *,
    model_name: str,
    version: int,
    d: R.Decision,
    evidence: Mapping[str, Any],
    window: tuple[datetime | None, datetime | None],
    as_of: datetime,
    created_by: str | None,
    status: str = "pending",
) -> int | None:
    """Insert the trigger of a fired rule (``pending``, or ``external_retrain_requested`` completed at ``as_of``);
    None when the model already has a pending trigger."""
    cur.execute(
        "INSERT INTO retraining_triggers (model_name, model_version, trigger_type, retrain_mode, priority, rule_name, "
        "reason, evidence, window_start, window_end, triggered_at, created_by, status, completed_at, outcome) "
        "VALUES (%(model_name)s, %(model_version)s, %(trigger_type)s, %(retrain_mode)s, %(priority)s, %(rule_name)s, "
        "%(reason)s, %(evidence)s, %(window_start)s, %(window_end)s, %(triggered_at)s, %(created_by)s, %(status)s, "
        "%(completed_at)s, %(outcome)s) "
        "ON CONFLICT (model_name) WHERE status = 'pending' DO NOTHING RETURNING trigger_id",
        {
            "status": status,
            "completed_at": None if status == "pending" else as_of,
            "outcome": None if status == "pending" else status,
            "model_name": model_name,
            "model_version": version,
            "trigger_type": d.trigger_type,
            "retrain_mode": d.retrain_mode,
            "priority": d.priority,
            "rule_name": d.rule_name,
            "reason": d.reason,
            "evidence": json.dumps(dict(evidence), default=str),
            "window_start": window[0],
            "window_end": window[1],
            "triggered_at": as_of,
            "created_by": created_by,
        },
    )
    row = cur.fetchone()
    return int(row[0]) if row else None


def upgrade_trigger(
    cur,
    pending: Mapping[str, Any],
    d: R.Decision,
    evidence: Mapping[str, Any],
    as_of: datetime,
    window: tuple[datetime | None, datetime | None] = (None, None),
) -> None:
    """Raise the pending trigger to the stronger decision ``d``. The stronger evidence also defines the data the
    retrain responds to: its ``window`` (when given) replaces the trigger's."""
    history = list((pending.get("evidence") or {}).get("upgrades", []))
    history.append(
        {
            "at": as_of.isoformat(),
            "from": {
                "rule_name": pending["rule_name"],
                "priority": pending["priority"],
                "retrain_mode": pending["retrain_mode"],
            },
            "to": {"rule_name": d.rule_name, "priority": d.priority, "retrain_mode": d.retrain_mode},
        }
    )
    ev = {**dict(evidence), "upgrades": history}
    cur.execute(
        "UPDATE retraining_triggers SET trigger_type = %(trigger_type)s, rule_name = %(rule_name)s, "
        "retrain_mode = %(retrain_mode)s, priority = %(priority)s, reason = %(reason)s, evidence = %(evidence)s, "
        "window_start = CASE WHEN %(window_end)s::timestamptz IS NULL THEN window_start ELSE %(window_start)s END, "
        "window_end = coalesce(%(window_end)s::timestamptz, window_end), "
        "updated_at = now() WHERE trigger_id = %(trigger_id)s AND status = 'pending'",
        {
            "window_start": window[0],
            "window_end": window[1],
            "trigger_type": d.trigger_type,
            "rule_name": d.rule_name,
            "retrain_mode": d.retrain_mode,
            "priority": d.priority,
            "reason": d.reason,
            "evidence": json.dumps(ev, default=str),
            "trigger_id": pending["trigger_id"],
        },
    )


# ------------------------------------------------------------------ manual triggers


def create_manual_trigger(
    conn,
    model_name: str,
    reason: str,
    *,
    retrain_mode: str = "full",
    priority: str = "high",
    requested_by: str,
    as_of: datetime,
) -> int:
    """A person's retrain request; returns the model's pending trigger id.

    Refused without a reason or without a champion, and refused (naming it)
    while another requester's manual trigger of the model is pending or
    claimed. With a pending rule trigger already there, a stronger request
    upgrades it and a weaker one is recorded on it. Idempotent per
    ``requested_by`` while that trigger is pending or
    claimed (a retried DAG run gets its trigger back); after it finished, the
    same requester's next request is a new one.
    """
    d = R.manual_trigger(model_name, reason, retrain_mode=retrain_mode, priority=priority, requested_by=requested_by)
    if not requested_by or not str(requested_by).strip():
        raise LoopError(f"{model_name}: a manual trigger needs requested_by (a run id or a user)")
    with transaction(conn) as cur:
        lock_model(cur, model_name)
        # the same requester's trigger while it is still open (a retried DAG run gets it back);
        # once that trigger finished, the same requester's next request is a new one
        cur.execute(
            "SELECT a.trigger_id FROM closed_loop_actions a JOIN retraining_triggers t USING (trigger_id) "
            "WHERE a.model_name = %(model)s AND a.source = 'manual' AND a.run_id = %(run_id)s "
            "AND a.action IN ('fire', 'upgrade', 'no_change') AND t.status IN ('pending', 'claimed') "
            "ORDER BY a.action_id LIMIT 1",
            {"model": model_name, "run_id": requested_by},
        )
        row = cur.fetchone()
        if row is not None:
            return int(row[0])
        champion = champion_row(cur, model_name)
        if champion is None:
            raise LoopError(f"{model_name}: no champion registered; nothing to retrain")
        owner = external_owner(cur, model_name)
        if owner is not None:
            raise LoopError(
                f"{model_name} is an external model: ModelWatch cannot retrain it; its owner "
                f"({owner or 'not named'}) retrains it and registers the new version with 'external register'"
            )
        # a second person's manual request while one is open would be merged silently: refused instead, naming
        # the open one (two racing requests: the model lock above orders them, the later one is refused)
        cur.execute(
            "SELECT trigger_id, status, created_by, reason FROM retraining_triggers WHERE model_name = %(model)s "
            "AND trigger_type = 'manual' AND status IN ('pending', 'claimed') ORDER BY trigger_id LIMIT 1",
            {"model": model_name},
        )
        open_manual = cur.fetchone()
        if open_manual is not None:
            state = "pending" if open_manual[1] == "pending" else "claimed by a running retrain"
            raise LoopError(
                f"{model_name}: a manual retrain is already {state}: trigger {open_manual[0]} "
                f"({open_manual[3]}); this request by {requested_by} was not recorded. Wait for that retrain, "
                f"or cancel trigger {open_manual[0]} and request again"
            )
        ev = {**d.evidence, "source": "manual"}
        pending = pending_row(cur, model_name)
        if pending is None:
            tid = insert_trigger(
                cur,
                model_name=model_name,
                version=champion["version"],
                d=d,
                evidence=ev,
                window=(None, as_of),
                as_of=as_of,
                created_by=requested_by,
            )
            action = "fire"
            if tid is None:
                raise LoopError(f"{model_name}: another pending trigger appeared concurrently; retry")
        elif R.stronger(d, as_pending_trigger(pending)):
            upgrade_trigger(cur, pending, d, ev, as_of)
            tid, action = pending["trigger_id"], "upgrade"
        else:
            tid, action = pending["trigger_id"], "no_change"
            cur.execute(
                "UPDATE retraining_triggers SET evidence = jsonb_set(evidence, '{also_requested}', "
                "coalesce(evidence->'also_requested', '[]'::jsonb) || %(request)s::jsonb) "
                "WHERE trigger_id = %(trigger_id)s",
                {
                    "request": json.dumps([{"by": requested_by, "reason": reason.strip(), "at": as_of.isoformat()}]),
                    "trigger_id": tid,
                },
            )
        record_action(
            cur,
            model_name=model_name,
            version=champion["version"],
            source="manual",
            d=d,
            action=action,
            rule_name=R.MANUAL_RULE_NAME,
            reason=d.reason,
            evidence=ev,
            as_of=as_of,
            run_id=requested_by,
            trigger_id=tid,
        )
    return int(tid)


def cancel_trigger(conn, trigger_id: int, *, reason: str, by: str, at: datetime) -> None:
    """Cancel a pending trigger by hand (reason required); recorded as an action."""
    if not isinstance(reason, str) or not reason.strip():
        raise LoopError(f"trigger {trigger_id}: cancelling needs a reason")
    with transaction(conn) as cur:
        cur.execute(
            "SELECT model_name, model_version, rule_name, status FROM retraining_triggers "
            "WHERE trigger_id = %(trigger_id)s",
            {"trigger_id": trigger_id},
        )
        row = cur.fetchone()
        if row is None:
            raise LoopError(f"trigger {trigger_id} does not exist")
        if row[3] != "pending":
            raise LoopError(f"trigger {trigger_id} of {row[0]} is {row[3]}, only a pending trigger can be cancelled")
        cancel_pending(cur, trigger_id, f"by {by}: {reason.strip()}", at)
        record_action(
            cur,
            model_name=row[0],
            version=row[1],
            source="manual",
            d=None,
            action="cancelled",
            rule_name=row[2] or R.MANUAL_RULE_NAME,
            reason=f"cancelled by {by}: {reason.strip()}",
            evidence={"by": by},
            as_of=at,
            run_id=by,
            trigger_id=trigger_id,
        )


def pending_count(conn) -> int:
    return int(fetch_dicts(conn, "SELECT count(*) AS n FROM retraining_triggers WHERE status = 'pending'")[0]["n"])


__all__ = [
    "LoopError",
    "lock_model",
    "champion_row",
    "pending_row",
    "as_pending_trigger",
    "record_action",
    "cancel_pending",
    "insert_trigger",
    "upgrade_trigger",
    "create_manual_trigger",
    "cancel_trigger",
    "pending_count",
]
