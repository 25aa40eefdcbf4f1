"""Alert lifecycle on PostgreSQL: one unresolved alert per model and kind."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from include.modelwatch.loop import alerts

from include.modelwatch.data import storage
W0 = datetime(2008, 9, 1, tzinfo=timezone.utc)


def _raise(cur, window, severity="warning", kind="drift"):
    return alerts.raise_alert(
        cur, model_name="m", model_version=1, kind=kind, severity=severity, title="t", message="msg",
        window_start=window, window_end=window + timedelta(days=30), score=0.3, evidence={"window": window},
    )


def test_repeat_updates_instead_of_duplicating(db):
    with storage.transaction(db) as cur:
        first = _raise(cur, W0)
        again = _raise(cur, W0)  # same window re-run: not counted twice
        later = _raise(cur, W0 + timedelta(days=30), severity="critical")
    assert first.action == "opened"
    assert (again.action, again.alert_id) == ("unchanged", first.alert_id)
    assert (later.action, later.alert_id) == ("updated", first.alert_id)
    rows = storage.fetch_dicts(db, "SELECT status, severity, occurrences, first_window, last_window FROM alerts")
    assert rows == [{"status": "open", "severity": "critical", "occurrences": 2, "first_window": W0, "last_window": W0 + timedelta(days=30)}]


def test_acknowledge_resolve_then_new_episode_opens_new_alert(db):
    with storage.transaction(db) as cur:
        a = _raise(cur, W0)
        assert alerts.acknowledge_alert(cur, a.alert_id, by="ml-oncall", at=W0)
        assert not alerts.acknowledge_alert(cur, a.alert_id, by="ml-oncall", at=W0)  # already acknowledged
        res = alerts.resolve_alert(cur, model_name="m", kind="drift", at=W0 + timedelta(days=60), resolution="3 clean windows")
        assert res is not None and res.alert_id == a.alert_id
        b = _raise(cur, W0 + timedelta(days=90))
    assert b.action == "opened" and b.alert_id != a.alert_id
    rows = storage.fetch_dicts(db, "SELECT alert_id, status FROM alerts ORDER BY alert_id")
    assert [r["status"] for r in rows] == ["resolved", "open"]


def test_database_refuses_a_second_unresolved_alert(db):
    with storage.transaction(db) as cur:
        _raise(cur, W0)
    with pytest.raises(psycopg.errors.UniqueViolation):
        with storage.transaction(db) as cur:
            cur.execute(
                "INSERT INTO alerts (model_name, kind, severity, title, message, first_window, last_window, opened_at) "
                "VALUES ('m', 'drift', 'warning', 't', 'm', now(), now(), now())"
            )


def test_unknown_kind_is_rejected(db):
    with pytest.raises(ValueError, match="unknown alert kind 'weird'"):
        with storage.transaction(db) as cur:
            _raise(cur, W0, kind="weird")
