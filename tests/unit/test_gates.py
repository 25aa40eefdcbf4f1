"""Validation gates against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from include.modelwatch.training.gates import (
    GateResult,
    business_gate,
    calibration_gate,
    data_quality_gate,
    expected_calibration_error,
    multiclass_brier,
    performance_gate,
    psi,
    run_gates,
    stability_gate,
)


def _paired(both_ok: int, champ_only: int, cand_only: int, both_wrong: int):
    """y_true / champion / candidate labels with the given McNemar table."""
    y, champ, cand = [], [], []
    for n, c_ok, k_ok in ((both_ok, True, True), (champ_only, True, False), (cand_only, False, True), (both_wrong, False, False)):
        y += ["BUY"] * n
        champ += ["BUY" if c_ok else "SELL"] * n
        cand += ["BUY" if k_ok else "HOLD"] * n
    return np.array(y), np.array(champ), np.array(cand)


@pytest.mark.parametrize(
    ("table", "kwargs", "status", "delta", "p_worse", "why"),
    [
        # n=1000, b=20, c=5: P(X>=20 | 25, 1/2) = (C(25,20)+...+C(25,25))/2^25 = 68406/33554432
        ((700, 20, 5, 275), {}, "fail", -0.015, 68406 / 2**25, "significantly worse"),
        # b=6, c=3: p = (84+36+9+1)/512 not significant, but drop 0.03 > 0.02
        ((80, 6, 3, 11), {}, "fail", -0.03, 130 / 512, "accuracy drop"),
        # b=3, c=1: p = 5/16, drop 0.02 == tolerance -> borderline
        ((80, 3, 1, 16), {}, "borderline", -0.02, 5 / 16, "not significant"),
        # b=2, c=5: better by 0.03; p_worse = P(X>=2 | 7) = 1 - 8/128
        ((80, 2, 5, 13), {}, "pass", 0.03, 120 / 128, "improvement"),
        ((80, 2, 5, 13), {"min_improvement": 0.05}, "borderline", 0.03, 120 / 128, "short of required"),
        # identical predictions: no discordant pair
        ((90, 0, 0, 10), {}, "pass", 0.0, 1.0, "improvement"),
    ],
)
def test_performance_gate_mcnemar(table, kwargs, status, delta, p_worse, why):
    y, champ, cand = _paired(*table)
    r = performance_gate(y, champ, cand, **kwargs)
    assert r.name == "performance" and r.status == status
    assert r.value == pytest.approx(delta)
    assert r.evidence["p_worse"] == pytest.approx(p_worse, rel=1e-9)
    assert r.evidence["champion_only_correct"] == table[1]
    assert r.evidence["candidate_only_correct"] == table[2]
    n = sum(table)
    assert r.evidence["champion_accuracy"] == pytest.approx((table[0] + table[1]) / n)
    assert r.evidence["candidate_accuracy"] == pytest.approx((table[0] + table[2]) / n)
    assert why in r.message


def test_performance_gate_p_better():
    y, champ, cand = _paired(80, 2, 5, 13)
    # P(X>=5 | 7, 1/2) = (21+7+1)/128
    assert performance_gate(y, champ, cand).evidence["p_better"] == pytest.approx(29 / 128)


def test_performance_gate_rejects_misaligned():
    with pytest.raises(ValueError):
        performance_gate([1, 0], [1, 0, 1], [1, 0])


CHAMP = {"profit_factor": 1.5, "sharpe": 1.2, "max_drawdown": 0.15}


@pytest.mark.parametrize(
    ("cand", "status", "binding", "value", "threshold"),
    [
        ({"profit_factor": 1.6, "sharpe": 1.3, "max_drawdown": 0.10}, "pass", "max_drawdown", 0.10, 0.25),
        # PF shortfall 0.09 of 0.1 tolerance: usage 0.9 > 0.8 -> borderline
        ({"profit_factor": 1.41, "sharpe": 1.3, "max_drawdown": 0.10}, "borderline", "profit_factor", 0.09, 0.1),
        ({"profit_factor": 1.35, "sharpe": 1.3, "max_drawdown": 0.10}, "fail", "profit_factor", 0.15, 0.1),
        # Sharpe shortfall 0.22 of 0.25: usage 0.88 -> borderline; 0.30 -> fail
        ({"profit_factor": 1.6, "sharpe": 0.98, "max_drawdown": 0.10}, "borderline", "sharpe", 0.22, 0.25),
        ({"profit_factor": 1.6, "sharpe": 0.90, "max_drawdown": 0.10}, "fail", "sharpe", 0.30, 0.25),
        # drawdown 0.22 of 0.25 limit: usage 0.88 -> borderline (sign ignored); 0.30 -> fail
        ({"profit_factor": 1.6, "sharpe": 1.3, "max_drawdown": -0.22}, "borderline", "max_drawdown", 0.22, 0.25),
        ({"profit_factor": 1.6, "sharpe": 1.3, "max_drawdown": 0.30}, "fail", "max_drawdown", 0.30, 0.25),
        # PF inf (no losing trades) is fine
        ({"profit_factor": math.inf, "sharpe": 1.3, "max_drawdown": 0.05}, "pass", "max_drawdown", 0.05, 0.25),
    ],
)
def test_business_gate(cand, status, binding, value, threshold):
    r = business_gate(cand, CHAMP)
    assert r.status == status
    assert r.evidence["binding"] == binding
    assert r.value == pytest.approx(value) and r.threshold == pytest.approx(threshold)


def test_business_gate_fail_beats_borderline():
    r = business_gate({"profit_factor": 1.41, "sharpe": 0.9, "max_drawdown": 0.1}, CHAMP)
    assert r.status == "fail" and r.evidence["binding"] == "sharpe"
    assert r.evidence["checks"]["profit_factor"]["status"] == "borderline"


def test_business_gate_missing_metric_fails_and_no_champion():
    r = business_gate({"profit_factor": 1.6, "sharpe": float("nan"), "max_drawdown": 0.1}, CHAMP)
    assert r.status == "fail" and r.evidence["missing"] == ["candidate.sharpe"]
    first = business_gate({"profit_factor": 0.5, "sharpe": -1.0, "max_drawdown": 0.1}, None)
    assert first.status == "pass" and set(first.evidence["checks"]) == {"max_drawdown"}


CLASSES = ["SELL", "HOLD", "BUY"]
# 5 rows at confidence 0.7 (bin [0.7,0.8)), 4 of 5 correct -> |0.8-0.7| * 0.5 = 0.05
# 5 rows at confidence 0.6 (bin [0.6,0.7)), 3 of 5 correct -> 0
PROBA = [[0.7, 0.2, 0.1]] * 5 + [[0.1, 0.3, 0.6]] * 5
Y = ["SELL"] * 4 + ["HOLD"] + ["BUY"] * 3 + ["SELL"] * 2
# Brier per row: SELL|A 0.14, HOLD|A 1.14, BUY|B 0.26, SELL|B 1.26 -> (4*.14+1.14+3*.26+2*1.26)/10 = 0.5
ECE, BRIER = 0.05, 0.5


def test_ece_and_brier_hand_computed():
    assert expected_calibration_error(Y, PROBA, CLASSES) == pytest.approx(ECE)
    assert multiclass_brier(Y, PROBA, CLASSES) == pytest.approx(BRIER)


@pytest.mark.parametrize(
    ("kwargs", "status", "binding"),
    [
        ({}, "pass", "brier"),  # ECE usage 0.625, Brier 0.5 / (1 - 1/3) = 0.75
        ({"max_ece": 0.06}, "borderline", "ece"),  # usage 0.833
        ({"max_ece": 0.04}, "fail", "ece"),
        ({"max_brier": 0.55}, "borderline", "brier"),  # usage 0.909
        ({"max_brier": 0.45}, "fail", "brier"),
    ],
)
def test_calibration_gate(kwargs, status, binding):
    r = calibration_gate(Y, PROBA, CLASSES, **kwargs)
    assert r.status == status and r.evidence["binding"] == binding
    assert r.evidence["checks"]["ece"]["observed"] == pytest.approx(ECE)
    assert r.evidence["checks"]["brier"]["observed"] == pytest.approx(BRIER)


def test_calibration_gate_rejects_unknown_label_and_bad_rows():
    with pytest.raises(ValueError, match="not in classes"):
        calibration_gate(["UP"] + Y[1:], PROBA, CLASSES)
    with pytest.raises(ValueError, match="sum to 1"):
        calibration_gate(Y, [[0.5, 0.2, 0.1]] * 10, CLASSES)


CHAMP_P = [[0.85, 0.15]] * 5 + [[0.75, 0.25]] * 5
# candidate: 4 rows in bin 8, 6 rows in bin 7 -> PSI = 0.1*ln(1.25) + 0.1*ln(1.2)
PSI_SMALL = 0.1 * math.log(1.25) + 0.1 * math.log(1.2)


def _cand(n_flips_extra: int):
    rows = [[0.85, 0.15]] * 4 + [[0.25, 0.75]]
    rows += [[0.25, 0.75]] * n_flips_extra + [[0.75, 0.25]] * (5 - n_flips_extra)
    return rows


@pytest.mark.parametrize(
    ("extra", "flip", "status"),
    [(0, 0.1, "pass"), (2, 0.3, "borderline"), (3, 0.4, "fail")],
)
def test_stability_gate_label_flip(extra, flip, status):
    r = stability_gate(CHAMP_P, _cand(extra))
    assert r.status == status
    assert r.evidence["checks"]["label_flip"]["observed"] == pytest.approx(flip)
    assert r.evidence["checks"]["confidence_psi"]["observed"] == pytest.approx(PSI_SMALL)
    assert r.evidence["binding"] == "label_flip"


def test_stability_gate_psi_fail_and_borderline():
    champ = [[0.85, 0.15]] * 10
    cand = [[0.75, 0.25]] * 3 + [[0.85, 0.15]] * 7
    # expected all in bin 8; empty bins floored at 1e-4
    expected = (0.3 - 1e-4) * math.log(0.3 / 1e-4) + (0.7 - 1.0) * math.log(0.7)
    assert psi([0.85] * 10, [0.75] * 3 + [0.85] * 7) == pytest.approx(expected)
    r = stability_gate(champ, cand)
    assert r.status == "fail" and r.evidence["binding"] == "confidence_psi"
    assert r.value == pytest.approx(expected)
    # the same shift judged against a looser PSI limit: usage 2.508/2.9 = 0.86 -> borderline
    assert stability_gate(champ, cand, max_psi=2.9).status == "borderline"


@pytest.mark.parametrize(
    ("n_rows", "per_class", "nulls", "status", "binding"),
    [
        (1000, {"BUY": 300, "HOLD": 400, "SELL": 300}, 0.002, "pass", "rows"),
        (550, {"BUY": 165, "HOLD": 220, "SELL": 165}, 0.002, "borderline", "rows"),  # 500/550 = 0.91
        (400, {"BUY": 120, "HOLD": 160, "SELL": 120}, 0.002, "fail", "rows"),
        (1000, {"BUY": 55, "HOLD": 445, "SELL": 500}, 0.002, "borderline", "class_share"),  # 0.05/0.055
        (1000, {"BUY": 20, "HOLD": 480, "SELL": 500}, 0.002, "fail", "class_share"),
        (1000, {"BUY": 0, "HOLD": 500, "SELL": 500}, 0.002, "fail", "class_share"),
        (1000, {"BUY": 300, "HOLD": 400, "SELL": 300}, 0.009, "borderline", "null_share"),
        (1000, {"BUY": 300, "HOLD": 400, "SELL": 300}, 0.02, "fail", "null_share"),
        (1000, {}, 0.0, "fail", "class_share"),
    ],
)
def test_data_quality_gate(n_rows, per_class, nulls, status, binding):
    r = data_quality_gate(n_rows, per_class, nulls)
    assert r.status == status and r.evidence["binding"] == binding


def test_data_quality_gate_reports_rarest_class():
    r = data_quality_gate(1000, {"BUY": 20, "HOLD": 480, "SELL": 500}, 0.0)
    assert r.value == pytest.approx(0.02) and r.threshold == 0.05
    assert "'BUY'" in r.message


def _g(name: str, status: str) -> GateResult:
    return GateResult(name, status, None, None, {}, "")


@pytest.mark.parametrize(
    ("statuses", "overall", "failing", "borderline"),
    [
        ({"performance": "pass", "business": "pass"}, "deploy", (), ()),
        ({"performance": "pass", "business": "borderline"}, "review", (), ("business",)),
        ({"performance": "fail", "business": "borderline", "stability": "fail"}, "reject", ("performance", "stability"), ("business",)),
        ({}, "review", (), ()),
    ],
)
def test_run_gates(statuses, overall, failing, borderline):
    s = run_gates([_g(n, st) for n, st in statuses.items()])
    assert (s.status, s.failing, s.borderline) == (overall, failing, borderline)
