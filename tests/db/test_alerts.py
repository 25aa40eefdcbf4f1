"""Alert lifecycle on PostgreSQL: one unresolved alert per model and kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from include.modelwatch.data import storage
from include.modelwatch.loop import alerts

W0 = datetime(2008, 9, 1, tzinfo=UTC)


def _raise(cur, window, severity="warning", kind="drift"):
    return alerts.raise_alert(
        cur,
        model_name="m",
        model_version=1,
        kind=kind,
        severity=severity,
        title="t",
        message="msg",
        window_start=window,
        window_end=window + timedelta(days=30),
        score=0.3,
        evidence={"window": window},
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
    assert rows == [
        {
            "status": "open",
            "severity": "critical",
            "occurrences": 2,
            "first_window": W0,
            "last_window": W0 + timedelta(days=30),
        }
    ]


def test_acknowledge_resolve_then_new_episode_opens_new_alert(db):
    with storage.transaction(db) as cur:
        a = _raise(cur, W0)
        assert alerts.acknowledge_alert(cur, a.alert_id, by="ml-oncall", at=W0)
        assert not alerts.acknowledge_alert(cur, a.alert_id, by="ml-oncall", at=W0)  # already acknowledged
        res = alerts.resolve_alert(
            cur, model_name="m", kind="drift", at=W0 + timedelta(days=60), resolution="3 clean windows"
        )
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


def _raise_msg(cur, window, message, score, severity="warning"):
    return alerts.raise_alert(
        cur,
        model_name="m",
        model_version=1,
        kind="drift",
        severity=severity,
        title=f"t {window:%Y-%m}",
        message=message,
        window_start=window,
        window_end=window + timedelta(days=30),
        score=score,
        evidence={"drift_windows": [str(window)]},
    )


def _alert_rows(db):
    return storage.fetch_dicts(
        db,
        "SELECT status, severity, score, title, message, evidence, first_window, "
        "last_window, occurrences FROM alerts ORDER BY alert_id",
    )


def test_rerun_of_an_older_window_does_not_rewind_the_open_alert(db):
    """Defect 8: Oct re-run after Dec must keep Dec's evidence (it used to move the alert back to October)."""
    oct_, nov, dec = W0 + timedelta(days=30), W0 + timedelta(days=61), W0 + timedelta(days=91)
    with storage.transaction(db) as cur:
        _raise_msg(cur, oct_, "october features", 0.446, "critical")
        _raise_msg(cur, nov, "november features", 0.30)
        newest = _raise_msg(cur, dec, "december features", 0.235)
    expected = _alert_rows(db)
    assert expected[0]["last_window"] == dec and expected[0]["message"] == "december features"
    assert expected[0]["occurrences"] == 3 and expected[0]["score"] == 0.235
    with storage.transaction(db) as cur:
        stale = _raise_msg(cur, oct_, "october features (re-run)", 0.5, "critical")
    assert (stale.action, stale.alert_id) == ("stale", newest.alert_id)
    assert _alert_rows(db) == expected
    # re-running the newest window itself corrects the alert in place (not counted twice)
    with storage.transaction(db) as cur:
        fixed = _raise_msg(cur, dec, "december features (corrected)", 0.24)
    assert fixed.action == "unchanged"
    after = _alert_rows(db)[0]
    assert (after["message"], after["score"], after["occurrences"], after["last_window"]) == (
        "december features (corrected)",
        0.24,
        3,
        dec,
    )


def test_rerun_of_an_older_window_neither_resolves_nor_reopens_a_later_episode(db):
    oct_, nov, dec = W0 + timedelta(days=30), W0 + timedelta(days=61), W0 + timedelta(days=91)
    with storage.transaction(db) as cur:
        _raise_msg(cur, nov, "november", 0.3)
        # an older clean window re-run (it resolved in its own time) must not resolve the November alert
        assert (
            alerts.resolve_alert(cur, model_name="m", kind="drift", at=nov, resolution="old", window_start=oct_) is None
        )
    assert [r["status"] for r in _alert_rows(db)] == ["open"]
    with storage.transaction(db) as cur:
        res = alerts.resolve_alert(
            cur, model_name="m", kind="drift", at=dec + timedelta(days=31), resolution="clean", window_start=dec
        )
        assert res is not None and res.action == "resolved"
        # October re-run fires again after the episode was resolved in December: no new alert
        stale = _raise_msg(cur, oct_, "october", 0.446, "critical")
        assert stale.action == "stale"
        # a genuinely new window after the resolution opens a new episode
        later = _raise_msg(cur, dec + timedelta(days=31), "january", 0.3)
        assert later.action == "opened"
    assert [(r["status"], r["message"]) for r in _alert_rows(db)] == [("resolved", "november"), ("open", "january")]
