"""The closed loop in the database: alerts -> response rules -> retraining triggers.

:func:`evaluate` reads what a monitor has just concluded (the open alerts of a
model, or its age), applies the rules of :mod:`rules` stored in
``automated_response_rules`` and writes the outcome: a new pending trigger
(``fire``), a raised one (``upgrade``), or nothing, with every decision in
``closed_loop_actions``. Guarantees:

* at most one pending trigger per model: evaluations of one model are
  serialized by a transaction-scoped advisory lock, and the partial unique
  index ``retraining_triggers_one_pending`` backs it up (an insert that would
  make a second pending trigger does nothing, then the evaluation upgrades);
* one trigger per episode: a rule that fired for an open alert does not fire
  again for the same alert, however long it stays open; a new alert is a new
  episode (and still subject to the cooldown);
* idempotent per window: decisions are keyed on (model, source, logical
  time), so a re-run of a window returns the decisions it made the first time;
* a pending trigger about a version that is no longer the champion is
  cancelled (its evidence no longer describes what is serving).

Manual triggers (:func:`create_manual_trigger`) need a reason and follow the
same one-pending-trigger rule. :func:`update_feedback` (in :mod:`feedback`,
re-exported here) closes the loop: live performance before and after each
completed retrain, and so per-rule precision (view ``feedback_loop_rule_stats``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.modelwatch.data.storage import fetch_dicts, transaction
from include.modelwatch.loop import rules as R
from include.modelwatch.loop.feedback import rule_stats, update_feedback

#: Metrics each source observes (and so the rules it evaluates).
SOURCE_METRICS: dict[str, tuple[str, ...]] = {
    "drift": ("drift_score", "risk_score"),
    "performance": ("performance_drop", "risk_score"),
    "schedule": ("model_age_days",),
}
#: Alert kind whose open alert's score is the metric's observation.
ALERT_KIND: dict[str, str] = {"drift_score": "drift", "performance_drop": "performance", "risk_score": "risk"}

_RULE_COLUMNS = (
    "rule_name, metric, operator, threshold, retrain_mode, priority, cooldown_hours, enabled, model_overrides"
)


class LoopError(ValueError):
    """A closed-loop request cannot be honoured; the message names model and reason."""


@dataclass
class Evaluation:
    """What one evaluation of one model decided."""

    model_name: str
    source: str
    as_of: datetime
    actions: list[dict[str, Any]] = field(default_factory=list)
    trigger_id: int | None = None  # the model's pending trigger after the evaluation
    replayed: bool = False  # this (model, source, as_of) was evaluated before

    @property
    def changed(self) -> bool:
        """True when a trigger was created, raised or cancelled."""
        return not self.replayed and any(a["action"] in ("fire", "upgrade", "cancelled") for a in self.actions)

    def summary(self) -> str:
        if not self.actions:
            return f"{self.model_name}: no rule observed anything to act on"
        head = f"{self.model_name} ({self.source} @ {self.as_of.isoformat()})"
        if self.replayed:
            head += " [already evaluated for this window; earlier decisions shown]"
        lines = [head]
        for a in self.actions:
            tid = f" -> trigger {a['trigger_id']}" if a.get("trigger_id") else ""
            lines.append(f"  {a['action']:<19} {a['rule_name']:<24} {a['reason']}{tid}")
        return "\n".join(lines)


# ------------------------------------------------------------------ rules


def _rule(row: Mapping[str, Any]) -> R.ResponseRule:
    d = {
        k: row[k]
        for k in (
            "metric",
            "operator",
            "threshold",
            "retrain_mode",
            "priority",
            "cooldown_hours",
            "enabled",
            "model_overrides",
        )
    }
    d["name"] = row["rule_name"]
    return R.rule_from_dict(d)


def load_rules(conn) -> list[R.ResponseRule]:
    """All rules as stored (enabled or not), in name order, validated."""
    rows = fetch_dicts(conn, f"SELECT {_RULE_COLUMNS} FROM automated_response_rules ORDER BY rule_name")
    return [_rule(r) for r in rows]


def _coerce(field_name: str, value: Any) -> Any:
    """Turn CLI text into the field's type; anything else is left for validation to reject."""
    if not isinstance(value, str):
        return value
    if field_name in ("threshold", "cooldown_hours"):
        try:
            return float(value)
        except ValueError:
            return value
    if field_name == "enabled":
        low = value.strip().lower()
        return {
            "true": True,
            "yes": True,
            "on": True,
            "1": True,
            "false": False,
            "no": False,
            "off": False,
            "0": False,
        }.get(low, value)
    return value


def set_rule(
    conn, name: str, changes: Mapping[str, Any], *, model: str | None = None, clear_override: bool = False, by: str
) -> R.ResponseRule:
    """Change a stored rule (or, with ``model``, its override for that model).

    All changes are validated together before anything is written; a bad value
    raises :class:`rules.RuleError` naming the field and the rule is untouched.
    ``clear_override`` with ``model`` removes that model's override.
    """
    allowed = R.OVERRIDABLE_FIELDS
    for k in changes:
        if k not in allowed:
            raise R.RuleError(k, f"cannot be changed; changeable fields are {allowed}")
    with transaction(conn) as cur:
        cur.execute(f"SELECT {_RULE_COLUMNS} FROM automated_response_rules WHERE rule_name = %s FOR UPDATE", (name,))
        cols = [c.name for c in cur.description]
        row = cur.fetchone()
        if row is None:
            names = fetch_dicts(conn, "SELECT rule_name FROM automated_response_rules ORDER BY 1")
            known = [r["rule_name"] for r in names]
            raise R.RuleError("rule_name", f"no rule named {name!r}; rules are {known}")
        current = dict(zip(cols, row, strict=True))
        coerced = {k: _coerce(k, v) for k, v in changes.items()}
        if model is None:
            if clear_override:
                raise R.RuleError("model", "clearing an override needs --model")
            current.update(coerced)
        else:
            overrides = {m: dict(o) for m, o in (current["model_overrides"] or {}).items()}
            if clear_override:
                overrides.pop(model, None)
            else:
                overrides[model] = {**overrides.get(model, {}), **coerced}
            current["model_overrides"] = overrides
        rule = _rule(current)  # raises RuleError before any write
        cur.execute(
            "UPDATE automated_response_rules SET operator = %s, threshold = %s, retrain_mode = %s, priority = %s, "
            "cooldown_hours = %s, enabled = %s, model_overrides = %s, updated_at = now(), updated_by = %s "
            "WHERE rule_name = %s",
            (
                rule.operator,
                rule.threshold,
                rule.retrain_mode,
                rule.priority,
                rule.cooldown_hours,
                rule.enabled,
                json.dumps({m: dict(o) for m, o in rule.model_overrides.items()}),
                by,
                name,
            ),
        )
    return rule


# ------------------------------------------------------------------ evaluation


def _lock(cur, model_name: str) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"modelwatch.loop:{model_name}",))


def _champion(cur, model_name: str) -> dict[str, Any] | None:
    cur.execute(
        "SELECT v.version, v.train_end FROM model_aliases a JOIN model_versions v "
        "ON v.model_name = a.model_name AND v.version = a.version WHERE a.model_name = %s AND a.alias = 'champion'",
        (model_name,),
    )
    row = cur.fetchone()
    return {"version": int(row[0]), "train_end": row[1]} if row else None


def _pending(cur, model_name: str) -> dict[str, Any] | None:
    cur.execute(
        "SELECT trigger_id, model_version, rule_name, trigger_type, retrain_mode, priority, triggered_at, evidence "
        "FROM retraining_triggers WHERE model_name = %s AND status = 'pending' FOR UPDATE",
        (model_name,),
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


def _pending_trigger(p: Mapping[str, Any]) -> R.PendingTrigger:
    return R.PendingTrigger(
        model="",
        rule_name=p["rule_name"] or R.MANUAL_RULE_NAME,
        trigger_type=p["trigger_type"],
        retrain_mode=p["retrain_mode"],
        priority=p["priority"],
        trigger_id=p["trigger_id"],
        created_at=p["triggered_at"],
    )


def _observe(
    cur, model_name: str, metrics: Sequence[str], champion: Mapping[str, Any], as_of: datetime
) -> tuple[dict[str, float | None], dict[str, dict[str, Any]]]:
    """(metric -> value, metric -> open alert) for one model at ``as_of``."""
    obs: dict[str, float | None] = {}
    alerts: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        if metric == "model_age_days":
            end = champion["train_end"]
            obs[metric] = float((as_of.date() - end).days) if end is not None else None
            continue
        cur.execute(
            "SELECT alert_id, score, severity, model_version, first_window, last_window FROM alerts "
            "WHERE model_name = %s AND kind = %s AND status <> 'resolved' AND first_window <= %s",
            (model_name, ALERT_KIND[metric], as_of),
        )
        row = cur.fetchone()
        if row is None or row[1] is None:
            obs[metric] = None
            continue
        alerts[metric] = dict(
            zip(("alert_id", "score", "severity", "model_version", "first_window", "last_window"), row, strict=True)
        )
        obs[metric] = float(row[1])
    return obs, alerts


def _record(
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
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT (model_name, source, evaluated_at, rule_name, action) DO NOTHING",
        (
            model_name,
            version,
            source,
            rule_name,
            action,
            trigger_id,
            alert_id,
            metric,
            observed,
            threshold,
            reason,
            json.dumps(ev, default=str),
            as_of,
            run_id,
        ),
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


def _stored_actions(cur, model_name: str, source: str, as_of: datetime) -> list[dict[str, Any]]:
    cur.execute(
        "SELECT action, rule_name, reason, trigger_id, alert_id, observed, threshold FROM closed_loop_actions "
        "WHERE model_name = %s AND source = %s AND evaluated_at = %s ORDER BY action_id",
        (model_name, source, as_of),
    )
    cols = ("action", "rule_name", "reason", "trigger_id", "alert_id", "observed", "threshold")
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _cancel(cur, trigger_id: int, reason: str, at: datetime) -> bool:
    cur.execute(
        "UPDATE retraining_triggers SET status = 'cancelled', outcome = %s, completed_at = %s, updated_at = now() "
        "WHERE trigger_id = %s AND status = 'pending' RETURNING trigger_id",
        (f"cancelled: {reason}", at, trigger_id),
    )
    return cur.fetchone() is not None


def _insert_trigger(
    cur,
    *,
    model_name: str,
    version: int,
    d: R.Decision,
    evidence: Mapping[str, Any],
    window: tuple[datetime | None, datetime | None],
    as_of: datetime,
    created_by: str | None,
) -> int | None:
    cur.execute(
        "INSERT INTO retraining_triggers (model_name, model_version, trigger_type, retrain_mode, priority, rule_name, "
        "reason, evidence, window_start, window_end, triggered_at, created_by) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT (model_name) WHERE status = 'pending' DO NOTHING RETURNING trigger_id",
        (
            model_name,
            version,
            d.trigger_type,
            d.retrain_mode,
            d.priority,
            d.rule_name,
            d.reason,
            json.dumps(dict(evidence), default=str),
            window[0],
            window[1],
            as_of,
            created_by,
        ),
    )
    row = cur.fetchone()
    return int(row[0]) if row else None


def _upgrade_trigger(
    cur, pending: Mapping[str, Any], d: R.Decision, evidence: Mapping[str, Any], as_of: datetime
) -> None:
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
        "UPDATE retraining_triggers SET trigger_type = %s, rule_name = %s, retrain_mode = %s, priority = %s, "
        "reason = %s, evidence = %s, updated_at = now() WHERE trigger_id = %s AND status = 'pending'",
        (
            d.trigger_type,
            d.rule_name,
            d.retrain_mode,
            d.priority,
            d.reason,
            json.dumps(ev, default=str),
            pending["trigger_id"],
        ),
    )


def evaluate(
    conn,
    model_name: str,
    *,
    source: str,
    as_of: datetime,
    run_id: str | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
) -> Evaluation:
    """Apply the response rules of ``source`` to ``model_name`` at logical time ``as_of``.

    One transaction: a failure leaves triggers and actions as they were.
    """
    if source not in SOURCE_METRICS:
        raise LoopError(f"{model_name}: unknown source {source!r}; expected one of {tuple(SOURCE_METRICS)}")
    result = Evaluation(model_name, source, as_of)
    with transaction(conn) as cur:
        _lock(cur, model_name)
        stored = _stored_actions(cur, model_name, source, as_of)
        pending = _pending(cur, model_name)
        if stored:
            result.actions, result.replayed = stored, True
            result.trigger_id = pending["trigger_id"] if pending else None
            return result
        champion = _champion(cur, model_name)
        if champion is None:
            return result
        version = champion["version"]

        if pending is not None and pending["model_version"] is not None and pending["model_version"] != version:
            why = f"its evidence is about version {pending['model_version']}, but version {version} is the champion now"
            if _cancel(cur, pending["trigger_id"], why, as_of):
                result.actions.append(
                    _record(
                        cur,
                        model_name=model_name,
                        version=version,
                        source=source,
                        d=None,
                        action="cancelled",
                        rule_name=pending["rule_name"] or R.MANUAL_RULE_NAME,
                        reason=f"pending trigger cancelled: {why}",
                        evidence={"cancelled_trigger": pending["trigger_id"]},
                        as_of=as_of,
                        run_id=run_id,
                        trigger_id=pending["trigger_id"],
                    )
                )
            pending = None

        metrics = SOURCE_METRICS[source]
        rules = [r for r in load_rules(conn) if r.metric in metrics]
        obs, open_alerts = _observe(cur, model_name, metrics, champion, as_of)
        cur.execute(
            "SELECT rule_name, max(evaluated_at) FROM closed_loop_actions WHERE model_name = %s "
            "AND action IN ('fire', 'upgrade') AND evaluated_at <= %s GROUP BY rule_name",
            (model_name, as_of),
        )
        last_fired = {r[0]: r[1] for r in cur.fetchall()}
        handled: dict[str, str] = {}
        for r in rules:
            alert = open_alerts.get(r.metric)
            if alert is None:
                continue
            cur.execute(
                "SELECT min(evaluated_at) FROM closed_loop_actions WHERE model_name = %s AND rule_name = %s "
                "AND alert_id = %s AND action IN ('fire', 'upgrade')",
                (model_name, r.name, alert["alert_id"]),
            )
            first = cur.fetchone()[0]
            if first is not None:
                handled[r.name] = (
                    f"rule already acted on this episode (alert {alert['alert_id']}, "
                    f"open since {alert['first_window'].isoformat()}) at {first.isoformat()}"
                )

        decisions = R.evaluate_rules(
            model_name, obs, rules, _pending_trigger(pending) if pending else None, last_fired, as_of, handled
        )
        for d in decisions:
            observed = d.evidence.get("observed")
            if d.action in ("no_change", "disabled") and observed is None:
                continue  # nothing observed: not a decision worth a row
            alert = open_alerts.get(d.evidence.get("metric", ""))
            alert_id = alert["alert_id"] if alert else None
            ev = dict(d.evidence)
            if alert:
                ev["alert"] = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in alert.items()}
            ev["source"] = source
            action, trigger_id, reason = d.action, None, d.reason
            if d.action == "fire":
                trigger_id = _insert_trigger(
                    cur,
                    model_name=model_name,
                    version=version,
                    d=d,
                    evidence=ev,
                    window=window,
                    as_of=as_of,
                    created_by=run_id,
                )
                if trigger_id is None:  # another writer got there first despite the lock: upgrade or leave it
                    pending = _pending(cur, model_name)
                    if pending and R.stronger(d, _pending_trigger(pending)):
                        _upgrade_trigger(cur, pending, d, ev, as_of)
                        action = "upgrade"
                    else:
                        action, reason = "no_change", f"{d.reason}; a pending trigger already exists"
                    trigger_id = pending["trigger_id"] if pending else None
            elif d.action == "upgrade":
                assert pending is not None  # the rules upgrade only a pending trigger
                _upgrade_trigger(cur, pending, d, ev, as_of)
                trigger_id = pending["trigger_id"]
            elif pending is not None and d.action == "no_change":
                trigger_id = pending["trigger_id"]
            result.actions.append(
                _record(
                    cur,
                    model_name=model_name,
                    version=version,
                    source=source,
                    d=d,
                    action=action,
                    rule_name=d.rule_name,
                    reason=reason,
                    evidence=ev,
                    as_of=as_of,
                    run_id=run_id,
                    trigger_id=trigger_id,
                    alert_id=alert_id,
                )
            )
        after = _pending(cur, model_name)
        result.trigger_id = after["trigger_id"] if after else None
    return result


def models_with_champion(conn) -> list[str]:
    return [
        r["model_name"]
        for r in fetch_dicts(conn, "SELECT model_name FROM model_aliases WHERE alias = 'champion' ORDER BY model_name")
    ]


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

    Refused without a reason or without a champion. With a pending trigger
    already there, a stronger request upgrades it and a weaker one is recorded
    on it. Idempotent per ``requested_by`` (a retried DAG run gets its trigger
    back).
    """
    d = R.manual_trigger(model_name, reason, retrain_mode=retrain_mode, priority=priority, requested_by=requested_by)
    if not requested_by or not str(requested_by).strip():
        raise LoopError(f"{model_name}: a manual trigger needs requested_by (a run id or a user)")
    with transaction(conn) as cur:
        _lock(cur, model_name)
        cur.execute(
            "SELECT trigger_id FROM closed_loop_actions WHERE model_name = %s AND source = 'manual' "
            "AND run_id = %s AND trigger_id IS NOT NULL AND action IN ('fire', 'upgrade', 'no_change') "
            "ORDER BY action_id LIMIT 1",
            (model_name, requested_by),
        )
        row = cur.fetchone()
        if row is not None:
            return int(row[0])
        champion = _champion(cur, model_name)
        if champion is None:
            raise LoopError(f"{model_name}: no champion registered; nothing to retrain")
        ev = {**d.evidence, "source": "manual"}
        pending = _pending(cur, model_name)
        if pending is None:
            tid = _insert_trigger(
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
        elif R.stronger(d, _pending_trigger(pending)):
            _upgrade_trigger(cur, pending, d, ev, as_of)
            tid, action = pending["trigger_id"], "upgrade"
        else:
            tid, action = pending["trigger_id"], "no_change"
            cur.execute(
                "UPDATE retraining_triggers SET evidence = jsonb_set(evidence, '{also_requested}', "
                "coalesce(evidence->'also_requested', '[]'::jsonb) || %s::jsonb) WHERE trigger_id = %s",
                (json.dumps([{"by": requested_by, "reason": reason.strip(), "at": as_of.isoformat()}]), tid),
            )
        _record(
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
            "SELECT model_name, model_version, rule_name, status FROM retraining_triggers WHERE trigger_id = %s",
            (trigger_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise LoopError(f"trigger {trigger_id} does not exist")
        if row[3] != "pending":
            raise LoopError(f"trigger {trigger_id} of {row[0]} is {row[3]}, only a pending trigger can be cancelled")
        _cancel(cur, trigger_id, f"by {by}: {reason.strip()}", at)
        _record(
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
    "Evaluation",
    "evaluate",
    "load_rules",
    "set_rule",
    "models_with_champion",
    "create_manual_trigger",
    "cancel_trigger",
    "pending_count",
    "rule_stats",
    "update_feedback",
]
