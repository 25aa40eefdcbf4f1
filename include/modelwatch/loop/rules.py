"""Automated response rules: turn monitoring observations into retraining triggers.

A :class:`ResponseRule` watches one metric of a model (drift score, performance
drop, model age, risk score or the human labels no retrain has used yet) and, when the observed value crosses its
threshold, asks for a retrain of a given mode and priority. :func:`evaluate_rules`
applies a rule set to one model's observations and returns one
:class:`Decision` per rule, so every evaluation is auditable:

* ``disabled``            - the rule (or its per-model override) is switched off;
* ``no_change``           - not matched, no observation, superseded by a stronger
                            rule matching at the same time, or a pending trigger
                            of the model is already at least as strong;
* ``suppressed_cooldown`` - matched, but the same rule fired for this model less
                            than ``cooldown_hours`` before ``as_of``;
* ``suppressed_episode``  - matched, but the rule already fired for the episode
                            behind the observation (e.g. the same open alert):
                            one trigger per episode, however long it lasts;
* ``fire``                - matched, strongest of this evaluation, no pending
                            trigger: create a trigger;
* ``upgrade``             - matched, strongest of this evaluation, and stronger
                            than the model's pending trigger: raise that trigger.

At most one of the returned decisions is ``fire`` or ``upgrade`` (at most one
pending trigger per model). Strength is ``(priority rank, full > incremental)``.
Everything here is pure: the caller passes the pending trigger, when each rule
last fired and the evaluation time ``as_of``; the wall clock is never read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from include.modelwatch.vocabulary import check_text

METRICS: tuple[str, ...] = ("drift_score", "performance_drop", "model_age_days", "risk_score", "new_labels")
OPERATORS: tuple[str, ...] = (">", ">=")
RETRAIN_MODES: tuple[str, ...] = ("full", "incremental")
PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
ACTIONS: tuple[str, ...] = ("fire", "upgrade", "suppressed_cooldown", "suppressed_episode", "no_change", "disabled")
TRIGGER_TYPES: tuple[str, ...] = ("drift", "degradation", "age", "risk", "manual", "active_learning")

#: Priority order used to compare triggers: low < medium < high < critical.
PRIORITY_RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES)}
#: A full retrain is stronger than an incremental one at equal priority.
MODE_RANK: dict[str, int] = {"incremental": 0, "full": 1}

#: Trigger type recorded for a rule on each metric.
TRIGGER_TYPE_BY_METRIC: dict[str, str] = {
    "drift_score": "drift",
    "performance_drop": "degradation",
    "model_age_days": "age",
    "risk_score": "risk",
    "new_labels": "active_learning",
}

#: Allowed closed threshold range per metric (inclusive bounds).
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "drift_score": (0.0, 1.0),
    "performance_drop": (0.0, 1.0),
    "model_age_days": (0.0, math.inf),
    "risk_score": (0.0, 100.0),
    "new_labels": (0.0, math.inf),
}

#: Fields a per-model override may replace. ``name`` and ``metric`` identify
#: the rule and cannot be overridden.
OVERRIDABLE_FIELDS: tuple[str, ...] = (
    "threshold",
    "enabled",
    "cooldown_hours",
    "operator",
    "retrain_mode",
    "priority",
)

MANUAL_RULE_NAME = "manual"


class RuleError(ValueError):
    """A response rule is invalid; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ResponseRule:
    """One automated response: ``metric operator threshold`` -> retrain request.

    ``cooldown_hours`` is the minimum time between two fires of this rule for
    the same model. ``model_overrides`` maps a model name to replacement values
    for any of :data:`OVERRIDABLE_FIELDS` (e.g. ``{"fx_eurusd": {"threshold":
    0.4}}``); the mapping must not be mutated after construction.
    """

    name: str
    metric: str
    operator: str
    threshold: float
    retrain_mode: str
    priority: str
    cooldown_hours: float
    enabled: bool = True
    model_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`RuleError` naming the first invalid field; return None if valid."""
        self._validate_core(prefix="")
        if not isinstance(self.model_overrides, Mapping):
            raise RuleError("model_overrides", "must be a mapping of model name -> overrides")
        for model, overrides in self.model_overrides.items():
            where = f"model_overrides[{model!r}]"
            if not isinstance(model, str) or not model.strip():
                raise RuleError("model_overrides", f"model name must be a non-empty string, got {model!r}")
            if not isinstance(overrides, Mapping):
                raise RuleError(where, "must be a mapping of field -> value")
            for key in overrides:
                if key not in OVERRIDABLE_FIELDS:
                    raise RuleError(f"{where}.{key}", f"cannot be overridden; allowed fields are {OVERRIDABLE_FIELDS}")
            replace(self, model_overrides={}, **dict(overrides))._validate_core(prefix=f"{where}.")

    def _validate_core(self, prefix: str) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise RuleError(prefix + "name", "must be a non-empty string")
        if self.metric not in METRICS:
            raise RuleError(prefix + "metric", f"unknown metric {self.metric!r}; expected one of {METRICS}")
        if self.operator not in OPERATORS:
            raise RuleError(prefix + "operator", f"unknown operator {self.operator!r}; expected one of {OPERATORS}")
        if not _is_number(self.threshold) or math.isnan(self.threshold) or math.isinf(self.threshold):
            raise RuleError(prefix + "threshold", f"must be a finite number, got {self.threshold!r}")
        low, high = METRIC_RANGES[self.metric]
        if not low <= self.threshold <= high:
            raise RuleError(
                prefix + "threshold",
                f"{self.threshold!r} out of range [{low:g}, {high:g}] for metric {self.metric}",
            )
        if self.retrain_mode not in RETRAIN_MODES:
            raise RuleError(
                prefix + "retrain_mode", f"unknown retrain mode {self.retrain_mode!r}; expected one of {RETRAIN_MODES}"
            )
        if self.priority not in PRIORITIES:
            raise RuleError(prefix + "priority", f"unknown priority {self.priority!r}; expected one of {PRIORITIES}")
        if not _is_number(self.cooldown_hours) or not math.isfinite(self.cooldown_hours):
            raise RuleError(prefix + "cooldown_hours", f"must be a finite number, got {self.cooldown_hours!r}")
        if self.cooldown_hours < 0:
            raise RuleError(prefix + "cooldown_hours", f"must be >= 0, got {self.cooldown_hours!r}")
        if not isinstance(self.enabled, bool):
            raise RuleError(prefix + "enabled", f"must be a bool, got {self.enabled!r}")

    def for_model(self, model: str) -> ResponseRule:
        """The rule as it applies to ``model``: its overrides applied, overrides cleared."""
        overrides = self.model_overrides.get(model)
        if not overrides:
            return replace(self, model_overrides={})
        return replace(self, model_overrides={}, **dict(overrides))

    def matches(self, value: float) -> bool:
        """True if ``value`` crosses the threshold (``value > threshold`` or ``>=``)."""
        return value > self.threshold if self.operator == ">" else value >= self.threshold

    @property
    def trigger_type(self) -> str:
        """Trigger type this rule creates ('drift', 'degradation', 'age' or 'risk')."""
        return TRIGGER_TYPE_BY_METRIC[self.metric]


_RULE_FIELDS = tuple(f.name for f in fields(ResponseRule))
_REQUIRED_FIELDS = ("name", "metric", "operator", "threshold", "retrain_mode", "priority", "cooldown_hours")


def rule_from_dict(d: Mapping[str, Any]) -> ResponseRule:
    """Build and validate a rule from a plain mapping (e.g. parsed YAML/JSON).

    Unknown keys and missing required keys are rejected; integer thresholds
    and cooldowns are converted to float. Raises :class:`RuleError`.
    """
    if not isinstance(d, Mapping):
        raise RuleError("rule", f"must be a mapping, got {type(d).__name__}")
    for key in d:
        if key not in _RULE_FIELDS:
            raise RuleError(str(key), f"unknown field; expected a subset of {_RULE_FIELDS}")
    for key in _REQUIRED_FIELDS:
        if key not in d:
            raise RuleError(key, "is required")
    values = dict(d)
    for key in ("threshold", "cooldown_hours"):
        if _is_number(values[key]):
            values[key] = float(values[key])
    overrides = values.get("model_overrides") or {}
    if isinstance(overrides, Mapping):
        values["model_overrides"] = {
            m: (
                {k: (float(v) if k in ("threshold", "cooldown_hours") and _is_number(v) else v) for k, v in o.items()}
                if isinstance(o, Mapping)
                else o
            )
            for m, o in overrides.items()
        }
    else:
        values["model_overrides"] = overrides
    rule = ResponseRule(**values)
    rule.validate()
    return rule


def validate_rules(rules: Sequence[ResponseRule]) -> None:
    """Validate every rule and require unique names (cooldowns are keyed by name)."""
    seen: set[str] = set()
    for rule in rules:
        rule.validate()
        if rule.name in seen:
            raise RuleError("name", f"duplicate rule name {rule.name!r}")
        seen.add(rule.name)


#: Defaults carried over from the predecessor system. Cooldowns (our choice):
#: drift 24h and performance 24h - the monitors run daily, so a persisting
#: problem re-fires at most once a day; age 168h - age grows every day, a
#: weekly reminder is enough while a retrain is scheduled; risk 6h - critical,
#: re-evaluated several times a day. The age rule was the predecessor's 30 days and incremental until the policy
#: replay (README, "Does the closed loop pay off?") showed it fires every month and every such retrain fails: a
#: champion a month old leaves too few sessions out of its sample to judge a candidate, and an incremental training
#: set (from the champion's last training day) is below the minimum rows. It is now a full retrain once the
#: champion's data is a year old, re-fired every 180 days (cooldown 4320h) while no candidate beats it: with the
#: weekly cooldown it re-fired every month after a rejection, which is the monthly calendar again.
DEFAULT_RULES: tuple[ResponseRule, ...] = (
    ResponseRule("drift_full_retrain", "drift_score", ">", 0.25, "full", "high", 24.0),
    ResponseRule("performance_incremental", "performance_drop", ">", 0.10, "incremental", "medium", 24.0),
    ResponseRule("age_full_retrain", "model_age_days", ">", 365.0, "full", "low", 4320.0),
    ResponseRule("risk_full_retrain", "risk_score", ">", 80.0, "full", "critical", 6.0),
    ResponseRule("active_learning_retrain", "new_labels", ">=", 50.0, "full", "medium", 72.0),
)


class _Strength(Protocol):
    @property
    def priority(self) -> str: ...

    @property
    def retrain_mode(self) -> str: ...


def strength(x: _Strength) -> tuple[int, int]:
    """Sort key of a rule, trigger or decision: (priority rank, mode rank)."""
    return PRIORITY_RANK[x.priority], MODE_RANK[x.retrain_mode]


def stronger(a: _Strength, b: _Strength) -> bool:
    """True if ``a`` is strictly stronger than ``b``: higher priority, then full > incremental."""
    return strength(a) > strength(b)


@dataclass(frozen=True)
class PendingTrigger:
    """The one not-yet-consumed retraining trigger of a model."""

    model: str
    rule_name: str
    trigger_type: str
    retrain_mode: str
    priority: str
    trigger_id: int | None = None
    created_at: datetime | None = None

    def as_evidence(self) -> dict[str, Any]:
        """JSON-friendly description for decision evidence."""
        return {
            "trigger_id": self.trigger_id,
            "rule_name": self.rule_name,
            "trigger_type": self.trigger_type,
            "retrain_mode": self.retrain_mode,
            "priority": self.priority,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class Decision:
    """Outcome of one rule for one model at one evaluation.

    For ``upgrade`` the ``retrain_mode``/``priority`` are those the pending
    trigger should be raised to: never weaker than the pending trigger in
    either dimension (a full pending trigger stays full).
    """

    model: str
    action: str
    rule_name: str
    trigger_type: str
    retrain_mode: str
    priority: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def creates_trigger(self) -> bool:
        """True for 'fire' and 'upgrade': the caller must write/raise a trigger."""
        return self.action in ("fire", "upgrade")


def _fmt(x: float) -> str:
    return f"{x:g}"


def evaluate_rules(
    model: str,
    observations: Mapping[str, float | None],
    rules: Sequence[ResponseRule],
    pending: PendingTrigger | None,
    last_fired: Mapping[str, datetime],
    as_of: datetime,
    handled: Mapping[str, str] | None = None,
) -> list[Decision]:
    """Apply ``rules`` to one model's ``observations``; one Decision per rule, in rule order.

    ``observations`` maps metric name -> value (None/NaN/missing = not observed,
    which never matches). ``last_fired`` maps rule name -> when that rule last
    fired for this model. A matched rule is suppressed while
    ``0 <= as_of - fired < cooldown_hours``: the cooldown has expired exactly
    ``cooldown_hours`` after the fire, and fires later than ``as_of`` (seen when
    replaying the past) are ignored.
    ``handled`` maps rule name -> why the current episode is already handled
    (the rule fired for the same open alert); such a matched rule is
    ``suppressed_episode`` and, like a cooled-down rule, lets the next strongest
    rule act.
    Among matched rules not in cooldown only the strongest (ties: first in
    ``rules``) can become ``fire``/``upgrade``; the rest are ``no_change``.
    """
    handled = handled or {}
    if not isinstance(model, str) or not model.strip():
        raise ValueError("model must be a non-empty string")
    validate_rules(rules)

    decisions: list[Decision | None] = [None] * len(rules)
    candidates: list[tuple[int, ResponseRule, float, dict[str, Any]]] = []

    for i, base in enumerate(rules):
        rule = base.for_model(model)
        overridden = sorted(base.model_overrides.get(model, {}) or {})
        raw = observations.get(rule.metric)
        value = None if raw is None or (isinstance(raw, float) and math.isnan(raw)) else float(raw)
        ev: dict[str, Any] = {
            "metric": rule.metric,
            "observed": value,
            "operator": rule.operator,
            "threshold": rule.threshold,
            "cooldown_hours": rule.cooldown_hours,
            "overridden_fields": overridden,
            "as_of": as_of.isoformat(),
        }

        def make(action: str, reason: str, *, _rule: ResponseRule = rule, _ev: dict[str, Any] = ev) -> Decision:
            return Decision(
                model, action, _rule.name, _rule.trigger_type, _rule.retrain_mode, _rule.priority, reason, _ev
            )

        if not rule.enabled:
            where = " for this model" if "enabled" in overridden else ""
            decisions[i] = make("disabled", f"rule {rule.name} is disabled{where}")
            continue
        if value is None:
            decisions[i] = make("no_change", f"{rule.metric} not observed")
            continue
        comparison = f"{rule.metric} {_fmt(value)} {rule.operator} threshold {_fmt(rule.threshold)}"
        if not rule.matches(value):
            negated = "<=" if rule.operator == ">" else "<"
            decisions[i] = make(
                "no_change", f"{rule.metric} {_fmt(value)} {negated} threshold {_fmt(rule.threshold)}: not triggered"
            )
            continue
        if rule.name in handled:
            ev["episode"] = handled[rule.name]
            decisions[i] = make("suppressed_episode", f"{comparison}, but {handled[rule.name]}")
            continue
        fired = last_fired.get(rule.name)
        if fired is not None:
            ev["last_fired"] = fired.isoformat()
            elapsed = as_of - fired
            if timedelta(0) <= elapsed < timedelta(hours=rule.cooldown_hours):
                until = fired + timedelta(hours=rule.cooldown_hours)
                ev["cooldown_until"] = until.isoformat()
                decisions[i] = make(
                    "suppressed_cooldown",
                    f"{comparison}, but rule last fired {elapsed.total_seconds() / 3600:g}h ago "
                    f"(cooldown {_fmt(rule.cooldown_hours)}h, until {until.isoformat()})",
                )
                continue
        candidates.append((i, rule, value, ev))

    if candidates:
        best_i, best, best_value, best_ev = max(candidates, key=lambda c: (strength(c[1]), -c[0]))
        best_cmp = f"{best.metric} {_fmt(best_value)} {best.operator} threshold {_fmt(best.threshold)}"
        for i, rule, value, ev in candidates:
            if i == best_i:
                continue
            cmp_ = f"{rule.metric} {_fmt(value)} {rule.operator} threshold {_fmt(rule.threshold)}"
            ev["superseded_by"] = best.name
            decisions[i] = Decision(
                model,
                "no_change",
                rule.name,
                rule.trigger_type,
                rule.retrain_mode,
                rule.priority,
                f"{cmp_}, superseded by stronger rule {best.name} ({best.priority}, {best.retrain_mode})",
                ev,
            )
        action_text = f"{best.retrain_mode} retrain, priority {best.priority}"
        if pending is None:
            decisions[best_i] = Decision(
                model,
                "fire",
                best.name,
                best.trigger_type,
                best.retrain_mode,
                best.priority,
                f"{best_cmp}: {action_text}",
                best_ev,
            )
        else:
            best_ev["pending"] = pending.as_evidence()
            if stronger(best, pending):
                mode = max(best.retrain_mode, pending.retrain_mode, key=MODE_RANK.__getitem__)
                priority = max(best.priority, pending.priority, key=PRIORITY_RANK.__getitem__)
                decisions[best_i] = Decision(
                    model,
                    "upgrade",
                    best.name,
                    best.trigger_type,
                    mode,
                    priority,
                    f"{best_cmp}: upgrade pending trigger from ({pending.priority}, {pending.retrain_mode}) "
                    f"to ({priority}, {mode})",
                    best_ev,
                )
            else:
                decisions[best_i] = Decision(
                    model,
                    "no_change",
                    best.name,
                    best.trigger_type,
                    best.retrain_mode,
                    best.priority,
                    f"{best_cmp}, but pending trigger ({pending.priority}, {pending.retrain_mode}) "
                    f"is already at least as strong as ({best.priority}, {best.retrain_mode})",
                    best_ev,
                )

    return [d for d in decisions if d is not None]


def manual_trigger(
    model: str,
    reason: str,
    retrain_mode: str = "full",
    priority: str = "high",
    requested_by: str | None = None,
) -> Decision:
    """A 'fire' decision requested by a person; ``reason`` must be non-blank.

    Manual triggers bypass thresholds and cooldowns; the caller still applies
    the one-pending-trigger-per-model rule (e.g. with :func:`stronger`).
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a manual trigger needs a non-empty reason")
    if not isinstance(model, str) or not model.strip():
        raise ValueError("model must be a non-empty string")
    check_text("reason", reason)
    check_text("model", model)
    if retrain_mode not in RETRAIN_MODES:
        raise ValueError(f"unknown retrain_mode {retrain_mode!r}; expected one of {RETRAIN_MODES}")
    if priority not in PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}; expected one of {PRIORITIES}")
    who = requested_by.strip() if requested_by and requested_by.strip() else None
    text = reason.strip()
    return Decision(
        model=model,
        action="fire",
        rule_name=MANUAL_RULE_NAME,
        trigger_type="manual",
        retrain_mode=retrain_mode,
        priority=priority,
        reason=f"manual trigger by {who}: {text}" if who else f"manual trigger: {text}",
        evidence={"requested_by": who, "reason": text},
    )
