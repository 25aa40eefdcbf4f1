"""Alerts with one lifecycle for every source: open -> acknowledged -> resolved.

At most one unresolved alert exists per (model, kind), enforced by a partial
unique index; a repeat updates it (severity, evidence, last window, count)
instead of adding a duplicate. Re-running the same window does not count it
twice. Functions take a cursor so callers can write an alert in the same
transaction as the results behind it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

KINDS = ("drift", "performance", "data_quality", "age", "risk")
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertChange:
    alert_id: int
    action: str  # 'opened' | 'updated' | 'resolved' | 'unchanged'
    severity: str


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
    cur.execute(
        "SELECT alert_id, last_window FROM alerts WHERE model_name = %s AND kind = %s AND status <> 'resolved' FOR UPDATE",
        (model_name, kind),
    )
    row = cur.fetchone()
    if row is None:
        cur.execute(
            "INSERT INTO alerts (model_name, model_version, kind, severity, score, title, message, evidence, "
            "first_window, last_window, opened_at, run_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
            "RETURNING alert_id",
            (model_name, model_version, kind, severity, score, title, message, ev, window_start, window_start, window_end, run_id),
        )
        return AlertChange(int(cur.fetchone()[0]), "opened", severity)
    alert_id, last_window = int(row[0]), row[1]
    new_window = window_start > last_window
    cur.execute(
        "UPDATE alerts SET model_version = %s, severity = %s, score = %s, title = %s, message = %s, evidence = %s, "
        "last_window = greatest(last_window, %s), occurrences = occurrences + %s, run_id = %s WHERE alert_id = %s",
        (model_version, severity, score, title, message, ev, window_start, 1 if new_window else 0, run_id, alert_id),
    )
    return AlertChange(alert_id, "updated" if new_window else "unchanged", severity)


def resolve_alert(cur, *, model_name: str, kind: str, at: datetime, resolution: str) -> AlertChange | None:
    """Resolve the unresolved alert of (model, kind), if any."""
    cur.execute(
        "UPDATE alerts SET status = 'resolved', resolved_at = %s, resolution = %s "
        "WHERE model_name = %s AND kind = %s AND status <> 'resolved' RETURNING alert_id, severity",
        (at, resolution, model_name, kind),
    )
    row = cur.fetchone()
    return AlertChange(int(row[0]), "resolved", row[1]) if row else None


def acknowledge_alert(cur, alert_id: int, *, by: str, at: datetime) -> bool:
    """Mark an open alert acknowledged; False when it is not open."""
    cur.execute(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s "
        "WHERE alert_id = %s AND status = 'open' RETURNING alert_id",
        (at, by, alert_id),
    )
    return cur.fetchone() is not None
