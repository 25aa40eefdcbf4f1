"""Response rules: thresholds, cooldowns, pending-trigger upgrades, overrides, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.modelwatch.loop.rules import (
    DEFAULT_RULES,
    PRIORITY_RANK,
    Decision,
    PendingTrigger,
    ResponseRule,
    RuleError,
    evaluate_rules,
    manual_trigger,
    rule_from_dict,
    stronger,
    validate_rules,
)

AS_OF = datetime(2025, 3, 14, 21, 0, tzinfo=UTC)
MODEL = "eurusd_signal"
RULES = {r.name: r for r in DEFAULT_RULES}


def _by_rule(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.rule_name: d for d in decisions}


def _eval(obs, rules=DEFAULT_RULES, pending=None, last_fired=None, as_of=AS_OF, model=MODEL):
    return _by_rule(evaluate_rules(model, obs, list(rules), pending, last_fired or {}, as_of))


def test_default_rules_match_predecessor():
    got = {
        (r.name, r.metric, r.operator, r.threshold, r.retrain_mode, r.priority, r.cooldown_hours) for r in DEFAULT_RULES
    }
    assert got == {
        ("drift_full_retrain", "drift_score", ">", 0.25, "full", "high", 24.0),
        ("performance_incremental", "performance_drop", ">", 0.10, "incremental", "medium", 24.0),
        ("age_full_retrain", "model_age_days", ">", 365.0, "full", "low", 4320.0),
        ("risk_full_retrain", "risk_score", ">", 80.0, "full", "critical", 6.0),
        ("active_learning_retrain", "new_labels", ">=", 50.0, "full", "medium", 72.0),
    }
    validate_rules(DEFAULT_RULES)


@pytest.mark.parametrize(
    ("rule_name", "metric", "value", "action", "trigger_type", "mode", "priority"),
    [
        ("drift_full_retrain", "drift_score", 0.24, "no_change", "drift", "full", "high"),
        ("drift_full_retrain", "drift_score", 0.25, "no_change", "drift", "full", "high"),
        ("drift_full_retrain", "drift_score", 0.26, "fire", "drift", "full", "high"),
        ("performance_incremental", "performance_drop", 0.09, "no_change", "degradation", "incremental", "medium"),
        ("performance_incremental", "performance_drop", 0.10, "no_change", "degradation", "incremental", "medium"),
        ("performance_incremental", "performance_drop", 0.11, "fire", "degradation", "incremental", "medium"),
        ("age_full_retrain", "model_age_days", 364.0, "no_change", "age", "full", "low"),
        ("age_full_retrain", "model_age_days", 365.0, "no_change", "age", "full", "low"),
        ("age_full_retrain", "model_age_days", 366.0, "fire", "age", "full", "low"),
        ("risk_full_retrain", "risk_score", 79.9, "no_change", "risk", "full", "critical"),
        ("risk_full_retrain", "risk_score", 80.0, "no_change", "risk", "full", "critical"),
        ("risk_full_retrain", "risk_score", 80.1, "fire", "risk", "full", "critical"),
        ("active_learning_retrain", "new_labels", 49.0, "no_change", "active_learning", "full", "medium"),
        ("active_learning_retrain", "new_labels", 50.0, "fire", "active_learning", "full", "medium"),
    ],
)
def test_default_rule_thresholds(rule_name, metric, value, action, trigger_type, mode, priority):
    decisions = _eval({metric: value})
    assert len(decisions) == 5
    d = decisions[rule_name]
    assert (d.action, d.trigger_type, d.retrain_mode, d.priority) == (action, trigger_type, mode, priority)
    assert d.evidence["observed"] == value
    assert d.evidence["threshold"] == RULES[rule_name].threshold
    assert f"{value:g}" in d.reason and f"{RULES[rule_name].threshold:g}" in d.reason
    others = [x for name, x in decisions.items() if name != rule_name]
    assert all(x.action == "no_change" and "not observed" in x.reason for x in others)


def test_operator_ge_fires_at_threshold():
    rule = ResponseRule("drift_ge", "drift_score", ">=", 0.25, "full", "high", 24.0)
    assert _eval({"drift_score": 0.25}, [rule])["drift_ge"].action == "fire"
    assert _eval({"drift_score": 0.2499}, [rule])["drift_ge"].action == "no_change"


def test_nan_observation_never_fires():
    d = _eval({"drift_score": float("nan")})["drift_full_retrain"]
    assert d.action == "no_change" and "not observed" in d.reason


@pytest.mark.parametrize(
    ("hours_ago", "action"),
    [
        (0.0, "suppressed_cooldown"),
        (1.0, "suppressed_cooldown"),
        (23.99, "suppressed_cooldown"),
        (24.0, "fire"),  # cooldown of 24h has expired exactly
        (30.0, "fire"),
        (-2.0, "fire"),  # a fire after as_of (replay of the past) is ignored
    ],
)
def test_cooldown_suppression_and_expiry(hours_ago, action):
    last = {"drift_full_retrain": AS_OF - timedelta(hours=hours_ago)}
    d = _eval({"drift_score": 0.4}, last_fired=last)["drift_full_retrain"]
    assert d.action == action
    if action == "suppressed_cooldown":
        assert d.evidence["cooldown_until"] == (last["drift_full_retrain"] + timedelta(hours=24)).isoformat()
        assert "cooldown 24h" in d.reason


@pytest.mark.parametrize(("value", "action"), [(0.25, "no_change"), (0.26, "suppressed_episode")])
def test_handled_episode_suppresses_only_a_matching_rule(value, action):
    handled = {"drift_full_retrain": "rule already acted on this episode (alert 7)"}
    d = _by_rule(evaluate_rules(MODEL, {"drift_score": value}, list(DEFAULT_RULES), None, {}, AS_OF, handled))
    assert d["drift_full_retrain"].action == action
    if action == "suppressed_episode":
        assert d["drift_full_retrain"].reason.endswith("but rule already acted on this episode (alert 7)")
        assert d["drift_full_retrain"].evidence["episode"] == handled["drift_full_retrain"]


def test_handled_strongest_lets_next_strongest_fire():
    obs = {"drift_score": 0.4, "performance_drop": 0.2}
    d = _by_rule(evaluate_rules(MODEL, obs, list(DEFAULT_RULES), None, {}, AS_OF, {"drift_full_retrain": "done"}))
    assert d["drift_full_retrain"].action == "suppressed_episode"
    assert d["performance_incremental"].action == "fire"


def test_cooldown_of_other_rule_does_not_suppress():
    d = _eval({"drift_score": 0.4}, last_fired={"risk_full_retrain": AS_OF})["drift_full_retrain"]
    assert d.action == "fire"


def test_suppressed_strongest_lets_next_strongest_fire():
    obs = {"risk_score": 95.0, "drift_score": 0.4}
    d = _eval(obs, last_fired={"risk_full_retrain": AS_OF - timedelta(hours=2)})
    assert d["risk_full_retrain"].action == "suppressed_cooldown"
    assert d["drift_full_retrain"].action == "fire"


def _pending(priority: str, mode: str, rule="x") -> PendingTrigger:
    return PendingTrigger(MODEL, rule, "age", mode, priority, trigger_id=7)


@pytest.mark.parametrize(
    ("pending", "obs", "rule", "action", "mode", "priority"),
    [
        # pending low/incremental (age) + drift high/full -> upgrade
        (_pending("low", "incremental"), {"drift_score": 0.5}, "drift_full_retrain", "upgrade", "full", "high"),
        # pending medium/incremental + risk critical/full -> upgrade
        (_pending("medium", "incremental"), {"risk_score": 90.0}, "risk_full_retrain", "upgrade", "full", "critical"),
        # same strength -> no change
        (_pending("high", "full"), {"drift_score": 0.5}, "drift_full_retrain", "no_change", "full", "high"),
        # weaker -> no downgrade
        (_pending("critical", "full"), {"drift_score": 0.5}, "drift_full_retrain", "no_change", "full", "high"),
        (
            _pending("high", "full"),
            {"performance_drop": 0.2},
            "performance_incremental",
            "no_change",
            "incremental",
            "medium",
        ),
        # equal priority, full beats incremental -> upgrade
        (_pending("high", "incremental"), {"drift_score": 0.5}, "drift_full_retrain", "upgrade", "full", "high"),
        # higher priority but incremental: upgrade keeps the pending full mode
        (_pending("low", "full"), {"performance_drop": 0.2}, "performance_incremental", "upgrade", "full", "medium"),
    ],
)
def test_pending_trigger_upgrade_and_no_downgrade(pending, obs, rule, action, mode, priority):
    d = _eval(obs, pending=pending)[rule]
    assert (d.action, d.retrain_mode, d.priority) == (action, mode, priority)
    assert d.evidence["pending"]["trigger_id"] == 7
    if action == "no_change":
        assert "already at least as strong" in d.reason


def test_simultaneous_matches_pick_strongest():
    obs = {"drift_score": 0.3, "performance_drop": 0.2, "model_age_days": 400.0, "risk_score": 85.0}
    decisions = evaluate_rules(MODEL, obs, list(DEFAULT_RULES), None, {}, AS_OF)
    assert [d.rule_name for d in decisions] == [r.name for r in DEFAULT_RULES]
    d = _by_rule(decisions)
    assert d["risk_full_retrain"].action == "fire"
    for name in ("drift_full_retrain", "performance_incremental", "age_full_retrain"):
        assert d[name].action == "no_change"
        assert "superseded by stronger rule risk_full_retrain" in d[name].reason
        assert d[name].evidence["superseded_by"] == "risk_full_retrain"
    assert sum(x.creates_trigger for x in decisions) == 1


def test_simultaneous_tie_on_priority_prefers_full_then_rule_order():
    a = ResponseRule("a_incr", "performance_drop", ">", 0.1, "incremental", "high", 1.0)
    b = ResponseRule("b_full", "drift_score", ">", 0.1, "full", "high", 1.0)
    c = ResponseRule("c_full", "risk_score", ">", 10.0, "full", "high", 1.0)
    d = _eval({"performance_drop": 0.5, "drift_score": 0.5, "risk_score": 50.0}, [a, b, c])
    assert (d["a_incr"].action, d["b_full"].action, d["c_full"].action) == ("no_change", "fire", "no_change")


def test_per_model_override():
    rule = ResponseRule(
        "drift_full_retrain",
        "drift_score",
        ">",
        0.25,
        "full",
        "high",
        24.0,
        model_overrides={
            "noisy_model": {"threshold": 0.4, "cooldown_hours": 48.0},
            "frozen_model": {"enabled": False},
        },
    )
    obs = {"drift_score": 0.3}
    assert _eval(obs, [rule], model="other")["drift_full_retrain"].action == "fire"
    noisy = _eval(obs, [rule], model="noisy_model")["drift_full_retrain"]
    assert noisy.action == "no_change" and noisy.evidence["threshold"] == 0.4
    assert noisy.evidence["overridden_fields"] == ["cooldown_hours", "threshold"]
    assert _eval({"drift_score": 0.45}, [rule], model="noisy_model")["drift_full_retrain"].action == "fire"
    # overridden cooldown: 30h ago is outside the default 24h but inside 48h
    last = {"drift_full_retrain": AS_OF - timedelta(hours=30)}
    assert (
        _eval({"drift_score": 0.45}, [rule], last_fired=last, model="noisy_model")["drift_full_retrain"].action
        == "suppressed_cooldown"
    )
    assert _eval({"drift_score": 0.45}, [rule], last_fired=last, model="other")["drift_full_retrain"].action == "fire"
    frozen = _eval(obs, [rule], model="frozen_model")["drift_full_retrain"]
    assert frozen.action == "disabled" and "for this model" in frozen.reason


def test_disabled_rule_recorded():
    rule = ResponseRule("off", "drift_score", ">", 0.25, "full", "high", 24.0, enabled=False)
    assert _eval({"drift_score": 0.9}, [rule])["off"].action == "disabled"


GOOD = {
    "name": "drift",
    "metric": "drift_score",
    "operator": ">",
    "threshold": 0.25,
    "retrain_mode": "full",
    "priority": "high",
    "cooldown_hours": 24,
}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"metric": "sharpe"}, "metric"),
        ({"cooldown_hours": -1}, "cooldown_hours"),
        ({"priority": "urgent"}, "priority"),
        ({"retrain_mode": "partial"}, "retrain_mode"),
        ({"operator": "<"}, "operator"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"metric": "performance_drop", "threshold": 1.2}, "threshold"),
        ({"metric": "risk_score", "threshold": 101}, "threshold"),
        ({"metric": "model_age_days", "threshold": -1}, "threshold"),
        ({"threshold": "high"}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"name": "  "}, "name"),
        ({"enabled": "yes"}, "enabled"),
        ({"colour": "red"}, "colour"),
        ({"model_overrides": {"m1": {"threshold": 2.0}}}, "model_overrides['m1'].threshold"),
        ({"model_overrides": {"m1": {"metric": "risk_score"}}}, "model_overrides['m1'].metric"),
    ],
)
def test_bad_rule_rejected_naming_field(patch, field):
    with pytest.raises(RuleError) as exc:
        rule_from_dict({**GOOD, **patch})
    assert exc.value.field == field
    assert str(exc.value).startswith(field)


def test_missing_required_field():
    d = dict(GOOD)
    del d["priority"]
    with pytest.raises(RuleError) as exc:
        rule_from_dict(d)
    assert exc.value.field == "priority"


def test_rule_from_dict_valid_and_age_without_upper_bound():
    r = rule_from_dict(
        {**GOOD, "metric": "model_age_days", "threshold": 365, "model_overrides": {"m": {"threshold": 10}}}
    )
    assert r.threshold == 365.0 and isinstance(r.threshold, float) and r.cooldown_hours == 24.0
    assert r.for_model("m").threshold == 10.0


def test_duplicate_rule_names_rejected():
    with pytest.raises(RuleError, match="duplicate"):
        evaluate_rules(MODEL, {}, [DEFAULT_RULES[0], DEFAULT_RULES[0]], None, {}, AS_OF)


def test_priority_rank_and_stronger():
    assert sorted(PRIORITY_RANK, key=PRIORITY_RANK.get) == ["low", "medium", "high", "critical"]
    drift, perf, age, risk, _labels = DEFAULT_RULES
    assert stronger(risk, drift) and stronger(drift, perf) and stronger(perf, age)
    assert not stronger(drift, drift) and not stronger(age, risk)
    assert stronger(_pending("high", "full"), _pending("high", "incremental"))


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_manual_trigger_requires_reason(reason):
    with pytest.raises(ValueError, match="reason"):
        manual_trigger(MODEL, reason)


def test_manual_trigger():
    d = manual_trigger(MODEL, "  regime change after CB meeting ", requested_by="alice")
    assert (d.action, d.rule_name, d.trigger_type, d.retrain_mode, d.priority) == (
        "fire",
        "manual",
        "manual",
        "full",
        "high",
    )
    assert d.reason == "manual trigger by alice: regime change after CB meeting"
    assert d.evidence == {"requested_by": "alice", "reason": "regime change after CB meeting"}
    d2 = manual_trigger(MODEL, "quick refresh", retrain_mode="incremental", priority="low")
    assert (d2.retrain_mode, d2.priority, d2.reason) == ("incremental", "low", "manual trigger: quick refresh")
    with pytest.raises(ValueError, match="priority"):
        manual_trigger(MODEL, "x", priority="urgent")


def test_evaluate_is_pure_wrt_inputs():
    obs = {"drift_score": 0.3}
    last: dict = {}
    a = evaluate_rules(MODEL, obs, list(DEFAULT_RULES), None, last, AS_OF)
    b = evaluate_rules(MODEL, obs, list(DEFAULT_RULES), None, last, AS_OF)
    assert a == b and last == {} and obs == {"drift_score": 0.3}


# --------------------------------------------------------------------------- edges found by mutation testing

from include.modelwatch.loop.rules import ACTIONS, METRIC_RANGES, OVERRIDABLE_FIELDS, TRIGGER_TYPES  # noqa: E402


def test_vocabulary_tuples():
    assert ACTIONS == ("fire", "upgrade", "suppressed_cooldown", "suppressed_episode", "no_change", "disabled")
    assert TRIGGER_TYPES == ("drift", "degradation", "age", "risk", "manual", "active_learning")
    assert METRIC_RANGES["model_age_days"][0] == 0.0 and METRIC_RANGES["risk_score"] == (0.0, 100.0)
    assert OVERRIDABLE_FIELDS == ("threshold", "enabled", "cooldown_hours", "operator", "retrain_mode", "priority")
    assert ResponseRule("r", "drift_score", ">", 0.2, "full", "high", 1.0).enabled is True


@pytest.mark.parametrize(
    ("patch", "field", "message"),
    [
        ({"threshold": 0.0}, None, None),
        ({"threshold": 1.0}, None, None),
        ({"metric": "model_age_days", "threshold": 0}, None, None),
        ({"metric": "risk_score", "threshold": 0}, None, None),
        ({"cooldown_hours": 0}, None, None),
        ({"cooldown_hours": float("inf")}, "cooldown_hours", "finite number"),
        ({"cooldown_hours": "24"}, "cooldown_hours", "finite number"),
        ({"name": ""}, "name", "must be a non-empty string"),
        ({"model_overrides": [1]}, "model_overrides", "must be a mapping of model name -> overrides"),
        ({"model_overrides": {"  ": {"threshold": 0.3}}}, "model_overrides", "model name must be a non-empty string"),
        ({"model_overrides": {"m": 5}}, "model_overrides['m']", "must be a mapping of field -> value"),
        ({"model_overrides": {"m": {"threshold": "high"}}}, "model_overrides['m'].threshold", "finite number"),
        ({"model_overrides": {"m": {"threshold": True}}}, "model_overrides['m'].threshold", "finite number"),
        ({"model_overrides": {"m": {"name": "x"}}}, "model_overrides['m'].name", "cannot be overridden"),
    ],
)
def test_rule_edges(patch, field, message):
    if field is None:
        assert rule_from_dict({**GOOD, **patch}).validate() is None
        return
    with pytest.raises(RuleError) as exc:
        rule_from_dict({**GOOD, **patch})
    assert exc.value.field == field and message in str(exc.value)


def test_override_fields_apply_and_convert():
    override = {"threshold": 1, "cooldown_hours": 2, "operator": ">=", "retrain_mode": "incremental", "priority": "low"}
    r = rule_from_dict({**GOOD, "model_overrides": {"m": override}})
    m = r.for_model("m")
    assert isinstance(m.threshold, float) and isinstance(m.cooldown_hours, float)
    assert (m.operator, m.retrain_mode, m.priority, m.model_overrides) == (">=", "incremental", "low", {})


def test_rule_from_dict_shape_errors():
    with pytest.raises(RuleError) as exc:
        rule_from_dict([("name", "x")])
    assert exc.value.field == "rule" and "must be a mapping, got list" in str(exc.value)
    with pytest.raises(RuleError, match="priority: is required"):
        rule_from_dict({k: v for k, v in GOOD.items() if k != "priority"})
    with pytest.raises(RuleError) as exc:
        validate_rules([DEFAULT_RULES[0], DEFAULT_RULES[0]])
    assert exc.value.field == "name"


@pytest.mark.parametrize("model", ["", "   "])
def test_blank_model_name_rejected(model):
    with pytest.raises(ValueError, match="model must be a non-empty string"):
        evaluate_rules(model, {}, list(DEFAULT_RULES), None, {}, AS_OF)
    with pytest.raises(ValueError, match="model must be a non-empty string"):
        manual_trigger(model, "reason")


def test_decision_evidence_and_texts():
    d = _eval({"drift_score": 0.1})["drift_full_retrain"]
    assert d.reason == "drift_score 0.1 <= threshold 0.25: not triggered"
    assert (d.evidence["metric"], d.evidence["operator"], d.evidence["cooldown_hours"]) == ("drift_score", ">", 24.0)
    assert d.evidence["as_of"] == AS_OF.isoformat() and d.creates_trigger is False
    ge = ResponseRule("ge", "drift_score", ">=", 0.25, "full", "high", 24.0)
    assert _eval({"drift_score": 0.2}, [ge])["ge"].reason == "drift_score 0.2 < threshold 0.25: not triggered"
    fired = AS_OF - timedelta(hours=1.5)
    c = _eval({"drift_score": 0.4}, last_fired={"drift_full_retrain": fired})["drift_full_retrain"]
    assert c.evidence["last_fired"] == fired.isoformat() and "last fired 1.5h ago" in c.reason


def test_pending_evidence_and_upgrade_creates_trigger():
    created = datetime(2025, 3, 1, tzinfo=UTC)
    pending = PendingTrigger(MODEL, "age_full_retrain", "age", "incremental", "low", trigger_id=3, created_at=created)
    d = _eval({"drift_score": 0.5}, pending=pending)["drift_full_retrain"]
    assert d.action == "upgrade" and d.creates_trigger is True
    assert d.evidence["pending"] == {
        "trigger_id": 3,
        "rule_name": "age_full_retrain",
        "trigger_type": "age",
        "retrain_mode": "incremental",
        "priority": "low",
        "created_at": created.isoformat(),
    }
    assert _pending("low", "full").as_evidence()["created_at"] is None


def test_value_objects_are_frozen():
    import dataclasses

    rule = DEFAULT_RULES[0]
    decision = _eval({"drift_score": 0.5})["drift_full_retrain"]
    for obj, attr in ((rule, "threshold"), (_pending("low", "full"), "priority"), (decision, "action")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, None)
