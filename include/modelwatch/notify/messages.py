"""The text of a notification: pure functions from rows to a subject and a body (no I/O).

An alert notification names the model, version, window, severity, the top drifted
features with their statistics (drift alerts) or the failed expectations (data
quality alerts), and the URL of the matching ModelWatch page. A retraining
notification names the trigger, the candidate and champion versions, the outcome
and, for a rejection, the failing gates with their values and thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: alert transitions that are announced (one notification each)
ALERT_TRANSITIONS = ("opened", "escalated", "resolved")
#: retraining outcomes that are announced to the model's owners
RETRAIN_OUTCOMES = ("deployed", "rejected", "awaiting_approval", "external_retrain_requested")
PREFIX = "[ModelWatch]"
MAX_FEATURES = 5


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


@dataclass(frozen=True)
class FeatureStats:
    """One feature's drift tests in a window: (test, statistic, p-value) each."""

    feature: str
    drifted: bool
    tests: tuple[tuple[str, float | None, float | None], ...]

    def describe(self) -> str:
        parts = []
        for test, stat, p in self.tests:
            if stat is None:
                continue
            parts.append(f"{test}={_num(stat)}" + (f" (p={p:.2g})" if p is not None else ""))
        return f"{self.feature}: " + (", ".join(parts) or "no statistic")


def alert_transition(action: str, severity: str, previous_severity: str | None) -> str | None:
    """The announced transition of an alert change, or None (an update at the same or a lower
    severity, a re-run of the same window, a stale window)."""
    from include.modelwatch.loop.alerts import SEVERITIES

    if action == "opened":
        return "opened"
    if action == "resolved":
        return "resolved"
    if (
        action in ("updated", "unchanged")
        and previous_severity in SEVERITIES
        and SEVERITIES.index(severity) > SEVERITIES.index(str(previous_severity))
    ):
        return "escalated"
    return None


def alert_dedupe_key(alert_id: int, transition: str, severity: str) -> str:
    """One key per transition: a re-run of a window yields the same key (and no second notification)."""
    if transition not in ALERT_TRANSITIONS:
        raise ValueError(f"unknown alert transition {transition!r}; expected one of {ALERT_TRANSITIONS}")
    return f"alert:{alert_id}:escalated:{severity}" if transition == "escalated" else f"alert:{alert_id}:{transition}"


def retrain_dedupe_key(trigger_id: int, outcome: str) -> str:
    if outcome not in RETRAIN_OUTCOMES:
        raise ValueError(f"unknown retraining outcome {outcome!r}; expected one of {RETRAIN_OUTCOMES}")
    return f"retrain:{trigger_id}:{outcome}"


def span(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "n/a"
    s = start.astimezone(UTC)
    if end is None:
        return f"from {s:%Y-%m-%d %H:%M} UTC"
    return f"{s:%Y-%m-%d %H:%M} .. {end.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _num(v: float) -> str:
    return f"{v:.2e}" if v != 0 and abs(v) < 1e-3 else f"{v:.3f}"


def _label(alert: Mapping[str, Any]) -> str:
    version = alert.get("model_version")
    return f"{alert['model_name']} v{version}" if version is not None else str(alert["model_name"])


def alert_message(
    alert: Mapping[str, Any],
    *,
    transition: str,
    window_start: datetime | None,
    window_end: datetime | None,
    url: str,
    features: Sequence[FeatureStats] = (),
    previous_severity: str | None = None,
) -> Message:
    """Subject and body of an alert's ``transition`` ('opened' | 'escalated' | 'resolved').

    ``alert`` is the ``alerts`` row after the change (model_name, model_version, kind, severity,
    score, title, message, evidence, alert_id, resolution).
    """
    if transition not in ALERT_TRANSITIONS:
        raise ValueError(f"unknown alert transition {transition!r}; expected one of {ALERT_TRANSITIONS}")
    kind = str(alert["kind"]).replace("_", " ")
    severity = str(alert["severity"])
    label = _label(alert)
    window = span(window_start, window_end)
    if transition == "escalated":
        state = f"ESCALATED {previous_severity or '?'} -> {severity}"
    elif transition == "resolved":
        state = f"RESOLVED (was {severity})"
    else:
        state = f"OPENED ({severity})"
    subject = f"{PREFIX} {kind} alert {state}: {label}, window {window}"
    lines = [
        f"The {kind} alert {alert['alert_id']} of {label} was {transition}.",
        "",
        f"Model:     {alert['model_name']}",
        f"Version:   {alert.get('model_version') if alert.get('model_version') is not None else 'n/a'}",
        f"Window:    {window}",
        f"Severity:  {severity}" + (f" (was {previous_severity})" if transition == "escalated" else ""),
    ]
    if alert.get("score") is not None:
        lines.append(f"Score:     {_num(float(alert['score']))}")
    lines.append(f"Title:     {alert.get('title', '')}")
    if alert.get("message"):
        lines.append(f"Detail:    {alert['message']}")
    if transition == "resolved" and alert.get("resolution"):
        lines.append(f"Resolved:  {alert['resolution']}")
    evidence = alert.get("evidence") or {}
    drifted = [f for f in features if f.drifted][:MAX_FEATURES]
    if alert["kind"] == "drift" or features:
        lines += ["", "Top drifted features (test=statistic, p-value):"]
        lines += [f"  {f.describe()}" for f in drifted] or ["  none drifted in this window"]
    failed = evidence.get("failed") if isinstance(evidence, Mapping) else None
    if failed:
        lines += ["", "Failed expectations:"] + [f"  {line}" for line in list(failed)[:10]]
    lines += ["", f"Page: {url}", ""]
    return Message(subject, "\n".join(lines))


def retrain_message(
    outcome: str,
    *,
    trigger: Mapping[str, Any],
    candidate_version: int | None,
    champion_version: int | None,
    algorithm: str | None,
    url: str,
    gates: Sequence[Mapping[str, Any]] = (),
    approved_by: str | None = None,
    alias: str | None = None,
    detail: str | None = None,
    approvers: Sequence[str] = (),
    answer_url: str | None = None,
) -> Message:
    """Subject and body of a retraining outcome ('deployed' | 'rejected' | 'awaiting_approval').

    ``trigger`` is the ``retraining_triggers`` row (trigger_id, model_name, trigger_type, retrain_mode,
    reason); ``gates`` the candidate's ``quality_gate_results`` rows (gate, status, value, threshold,
    message): a rejection lists the failing ones, an approval request the borderline ones.
    """
    if outcome not in RETRAIN_OUTCOMES:
        raise ValueError(f"unknown retraining outcome {outcome!r}; expected one of {RETRAIN_OUTCOMES}")
    model = str(trigger["model_name"])
    cand = f"v{candidate_version}" if candidate_version is not None else "no candidate"
    state = {
        "deployed": f"DEPLOYED {cand}" + (f" as {alias}" if alias and alias != "champion" else ""),
        "rejected": f"REJECTED {cand}",
        "awaiting_approval": f"{cand} AWAITING APPROVAL",
        "external_retrain_requested": "REQUESTED from the model's owner",
    }[outcome]
    subject = f"{PREFIX} retraining {state}: {model} (trigger {trigger['trigger_id']})"
    lines = [
        f"Retraining trigger {trigger['trigger_id']} of {model}: {outcome.replace('_', ' ')}.",
        "",
        f"Model:      {model}",
        f"Candidate:  {cand}" + (f" ({algorithm})" if algorithm else ""),
        f"Champion:   v{champion_version}" if champion_version is not None else "Champion:   n/a",
        f"Trigger:    {trigger.get('trigger_type', '?')} / {trigger.get('retrain_mode', '?')}: "
        f"{trigger.get('reason', '')}",
    ]
    if outcome == "deployed":
        lines.append(f"Deployed:   {cand} is now {alias or 'champion'}")
        if approved_by:
            lines.append(f"Approved:   by {approved_by}")
    if detail:
        lines.append(f"Outcome:    {detail}")
    wanted = {"rejected": ("fail",), "awaiting_approval": ("borderline",)}.get(outcome, ())
    shown = [g for g in gates if g.get("status") in wanted]
    if outcome == "rejected":
        lines += ["", "Failing gates:"]
    elif outcome == "awaiting_approval":
        lines += ["", "Borderline gates (a human decides):"]
    for g in shown:
        value, threshold = g.get("value"), g.get("threshold")
        stat = (f"value {_num(float(value))}" if value is not None else "value n/a") + (
            f", threshold {_num(float(threshold))}" if threshold is not None else ""
        )
        lines.append(f"  {g['gate']}: {stat}" + (f" - {g['message']}" if g.get("message") else ""))
    if outcome in ("rejected", "awaiting_approval") and not shown:
        lines.append("  none recorded")
    if outcome == "awaiting_approval":
        lines += [
            "",
            "Approvers:  " + (", ".join(approvers) or "anyone allowed to answer (modelwatch_approvers names none)"),
        ]
        if answer_url:
            lines.append(f"Answer:     {answer_url} (Approve or Reject; unanswered, it expires with Reject)")
    lines += ["", f"Page: {url}", ""]
    return Message(subject, "\n".join(lines))
