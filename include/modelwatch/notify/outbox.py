"""The notification outbox (table ``notifications``, migration 014).

``enqueue_*`` take a cursor and write in the caller's transaction, next to the
change they announce: the notification exists exactly when the change was
committed. The key of a row names the transition (``alert:<id>:opened``,
``alert:<id>:escalated:<severity>``, ``alert:<id>:resolved``,
``retrain:<trigger_id>:<outcome>``); a second insert of a key does nothing, so a
re-run of a window never announces a transition twice.

:func:`deliver` runs after the commit: it sends every pending (or earlier
failed) row, one transaction per row under ``FOR UPDATE SKIP LOCKED`` (two
tasks delivering at once never send a row twice), and records 'sent',
'failed' (retried by the next delivery) or, without SMTP settings, 'skipped'
with the whole message in the log (the development notifier).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from include.modelwatch.api import urls
from include.modelwatch.data.storage import transaction
from include.modelwatch.notify import messages
from include.modelwatch.notify.smtp import SmtpSettings
from include.modelwatch.notify.smtp import send as smtp_send

log = logging.getLogger(__name__)

KINDS = ("alert", "retrain")
NO_CONNECTION = "no modelwatch_smtp connection"


def enqueue(
    cur,
    *,
    kind: str,
    dedupe_key: str,
    model_name: str,
    model_version: int | None,
    message: messages.Message,
    created_at: datetime,
    addressed_to: Sequence[str] = (),
) -> int | None:
    """Add a pending notification; the new row's id, or None when ``dedupe_key`` is already there.
    ``addressed_to``: recipients of this message beside the connection's (e.g. a model's approvers)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; expected one of {KINDS}")
    cur.execute(
        "INSERT INTO notifications (kind, dedupe_key, model_name, model_version, subject, body, created_at, "
        "addressed_to) VALUES (%(kind)s, %(key)s, %(model)s, %(version)s, %(subject)s, %(body)s, %(at)s, %(to)s) "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        {
            "kind": kind,
            "key": dedupe_key,
            "model": model_name,
            "version": model_version,
            "subject": message.subject,
            "body": message.body,
            "at": created_at,
            "to": list(addressed_to),
        },
    )
    row = cur.fetchone()
    return int(row[0]) if row else None


def _dicts(cur) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def top_features(
    cur, model_name: str, version: int, window_start: datetime, first: Sequence[str] = ()
) -> list[messages.FeatureStats]:
    """The window's feature and prediction drift tests, features ranked drifted first, then by severity;
    ``first`` (the alert's own top features, in its order) leads."""
    cur.execute(
        "SELECT feature, test, statistic, p_value, severity, drifted FROM drift_results "
        "WHERE model_name = %(model)s AND model_version = %(version)s AND window_start = %(start)s "
        "AND kind IN ('feature', 'prediction') ORDER BY feature, drifted DESC, severity DESC, test",
        {"model": model_name, "version": version, "start": window_start},
    )
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for r in _dicts(cur):
        by_feature.setdefault(r["feature"], []).append(r)
    ranked = sorted(
        by_feature.items(),
        key=lambda kv: (
            list(first).index(kv[0]) if kv[0] in first else len(first),
            -any(r["drifted"] for r in kv[1]),
            -max(r["severity"] or 0 for r in kv[1]),
            kv[0],
        ),
    )
    return [
        messages.FeatureStats(
            feature,
            any(r["drifted"] for r in rows),
            tuple((r["test"], r["statistic"], r["p_value"]) for r in rows),
        )
        for feature, rows in ranked
    ]


def alert_page(alert: Mapping[str, Any], window_start: datetime | None) -> str:
    """Path of the page that shows an alert's evidence: the drift window (drift, data quality), the model's
    timeline (performance), else the alerts page."""
    if alert["kind"] in ("drift", "data_quality") and alert.get("model_version") is not None and window_start:
        return urls.drift_window_path(alert["model_name"], int(alert["model_version"]), window_start)
    if alert["kind"] == "performance":
        return urls.model_path(alert["model_name"], "timeline")
    return urls.alerts_path()


def enqueue_alert_change(
    cur,
    change: Any,
    *,
    base_url: str,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    at: datetime | None = None,
) -> int | None:
    """Enqueue the notification of an :class:`~include.modelwatch.loop.alerts.AlertChange`, if it is a
    transition (opened, escalated, resolved); None otherwise or when already enqueued.

    ``window_start``/``window_end``: the window that caused the change (default: the alert's last window);
    ``at``: the logical time of the transition (default: ``window_end``, else the alert's resolved/opened time).
    """
    if change is None:
        return None
    transition = messages.alert_transition(change.action, change.severity, getattr(change, "previous_severity", None))
    if transition is None:
        return None
    cur.execute(
        "SELECT alert_id, model_name, model_version, kind, severity, score, title, message, evidence, "
        "last_window, opened_at, resolved_at, resolution FROM alerts WHERE alert_id = %(id)s",
        {"id": change.alert_id},
    )
    rows = _dicts(cur)
    if not rows:
        raise ValueError(f"alert {change.alert_id} does not exist")
    alert = rows[0]
    start = window_start or alert["last_window"]
    features: list[messages.FeatureStats] = []
    if alert["kind"] == "drift" and alert["model_version"] is not None and start is not None:
        evidence = alert["evidence"] if isinstance(alert["evidence"], Mapping) else {}
        first = [str(f) for f in evidence.get("top_features") or []]
        features = top_features(cur, alert["model_name"], int(alert["model_version"]), start, first)
    msg = messages.alert_message(
        alert,
        transition=transition,
        window_start=start,
        window_end=window_end,
        url=urls.absolute(base_url, alert_page(alert, start)),
        features=features,
        previous_severity=getattr(change, "previous_severity", None),
    )
    when = at or window_end or (alert["resolved_at"] if transition == "resolved" else None) or alert["opened_at"]
    return enqueue(
        cur,
        kind="alert",
        dedupe_key=messages.alert_dedupe_key(change.alert_id, transition, change.severity),
        model_name=alert["model_name"],
        model_version=alert["model_version"],
        message=msg,
        created_at=when,
    )


def enqueue_retrain_outcome(
    cur,
    *,
    outcome: str,
    trigger_id: int,
    candidate_version: int | None,
    champion_version: int | None,
    algorithm: str | None,
    job_id: int | None,
    at: datetime,
    base_url: str,
    approved_by: str | None = None,
    alias: str | None = None,
    detail: str | None = None,
    approvers: Sequence[str] = (),
    answer_url: str | None = None,
    addressed_to: Sequence[str] = (),
) -> int | None:
    """Enqueue the notification of a retraining outcome ('deployed' | 'rejected' | 'awaiting_approval') of
    ``trigger_id``, with the candidate's gate results; None when already enqueued. An approval request names
    its ``approvers`` and the ``answer_url`` and goes to ``addressed_to`` (their addresses) as well."""
    cur.execute(
        "SELECT trigger_id, model_name, trigger_type, retrain_mode, reason FROM retraining_triggers "
        "WHERE trigger_id = %(tid)s",
        {"tid": trigger_id},
    )
    rows = _dicts(cur)
    if not rows:
        raise ValueError(f"retraining trigger {trigger_id} does not exist")
    trigger = rows[0]
    gates: list[dict[str, Any]] = []
    if candidate_version is not None:
        cur.execute(
            "SELECT gate, status, value, threshold, message FROM quality_gate_results "
            "WHERE trigger_id = %(tid)s AND candidate_version = %(v)s "
            "AND (%(job)s::bigint IS NULL OR job_id = %(job)s::bigint) ORDER BY id",
            {"tid": trigger_id, "v": candidate_version, "job": job_id},
        )
        gates = _dicts(cur)
    msg = messages.retrain_message(
        outcome,
        trigger=trigger,
        candidate_version=candidate_version,
        champion_version=champion_version,
        algorithm=algorithm,
        url=urls.absolute(base_url, urls.model_path(trigger["model_name"], "jobs")),
        gates=gates,
        approved_by=approved_by,
        alias=alias,
        detail=detail,
        approvers=approvers,
        answer_url=answer_url,
    )
    return enqueue(
        cur,
        kind="retrain",
        dedupe_key=messages.retrain_dedupe_key(trigger_id, outcome),
        model_name=trigger["model_name"],
        model_version=candidate_version,
        message=msg,
        created_at=at,
        addressed_to=addressed_to,
    )


@dataclass(frozen=True)
class Delivery:
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    def describe(self) -> str:
        return f"{self.sent} sent, {self.failed} failed, {self.skipped} skipped"


Sender = Callable[..., None]


def deliver(
    conn,
    settings: SmtpSettings | None,
    *,
    model_name: str | None = None,
    send: Sender = smtp_send,
    now: Callable[[], datetime] | None = None,
) -> Delivery:
    """Send every pending or failed notification (of ``model_name``, or all); see the module docstring.

    Never raises for a send error: the row is marked 'failed' with the error and retried next time.
    """
    from datetime import UTC

    clock = now or (lambda: datetime.now(UTC))
    ids = [
        int(r[0])
        for r in _ids(
            conn,
            "SELECT id FROM notifications WHERE status IN ('pending', 'failed') "
            "AND (%(model)s::text IS NULL OR model_name = %(model)s::text) ORDER BY id",
            model_name,
        )
    ]
    sent = failed = skipped = 0
    for nid in ids:
        with transaction(conn) as cur:
            cur.execute(
                "SELECT id, kind, dedupe_key, model_name, subject, body, addressed_to FROM notifications "
                "WHERE id = %(id)s AND status IN ('pending', 'failed') FOR UPDATE SKIP LOCKED",
                {"id": nid},
            )
            rows = _dicts(cur)
            if not rows:  # sent meanwhile by another task
                continue
            row = rows[0]
            status, error, recipients = _attempt(row, settings, send)
            cur.execute(
                "UPDATE notifications SET status = %(status)s, error = %(error)s, recipients = %(to)s, "
                "attempts = attempts + %(inc)s, sent_at = %(at)s WHERE id = %(id)s",
                {
                    "status": status,
                    "error": error,
                    "to": list(recipients),
                    "inc": 0 if status == "skipped" else 1,
                    "at": clock(),
                    "id": nid,
                },
            )
        sent += status == "sent"
        failed += status == "failed"
        skipped += status == "skipped"
    return Delivery(sent, failed, skipped)


def _ids(conn, sql: str, model_name: str | None) -> list[tuple[Any, ...]]:
    with transaction(conn) as cur:
        cur.execute(sql, {"model": model_name})
        return list(cur.fetchall())


def _attempt(
    row: Mapping[str, Any], settings: SmtpSettings | None, send: Sender
) -> tuple[str, str | None, Sequence[str]]:
    """(status, error, recipients) of one delivery attempt."""
    if settings is None:
        log.info("notification not sent (%s): %s\n%s", NO_CONNECTION, row["subject"], row["body"])
        return "skipped", NO_CONNECTION, ()
    recipients = tuple(dict.fromkeys([*settings.recipients(row["kind"], row["model_name"]), *row["addressed_to"]]))
    if not recipients:
        log.warning("notification not sent (modelwatch_smtp names no recipient): %s", row["subject"])
        return "skipped", "no recipient (extra 'to' / 'owners' of modelwatch_smtp)", ()
    try:
        send(settings, recipients, row["subject"], row["body"], key=row["dedupe_key"])
    except Exception as exc:  # network, auth, refused recipients: retried by the next delivery
        log.warning("notification %s not sent (will retry): %s: %s", row["dedupe_key"], type(exc).__name__, exc)
        return "failed", f"{type(exc).__name__}: {exc}"[:1000], recipients
    log.info("notification sent to %s: %s", ", ".join(recipients), row["subject"])
    return "sent", None, recipients
