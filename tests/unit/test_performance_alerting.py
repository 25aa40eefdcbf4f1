"""The performance alert plan: only the champion's evidence counts; resolve only the same version's alert."""

from __future__ import annotations

from include.modelwatch.monitoring import performance as perf

PRIMARY = {
    "metric": "accuracy",
    "live": 0.41,
    "baseline": 0.55,
    "ci_low": 0.36,
    "ci_high": 0.45,
    "rel_diff": 0.41 / 0.55 - 1,
    "rel_ci_high": 0.45 / 0.55 - 1,
    "tolerance_rel": 0.05,
    "degraded": True,
    "status": "degraded",
    "n_days": 60,
    "block": 5,
}
NO_ALERT = (False, None)


def _decision(**over):
    return perf.degradation_decision({**PRIMARY, **over})


def test_champion_degradation_raises_with_evidence():
    d = _decision()
    plan = perf.alert_plan(d, PRIMARY, ["champion"], NO_ALERT, 3, "m v3", comparison_ids=[11, 12])
    assert plan.action == "raise"
    assert plan.severity == "critical"  # upper CI end 18% below, more than 2 x 5%
    assert plan.score == 1 - 0.41 / 0.55
    assert plan.outcome == "(critical, performance_drop 0.255)"
    assert plan.title == "m v3: live accuracy below backtest"
    assert plan.message == d.reason
    assert plan.message.startswith("live accuracy 0.410 (95% CI [0.360, 0.450]) vs backtest 0.550")
    assert plan.evidence == {
        "comparison_ids": [11, 12],
        "metric": "accuracy",
        "ci": [0.36, 0.45],
        "live": 0.41,
        "baseline": 0.55,
        "tolerance_rel": 0.05,
        "n_days": 60,
        "block": 5,
    }


def test_challenger_evidence_never_moves_the_alert():
    for decision in (_decision(), _decision(degraded=False)):
        plan = perf.alert_plan(decision, PRIMARY, ["challenger"], (True, 4), 4, "m v4")
        assert (plan.action, plan.outcome) == ("none", "none (m v4 is not the champion)")


def test_version_without_aliases_counts_as_champion():
    assert perf.counts_for_alert(None)
    assert perf.counts_for_alert([])
    assert perf.counts_for_alert(["challenger", "champion"])
    assert not perf.counts_for_alert(["challenger"])
    assert perf.alert_plan(_decision(), PRIMARY, None, NO_ALERT, 3, "m v3").action == "raise"


def test_resolve_only_the_open_alert_about_this_version():
    ok = _decision(degraded=False)
    assert ok.action == "resolve"
    same = perf.alert_plan(ok, PRIMARY, ["champion"], (True, 3), 3, "m v3")
    assert (same.action, same.outcome, same.resolution) == ("resolve", "resolved", ok.reason)
    unknown = perf.alert_plan(ok, PRIMARY, ["champion"], (True, None), 3, "m v3")
    assert unknown.action == "resolve"
    # the open alert is about the previous champion v2: v3's good numbers do not resolve it
    other = perf.alert_plan(ok, PRIMARY, ["champion"], (True, 2), 3, "m v3")
    assert (other.action, other.outcome) == ("none", "none")
    nothing_open = perf.alert_plan(ok, PRIMARY, ["champion"], NO_ALERT, 3, "m v3")
    assert (nothing_open.action, nothing_open.outcome) == ("none", "none")


def test_undecidable_window_keeps_the_alert():
    keep = _decision(degraded=None, status="too_few_days")
    plan = perf.alert_plan(keep, PRIMARY, ["champion"], (True, 3), 3, "m v3")
    assert (plan.action, plan.outcome) == ("none", "unchanged (undecidable)")


def test_warning_when_the_drop_is_not_twice_the_tolerance():
    plan = perf.alert_plan(_decision(rel_ci_high=-0.08), PRIMARY, ["champion"], NO_ALERT, 3, "m v3")
    assert (plan.action, plan.severity) == ("raise", "warning")
    assert plan.outcome == "(warning, performance_drop 0.255)"
