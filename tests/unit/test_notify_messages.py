"""Notification text: alert open / escalate / resolve and the retraining outcomes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.modelwatch.notify import messages
from include.modelwatch.notify.messages import FeatureStats
from include.modelwatch.notify.smtp import SmtpSettings

START = datetime(2008, 10, 1, tzinfo=UTC)
END = datetime(2008, 11, 1, tzinfo=UTC)
URL = "http://mw.example:8080/modelwatch/drift/spx_signal/1/2008-10-01T00%3A00%3A00Z"
FEATURES = [
    FeatureStats("vol_21d", True, (("ks", 0.6123, 3.1e-9), ("psi", 1.8765, None))),
    FeatureStats("vol_63d", True, (("ks", 0.55, 2e-7), ("wasserstein_norm", 1.25, None))),
    FeatureStats("rsi_14", False, (("ks", 0.1, 0.4),)),
]


def _alert(severity="critical", **kw):
    return {
        "alert_id": 7,
        "model_name": "spx_signal",
        "model_version": 1,
        "kind": "drift",
        "severity": severity,
        "score": 0.4123,
        "title": "spx_signal v1: drift score 0.41 (critical)",
        "message": "vol_21d W/sd=1.90 psi=1.877 p_adj=3.1e-09",
        "evidence": {"top_features": ["vol_21d", "vol_63d"]},
        "resolution": None,
        **kw,
    }


def _msg(transition, **kw):
    return messages.alert_message(
        _alert(**kw.pop("alert", {})),
        transition=transition,
        window_start=START,
        window_end=END,
        url=URL,
        features=FEATURES,
        **kw,
    )


def test_opened_alert_names_model_version_window_severity_features_and_page():
    m = _msg("opened")
    assert m.subject == (
        "[ModelWatch] drift alert OPENED (critical): spx_signal v1, window 2008-10-01 00:00 .. 2008-11-01 00:00 UTC"
    )
    body = m.body
    assert "Model:     spx_signal\n" in body and "Version:   1\n" in body
    assert "Window:    2008-10-01 00:00 .. 2008-11-01 00:00 UTC" in body
    assert "Severity:  critical\n" in body and "Score:     0.412" in body
    assert "  vol_21d: ks=0.612 (p=3.1e-09), psi=1.877" in body
    assert "  vol_63d: ks=0.550 (p=2e-07), wasserstein_norm=1.250" in body
    assert "rsi_14" not in body  # not drifted: not a top drifted feature
    assert body.rstrip().endswith(f"Page: {URL}")


def test_escalated_alert_says_from_and_to():
    m = _msg("escalated", previous_severity="warning")
    assert m.subject.startswith("[ModelWatch] drift alert ESCALATED warning -> critical: spx_signal v1, window 2008-10")
    assert "Severity:  critical (was warning)" in m.body
    assert "was escalated" in m.body and "vol_21d: ks=0.612" in m.body


def test_resolved_alert_gives_the_resolution():
    m = _msg("resolved", alert={"resolution": "3 consecutive clean windows"})
    assert m.subject.startswith("[ModelWatch] drift alert RESOLVED (was critical): spx_signal v1, window 2008-10-01")
    assert "Resolved:  3 consecutive clean windows" in m.body and URL in m.body


def test_data_quality_alert_lists_failed_expectations_not_features():
    alert = _alert(kind="data_quality", evidence={"failed": ["p_BUY: values between 0 and 1 (1 unexpected)"]})
    m = messages.alert_message(alert, transition="opened", window_start=START, window_end=END, url=URL)
    assert m.subject.startswith("[ModelWatch] data quality alert OPENED (critical): spx_signal v1")
    assert "Failed expectations:\n  p_BUY: values between 0 and 1 (1 unexpected)" in m.body
    assert "Top drifted features" not in m.body


@pytest.mark.parametrize(
    ("action", "severity", "previous", "expected"),
    [
        ("opened", "warning", None, "opened"),
        ("updated", "critical", "warning", "escalated"),
        ("unchanged", "critical", "warning", "escalated"),  # the same window re-evaluated at a higher severity
        ("updated", "critical", "critical", None),  # one more drifted window: not a transition
        ("updated", "warning", "critical", None),  # de-escalation is not announced
        ("unchanged", "warning", "warning", None),
        ("stale", "critical", None, None),
        ("resolved", "critical", None, "resolved"),
    ],
)
def test_only_transitions_are_announced(action, severity, previous, expected):
    assert messages.alert_transition(action, severity, previous) == expected


def test_dedupe_keys_name_the_transition():
    assert messages.alert_dedupe_key(7, "opened", "warning") == "alert:7:opened"
    assert messages.alert_dedupe_key(7, "escalated", "critical") == "alert:7:escalated:critical"
    assert messages.alert_dedupe_key(7, "resolved", "critical") == "alert:7:resolved"
    assert messages.retrain_dedupe_key(3, "rejected") == "retrain:3:rejected"
    with pytest.raises(ValueError, match="unknown retraining outcome"):
        messages.retrain_dedupe_key(3, "maybe")


TRIGGER = {
    "trigger_id": 3,
    "model_name": "spx_signal",
    "trigger_type": "drift",
    "retrain_mode": "full",
    "reason": "drift score 0.41 >= 0.25",
}
GATES = [
    {"gate": "accuracy_vs_champion", "status": "fail", "value": 0.4012, "threshold": 0.4213, "message": "worse"},
    {"gate": "calibration_ece", "status": "borderline", "value": 0.061, "threshold": 0.06, "message": ""},
    {"gate": "min_trades", "status": "pass", "value": 120.0, "threshold": 50.0, "message": ""},
]
JOBS = "http://mw.example:8080/modelwatch/models/spx_signal#jobs"


def _retrain(outcome, **kw):
    return messages.retrain_message(
        outcome,
        trigger=TRIGGER,
        candidate_version=4,
        champion_version=1,
        algorithm="lightgbm",
        url=JOBS,
        gates=GATES,
        **kw,
    )


def test_retrain_deployed():
    m = _retrain("deployed", approved_by="alice")
    assert m.subject == "[ModelWatch] retraining DEPLOYED v4: spx_signal (trigger 3)"
    assert "Candidate:  v4 (lightgbm)" in m.body and "Champion:   v1" in m.body
    assert "Trigger:    drift / full: drift score 0.41 >= 0.25" in m.body
    assert "Deployed:   v4 is now champion" in m.body and "Approved:   by alice" in m.body
    assert "accuracy_vs_champion" not in m.body and m.body.rstrip().endswith(f"Page: {JOBS}")


def test_retrain_rejected_lists_the_failing_gates_with_values():
    m = _retrain("rejected", detail="rejected: accuracy_vs_champion")
    assert m.subject == "[ModelWatch] retraining REJECTED v4: spx_signal (trigger 3)"
    assert "Failing gates:\n  accuracy_vs_champion: value 0.401, threshold 0.421 - worse" in m.body
    assert "calibration_ece" not in m.body and "min_trades" not in m.body
    assert "Outcome:    rejected: accuracy_vs_champion" in m.body


def test_retrain_awaiting_approval_lists_the_borderline_gates():
    m = _retrain("awaiting_approval")
    assert m.subject == "[ModelWatch] retraining v4 AWAITING APPROVAL: spx_signal (trigger 3)"
    assert "Borderline gates (a human decides):\n  calibration_ece: value 0.061, threshold 0.060" in m.body
    assert "accuracy_vs_champion" not in m.body
    assert "Approvers:  anyone allowed to answer (modelwatch_approvers names none)" in m.body
    assert "Answer:" not in m.body
    named = _retrain("awaiting_approval", approvers=["Risk Officer (risk)", "bob"], answer_url="http://x/answer")
    assert "Approvers:  Risk Officer (risk), bob" in named.body
    assert "Answer:     http://x/answer (Approve or Reject; unanswered, it expires with Reject)" in named.body
    assert "Approvers:" not in _retrain("rejected").body


def test_smtp_settings_from_connection_and_recipients():
    s = SmtpSettings.from_connection(
        host="smtp.example",
        port=None,
        login="bot@example.com",
        password="pw",
        extra={"to": ["ops@example.com"], "starttls": "true", "owners": {"spx_signal": "quant@example.com, pm@x.io"}},
    )
    assert (s.port, s.sender, s.starttls, s.to) == (25, "bot@example.com", True, ("ops@example.com",))
    assert s.recipients("retrain", "spx_signal") == ("quant@example.com", "pm@x.io")
    assert s.recipients("retrain", "other") == ("ops@example.com",)  # no owners: the default list
    assert s.recipients("alert", "spx_signal") == ("ops@example.com",)
    assert "pw" not in repr(s)
    with pytest.raises(ValueError, match="host is empty"):
        SmtpSettings.from_connection(host="", port=25, login=None, password=None, extra={})


def test_a_failed_task_message_names_dag_task_run_try_error_and_log():
    from include.tasks.notify import failure_message

    subject, body = failure_message(
        dag_id="drift_hourly",
        task_id="compute_drift",
        map_index=2,
        run_id="scheduled__2008-10-01T00:00:00+00:00",
        try_number=3,
        error=ValueError("spx_signal v1: column 'vol_5d' missing"),
        log_url="http://localhost:8080/dags/drift_hourly/runs/x/tasks/compute_drift/mapped/2",
    )
    assert subject == "[ModelWatch] task failed: drift_hourly.compute_drift[2] (scheduled__2008-10-01T00:00:00+00:00)"
    assert "try 3" in body and "Error: ValueError: spx_signal v1: column 'vol_5d' missing" in body
    assert body.endswith("Log: http://localhost:8080/dags/drift_hourly/runs/x/tasks/compute_drift/mapped/2\n")
