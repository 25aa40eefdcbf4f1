"""The drift task's pure decisions: window mode, result kind, verdict, alert plan."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.modelwatch.monitoring import drift
from include.modelwatch.monitoring.drift import FeatureResult, HysteresisResult, WindowResult

W0 = datetime(2024, 3, 1, 10, tzinfo=UTC)
CFG = drift.DriftConfig()


def _f(name, severity, drifted, psi=0.3, w=1.25, p_adj=0.00123, level="warning"):
    return FeatureResult(
        feature=name,
        kind="numeric",
        status="ok",
        test="ks",
        psi=psi,
        wasserstein_norm=w,
        p_adjusted=p_adj,
        severity=severity,
        drifted=drifted,
        level=level if drifted else "none",
    )


def _result(features, level="warning", score=0.42):
    return WindowResult(tuple(features), n_rows=500, drift_score=score, level=level, drifted=level != "none")


def _concept(drifted):
    return {"feature": "error_rate", "test": "concept", "drifted": drifted}


def test_window_mode_switches_to_binned_at_the_configured_row_count():
    cfg = drift.DriftConfig(sql_counts_min_rows=1000)
    assert drift.window_mode(999, cfg) == drift.WindowMode("rows", 1)
    assert not drift.window_mode(999, cfg).binned
    assert drift.window_mode(1000, cfg) == drift.WindowMode("binned", 1)
    assert drift.window_mode(1000, cfg).binned
    # the quality checks read a sample of about DQ_SAMPLE_ROWS rows
    assert drift.window_mode(250_000, CFG) == drift.WindowMode("binned", 5)
    assert drift.window_mode(120_000, cfg, sample_rows=50_000).every == 2
    assert drift.window_mode(0, cfg) == drift.WindowMode("rows", 1)
    with pytest.raises(ValueError, match="n: the window's row count"):
        drift.window_mode(-1, cfg)


def test_result_kind_uses_the_probability_prefix():
    assert drift.result_kind("p_BUY") == "prediction"
    assert drift.result_kind("predicted_label") == "prediction"
    assert drift.result_kind("confidence") == "prediction"
    assert drift.result_kind("rsi_14") == "feature"
    assert drift.result_kind("pe_ratio") == "feature"


def test_verdict_merges_concept_drift_and_picks_the_five_most_severe():
    feats = [_f(f"x{i}", severity=float(i * 10), drifted=i != 3) for i in range(8)]
    v = drift.window_verdict(_result(feats), [_concept(True), _concept(False)])
    assert v.drifted is True
    assert v.n_drifted == 7 + 1
    assert [f.feature for f in v.top] == ["x7", "x6", "x5", "x4", "x2"]  # x3 did not drift


def test_concept_drift_alone_makes_the_window_drifted():
    v = drift.window_verdict(_result([_f("a", 5.0, False)], level="none", score=0.01), [_concept(True)])
    assert (v.drifted, v.n_drifted, v.top) == (True, 1, ())
    clean = drift.window_verdict(_result([_f("a", 5.0, False)], level="none", score=0.01), [_concept(False)])
    assert (clean.drifted, clean.n_drifted) == (False, 0)


def test_firing_window_raises_with_title_message_and_evidence():
    feats = [_f("rsi_14", 80.0, True, level="critical"), _f("vol_63", 40.0, True, psi=None), _f("ret_5", 1.0, False)]
    plan = drift.alert_plan(
        _result(feats, level="critical", score=0.4567),
        [_concept(False)],
        HysteresisResult("firing", "fire"),
        CFG,
        "m v3",
        W0,
    )
    assert plan.action == "raise"
    assert plan.severity == "critical"
    assert plan.score == 0.4567
    assert plan.title == "m v3: drift score 0.46 (critical)"
    assert plan.message == "rsi_14 W/sd=1.25 psi=0.300 p_adj=0.0012"  # vol_63 has no PSI
    assert plan.evidence == {"drift_windows": ["2024-03-01 10:00:00+00:00"], "top_features": ["rsi_14", "vol_63"]}
    assert (plan.drifted, plan.n_drifted) == (True, 2)


def test_still_firing_warning_without_psi_says_drift_persists():
    plan = drift.alert_plan(
        _result([_f("a", 10.0, True, psi=None)], level="warning", score=0.2),
        [],
        HysteresisResult("firing", None),
        CFG,
        "m v1",
        W0,
    )
    assert (plan.action, plan.severity, plan.message) == ("raise", "warning", "drift persists")


def test_resolve_transition_resolves_after_k_clean_windows():
    cfg = drift.DriftConfig(resolve_k=4)
    plan = drift.alert_plan(
        _result([_f("a", 1.0, False)], level="none", score=0.0),
        [_concept(False)],
        HysteresisResult("clear", "resolve"),
        cfg,
        "m v1",
        W0,
    )
    assert plan.action == "resolve"
    assert plan.resolution == "4 consecutive clean windows"
    assert (plan.drifted, plan.n_drifted, plan.severity, plan.title) == (False, 0, None, None)


def test_clear_window_without_transition_changes_nothing():
    plan = drift.alert_plan(
        _result([_f("a", 30.0, True)]), [], HysteresisResult("clear", None), CFG, "m v1", W0
    )  # drifted once, not yet N of M
    assert plan == drift.AlertPlan("none", True, 1)
