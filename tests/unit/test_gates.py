"""Validation gates against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from include.modelwatch.training.gates import (
    GateResult,
    GateSummary,
    business_gate,
    calibration_gate,
    confidence_psi,
    data_quality_gate,
    expected_calibration_error,
    multiclass_brier,
    performance_gate,
    reference_edges,
    run_gates,
    stability_gate,
)


def _paired(both_ok: int, champ_only: int, cand_only: int, both_wrong: int):
    """y_true / champion / candidate labels with the given McNemar table."""
    y, champ, cand = [], [], []
    for n, c_ok, k_ok in (
        (both_ok, True, True),
        (champ_only, True, False),
        (cand_only, False, True),
        (both_wrong, False, False),
    ):
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
    with pytest.raises(ValueError, match="y_true: unknown class 'UP'"):
        calibration_gate(["UP"] + Y[1:], PROBA, CLASSES)
    with pytest.raises(ValueError, match="sum to 1"):
        calibration_gate(Y, [[0.5, 0.2, 0.1]] * 10, CLASSES)


CHAMP_P = [[0.85, 0.15]] * 5 + [[0.75, 0.25]] * 5
# champion quantile edges [0.75, 0.80, 0.85]: champion 5 | 5 in bins 1 and 3, candidate 6 | 4;
# the drift monitor's PSI adds 1e-4 to every proportion
PSI_SMALL = 0.1 * math.log(0.6001 / 0.5001) - 0.1 * math.log(0.4001 / 0.5001)


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
    # constant champion: edges [0.85, next float]; 3 candidate rows fall below, 1e-4 added to every share
    expected = 0.3 * math.log(0.3001 / 1e-4) - 0.3 * math.log(0.7001 / 1.0001)
    assert confidence_psi([0.85] * 10, [0.75] * 3 + [0.85] * 7) == pytest.approx(expected)
    r = stability_gate(champ, cand)
    assert r.status == "fail" and r.evidence["binding"] == "confidence_psi"
    assert r.value == pytest.approx(expected)
    # the same shift judged against a looser PSI limit: usage 2.51/2.9 = 0.87 -> borderline
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
        (
            {"performance": "fail", "business": "borderline", "stability": "fail"},
            "reject",
            ("performance", "stability"),
            ("business",),
        ),
        ({}, "review", (), ()),
    ],
)
def test_run_gates(statuses, overall, failing, borderline):
    s = run_gates([_g(n, st) for n, st in statuses.items()])
    assert (s.status, s.failing, s.borderline) == (overall, failing, borderline)


# --------------------------------------------------------------------------- edges found by mutation testing


def test_reference_edges_and_psi_scale():
    assert reference_edges(np.arange(11) / 10) == pytest.approx(np.arange(1, 10) / 10)
    assert list(reference_edges([0.5] * 4)) == [0.5, np.nextafter(0.5, 1.0)]
    for bad in ([], [0.5, float("nan")]):
        with pytest.raises(ValueError, match="reference"):
            reference_edges(bad)
    assert confidence_psi([0.6, 0.7, 0.8, 0.9], [0.6, 0.7, 0.8, 0.9]) == 0.0


def test_gate_result_passed_and_summary_defaults():
    assert _g("a", "pass").passed is True and _g("a", "borderline").passed is False
    s = GateSummary("deploy", (), ())
    assert (s.passed, s.message) == ((), "")


def test_one_hot_probabilities_are_valid():
    r = calibration_gate(["SELL", "BUY"], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], CLASSES)
    assert r.status == "pass" and r.evidence["checks"]["ece"]["observed"] == 0.0
    assert r.evidence["checks"]["brier"]["observed"] == 0.0
    assert set(r.evidence["checks"]["ece"]) == {"observed", "limit", "usage", "status", "detail"}
    assert r.evidence["checks"]["ece"]["limit"] == 0.08 and (r.evidence["n"], r.evidence["n_bins"]) == (2, 10)


def test_two_class_calibration_gate():
    r = calibration_gate(["DOWN", "UP", "UP", "DOWN"], [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]], ["DOWN", "UP"])
    assert r.name == "calibration" and r.evidence["checks"]["brier"]["limit"] == 0.5
    assert r.evidence["checks"]["brier"]["observed"] == pytest.approx((0.02 + 0.08 + 0.18 + 0.32) / 4)
    with pytest.raises(ValueError, match="two classes"):
        calibration_gate(["A"], [[1.0]], ["A"])


@pytest.mark.parametrize(
    ("proba", "match"),
    [
        ([0.5, 0.5], "proba must be a non-empty 2-D"),
        (np.empty((0, 3)), "non-empty 2-D"),
        ([[0.5, 0.5]], "proba has 2 columns, expected 3"),
        ([[1.5, -0.5, 0.0]], "in \\[0, 1\\]"),
        ([[np.nan, 0.5, 0.5]], "in \\[0, 1\\]"),
        ([[0.5, 0.2, 0.1]], "sum to 1"),
    ],
)
def test_bad_probabilities_rejected(proba, match):
    with pytest.raises(ValueError, match=match):
        multiclass_brier(["SELL"] * max(len(np.asarray(proba)), 1), proba, CLASSES)


def test_labels_and_classes_checked():
    with pytest.raises(ValueError, match="unique"):
        multiclass_brier(["A"], [[0.5, 0.5]], ["A", "A"])
    with pytest.raises(ValueError, match="1-D with 2 rows"):
        expected_calibration_error(["SELL"], [[1.0, 0, 0]] * 2, CLASSES)


@pytest.mark.parametrize("field", ["max_ece", "max_brier"])
@pytest.mark.parametrize("value", [-0.1, "0.1", float("nan")])
def test_calibration_limits_validated(field, value):
    with pytest.raises(ValueError, match=field):
        calibration_gate(Y, PROBA, CLASSES, **{field: value})


def test_zero_limits_do_not_divide_by_zero():
    ok = data_quality_gate(0, {"BUY": 1, "SELL": 1}, 0.0, min_rows=0, max_null_share=0.0, min_class_share=0.0)
    assert ok.status == "pass" and ok.evidence["checks"]["null_share"]["usage"] == 0.0
    assert ok.evidence["checks"]["rows"]["usage"] == 0.0
    bad = data_quality_gate(1000, {"BUY": 1, "SELL": 1}, 0.001, max_null_share=0.0)
    assert bad.status == "fail" and bad.evidence["binding"] == "null_share"
    same = business_gate(CHAMP, CHAMP, pf_tolerance=0.0, sharpe_tolerance=0.0)
    assert same.status == "pass" and same.evidence["checks"]["sharpe"]["usage"] == 0.0


@pytest.mark.parametrize("field", ["pf_tolerance", "sharpe_tolerance", "max_dd_limit"])
def test_business_limits_validated(field):
    with pytest.raises(ValueError, match=field):
        business_gate(CHAMP, CHAMP, **{field: -1.0})


def test_grading_boundaries():
    # usage exactly 1 is borderline, exactly 1 - band is pass
    at_limit = business_gate({**CHAMP, "max_drawdown": 0.25}, None)
    assert at_limit.status == "borderline"
    half = business_gate({**CHAMP, "max_drawdown": 0.125}, None, band=0.5)
    assert half.status == "pass" and "pass" in half.message
    assert business_gate({**CHAMP, "max_drawdown": 0.126}, None, band=0.5).status == "borderline"
    assert business_gate({**CHAMP, "max_drawdown": 0.0}, None, band=0.0).status == "pass"
    with pytest.raises(ValueError, match="band"):
        business_gate(CHAMP, None, band=1.0)


def test_business_gate_details():
    both_inf = {**CHAMP, "profit_factor": math.inf}
    assert business_gate(both_inf, both_inf).status == "pass"
    r = business_gate({**CHAMP, "sharpe": True}, {"profit_factor": "x", "sharpe": 1.0})
    assert r.evidence["missing"] == ["candidate.sharpe", "champion.profit_factor"]
    assert r.message == "business fail: missing or non-numeric metrics candidate.sharpe, champion.profit_factor"
    assert r.name == "business" and business_gate(CHAMP, CHAMP).evidence["champion_compared"] is True
    assert business_gate(CHAMP, None).evidence["champion_compared"] is False
    msg = business_gate({"profit_factor": 1.35, "sharpe": 0.9, "max_drawdown": 0.1}, CHAMP).message
    assert "[fail]; Sharpe" in msg
    assert "; Sharpe" in business_gate(CHAMP, CHAMP).message


def test_performance_gate_validation_and_evidence():
    y, champ, cand = _paired(80, 3, 1, 16)
    for args in (([1, 0], [1, 0, 1], [1, 0]), ([1, 0], [1, 0], [1]), ([[1]], [[1]], [[1]])):
        with pytest.raises(ValueError, match="1-D of equal length"):
            performance_gate(*args)
    with pytest.raises(ValueError, match="at least one row"):
        performance_gate([], [], [])
    for bad in ({"alpha": 0.0}, {"alpha": 1.0}, {"max_drop": -0.01}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            performance_gate(y, champ, cand, **bad)
    r = performance_gate(y, champ, cand, max_drop=0.0)
    assert r.status == "fail" and "accuracy drop" in r.message
    ev = r.evidence
    assert (ev["n"], ev["delta"], ev["both_correct"], ev["both_wrong"]) == (100, -0.02, 80, 16)
    assert ev["p_two_sided"] == pytest.approx(10 / 16) and ev["alpha"] == 0.05
    assert (ev["max_drop"], ev["min_improvement"]) == (0.0, 0.0) and ev["test"].startswith("exact McNemar")
    # p_worse exactly alpha is not significant
    assert performance_gate(y, champ, cand, alpha=0.3125).status == "borderline"
    same = performance_gate(*_paired(90, 0, 0, 10), min_improvement=0.01)
    assert same.status == "borderline" and "short of required" in same.message


def test_stability_gate_checks():
    with pytest.raises(ValueError, match="shapes differ"):
        stability_gate(CHAMP_P, CHAMP_P[:5])
    with pytest.raises(ValueError, match="candidate_proba has 3 columns"):
        stability_gate(CHAMP_P, [[0.5, 0.25, 0.25]] * 10)
    with pytest.raises(ValueError, match="max_psi"):
        stability_gate(CHAMP_P, CHAMP_P, max_psi=-1)
    r = stability_gate(CHAMP_P, CHAMP_P)
    assert r.name == "stability" and r.evidence["n"] == 10 and r.status == "pass"
    assert r.evidence["checks"]["confidence_psi"]["limit"] == 0.25


def test_data_quality_gate_inputs():
    r = data_quality_gate(500, {"BUY": 0, "SELL": 0}, 1.0)
    assert r.status == "fail" and r.evidence["class_shares"] == {"BUY": 0.0, "SELL": 0.0}
    assert r.name == "data_quality" and r.evidence["checks"]["rows"]["limit"] == 500.0
    empty = data_quality_gate(1000, {}, 0.0)
    assert empty.value == 0.0 and "no class counts given" in empty.message
    bad_inputs = (((-1, {}, 0.0), "n_rows"), ((10, {"A": -1}, 0.0), "rows_per_class"), ((10, {}, 1.01), "null_share"))
    for args, match in bad_inputs:
        with pytest.raises(ValueError, match=match):
            data_quality_gate(*args)
    assert data_quality_gate(0, {"A": 1}, 0.0, min_rows=0).evidence["checks"]["rows"]["status"] == "pass"


def test_run_gates_messages():
    assert run_gates([_g("a", "pass"), _g("b", "pass")]).message == "all 2 gates passed"
    assert run_gates([_g("a", "pass"), _g("b", "pass")]).passed == ("a", "b")
    assert run_gates([_g("a", "fail"), _g("b", "fail")]).message == "failed gates: a, b"
    assert run_gates([_g("a", "borderline"), _g("b", "borderline")]).message == "borderline gates: a, b"
    assert run_gates([]).message == "no gate results"
    with pytest.raises(ValueError, match="unknown status"):
        run_gates([_g("a", "ok")])


def test_more_edges():
    import dataclasses

    for obj in (_g("a", "pass"), GateSummary("deploy", (), ())):
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.status = "fail"  # type: ignore[misc]
    ok = business_gate(CHAMP, CHAMP)
    assert ok.name == "business" and ok.message.startswith("business pass: profit factor") and "[" not in ok.message
    # a single discordant pair still gets the exact test: P(X >= 1 | 1, 1/2) = 1/2
    one = performance_gate(*_paired(99, 1, 0, 0))
    assert (one.evidence["p_worse"], one.evidence["p_better"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert business_gate({**CHAMP, "sharpe": math.inf}, CHAMP).evidence["missing"] == ["candidate.sharpe"]
    with pytest.raises(ValueError, match="^proba has 2 columns"):
        expected_calibration_error(["SELL"], [[0.5, 0.5]], CLASSES)
    with pytest.raises(ValueError, match="^champion_proba must hold"):
        stability_gate([[1.5, -0.5]], [[0.5, 0.5]])
    assert stability_gate(CHAMP_P, CHAMP_P).evidence["psi_bins"] == "champion quantiles"
    assert list(reference_edges([0.1, 0.5, 0.5], n_bins=2)) == [0.5]
    assert list(reference_edges([0.3], n_bins=2)) == [0.3, np.nextafter(0.3, 1.0)]
