"""Alerts with one lifecycle for every source: open -> acknowledged -> resolved.

At most one unresolved alert exists per (model, kind), enforced by a partial
unique index; a repeat updates it (severity, evidence, last window, count)
instead of adding a duplicate. Re-running the same window does not count it
twice. Functions take a cursor so callers can write an alert in the same
transaction as the results behind it.

History never rewinds an alert: an alert keeps the evidence of the newest
window that raised it. Re-running an older window (``window_start`` before the
alert's ``last_window``, or before a newer alert episode's end) leaves the
alert as it is (action ``'stale'``), and may not open or resolve one either;
re-running the alert's own newest window corrects it in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Alert kinds (the CHECK constraint of ``alerts.kind``, migrations 003 and 024). ``artifact_integrity``: a model's
#: artifact failed its SHA-256 check (or is missing) when scoring loaded it.
KINDS = ("drift", "performance", "data_quality", "age", "risk", "artifact_integrity")
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertChange:
    alert_id: int
    action: str  # 'opened' | 'updated' | 'resolved' | 'unchanged' | 'stale'
    severity: str
    #: severity before an 'updated' / 'unchanged' change (None otherwise)
    previous_severity: str | None = None

    @property
    def escalated(self) -> bool:
        """An update that raised the severity (warning -> critical): a transition worth announcing."""
        return (
            self.action in ("updated", "unchanged")
            and self.previous_severity is not None
            and SEVERITIES.index(self.severity) > SEVERITIES.index(self.previous_severity)
        )


def raise_alert(
    cur,
    *,
    model_name: str,
    model_version: int | None,
    kind: str,
    severity: str,
    title: str,
    message: str,
    window_start: datetime,
    window_end: datetime,
    score: float | None = None,
    evidence: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> AlertChange:
    """Open an alert, or update the unresolved one of the same model and kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}; expected one of {KINDS}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown alert severity {severity!r}; expected one of {SEVERITIES}")
    ev = json.dumps(evidence or {}, default=str)
    key = {"model": model_name, "kind": kind, "window_start": window_start}
    cur.execute(
        "SELECT alert_id, last_window, severity FROM alerts "
        "WHERE model_name = %(model)s AND kind = %(kind)s AND status <> 'resolved' FOR UPDATE",
        key,
    )
    row = cur.fetchone()
    if row is None:
        newer = _newer_episode(cur, {**key, "window_end": window_end})
        if newer is not None:  # an older window re-run after a later episode: leave history alone
            return AlertChange(newer[0], "stale", newer[1])
        cur.execute(
            "INSERT INTO alerts (model_name, model_version, kind, severity, score, title, message, evidence, "
            "first_window, last_window, opened_at, run_id) VALUES (%(model)s, %(version)s, %(kind)s, %(severity)s, "
            "%(score)s, %(title)s, %(message)s, %(evidence)s, %(window_start)s, %(window_start)s, %(window_end)s, "
            "%(run_id)s) RETURNING alert_id",
            {
                **key,
                "version": model_version,
                "severity": severity,
                "score": score,
                "title": title,
                "message": message,
                "evidence": ev,
                "window_end": window_end,
                "run_id": run_id,
            },
        )
        return AlertChange(int(cur.fetchone()[0]), "opened", severity)
    alert_id, last_window, previous = int(row[0]), row[1], str(row[2])
    if window_start < last_window:  # an older window: the alert keeps the newest window's evidence
        return AlertChange(alert_id, "stale", row[2])
    new_window = window_start > last_window
    cur.execute(
        "UPDATE alerts SET model_version = %(version)s, severity = %(severity)s, score = %(score)s, title = %(title)s, "
        "message = %(message)s, evidence = %(evidence)s, last_window = %(window_start)s, "
        "occurrences = occurrences + %(inc)s, run_id = %(run_id)s WHERE alert_id = %(alert_id)s",
        {
            **key,
            "version": model_version,
            "severity": severity,
            "score": score,
            "title": title,
            "message": message,
            "evidence": ev,
            "inc": 1 if new_window else 0,
            "run_id": run_id,
            "alert_id": alert_id,
        },
    )
    return AlertChange(alert_id, "updated" if new_window else "unchanged", severity, previous)


def _newer_episode(cur, key: dict[str, Any]) -> tuple[int, str] | None:
    """(alert_id, severity) of a resolved alert of (model, kind) that saw a
    window after ``window_start`` or was resolved after ``window_end``, if any."""
    cur.execute(
        "SELECT alert_id, severity FROM alerts WHERE model_name = %(model)s AND kind = %(kind)s "
        "AND (last_window > %(window_start)s OR resolved_at > %(window_end)s) ORDER BY last_window DESC LIMIT 1",
        key,
    )
    row = cur.fetchone()
    return (int(row[0]), str(row[1])) if row else None


def resolve_alert(
    cur, *, model_name: str, kind: str, at: datetime, resolution: str, window_start: datetime | None = None
) -> AlertChange | None:
    """Resolve the unresolved alert of (model, kind), if any.

    With ``window_start`` (the resolving window), an alert that already holds
    a newer window's evidence (``last_window > window_start``) stays open: a
    re-run of an older window does not resolve a later episode.
    """
    cur.execute(
        "UPDATE alerts SET status = 'resolved', resolved_at = %(at)s, resolution = %(resolution)s "
        "WHERE model_name = %(model)s AND kind = %(kind)s AND status <> 'resolved' "
        "AND (%(window_start)s::timestamptz IS NULL OR last_window <= %(window_start)s::timestamptz) "
        "RETURNING alert_id, severity",
        {"at": at, "resolution": resolution, "model": model_name, "kind": kind, "window_start": window_start},
    )
    row = cur.fetchone()
    return AlertChange(int(row[0]), "resolved", row[1]) if row else None


def acknowledge_alert(cur, alert_id: int, *, by: str, at: datetime) -> bool:
    """Mark an open alert acknowledged; False when it is not open."""
    cur.execute(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = %(at)s, acknowledged_by = %(by)s "
        "WHERE alert_id = %(alert_id)s AND status = 'open' RETURNING alert_id",
        {"at": at, "by": by, "alert_id": alert_id},
    )
    return cur.fetchone() is not None
