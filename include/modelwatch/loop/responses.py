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
  cancelled (its evidence no longer describes what is serving);
* a model ModelWatch cannot retrain (an external one, registered from a
  reference frame) gets no pending trigger: a firing rule records the trigger
  as ``external_retrain_requested`` and mails its owner in the same
  transaction, and nothing wakes ``retrain_gated``.

The rules come from :mod:`rule_store`; the trigger rows, the per-model lock,
the decision records and manual triggers are in :mod:`triggers`; the feedback
of completed retrains (live performance before and after, per-rule precision)
is in :mod:`feedback`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.modelwatch.api.urls import DEFAULT_BASE_URL
from include.modelwatch.data.storage import fetch_dicts, transaction
from include.modelwatch.loop import rule_store, triggers
from include.modelwatch.loop import rules as R

#: Metrics each source observes (and so the rules it evaluates).
SOURCE_METRICS: dict[str, tuple[str, ...]] = {
    "drift": ("drift_score", "risk_score"),
    "performance": ("performance_drop", "risk_score"),
    "schedule": ("model_age_days",),
    "labelling": ("new_labels",),
}
#: Alert kind whose open alert's score is the metric's observation.
ALERT_KIND: dict[str, str] = {"drift_score": "drift", "performance_drop": "performance", "risk_score": "risk"}


@dataclass
class Evaluation:
    """What one evaluation of one model decided."""

    model_name: str
    source: str
    as_of: datetime
    actions: list[dict[str, Any]] = field(default_factory=list)
    trigger_id: int | None = None  # the model's pending trigger after the evaluation
    replayed: bool = False  # this (model, source, as_of) was evaluated before
    external: bool = False  # the model is external: a fired rule is a request to its owner

    @property
    def changed(self) -> bool:
        """True when a trigger retrain_gated acts on was created, raised or cancelled."""
        if self.replayed or self.external:
            return False
        return any(a["action"] in ("fire", "upgrade", "cancelled") for a in self.actions)

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
        if metric == "new_labels":  # labels no retrain used yet, old enough for a retrain's training rows
            from include.modelwatch.active_learning.store import usable_new_labels

            obs[metric] = float(usable_new_labels(cur, model_name))
            continue
        cur.execute(
            "SELECT alert_id, score, severity, model_version, first_window, last_window FROM alerts "
            "WHERE model_name = %(model)s AND kind = %(kind)s AND status <> 'resolved' AND first_window <= %(as_of)s",
            {"model": model_name, "kind": ALERT_KIND[metric], "as_of": as_of},
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


def _stored_actions(cur, model_name: str, source: str, as_of: datetime) -> list[dict[str, Any]]:
    cur.execute(
        "SELECT action, rule_name, reason, trigger_id, alert_id, observed, threshold FROM closed_loop_actions "
        "WHERE model_name = %(model)s AND source = %(source)s AND evaluated_at = %(as_of)s ORDER BY action_id",
        {"model": model_name, "source": source, "as_of": as_of},
    )
    cols = ("action", "rule_name", "reason", "trigger_id", "alert_id", "observed", "threshold")
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def evaluate(
    conn,
    model_name: str,
    *,
    source: str,
    as_of: datetime,
    run_id: str | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
    base_url: str = DEFAULT_BASE_URL,
) -> Evaluation:
    """Apply the response rules of ``source`` to ``model_name`` at logical time ``as_of``.

    One transaction: a failure leaves triggers and actions as they were. ``base_url`` makes the links of an
    external model's retrain request.
    """
    if source not in SOURCE_METRICS:
        raise triggers.LoopError(f"{model_name}: unknown source {source!r}; expected one of {tuple(SOURCE_METRICS)}")
    result = Evaluation(model_name, source, as_of)
    with transaction(conn) as cur:
        triggers.lock_model(cur, model_name)
        owner = triggers.external_owner(cur, model_name)
        result.external = owner is not None
        stored = _stored_actions(cur, model_name, source, as_of)
        pending = triggers.pending_row(cur, model_name)
        if stored:
            result.actions, result.replayed = stored, True
            result.trigger_id = pending["trigger_id"] if pending else None
            return result
        champion = triggers.champion_row(cur, model_name)
        if champion is None:
            return result
        version = champion["version"]

        if pending is not None and pending["model_version"] is not None and pending["model_version"] != version:
            why = f"its evidence is about version {pending['model_version']}, but version {version} is the champion now"
            if triggers.cancel_pending(cur, pending["trigger_id"], why, as_of):
                result.actions.append(
                    triggers.record_action(
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
        rules = [r for r in rule_store.load_rules(conn) if r.metric in metrics]
        obs, open_alerts = _observe(cur, model_name, metrics, champion, as_of)
        cur.execute(
            "SELECT rule_name, max(evaluated_at) FROM closed_loop_actions WHERE model_name = %(model)s "
            "AND action IN ('fire', 'upgrade') AND evaluated_at <= %(as_of)s GROUP BY rule_name",
            {"model": model_name, "as_of": as_of},
        )
        last_fired = {r[0]: r[1] for r in cur.fetchall()}
        handled: dict[str, str] = {}
        for r in rules:
            alert = open_alerts.get(r.metric)
            if alert is None:
                continue
            cur.execute(
                "SELECT min(evaluated_at) FROM closed_loop_actions WHERE model_name = %(model)s "
                "AND rule_name = %(rule)s AND alert_id = %(alert_id)s AND action IN ('fire', 'upgrade')",
                {"model": model_name, "rule": r.name, "alert_id": alert["alert_id"]},
            )
            first = cur.fetchone()[0]
            if first is not None:
                handled[r.name] = (
                    f"rule already acted on this episode (alert {alert['alert_id']}, "
                    f"open since {alert['first_window'].isoformat()}) at {first.isoformat()}"
                )

        decisions = R.evaluate_rules(
            model_name,
            obs,
            rules,
            triggers.as_pending_trigger(pending) if pending else None,
            last_fired,
            as_of,
            handled,
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
            if d.action == "fire" and result.external:
                trigger_id = triggers.request_external_retrain(
                    cur,
                    model_name=model_name,
                    version=version,
                    d=d,
                    evidence=ev,
                    window=window,
                    as_of=as_of,
                    created_by=run_id,
                    owner=owner or "",
                    base_url=base_url,
                )
            elif d.action == "fire":
                trigger_id = triggers.insert_trigger(
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
                    pending = triggers.pending_row(cur, model_name)
                    if pending and R.stronger(d, triggers.as_pending_trigger(pending)):
                        triggers.upgrade_trigger(cur, pending, d, ev, as_of, window)
                        action = "upgrade"
                    else:
                        action, reason = "no_change", f"{d.reason}; a pending trigger already exists"
                    trigger_id = pending["trigger_id"] if pending else None
            elif d.action == "upgrade":
                assert pending is not None  # the rules upgrade only a pending trigger
                triggers.upgrade_trigger(cur, pending, d, ev, as_of, window)
                trigger_id = pending["trigger_id"]
            elif pending is not None and d.action == "no_change":
                trigger_id = pending["trigger_id"]
            result.actions.append(
                triggers.record_action(
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
        after = triggers.pending_row(cur, model_name)
        result.trigger_id = after["trigger_id"] if after else None
    return result


def models_with_champion(conn) -> list[str]:
    return [
        r["model_name"]
        for r in fetch_dicts(conn, "SELECT model_name FROM model_aliases WHERE alias = 'champion' ORDER BY model_name")
    ]


__all__ = ["SOURCE_METRICS", "ALERT_KIND", "Evaluation", "evaluate", "models_with_champion"]
