"""Notifications end to end on PostgreSQL and a real SMTP server (aiosmtpd, started here on a free port):
one mail per alert transition (open, escalate, resolve), none for a re-run window, retraining outcomes to the
model's owners, the log notifier without a connection, and retry after the SMTP server was down."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from include.modelwatch.data import storage
from include.modelwatch.loop import alerts
from include.modelwatch.notify import outbox
from include.tasks import notify
from tests.smtp_sink import body as _body
from tests.smtp_sink import free_port as _free_port
from tests.smtp_sink import start as _start

MODEL = "spx_signal"
W = [datetime(2008, 10, 1, tzinfo=UTC) + timedelta(days=7 * i) for i in range(5)]
BASE = "http://localhost:8080"
CONN_ENV = "AIRFLOW_CONN_MODELWATCH_SMTP"


@pytest.fixture()
def smtp_port() -> int:
    return _free_port()


def _connect(monkeypatch, port: int, **extra) -> None:
    """Define the ``modelwatch_smtp`` connection (an env var, as Airflow reads it)."""
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "from": "modelwatch@example.com",
                    "to": ["ops@example.com"],
                    "owners": {MODEL: ["quant@example.com", "pm@example.com"]},
                    "timeout": 5,
                    **extra,
                },
            }
        ),
    )


@pytest.fixture()
def sink(monkeypatch, smtp_port):
    controller, handler = _start(smtp_port)
    _connect(monkeypatch, smtp_port)
    yield handler
    controller.stop()


def _seed(db) -> None:
    with storage.transaction(db) as cur:
        cur.execute(
            "INSERT INTO model_versions (model_name, version, algorithm) VALUES (%(m)s, 1, 'lightgbm')", {"m": MODEL}
        )


def _window(db, i: int, *, severity: str | None, drifted: bool = True):
    """What compute_drift does in its transaction: the window's rows, the alert change and its notification."""
    start, end = W[i], W[i] + timedelta(days=7)
    key = {"m": MODEL, "s": start, "e": end}
    with storage.transaction(db) as cur:
        cur.execute("DELETE FROM drift_windows WHERE model_name = %(m)s AND window_start = %(s)s", key)
        cur.execute(
            "INSERT INTO drift_windows (model_name, model_version, window_start, window_end, status, n_rows, "
            "drift_score, level, drifted) VALUES (%(m)s, 1, %(s)s, %(e)s, 'evaluated', 46, 0.4, 'critical', %(d)s)",
            {**key, "d": drifted},
        )
        rows = [
            ("vol_21d", "ks", 0.61 + i / 100, 3e-9, 90.0, drifted),
            ("vol_21d", "psi", 1.5, None, 80.0, drifted),
            ("vol_63d", "ks", 0.52, 2e-7, 70.0, drifted),
            ("rsi_14", "ks", 0.08, 0.41, 5.0, False),
        ]
        cur.executemany(
            "INSERT INTO drift_results (model_name, model_version, window_start, window_end, kind, feature, test, "
            "statistic, p_value, severity, drifted) VALUES (%(m)s, 1, %(s)s, %(e)s, 'feature', %(f)s, %(t)s, "
            "%(stat)s, %(p)s, %(sev)s, %(d)s)",
            [{**key, "f": f, "t": t, "stat": st, "p": p, "sev": sv, "d": d} for f, t, st, p, sv, d in rows],
        )
        if severity is not None:
            change = alerts.raise_alert(
                cur,
                model_name=MODEL,
                model_version=1,
                kind="drift",
                severity=severity,
                title=f"{MODEL} v1: drift score 0.40 ({severity})",
                message="vol_21d psi=1.500",
                window_start=start,
                window_end=end,
                score=0.4,
            )
        else:
            change = alerts.resolve_alert(
                cur,
                model_name=MODEL,
                kind="drift",
                at=end,
                resolution="3 consecutive clean windows",
                window_start=start,
            )
        queued = outbox.enqueue_alert_change(cur, change, base_url=BASE, window_start=start, window_end=end)
    notify.deliver_pending(db, MODEL)
    return change, queued


def _notifications(db) -> list[dict]:
    out = storage.fetch_dicts(
        db, "SELECT kind, dedupe_key, status, recipients, attempts, error, created_at FROM notifications ORDER BY id"
    )
    db.rollback()
    return out


def test_one_mail_per_alert_transition_and_none_for_a_rerun_window(db, sink):
    _seed(db)
    opened, q1 = _window(db, 0, severity="warning")
    assert opened.action == "opened" and q1 is not None
    again, q2 = _window(db, 0, severity="warning")  # the same window re-run
    assert (again.action, q2) == ("unchanged", None)
    assert len(sink.received) == 1

    escalated, q3 = _window(db, 1, severity="critical")
    assert escalated.action == "updated" and escalated.escalated and q3 is not None
    rerun, q4 = _window(db, 1, severity="critical")  # re-run of the escalating window: no second mail
    assert (rerun.action, q4) == ("unchanged", None)
    still, q5 = _window(db, 2, severity="critical")  # drift persists at the same severity: not a transition
    assert (still.action, q5) == ("updated", None)
    assert len(sink.received) == 2

    resolved, q6 = _window(db, 3, severity=None, drifted=False)
    assert resolved is not None and resolved.action == "resolved" and q6 is not None
    gone, q7 = _window(db, 3, severity=None, drifted=False)  # re-run: nothing left to resolve
    assert (gone, q7) == (None, None)

    assert len(sink.received) == 3
    (to1, m1), (to2, m2), (to3, m3) = sink.received
    assert to1 == to2 == to3 == ["ops@example.com"]
    aid = opened.alert_id
    assert [m["X-ModelWatch-Key"] for m in (m1, m2, m3)] == [
        f"alert:{aid}:opened",
        f"alert:{aid}:escalated:critical",
        f"alert:{aid}:resolved",
    ]
    assert m1["From"] == "modelwatch@example.com"
    assert m1["Subject"] == (
        "[ModelWatch] drift alert OPENED (warning): spx_signal v1, window 2008-10-01 00:00 .. 2008-10-08 00:00 UTC"
    )
    body1 = _body(m1)
    assert "Model:     spx_signal\n" in body1 and "Version:   1\n" in body1 and "Severity:  warning\n" in body1
    assert "  vol_21d: ks=0.610 (p=3e-09), psi=1.500" in body1
    assert "  vol_63d: ks=0.520 (p=2e-07)" in body1 and "rsi_14" not in body1
    assert f"Page: {BASE}/modelwatch/drift/spx_signal/1/2008-10-01T00%3A00%3A00Z" in body1

    assert m2["Subject"] == (
        "[ModelWatch] drift alert ESCALATED warning -> critical: spx_signal v1, "
        "window 2008-10-08 00:00 .. 2008-10-15 00:00 UTC"
    )
    body2 = _body(m2)
    assert "Severity:  critical (was warning)" in body2 and "vol_21d: ks=0.620 (p=3e-09)" in body2
    assert f"Page: {BASE}/modelwatch/drift/spx_signal/1/2008-10-08T00%3A00%3A00Z" in body2

    assert m3["Subject"].startswith(
        "[ModelWatch] drift alert RESOLVED (was critical): spx_signal v1, window 2008-10-22"
    )
    body3 = _body(m3)
    assert "Resolved:  3 consecutive clean windows" in body3 and "none drifted in this window" in body3

    rows = _notifications(db)
    assert [(r["kind"], r["status"], r["attempts"], r["recipients"]) for r in rows] == [
        ("alert", "sent", 1, ["ops@example.com"])
    ] * 3
    # keyed on the logical time of the transition (the window's end), never the wall clock
    assert [r["created_at"] for r in rows] == [W[0] + timedelta(days=7), W[1] + timedelta(days=7), W[4]]


def _trigger(db) -> int:
    with storage.transaction(db) as cur:
        cur.execute(
            "INSERT INTO retraining_triggers (model_name, model_version, trigger_type, retrain_mode, priority, "
            "reason, status, triggered_at) VALUES (%(m)s, 1, 'drift', 'full', 'high', 'drift score 0.41 >= 0.25', "
            "'claimed', %(at)s) RETURNING trigger_id",
            {"m": MODEL, "at": W[1]},
        )
        tid = int(cur.fetchone()[0])
        cur.executemany(
            "INSERT INTO quality_gate_results (trigger_id, job_id, model_name, candidate_version, champion_version, "
            "gate, status, value, threshold, message, evaluated_at) VALUES (%(tid)s, 11, %(m)s, 2, 1, %(g)s, "
            "%(s)s, %(v)s, %(t)s, %(msg)s, %(at)s)",
            [
                {**g, "tid": tid, "m": MODEL, "at": W[1]}
                for g in [
                    {"g": "accuracy_vs_champion", "s": "fail", "v": 0.401, "t": 0.4213, "msg": "below the champion"},
                    {"g": "calibration_ece", "s": "borderline", "v": 0.061, "t": 0.06, "msg": ""},
                    {"g": "min_trades", "s": "pass", "v": 120.0, "t": 50.0, "msg": ""},
                ]
            ],
        )
    return tid


def _outcome(db, tid: int, outcome: str, **kw):
    with storage.transaction(db) as cur:
        queued = outbox.enqueue_retrain_outcome(
            cur,
            outcome=outcome,
            trigger_id=tid,
            candidate_version=2,
            champion_version=1,
            algorithm="lightgbm",
            job_id=11,
            at=W[1],
            base_url=BASE,
            **kw,
        )
    notify.deliver_pending(db, MODEL)
    return queued


def test_retraining_outcomes_reach_the_owners_once(db, sink):
    _seed(db)
    tid = _trigger(db)
    assert _outcome(db, tid, "rejected", detail="rejected: accuracy_vs_champion") is not None
    assert _outcome(db, tid, "rejected", detail="rejected: accuracy_vs_champion") is None  # a retry: nothing new
    assert _outcome(
        db,
        tid,
        "awaiting_approval",
        approvers=["Risk Officer (risk)"],
        answer_url=f"{BASE}/dags/retrain_gated/runs/r1/tasks/human_decision/required_actions",
        addressed_to=["risk@example.com", "pm@example.com"],
    )
    assert _outcome(db, tid, "deployed", approved_by="alice") is not None
    assert len(sink.received) == 3
    (to, rejected), (to_waiting, waiting), (to_deployed, deployed) = sink.received
    assert to == to_deployed == ["quant@example.com", "pm@example.com"]  # the model's owners, not the alert list
    # the approval request also goes to the approvers' addresses (each address once)
    assert to_waiting == ["quant@example.com", "pm@example.com", "risk@example.com"]
    assert "Approvers:  Risk Officer (risk)" in _body(waiting)
    assert f"Answer:     {BASE}/dags/retrain_gated/runs/r1/tasks/human_decision/required_actions" in _body(waiting)
    assert rejected["Subject"] == f"[ModelWatch] retraining REJECTED v2: spx_signal (trigger {tid})"
    body = _body(rejected)
    assert "Failing gates:\n  accuracy_vs_champion: value 0.401, threshold 0.421 - below the champion" in body
    assert "min_trades" not in body and "Trigger:    drift / full: drift score 0.41 >= 0.25" in body
    assert f"Page: {BASE}/modelwatch/models/spx_signal#jobs" in body
    assert "calibration_ece: value 0.061, threshold 0.060" in _body(waiting)
    assert deployed["Subject"] == f"[ModelWatch] retraining DEPLOYED v2: spx_signal (trigger {tid})"
    assert "Approved:   by alice" in _body(deployed)
    assert [r["dedupe_key"] for r in _notifications(db)] == [
        f"retrain:{tid}:rejected",
        f"retrain:{tid}:awaiting_approval",
        f"retrain:{tid}:deployed",
    ]


def test_without_a_connection_rows_are_skipped_and_logged(db, monkeypatch, caplog):
    monkeypatch.delenv(CONN_ENV, raising=False)
    caplog.set_level(logging.INFO, logger="include.modelwatch.notify")
    _seed(db)
    controller, handler = _start(_free_port())  # listening, but nobody points at it
    try:
        _window(db, 0, severity="critical")
    finally:
        controller.stop()
    assert handler.received == []
    rows = _notifications(db)
    assert [(r["status"], r["attempts"], r["error"]) for r in rows] == [("skipped", 0, "no modelwatch_smtp connection")]
    logged = [r.getMessage() for r in caplog.records if "notification not sent" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].startswith(
        "notification not sent (no modelwatch_smtp connection): [ModelWatch] drift alert OPENED (critical)"
    )
    assert "vol_21d: ks=0.610" in logged[0]  # the whole message is in the log


def test_smtp_down_marks_failed_without_raising_and_the_next_delivery_sends(db, monkeypatch, smtp_port, caplog):
    _seed(db)
    _connect(monkeypatch, smtp_port)  # nothing listens there yet
    caplog.set_level(logging.WARNING, logger="include.modelwatch.notify")
    change, queued = _window(db, 0, severity="warning")  # does not raise
    assert queued is not None
    [row] = _notifications(db)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "ConnectionRefusedError" in row["error"]
    assert any("not sent (will retry)" in r.getMessage() for r in caplog.records)

    controller, handler = _start(smtp_port)
    try:
        assert notify.deliver_pending(db, MODEL) == "notifications: 1 sent, 0 failed, 0 skipped"
        assert notify.deliver_pending(db, MODEL) == "notifications: 0 sent, 0 failed, 0 skipped"
    finally:
        controller.stop()
    assert [m["X-ModelWatch-Key"] for _, m in handler.received] == [f"alert:{change.alert_id}:opened"]
    [row] = _notifications(db)
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 2, None)


def test_a_broken_connection_definition_does_not_fail_the_task(db, monkeypatch):
    _seed(db)
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "smtp", "host": "", "extra": {"to": ["a@example.com"]}}))
    _, queued = _window(db, 0, severity="warning")
    assert queued is not None
    assert notify.deliver_pending(db, MODEL) == "notifications: delivery error (ValueError)"
    assert [r["status"] for r in _notifications(db)] == ["pending"]  # kept for the next run
