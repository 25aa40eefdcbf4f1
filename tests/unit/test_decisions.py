"""Branch decisions of the DAGs and the rollback test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from include.modelwatch.decisions import (
    TASK_COMPUTE_DRIFT,
    TASK_DEPLOY,
    TASK_DQ_ALERT,
    TASK_HUMAN,
    TASK_NO_TRIGGER,
    TASK_RECORD_EMPTY,
    TASK_REJECT,
    TASK_TRAIN,
    choose_after_claim,
    choose_after_gates,
    choose_drift_path,
    should_rollback,
)
from include.modelwatch.training.gates import GateSummary


def test_task_ids():
    assert (TASK_NO_TRIGGER, TASK_TRAIN, TASK_DEPLOY, TASK_REJECT, TASK_HUMAN) == (
        "end_no_trigger",
        "assemble_training_data",
        "deploy_candidate",
        "reject_candidate",
        "request_human_approval",
    )
    assert (TASK_RECORD_EMPTY, TASK_DQ_ALERT, TASK_COMPUTE_DRIFT) == (
        "record_empty_window",
        "raise_data_quality_alert",
        "compute_drift",
    )


@pytest.mark.parametrize(
    ("claimed", "task"),
    [(None, TASK_NO_TRIGGER), ({}, TASK_NO_TRIGGER), ({"trigger_id": 3, "model": "m"}, TASK_TRAIN)],
)
def test_choose_after_claim(claimed, task):
    assert choose_after_claim(claimed) == task


DEPLOY = GateSummary("deploy", (), (), ("performance", "business"))
REVIEW = GateSummary("review", (), ("business",), ("performance",))
REJECT = GateSummary("reject", ("performance",), ("business",), ())
EMPTY = GateSummary("review", (), (), ())


@pytest.mark.parametrize(
    ("summary", "policy", "task"),
    [
        (DEPLOY, False, TASK_DEPLOY),
        (DEPLOY, True, TASK_HUMAN),
        (REVIEW, False, TASK_HUMAN),
        (REVIEW, True, TASK_HUMAN),
        (REJECT, False, TASK_REJECT),
        (REJECT, True, TASK_REJECT),
        (EMPTY, False, TASK_HUMAN),
    ],
)
def test_choose_after_gates(summary, policy, task):
    assert choose_after_gates(summary, policy) == task


@pytest.mark.parametrize(
    ("rows", "dq", "task"),
    [
        (0, True, TASK_RECORD_EMPTY),
        (0, False, TASK_RECORD_EMPTY),
        (120, False, TASK_DQ_ALERT),
        (120, True, TASK_COMPUTE_DRIFT),
    ],
)
def test_choose_drift_path(rows, dq, task):
    assert choose_drift_path(rows, dq) == task


def test_choose_drift_path_negative_rows():
    with pytest.raises(ValueError):
        choose_drift_path(-1, True)


def test_rollback_exact_mann_whitney():
    # every new day below every previous day: U = 0. scipy's 'auto' uses the normal
    # approximation for 10 vs 10: mu = 50, sigma = sqrt(10*10*21/12) = sqrt(175),
    # continuity-corrected z = (0 + 0.5 - 50) / sqrt(175); p = Phi(z)
    p_low = 0.5 * math.erfc(49.5 / math.sqrt(175) / math.sqrt(2))
    roll, ev = should_rollback(np.arange(1, 11), np.arange(11, 21))
    assert roll is True
    assert ev["statistic"] == 0.0
    assert ev["p_value"] == pytest.approx(p_low, rel=1e-9)
    assert ev["median_new"] == 5.5 and ev["median_prev"] == 15.5
    # the other way round is not a degradation: U = 100, p = Phi((100 + 0.5 - 50) / sqrt(175))
    roll, ev = should_rollback(np.arange(11, 21), np.arange(1, 11))
    assert roll is False
    assert ev["p_value"] == pytest.approx(1 - 0.5 * math.erfc(50.5 / math.sqrt(175) / math.sqrt(2)), rel=1e-9)


@pytest.mark.parametrize("method", ["mannwhitney", "welch"])
@pytest.mark.parametrize(
    ("new_mean", "expected"),
    [(0.50, True), (0.56, False), (0.60, False)],
)
def test_rollback_simulated_hit_rates(method, new_mean, expected):
    rng = np.random.default_rng(42)
    prev = rng.normal(0.56, 0.02, 30)
    new = rng.normal(new_mean, 0.02, 20)
    roll, ev = should_rollback(new, prev, method=method)
    assert roll is expected
    assert (ev["n_new"], ev["n_prev"], ev["method"]) == (20, 30, method)
    assert (ev["p_value"] < 0.05) is expected


def test_rollback_lower_is_better_metric():
    rng = np.random.default_rng(7)
    prev_loss = rng.normal(0.60, 0.02, 20)
    new_loss = rng.normal(0.66, 0.02, 20)
    assert should_rollback(new_loss, prev_loss, higher_is_better=False)[0] is True
    assert should_rollback(new_loss, prev_loss, higher_is_better=True)[0] is False


def test_rollback_needs_min_days():
    roll, ev = should_rollback([0.1] * 9 + [np.nan] * 5, list(range(30)), min_days=10)
    assert roll is False and ev["n_new"] == 9 and ev["p_value"] is None
    assert "need 10" in ev["reason"]


def test_rollback_constant_series_welch_undefined():
    roll, ev = should_rollback([0.5] * 12, [0.5] * 12, method="welch")
    assert roll is False and ev["p_value"] is None and "undefined" in ev["reason"]


def test_rollback_bad_method():
    with pytest.raises(ValueError, match="method"):
        should_rollback([1.0] * 10, [1.0] * 10, method="ks")


def test_choose_rollback():
    from include.modelwatch.decisions import TASK_KEEP, TASK_ROLLBACK, choose_rollback

    assert (TASK_ROLLBACK, TASK_KEEP) == ("rollback_champion", "keep_champion")
    assert choose_rollback(1, False) == TASK_ROLLBACK
    assert choose_rollback(None, True) == TASK_ROLLBACK
    assert choose_rollback(None, False) == TASK_KEEP


# --------------------------------------------------------------------------- edges found by mutation testing


def test_reject_status_without_failing_gate_rejects():
    assert choose_after_gates(GateSummary("reject", (), (), ()), False) == TASK_REJECT


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"alpha": 0.0}, "alpha"), ({"alpha": 1.0}, "alpha"), ({"min_days": 1}, "min_days")]
)
def test_rollback_argument_bounds(kwargs, match):
    with pytest.raises(ValueError, match=match):
        should_rollback([1.0] * 10, [1.0] * 10, **kwargs)


def test_rollback_evidence_and_exact_alpha_boundary():
    # 2 vs 2 tie-free: exact Mann-Whitney, U = 0, p = 1 / C(4, 2) = 1/6; rollback iff p < alpha
    roll, ev = should_rollback([1.0, 2.0], [3.0, 4.0], alpha=1 / 6, min_days=2)
    assert ev["p_value"] == pytest.approx(1 / 6, rel=1e-12) and roll is (ev["p_value"] < 1 / 6)
    assert should_rollback([1.0, 2.0], [3.0, 4.0], alpha=0.17, min_days=2)[0] is True
    assert (ev["alpha"], ev["min_days"], ev["higher_is_better"]) == (1 / 6, 2, True)
    short = should_rollback([1.0], [2.0, 3.0])[1]
    assert short["statistic"] is None and short["p_value"] is None


def test_rollback_reasons_name_the_direction():
    roll, ev = should_rollback(np.arange(1, 11), np.arange(11, 21))
    assert roll and ev["reason"].startswith("new model's metric significantly lower (p=")
    roll, ev = should_rollback(np.arange(11, 21), np.arange(1, 11), higher_is_better=False)
    assert roll and "significantly higher" in ev["reason"]
    keep = should_rollback(np.arange(11, 21), np.arange(1, 11))[1]
    assert keep["reason"].startswith("no significant degradation (p=")


def test_rollback_welch_is_unequal_variance():
    from scipy import stats

    new = [0.50, 0.52, 0.49, 0.51, 0.50, 0.53, 0.48, 0.50, 0.51, 0.49]
    prev = [0.40, 0.70, 0.55, 0.65, 0.45, 0.60, 0.50, 0.75, 0.35, 0.62, 0.58, 0.66]
    p = should_rollback(new, prev, method="welch")[1]["p_value"]
    welch = stats.ttest_ind(new, prev, equal_var=False, alternative="less").pvalue
    student = stats.ttest_ind(new, prev, equal_var=True, alternative="less").pvalue
    assert p == pytest.approx(welch, rel=1e-12) and abs(welch - student) > 1e-3


def test_a_version_whose_window_check_failed_goes_to_compute_drift_to_be_checked_again():
    # whatever the failed check left in rows / dq, the version is retried on the compute path (which names its error)
    for rows, dq in ((0, False), (0, True), (10, False), (10, True)):
        assert choose_drift_path(rows, dq, check_failed=True) == TASK_COMPUTE_DRIFT


def test_choose_rollbacks_over_several_models():
    from include.modelwatch.decisions import TASK_KEEP, TASK_ROLLBACK, choose_rollbacks

    manual = {"manual": True, "target_version": 1, "rollback": True}
    worse = {"rollback": True}
    fine = {"rollback": False}
    assert choose_rollbacks([]) == [TASK_KEEP]
    assert choose_rollbacks([fine]) == [TASK_KEEP]
    assert choose_rollbacks([fine, fine]) == [TASK_KEEP]
    assert choose_rollbacks([worse]) == [TASK_ROLLBACK]
    assert choose_rollbacks([manual]) == [TASK_ROLLBACK]
    assert choose_rollbacks([fine, worse]) == [TASK_ROLLBACK, TASK_KEEP]
    assert choose_rollbacks([worse, fine, manual]) == [TASK_ROLLBACK, TASK_KEEP]
    # a manual plan's target decides even when its 'rollback' flag is off; an automatic one needs the verdict
    assert choose_rollbacks([{"manual": True, "target_version": 2, "rollback": False}]) == [TASK_ROLLBACK]
    assert choose_rollbacks([{"manual": False, "target_version": 2, "rollback": False}]) == [TASK_KEEP]
