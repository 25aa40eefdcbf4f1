"""The daily A/B decision (include/modelwatch/ab/decision.py): every branch, and the start-up validation."""

from __future__ import annotations

from typing import Any

import pytest

from include.modelwatch.ab import stats as ab
from include.modelwatch.ab.decision import (
    CONTINUE,
    INCONCLUSIVE,
    PROMOTE,
    STATUS_AFTER,
    STATUS_PROMOTED,
    STOP,
    Evidence,
    TestState,
    decide,
    validate_test_config,
)

# 8,000 paired rows; b = champion-only right, c = challenger-only right
CHALLENGER_AHEAD = ab.PairedCounts(both_right=4000, champion_only=300, challenger_only=420, both_wrong=3280)
CHAMPION_AHEAD = ab.PairedCounts(both_right=4000, champion_only=420, challenger_only=300, both_wrong=3280)
EVEN = ab.PairedCounts(both_right=4000, champion_only=350, challenger_only=360, both_wrong=3290)
BALANCED = ab.ArmCounts(n_champion=4000, hits_champion=2160, n_challenger=4000, hits_challenger=2230)
SKEWED = ab.ArmCounts(n_champion=4000, hits_champion=2160, n_challenger=4400, hits_challenger=2450)  # SRM p 1.3e-5


def state(**kw) -> TestState:
    base = {"split": 0.5, "min_samples": 2000, "max_days": 60, "days_elapsed": 20}
    return TestState(**{**base, **kw})


def evidence(paired: ab.PairedCounts, arms: ab.ArmCounts = BALANCED) -> Evidence:
    return Evidence.build(paired, arms)


def test_the_fixtures_say_what_the_branches_need():
    assert evidence(CHALLENGER_AHEAD).sequential.decision == ab.CHALLENGER_BETTER  # log L+ 8.46 >= log 40 = 3.69
    assert evidence(CHAMPION_AHEAD).sequential.decision == ab.CHAMPION_BETTER
    assert evidence(EVEN).sequential.decision == ab.SEQ_CONTINUE  # log L+ -0.74
    assert not ab.srm_check(4000, 4000, 0.5).mismatch
    assert ab.srm_check(4000, 4400, 0.5).p_value == pytest.approx(1.275e-5, rel=1e-3)


def test_promote_when_the_challenger_is_better_with_enough_samples():
    d = decide(state(), evidence(CHALLENGER_AHEAD))
    assert d.action == PROMOTE and d.final and not d.promotion_blocked_by_srm
    assert d.reason.startswith("promote: the challenger is significantly better")
    assert "8000 paired rows" in d.reason and "b=300, challenger-only right c=420" in d.reason
    assert "log-LR challenger 8.46 / champion -2.76 vs threshold 3.69" in d.reason
    assert "challenger 0.5575 on 4000 rows, champion 0.5400 on 4000 rows" in d.reason
    assert STATUS_AFTER[d.action] == STATUS_PROMOTED


def test_below_min_samples_the_test_continues_then_ends_inconclusive():
    d = decide(state(min_samples=10_000), evidence(CHALLENGER_AHEAD))
    assert d.action == CONTINUE and not d.final
    assert "only 8000 of the 10000 paired rows" in d.reason
    d = decide(state(min_samples=10_000, days_elapsed=60), evidence(CHALLENGER_AHEAD))
    assert d.action == INCONCLUSIVE and d.reason.startswith("inconclusive: the challenger is significantly better")


def test_stop_when_the_champion_is_better_even_early_and_with_an_srm():
    d = decide(state(min_samples=10_000, days_elapsed=3), evidence(CHAMPION_AHEAD))
    assert d.action == STOP and d.reason.startswith("stop: the champion is significantly better")
    d = decide(state(), evidence(CHAMPION_AHEAD, SKEWED))
    assert d.action == STOP and d.srm.mismatch and "note: sample-ratio mismatch" in d.reason


def test_srm_blocks_a_promotion_and_says_so():
    d = decide(state(), evidence(CHALLENGER_AHEAD, SKEWED))
    assert d.action == CONTINUE and d.promotion_blocked_by_srm and d.srm.mismatch
    assert "promotion is blocked by a sample-ratio mismatch: 4400 of 8400 units" in d.reason
    assert "expected share of 0.500 (p=1.3e-05 < 0.001)" in d.reason
    d = decide(state(days_elapsed=60), evidence(CHALLENGER_AHEAD, SKEWED))
    assert d.action == INCONCLUSIVE and d.promotion_blocked_by_srm
    # the expected split is the test's: the same counts are fine for a 0.5238 split
    assert decide(state(split=4400 / 8400), evidence(CHALLENGER_AHEAD, SKEWED)).action == PROMOTE


def test_inconclusive_at_the_maximum_duration_and_continue_before():
    d = decide(state(days_elapsed=60), evidence(EVEN))
    assert d.action == INCONCLUSIVE
    assert d.reason.startswith("inconclusive: maximum duration reached without a significant difference")
    assert "day 60 of 60" in d.reason
    assert decide(state(days_elapsed=61), evidence(EVEN)).action == INCONCLUSIVE
    d = decide(state(days_elapsed=59), evidence(EVEN))
    assert d.action == CONTINUE and d.reason.startswith("continue: no significant difference yet")
    d = decide(state(), evidence(EVEN, SKEWED))
    assert d.action == CONTINUE and "sample-ratio mismatch" in d.reason and not d.promotion_blocked_by_srm


def test_only_running_tests_are_decided():
    with pytest.raises(ValueError, match="status 'promoted'"):
        decide(state(status=STATUS_PROMOTED), evidence(CHALLENGER_AHEAD))


def test_evidence_must_be_about_the_same_counts():
    seq = ab.sequential_paired(300, 421)
    with pytest.raises(ValueError, match="b=300, c=421"):
        Evidence(paired=CHALLENGER_AHEAD, assigned=BALANCED, sequential=seq)


def test_session_level_evidence_drives_the_same_rules():
    # 32 sessions won by the challenger, 10 by the champion: Beta(2, 2) mixture, log L+ = 5.03 >= log 40 = 3.69
    ev = Evidence.build(CHALLENGER_AHEAD, BALANCED, sessions=(10, 32))
    assert ev.sequential.unit == ab.UNIT_SESSION and ev.sequential.decision == ab.CHALLENGER_BETTER
    assert ev.sequential.log_lr_challenger == pytest.approx(5.0295, abs=1e-4)
    d = decide(state(), ev)
    assert d.action == PROMOTE and "on sessions won (champion 10, challenger 32)" in d.reason
    # 30 to 12 is not enough yet (log L+ = 3.11), although the rows alone would promote
    assert decide(state(), Evidence.build(CHALLENGER_AHEAD, BALANCED, sessions=(12, 30))).action == CONTINUE


def test_validate_test_config_names_each_problem():
    ok: dict[str, Any] = {
        "champion_version": 3,
        "challenger_version": 4,
        "split": 0.5,
        "min_samples": 1000,
        "max_days": 60,
    }
    validate_test_config(**ok)  # no exception
    cases: list[tuple[dict[str, Any], str]] = [
        ({"split": 0.0}, "split must be strictly between 0 and 1"),
        ({"split": 1.2}, "got 1.2"),
        ({"challenger_version": "3"}, "challenger and champion are the same version (3)"),
        ({"min_samples": 0}, "min_samples must be an integer >= 1, got 0"),
        ({"max_days": 0}, "max_days must be an integer >= 1, got 0"),
        ({"max_days": 2.5}, "max_days must be an integer >= 1, got 2.5"),
        ({"alpha": 0.0}, "alpha must be strictly between 0 and 1"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match="invalid A/B test") as err:
            validate_test_config(**{**ok, **change})
        assert message in str(err.value), (change, str(err.value))
    with pytest.raises(ValueError) as err:
        validate_test_config(**{**ok, "split": 1.0, "min_samples": -5})
    assert "split" in str(err.value) and "min_samples" in str(err.value)


def test_the_branch_follows_the_endings_the_days_decisions_need():
    from include.modelwatch.ab import endings

    assert endings.endings([]) == ["keep_running"]
    assert endings.endings(["continue", "continue"]) == ["keep_running"]
    assert endings.endings(["inconclusive", "continue", "promote"]) == ["promote_challenger", "close_inconclusive"]
    assert endings.endings(["stop", "promote", "stop"]) == ["promote_challenger", "stop_challenger"]
    with pytest.raises(ValueError, match=r"unknown A/B decisions \['promoted'\]"):
        endings.endings(["promoted"])


def test_the_statuses_are_the_ones_the_database_allows():
    import re
    from pathlib import Path

    from include.modelwatch.ab import decision

    sql = (Path(__file__).resolve().parents[2] / "sql/migrations/016_ab_tests.sql").read_text()
    allowed = re.search(r"CHECK \(status IN \(([^)]*)\)\)", sql)
    assert allowed is not None
    assert tuple(v.strip(" '") for v in allowed.group(1).split(",")) == decision.STATUSES
    assert decision.STATUSES == ("running", "promoted", "stopped", "inconclusive", "cancelled")
    assert decision.STATUS_AFTER == {"promote": "promoted", "stop": "stopped", "inconclusive": "inconclusive"}


def test_states_and_decisions_are_immutable_and_not_collected_as_tests():
    import dataclasses

    s, e = state(), evidence(EVEN)
    d = decide(s, e)
    for obj, field in ((s, "split"), (e, "paired"), (d, "action")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, None)
    assert TestState.__test__ is False and s.status == "running"


def test_validation_boundaries_and_every_problem_in_one_message():
    ok: dict[str, Any] = {"champion_version": 3, "challenger_version": 4, "split": 0.5}
    validate_test_config(**ok, min_samples=1, max_days=1, alpha=0.999)  # the smallest legal test
    with pytest.raises(ValueError, match=r"alpha must be strictly between 0 and 1, got 1\.0"):
        validate_test_config(**ok, min_samples=1, max_days=1, alpha=1.0)
    with pytest.raises(ValueError) as err:
        validate_test_config(**{**ok, "split": 1.0}, min_samples=0, max_days=1)
    assert str(err.value) == (
        "invalid A/B test: split must be strictly between 0 and 1 (the challenger's share), got 1.0; "
        "min_samples must be an integer >= 1, got 0"
    )


def test_promotion_needs_exactly_min_samples_and_the_reasons_name_their_ending():
    n = CHALLENGER_AHEAD.n
    assert decide(state(min_samples=n), evidence(CHALLENGER_AHEAD)).action == PROMOTE  # exactly enough
    short = decide(state(min_samples=n + 1), evidence(CHALLENGER_AHEAD))
    assert short.action == CONTINUE and short.reason.startswith("continue: the challenger is significantly better")
    late = decide(state(min_samples=n + 1, days_elapsed=60), evidence(CHALLENGER_AHEAD))
    assert late.action == INCONCLUSIVE and late.reason.startswith("inconclusive: the challenger is significantly")
    blocked = decide(state(), evidence(CHALLENGER_AHEAD, SKEWED))
    assert blocked.action == CONTINUE and blocked.reason.startswith("continue: the challenger is significantly")
    blocked_late = decide(state(days_elapsed=60), evidence(CHALLENGER_AHEAD, SKEWED))
    assert blocked_late.action == INCONCLUSIVE and blocked_late.reason.startswith("inconclusive: the challenger")


def test_an_empty_test_has_zero_rates_and_no_arm_rates():
    from include.modelwatch.ab.decision import _fmt_rate

    empty = ab.PairedCounts(both_right=0, champion_only=0, challenger_only=0, both_wrong=0)
    d = decide(state(), Evidence.build(empty, ab.ArmCounts(0, 0, 0, 0)))
    assert d.action == CONTINUE
    assert "0 paired rows, hit rate challenger 0.0000 vs champion 0.0000" in d.reason
    assert _fmt_rate(None) == "n/a" and _fmt_rate(0.5) == "0.5000"


def test_a_promotion_the_policy_puts_before_a_human_goes_to_the_request():
    from include.modelwatch.ab import endings

    assert endings.endings(["promote"], [True]) == ["request_promotion_approval"]
    assert endings.endings(["promote"], [False]) == ["promote_challenger"]
    # two models: one promoted at once, one awaiting its approvers; the other endings are unaffected
    assert endings.endings(["promote", "stop", "promote"], [False, False, True]) == [
        "promote_challenger",
        "request_promotion_approval",
        "stop_challenger",
    ]
    # needs_approval matters only for promotions
    assert endings.endings(["stop", "continue"], [True, True]) == ["stop_challenger"]
    assert endings.endings(["continue"], [True]) == ["keep_running"]
    with pytest.raises(ValueError, match="needs_approval has 1 entries for 2 decisions"):
        endings.endings(["promote", "stop"], [True])


def test_the_dag_documents_every_task_the_branch_can_choose():
    from pathlib import Path

    from include.modelwatch.ab import endings

    doc = (Path(__file__).resolve().parents[2] / "dags" / "ab_test_daily.py").read_text().split('"""')[1]
    tasks = [
        endings.TASK_AB_PROMOTE,
        endings.TASK_AB_STOP,
        endings.TASK_AB_INCONCLUSIVE,
        endings.TASK_AB_CONTINUE,
        endings.TASK_AB_ASK,
        endings.TASK_AB_DECISION,
        endings.TASK_AB_PROMOTE_APPROVED,
        endings.TASK_AB_NOT_APPROVED,
    ]
    assert len(set(tasks)) == len(tasks) and all(t for t in tasks)
    missing = [t for t in tasks if f"`{t}`" not in doc]
    assert not missing, f"dags/ab_test_daily.py's doc_md does not name {missing}"
