"""Live performance: hand-computed metrics, label delay, bootstrap coverage, CBPE, health table."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from include.modelwatch.monitoring.performance import (
    CLASSES,
    PRIMARY_METRIC,
    Calibrator,
    HealthThresholds,
    block_bootstrap_ci,
    calibration_check,
    calibration_split,
    compare_to_baseline,
    comparison_block_length,
    daily_stats,
    default_block_length,
    degradation_decision,
    ece_null_quantile,
    estimate_label_free,
    estimate_performance,
    evaluate_window,
    filter_matured,
    fit_calibrator,
    health_status,
    importance_shares,
    live_metrics,
    metrics_from_daily,
    trailing_period,
)

CLS = np.array(CLASSES)


# --------------------------------------------------------------------------- fixtures


def _fixture() -> pd.DataFrame:
    """Six matured predictions over four entry days, horizon 1."""
    rows = [
        # day, predicted, realized, realized_return, r_multiple, (p_SELL, p_HOLD, p_BUY)
        ("2024-03-04", "BUY", "BUY", 0.02, 2.0, (0.1, 0.2, 0.7)),
        ("2024-03-04", "SELL", "BUY", 0.01, -1.0, (0.6, 0.3, 0.1)),
        ("2024-03-05", "HOLD", "HOLD", 0.001, 0.0, (0.2, 0.5, 0.3)),
        ("2024-03-05", "BUY", "SELL", -0.03, -1.5, (0.3, 0.1, 0.6)),
        ("2024-03-06", "SELL", "SELL", -0.02, 1.0, (0.8, 0.1, 0.1)),
        ("2024-03-07", "BUY", "HOLD", 0.015, 0.5, (0.1, 0.4, 0.5)),
    ]
    return pd.DataFrame(
        {
            "ts": pd.to_datetime([r[0] for r in rows]).tz_localize("UTC") + pd.Timedelta(hours=21),
            "predicted_label": [r[1] for r in rows],
            "realized_label": [r[2] for r in rows],
            "realized_return": [r[3] for r in rows],
            "r_multiple": [r[4] for r in rows],
            "p_SELL": [r[5][0] for r in rows],
            "p_HOLD": [r[5][1] for r in rows],
            "p_BUY": [r[5][2] for r in rows],
            "confidence": [max(r[5]) for r in rows],
            "horizon_days": 1,
        }
    )


def _simulate(n: int, seed: int, temp_true: float = 1.0, temp_model: float = 1.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose labels are drawn from softmax(logits * temp_true); the model reports
    softmax(logits * temp_model), so temp_model == temp_true means perfectly calibrated."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.0, size=(n, 3)) + np.array([0.0, 0.3, 0.0])

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p_true = softmax(logits * temp_true)
    p_model = softmax(logits * temp_model)
    u = rng.random(n)[:, None]
    y = (u > np.cumsum(p_true, axis=1)).sum(axis=1)
    y = np.minimum(y, 2)
    df = pd.DataFrame(
        {
            "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) // 20, unit="D"),
            "predicted_label": CLS[p_model.argmax(axis=1)],
            "p_SELL": p_model[:, 0],
            "p_HOLD": p_model[:, 1],
            "p_BUY": p_model[:, 2],
            "confidence": p_model.max(axis=1),
            "realized_label": CLS[y],
            "realized_return": rng.normal(0.0, 0.01, n),
        }
    )
    return df, p_true


# --------------------------------------------------------------------------- live metrics, hand computed


def test_live_metrics_hand_computed():
    m = live_metrics(_fixture())
    assert m["n"] == 6 and m["n_trades"] == 5 and m["n_days"] == 4 and m["horizon"] == 1
    # correct rows 1, 3, 5 -> 3/6
    assert m["accuracy"] == pytest.approx(0.5)
    # confusion (true x pred): BUY->{BUY, SELL}, HOLD->{HOLD, BUY}, SELL->{BUY, SELL}
    # SELL: pred rows 2,5 TP 1 -> P 1/2; true rows 4,5 -> R 1/2; F1 1/2
    # HOLD: pred row 3 -> P 1; true rows 3,6 -> R 1/2; F1 2*1*.5/1.5 = 2/3
    # BUY : pred rows 1,4,6 TP 1 -> P 1/3; true rows 1,2 -> R 1/2; F1 2*(1/6)/(5/6) = 2/5
    assert m["precision_SELL"] == pytest.approx(0.5) and m["recall_SELL"] == pytest.approx(0.5)
    assert m["precision_HOLD"] == pytest.approx(1.0) and m["recall_HOLD"] == pytest.approx(0.5)
    assert m["precision_BUY"] == pytest.approx(1 / 3) and m["recall_BUY"] == pytest.approx(0.5)
    assert m["f1_HOLD"] == pytest.approx(2 / 3) and m["f1_BUY"] == pytest.approx(0.4)
    assert (m["support_SELL"], m["support_HOLD"], m["support_BUY"]) == (2, 2, 2)
    assert m["macro_precision"] == pytest.approx(11 / 18)  # (1/2 + 1 + 1/3) / 3
    assert m["macro_recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(47 / 90)  # (1/2 + 2/3 + 2/5) / 3
    # signed returns of trades: +0.02, -0.01, -0.03, +0.02, +0.015 -> 3 of 5 right/positive
    assert m["hit_rate"] == pytest.approx(0.6) and m["win_rate"] == pytest.approx(0.6)
    # gains 0.055, losses 0.04
    assert m["profit_factor"] == pytest.approx(1.375)
    # winners R 2, 1, .5 -> 7/6; losers R -1, -1.5 -> 1.25; (7/6)/1.25 = 14/15
    assert m["avg_rr"] == pytest.approx(14 / 15)
    # daily strategy returns: D1 mean(.02, -.01)=.005, D2 -.03 (HOLD not a trade), D3 .02, D4 .015
    # mean .0025, squared deviations sum .001525, sd = sqrt(.001525/3)
    assert m["sharpe"] == pytest.approx(0.0025 / math.sqrt(0.001525 / 3) * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(1.7602, abs=1e-4)
    # curve 0, .005, -.025, -.005, .010 -> worst fall from peak .005 to -.025
    assert m["max_drawdown"] == pytest.approx(0.03)
    # per-row Brier .14 + 1.26 + .38 + .86 + .06 + .62 = 3.32 -> /6
    assert m["brier"] == pytest.approx(3.32 / 6)
    # ECE bins: .5 (acc .5 conf .5) 0; .6 (rows 2,4: acc 0) 2/6*.6=.2; .7 1/6*.3=.05; .8 1/6*.2
    assert m["ece"] == pytest.approx(17 / 60)
    assert m["avg_confidence"] == pytest.approx(3.7 / 6)


def test_classification_metrics_match_sklearn():
    df, _ = _simulate(500, seed=3)
    m = live_metrics(df)
    y, p = df["realized_label"], df["predicted_label"]
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=list(CLASSES), zero_division=0)
    for i, c in enumerate(CLASSES):
        assert m[f"precision_{c}"] == pytest.approx(prec[i])
        assert m[f"recall_{c}"] == pytest.approx(rec[i])
        assert m[f"f1_{c}"] == pytest.approx(f1[i])
        assert m[f"support_{c}"] == sup[i]


def test_sharpe_uses_horizon_annualisation_and_drawdown_sleeves():
    df = _fixture()
    df["horizon_days"] = 4
    m = live_metrics(df)
    assert m["horizon"] == 4
    assert m["sharpe"] == pytest.approx(0.0025 / math.sqrt(0.001525 / 3) * math.sqrt(252 / 4))
    assert m["max_drawdown"] == pytest.approx(0.03 / 4)  # 1/horizon of capital per daily cohort


def test_empty_input_gives_n_zero_and_none_metrics():
    m = live_metrics(_fixture().iloc[:0])
    assert m["n"] == 0 and m["n_trades"] == 0
    for key in ("accuracy", "macro_f1", "hit_rate", "profit_factor", "sharpe", "brier", "ece", "max_drawdown"):
        assert m[key] is None
    # unmatured rows (null realized label) are not counted either
    df = _fixture()
    df["realized_label"] = None
    assert live_metrics(df)["n"] == 0


def test_single_class_model():
    df = _fixture()
    df["predicted_label"] = "BUY"
    m = live_metrics(df)
    # realized BUY, BUY, HOLD, SELL, SELL, HOLD -> 2/6 correct
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["precision_BUY"] == pytest.approx(1 / 3) and m["recall_BUY"] == pytest.approx(1.0)
    assert m["precision_SELL"] == 0.0 and m["f1_HOLD"] == 0.0
    f1 = f1_score(df["realized_label"], df["predicted_label"], average="macro", zero_division=0)
    assert m["macro_f1"] == pytest.approx(f1)
    assert m["macro_f1"] == pytest.approx(0.5 / 3)  # F1_BUY = 2*(1/3)/(4/3) = .5, others 0
    # all six are BUY trades: returns .02 .01 .001 -.03 -.02 .015 -> 4 winners
    assert m["n_trades"] == 6 and m["win_rate"] == pytest.approx(4 / 6)
    assert m["profit_factor"] == pytest.approx(0.046 / 0.05)


def test_no_trade_and_no_loss_cases():
    hold = _fixture()
    hold["predicted_label"] = "HOLD"
    m = live_metrics(hold)
    assert m["n"] == 6 and m["n_trades"] == 0
    assert m["hit_rate"] is None and m["win_rate"] is None and m["profit_factor"] is None and m["avg_rr"] is None
    assert m["sharpe"] is None  # flat every day: zero variance
    assert m["max_drawdown"] == 0.0
    assert m["accuracy"] == pytest.approx(2 / 6)

    winners = _fixture().iloc[[0, 4]]  # +.02 and +.02 signed: no losing trade
    m = live_metrics(winners)
    assert m["profit_factor"] is None and m["avg_rr"] is None
    assert m["win_rate"] == 1.0


def test_unknown_label_rejected():
    df = _fixture()
    df.loc[0, "predicted_label"] = "STRONG_BUY"
    with pytest.raises(ValueError, match="STRONG_BUY"):
        live_metrics(df)


# --------------------------------------------------------------------------- label delay


def _preds_and_outcomes() -> tuple[pd.DataFrame, pd.DataFrame]:
    ts = pd.to_datetime(["2024-03-01 21:00", "2024-03-04 21:00", "2024-03-05 21:00", "2024-03-06 21:00"]).tz_localize(
        "UTC"
    )
    preds = _fixture().iloc[:4].drop(columns=["realized_label", "realized_return", "r_multiple", "horizon_days"])
    preds = preds.assign(ts=ts, prediction_id=[1, 2, 3, 4])
    # horizon 5 trading days: Fri 03-01 -> Fri 03-08; Mon 03-04 -> Mon 03-11; Tue 03-05 -> Tue 03-12
    outcomes = pd.DataFrame(
        {
            "prediction_id": [1, 2, 3, 4],
            "realized_label": ["BUY", "BUY", "HOLD", "SELL"],
            "realized_return": [0.02, 0.01, 0.0, -0.03],
            "r_multiple": [2.0, -1.0, 0.0, -1.5],
            "horizon_days": [5, 5, 5, 5],
            # id 4 is corrupt: stamped matured one day after its prediction
            "matured_at": pd.to_datetime(
                ["2024-03-08 21:00", "2024-03-11 21:00", "2024-03-12 21:00", "2024-03-07 21:00"]
            ).tz_localize("UTC"),
        }
    )
    return preds, outcomes


def test_prediction_never_counts_before_its_horizon():
    preds, outcomes = _preds_and_outcomes()
    assert filter_matured(preds, outcomes, "2024-03-08 20:59").empty
    # as of = exclusive window end: an outcome matured exactly at it does not count yet
    assert filter_matured(preds, outcomes, pd.Timestamp("2024-03-08 21:00", tz="UTC")).empty
    got = filter_matured(preds, outcomes, pd.Timestamp("2024-03-08 21:01", tz="UTC"))
    assert got["prediction_id"].tolist() == [1]
    got = filter_matured(preds, outcomes, "2024-03-11 21:01")  # naive as_of is UTC
    assert got["prediction_id"].tolist() == [1, 2]
    got = filter_matured(preds, outcomes, "2024-12-31")
    assert got["prediction_id"].tolist() == [1, 2, 3]  # id 4 matured "before" its horizon: rejected
    assert {"realized_label", "p_BUY", "matured_at", "horizon_days"} <= set(got.columns)
    assert live_metrics(got)["n"] == 3


def test_predictions_without_outcomes_and_no_outcome_days():
    preds, outcomes = _preds_and_outcomes()
    got = filter_matured(preds, outcomes[outcomes["prediction_id"] != 2], "2024-12-31")
    assert got["prediction_id"].tolist() == [1, 3]
    # a calendar with days that have no matured outcomes changes nothing
    df = _fixture()
    daily = daily_stats(df)
    full = daily_stats(df, days=pd.date_range("2024-03-01", "2024-03-12", freq="D"))
    assert len(daily) == 4 and len(full) == 12
    assert full.loc["2024-03-02", "n"] == 0 and math.isnan(full.loc["2024-03-02", "day_return"])
    a, b = metrics_from_daily(daily), metrics_from_daily(full)
    for key in ("accuracy", "macro_f1", "profit_factor", "sharpe", "max_drawdown", "brier", "n_days"):
        assert a[key] == pytest.approx(b[key])
    ref = live_metrics(df)
    assert a["sharpe"] == pytest.approx(ref["sharpe"]) and a["macro_f1"] == pytest.approx(ref["macro_f1"])
    # too few days with outcomes: no verdict
    cmp = compare_to_baseline(full, {"accuracy": 0.9}, "accuracy")
    assert cmp["n_days"] == 4 and cmp["degraded"] is None and cmp["status"] == "insufficient_data"
    assert cmp["live"] == pytest.approx(0.5) and cmp["rel_diff"] == pytest.approx((0.5 - 0.9) / 0.9)


# --------------------------------------------------------------------------- bootstrap


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    e = rng.normal(size=n + 50)
    x = np.zeros(n + 50)
    for t in range(1, n + 50):
        x[t] = phi * x[t - 1] + e[t]
    return x[50:]


def test_block_bootstrap_coverage_on_ar1():
    rng = np.random.default_rng(2024)
    reps, n = 200, 250
    hits = 0
    for r in range(reps):
        x = _ar1(rng, n, phi=0.3)  # true mean 0
        point, lo, hi = block_bootstrap_ci(x, np.mean, n_boot=400, seed=r)
        assert lo <= point <= hi
        hits += lo <= 0.0 <= hi
    assert 0.88 <= hits / reps <= 0.99


def test_block_bootstrap_details():
    assert default_block_length(250) == 6 and default_block_length(1000) == 10 and default_block_length(1) == 1
    x = np.arange(20, dtype=float)
    assert block_bootstrap_ci(x, np.mean, seed=1) == block_bootstrap_ci(x, np.mean, seed=1)
    assert block_bootstrap_ci(np.zeros(0), np.mean) == (None, None, None)
    assert block_bootstrap_ci(np.array([3.0]), np.mean) == (3.0, None, None)
    # a statistic that is mostly undefined gives no interval
    assert block_bootstrap_ci(x, lambda v: None)[1:] == (None, None)
    # 2-D input: rows are resampled together (ratio of sums)
    arr = np.column_stack([np.full(30, 3.0), np.full(30, 4.0)])
    assert block_bootstrap_ci(arr, lambda v: v[:, 0].sum() / v[:, 1].sum()) == pytest.approx((0.75, 0.75, 0.75))


def _daily_frame(acc: float, days: int, per_day: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * per_day
    pred = rng.choice(CLS, n)
    correct = rng.random(n) < acc
    other = np.array([[c for c in CLASSES if c != p][rng.integers(2)] for p in pred])
    real = np.where(correct, pred, other)
    ret = np.where(real == "BUY", 0.01, np.where(real == "SELL", -0.01, 0.0)) + rng.normal(0, 0.005, n)
    return pd.DataFrame(
        {
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) // per_day, unit="D"),
            "predicted_label": pred,
            "realized_label": real,
            "realized_return": ret,
            "p_SELL": 1 / 3,
            "p_HOLD": 1 / 3,
            "p_BUY": 1 / 3,
        }
    )


def test_compare_to_baseline_degraded_only_when_ci_excludes_tolerated_drop():
    base = {"accuracy": 0.60, "macro_f1": {"value": 0.60}, "win_rate": 0.6}
    bad = compare_to_baseline(_daily_frame(0.40, 120, 6, seed=1), base, "accuracy", n_boot=300)
    assert bad["live"] < 0.45 and bad["ci_high"] < bad["threshold"] == pytest.approx(0.54)
    assert bad["degraded"] is True and bad["status"] == "degraded"
    assert bad["rel_ci_high"] == pytest.approx((bad["ci_high"] - 0.6) / 0.6)

    mild = compare_to_baseline(_daily_frame(0.57, 120, 6, seed=2), base, "macro_f1", n_boot=300)
    assert mild["rel_diff"] < 0  # below baseline, but within the 10% tolerance
    assert mild["ci_low"] <= mild["live"] <= mild["ci_high"]
    assert mild["degraded"] is False and mild["status"] == "ok"

    # the same drop is "degraded" with no tolerance only if the CI excludes the baseline
    strict = compare_to_baseline(_daily_frame(0.57, 120, 6, seed=2), base, "macro_f1", tolerance_rel=0.0, n_boot=300)
    assert strict["degraded"] is (strict["ci_high"] < 0.60)

    none = compare_to_baseline(_daily_frame(0.57, 120, 6, seed=2), {}, "sharpe", n_boot=50)
    assert none["status"] == "no_baseline" and none["degraded"] is None and none["live"] is not None
    with pytest.raises(ValueError):
        compare_to_baseline(_daily_frame(0.57, 20, 6, seed=2), base, "brier")


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "hit_rate", "win_rate", "profit_factor", "sharpe"])
def test_compare_point_equals_live_metrics(metric):
    df = _daily_frame(0.55, 40, 5, seed=7)
    cmp = compare_to_baseline(daily_stats(df), {metric: 1.0}, metric, n_boot=100)
    assert cmp["live"] == pytest.approx(live_metrics(df)[metric])
    assert cmp["ci_low"] <= cmp["live"] <= cmp["ci_high"]


# --------------------------------------------------------------------------- CBPE


def test_expected_accuracy_matches_realized_for_calibrated_model():
    ref, _ = _simulate(20_000, seed=11)
    live, _ = _simulate(20_000, seed=12)
    cal = fit_calibrator(ref)
    check = calibration_check(_simulate(5_000, seed=13)[0], cal)
    assert check["reliable"] is True and check["ece"] <= 0.05
    est = estimate_performance(live.drop(columns=["realized_label", "realized_return"]), cal, check)
    realized = live_metrics(live)
    assert est["status"] == "ok" and est["n"] == 20_000
    assert abs(est["expected_accuracy"] - realized["accuracy"]) < 0.02
    assert abs(est["expected_macro_f1"] - realized["macro_f1"]) < 0.02


def test_calibrator_fixes_stable_overconfidence_and_round_trips():
    # model is overconfident (temperature 2.5) but the relation is stable: isotonic repairs it
    ref, _ = _simulate(20_000, seed=21, temp_model=2.5)
    live, _ = _simulate(20_000, seed=22, temp_model=2.5)
    raw_top = live["confidence"].mean()
    cal = Calibrator.from_dict(json.loads(json.dumps(fit_calibrator(ref).to_dict())))
    est = estimate_performance(live, cal)
    acc = live_metrics(live)["accuracy"]
    assert est["status"] == "unchecked"
    assert raw_top - acc > 0.1  # raw confidence would overstate accuracy badly
    assert abs(est["expected_accuracy"] - acc) < 0.02
    q = cal.transform(live[["p_SELL", "p_HOLD", "p_BUY"]].to_numpy())
    assert np.allclose(q.sum(axis=1), 1.0)


def test_decayed_calibration_is_flagged_unreliable():
    ref, _ = _simulate(20_000, seed=31)
    cal = fit_calibrator(ref)
    # concept drift: outcomes became much noisier than the model's probabilities say
    recent, _ = _simulate(3_000, seed=32, temp_true=0.3)
    check = calibration_check(recent, cal)
    assert check["reliable"] is False and check["ece"] > 0.05
    assert "ECE" in check["reason"]
    est = estimate_performance(recent.drop(columns=["realized_label"]), cal, check)
    assert est["status"] == "unreliable"
    assert est["expected_accuracy"] is None and est["expected_macro_f1"] is None
    # too few rows is never "reliable"
    small = calibration_check(_simulate(50, seed=33)[0], cal)
    assert small["reliable"] is False and "only 50" in small["reason"]
    assert estimate_performance(recent.iloc[:0], cal, check)["status"] == "empty"


def test_fit_calibrator_needs_rows():
    with pytest.raises(ValueError, match="at least"):
        fit_calibrator(_fixture())


# --------------------------------------------------------------------------- health


@pytest.mark.parametrize(
    ("drift", "degraded", "drop", "dq", "age", "status", "n_reasons"),
    [
        (0.05, False, 0.0, 0, 10, "healthy", 0),
        (None, None, None, 0, 0, "healthy", 0),
        (0.10, False, 0.0, 0, 10, "warning", 1),
        (0.2499, False, 0.0, 0, 10, "warning", 1),
        (0.25, False, 0.0, 0, 10, "critical", 1),
        (0.0, True, 0.2, 0, 10, "critical", 2),
        (0.0, False, 0.05, 0, 10, "healthy", 0),
        (0.0, False, 0.051, 0, 10, "warning", 1),
        (0.0, None, -0.3, 0, 10, "healthy", 0),  # better than baseline
        (0.0, False, 0.0, 1, 10, "warning", 1),
        (0.0, False, 0.0, 0, 30, "healthy", 0),
        (0.0, False, 0.0, 0, 31, "warning", 1),
        (0.0, False, 0.0, 0, 90, "warning", 1),
        (0.0, False, 0.0, 0, 91, "critical", 1),
        (0.15, False, 0.08, 2, 45, "warning", 4),
        (0.30, True, 0.08, 2, 120, "critical", 5),
    ],
)
def test_health_status_table(drift, degraded, drop, dq, age, status, n_reasons):
    got, reasons = health_status(drift, degraded, drop, dq, age)
    assert got == status
    assert len(reasons) == n_reasons
    assert all(r.startswith(("warning:", "critical:")) for r in reasons)


def test_health_status_custom_thresholds():
    t = HealthThresholds(drift_warning=0.2, perf_drop_critical=0.2, dq_failures_critical=3, age_warning_days=7)
    assert health_status(0.15, None, None, 0, 0, t) == ("healthy", [])
    assert health_status(None, None, 0.25, 0, 0, t)[0] == "critical"
    assert health_status(None, None, None, 4, 0, t)[0] == "critical"
    status, reasons = health_status(None, None, None, 0, 8, t)
    assert status == "warning" and "8 days" in reasons[0]


# --------------------------------------------------------------------------- performance_daily helpers


def _cohort_frame(rng: np.random.Generator, days: int, per_day: int, acc: float, horizon: int) -> pd.DataFrame:
    """Correctness whose daily probability is acc + a moving average of ``horizon`` daily
    shocks: neighbouring entry days share most of their outcome window, as real cohorts do."""
    shocks = rng.uniform(-1, 1, days + horizon - 1)
    p_day = acc + 0.35 * np.convolve(shocks, np.ones(horizon) / horizon, mode="valid")  # stays in (0.05, 0.75)
    correct = rng.random((days, per_day)) < p_day[:, None]
    pred = np.full(days * per_day, "BUY")
    real = np.where(correct.ravel(), "BUY", "SELL")
    return pd.DataFrame(
        {
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(days * per_day) // per_day, unit="D"),
            "predicted_label": pred,
            "realized_label": real,
            "realized_return": np.where(real == "BUY", 0.01, -0.01),
            "p_SELL": 0.3,
            "p_HOLD": 0.3,
            "p_BUY": 0.4,
            "horizon_days": horizon,
        }
    )


def test_comparison_interval_coverage_near_95_on_overlapping_cohorts():
    coverage = {}
    for mode in ("blocks", "iid"):
        rng = np.random.default_rng(5)
        reps, hits = 150, 0
        for r in range(reps):
            daily = daily_stats(_cohort_frame(rng, days=126, per_day=4, acc=0.40, horizon=5))
            block = comparison_block_length(len(daily), 5) if mode == "blocks" else 1
            cmp = compare_to_baseline(daily, {"accuracy": 0.40}, "accuracy", horizon=5, block=block, n_boot=200, seed=r)
            hits += cmp["ci_low"] <= 0.40 <= cmp["ci_high"]
        coverage[mode] = hits / reps
    assert 0.88 <= coverage["blocks"] <= 0.99  # measured 0.907 (nominal 0.95, 126 days)
    assert coverage["iid"] < coverage["blocks"]  # resampling single days ignores the overlap (0.86)


def test_comparison_block_length_covers_the_horizon():
    assert comparison_block_length(63, 5) == 5  # round(63^(1/3)) = 4 < horizon
    assert comparison_block_length(1000, 5) == 10
    assert comparison_block_length(0, 1) == 1


def test_baseline_uses_the_canonical_metric_names_only():
    df = _daily_frame(0.55, 40, 5, seed=7)
    cmp = compare_to_baseline(daily_stats(df), {"macro_f1": 0.5}, "macro_f1", n_boot=50)
    assert cmp["baseline"] == 0.5 and cmp["status"] in ("ok", "degraded")
    # the old training name is not bridged any more (migration 010 renamed stored baselines)
    old = compare_to_baseline(daily_stats(df), {"f1_macro": 0.5}, "macro_f1", n_boot=50)
    assert old["baseline"] is None and old["status"] == "no_baseline"


def test_cbpe_withholds_without_enough_fit_rows_and_vouches_when_calibrated():
    matured, _ = _simulate(2_000, seed=41)
    matured["matured_at"] = matured["ts"] + pd.Timedelta(days=7)
    unlabeled = _simulate(500, seed=42)[0].drop(columns=["realized_label", "realized_return"])
    res = estimate_label_free(matured, unlabeled, check_rows=800)
    assert res.check["n_fit"] == 1_200 and res.check["reliable"] is True and res.estimate["status"] == "ok"
    assert res.unchecked["status"] == "unchecked"
    assert res.estimate["expected_accuracy"] == res.unchecked["expected_accuracy"]
    assert abs(res.estimate["expected_accuracy"] - live_metrics(_simulate(500, seed=42)[0])["accuracy"]) < 0.05
    few = estimate_label_free(matured.iloc[:200], unlabeled)
    assert few.check == {
        "reliable": False,
        "n_fit": 74,
        "n": 126,
        "reason": "only 74 matured predictions to fit the calibrator (< 100)",
    }
    assert few.estimate["status"] == "unreliable" and few.estimate["expected_accuracy"] is None
    assert few.unchecked is few.estimate


def _cmp(**kw):
    base = {
        "metric": "accuracy",
        "live": 0.27,
        "baseline": 0.33,
        "rel_diff": (0.27 - 0.33) / 0.33,
        "ci_low": 0.22,
        "ci_high": 0.29,
        "rel_ci_high": (0.29 - 0.33) / 0.33,
        "tolerance_rel": 0.10,
        "degraded": True,
        "status": "degraded",
    }
    return {**base, **kw}


def test_degradation_decision_table():
    assert PRIMARY_METRIC == "accuracy"
    d = degradation_decision(_cmp())
    assert d.action == "raise" and d.severity == "warning" and d.score == pytest.approx(0.06 / 0.33)
    assert "[0.220, 0.290]" in d.reason
    # CI's upper end more than 2 x tolerance (20 %) below the baseline -> critical
    d = degradation_decision(_cmp(ci_high=0.25, rel_ci_high=(0.25 - 0.33) / 0.33))
    assert d.action == "raise" and d.severity == "critical"
    d = degradation_decision(_cmp(degraded=False, status="ok", live=0.40, rel_diff=0.07 / 0.33))
    assert d.action == "resolve" and d.severity is None and d.score == pytest.approx(-0.07 / 0.33)
    d = degradation_decision(_cmp(degraded=None, status="insufficient_data", live=None, rel_diff=None))
    assert d.action == "keep" and d.score is None and "insufficient_data" in d.reason


def test_trailing_period_counts_days_with_matured_outcomes():
    ts = pd.to_datetime(
        ["2024-03-01 21:00", "2024-03-01 22:00", "2024-03-04 21:00", "2024-03-08 21:00", "2024-03-11 21:00"]
    )
    df = pd.DataFrame({"ts": ts.tz_localize("UTC"), "x": range(5)})
    assert trailing_period(df, 2)["x"].tolist() == [3, 4]
    assert trailing_period(df, 4)["x"].tolist() == [0, 1, 2, 3, 4]
    assert trailing_period(df, 3)["x"].tolist() == [2, 3, 4]
    assert trailing_period(df.iloc[:0], 3).empty


def test_calibration_split_is_disjoint_and_recent_last():
    df = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=10, freq="D"), "i": range(10)})
    df["matured_at"] = df["ts"] + pd.Timedelta(days=7)
    fit, check = calibration_split(df.sample(frac=1, random_state=0), check_rows=3, fit_rows=4)
    assert check["i"].tolist() == [7, 8, 9] and fit["i"].tolist() == [3, 4, 5, 6]
    fit, check = calibration_split(df.iloc[:2], check_rows=3, fit_rows=4)
    assert fit.empty and check["i"].tolist() == [0, 1]
    # default: every row matured before the check rows
    fit, check = calibration_split(df.sample(frac=1, random_state=1), check_rows=3)
    assert fit["i"].tolist() == [0, 1, 2, 3, 4, 5, 6] and check["i"].tolist() == [7, 8, 9]


def _matured_history(n: int, seed: int, temp_model: float = 1.0) -> tuple[pd.DataFrame, np.ndarray]:
    df, p_true = _simulate(n, seed=seed, temp_model=temp_model)
    df["matured_at"] = df["ts"] + pd.Timedelta(days=7)
    return df, p_true


def test_estimator_calibrates_on_all_matured_history_before_the_check():
    from include.modelwatch.monitoring import performance as perf

    assert perf.CHECK_ROWS == 126
    matured, _ = _matured_history(2_000, seed=51)
    live, _ = _simulate(400, seed=52)
    unlabeled = live.drop(columns=["realized_label", "realized_return"])
    lfe = estimate_label_free(matured, unlabeled)
    est, unchecked, check = lfe.estimate, lfe.unchecked, lfe.check
    assert check["n_fit"] == 2_000 - 126 and check["n"] == 126 and check["reliable"] is True
    by_hand = estimate_performance(unlabeled, fit_calibrator(matured.iloc[:1_874]))["expected_accuracy"]
    assert est["status"] == "ok" and unchecked["status"] == "unchecked"
    assert est["expected_accuracy"] == pytest.approx(by_hand, abs=1e-12)
    assert unchecked["expected_accuracy"] == pytest.approx(by_hand, abs=1e-12)
    assert abs(est["expected_accuracy"] - live_metrics(live)["accuracy"]) < 0.05


def test_more_calibration_rows_give_a_closer_expected_accuracy():
    # stable but overconfident model: the calibrator is needed, and a stable map is
    # learned better from the whole history than from its last 500 rows
    errs: dict[int | None, list[float]] = {500: [], None: []}
    for seed in range(12):
        matured, _ = _matured_history(6_000, seed=100 + seed, temp_model=2.5)
        live, p_true = _simulate(400, seed=200 + seed, temp_model=2.5)
        pred = pd.Series(live["predicted_label"]).map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
        expected = p_true[np.arange(len(live)), pred].mean()  # what the accuracy is in expectation
        for rows in errs:
            fit, _ = calibration_split(matured, check_rows=126, fit_rows=rows)
            est = estimate_performance(live, fit_calibrator(fit))["expected_accuracy"]
            errs[rows].append(abs(est - expected))
    window, whole = float(np.mean(errs[500])), float(np.mean(errs[None]))
    assert whole < 0.5 * window and whole < 0.015, (window, whole)  # about 0.010 vs 0.031


def test_importance_shares():
    assert importance_shares({"a": 3.0, "b": 1.0, "c": 0.0}) == {"a": 0.75, "b": 0.25, "c": 0.0}
    assert importance_shares({"a": 0.0}) == {"a": 0.0}


def test_calibration_check_allows_for_small_sample_noise_but_flags_decay():
    cal = fit_calibrator(_simulate(20_000, seed=41)[0])
    small = _simulate(150, seed=42)[0]  # same process: calibrated
    q95 = ece_null_quantile(cal.transform(small[["p_SELL", "p_HOLD", "p_BUY"]].to_numpy()).max(axis=1))
    assert 0.05 < q95 < 0.2  # binning noise alone exceeds a fixed 0.05 limit on 150 rows
    ok = calibration_check(small, cal, min_rows=100)
    assert ok["reliable"] is True and ok["limit"] == pytest.approx(ok["ece_null_q95"])
    strict = calibration_check(small, cal, min_rows=100, null_draws=0)
    assert strict["limit"] == 0.05 and strict["reliable"] is (strict["ece"] <= 0.05)
    decayed = calibration_check(_simulate(600, seed=43, temp_true=0.2)[0], cal, min_rows=100)
    assert decayed["reliable"] is False and decayed["ece"] > decayed["limit"] and "decayed" in decayed["reason"]


# --------------------------------------------------------------------------- one evaluation window


def _window_frame() -> pd.DataFrame:
    """A loaded prediction frame (``store.load_predictions`` shape): id 0 before the window,
    ids 1..6 (the fixture) matured one business day later, id 7 matured only after the window end,
    id 8 without an outcome. Window [2024-03-04, 2024-03-09)."""
    fx = _fixture()
    day0 = pd.DataFrame(
        {
            "ts": [pd.Timestamp("2024-03-01 21:00", tz="UTC")],
            "predicted_label": ["BUY"],
            "realized_label": ["BUY"],
            "realized_return": [0.01],
            "r_multiple": [1.0],
            "p_SELL": [0.1],
            "p_HOLD": [0.2],
            "p_BUY": [0.7],
            "confidence": [0.7],
            "horizon_days": [1],
        }
    )
    late = pd.DataFrame(
        {
            "ts": [pd.Timestamp("2024-03-08 21:00", tz="UTC")] * 2,
            "predicted_label": ["BUY", "SELL"],
            "realized_label": ["BUY", None],
            "realized_return": [0.01, np.nan],
            "r_multiple": [1.0, np.nan],
            "p_SELL": [0.1, 0.6],
            "p_HOLD": [0.2, 0.3],
            "p_BUY": [0.7, 0.1],
            "confidence": [0.7, 0.6],
            "horizon_days": [1, 1],
        }
    )
    df = pd.concat([day0, fx, late], ignore_index=True)
    df["prediction_id"] = range(9)
    df["symbol"] = ["SPX", "SPX", "NDX", "SPX", "NDX", "SPX", "NDX", "SPX", "NDX"]
    df["timeframe"] = "1d"
    df["matured_at"] = [t + pd.offsets.BDay(1) for t in df["ts"]]
    df.loc[8, "matured_at"] = pd.NaT
    rng = np.random.default_rng(0)
    df["features"] = [None] + [{"f1": float(rng.normal()), "f2": float(rng.normal())} for _ in range(8)]
    return df


def test_evaluate_window_on_a_small_synthetic_frame():
    from datetime import date

    from include.modelwatch.training.training import train_model

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"f1": rng.normal(size=300), "f2": rng.normal(size=300)})
    y = np.where(X["f1"] > 0.5, "BUY", np.where(X["f1"] < -0.5, "SELL", "HOLD"))
    model = train_model("lightgbm", X, y, num_boost_round=5)
    start, end = pd.Timestamp("2024-03-04", tz="UTC"), pd.Timestamp("2024-03-09", tz="UTC")
    pending = [
        {"window_end": end - pd.Timedelta(days=7), "metric": "accuracy", "n_predictions": 2, "n_matured": 2,
         "prediction_ids": [1, 2]},
        {"window_end": end - pd.Timedelta(days=7), "metric": "accuracy", "n_predictions": 2, "n_matured": 1,
         "prediction_ids": [7, 8]},
    ]  # fmt: skip
    ev = evaluate_window(
        _window_frame(),
        start=start.to_pydatetime(),
        end=end.to_pydatetime(),
        baseline={"accuracy": 0.5},
        pending_estimates=pending,
        model=model,
        features=["f1", "f2"],
        tolerance=0.1,
        train_end=date(2024, 1, 1),
        label="toy v1",
    )
    # matured before the end: ids 0..6 (id 7 matures on 03-11, id 8 never); hits: 0, 1, 3, 5 -> 4 of 7
    assert ev.horizon == 1
    assert [(s, t) for s, t, _ in ev.snapshots] == [("*", "*"), ("NDX", "1d"), ("SPX", "1d")]
    assert ev.overall["n"] == 7
    assert ev.overall["accuracy"] == pytest.approx(4 / 7)
    by_symbol = {s: m for s, _, m in ev.snapshots}
    assert (by_symbol["SPX"]["n"], by_symbol["SPX"]["accuracy"]) == (4, 1.0)  # ids 0, 1, 3, 5
    assert (by_symbol["NDX"]["n"], by_symbol["NDX"]["accuracy"]) == (3, 0.0)  # ids 2, 4, 6
    # the window holds ids 1..8; unlabeled = those without a matured outcome as of the end
    assert ev.in_window["prediction_id"].tolist() == list(range(1, 9))
    assert ev.unlabeled["prediction_id"].tolist() == [7, 8]
    assert ev.estimate["n"] == 2 and ev.estimate["status"] == "unreliable"  # 7 matured rows: no calibrator
    # 5 entry days < MIN_DAYS: no interval, no decision; relative drop = -(4/7 - 0.5) / 0.5
    assert ev.primary["metric"] == PRIMARY_METRIC and ev.primary["status"] == "insufficient_data"
    assert ev.rel_drop == pytest.approx(-1 / 7)
    assert ev.decision.action == "keep"
    assert (ev.eval_start, ev.eval_end) == (date(2024, 3, 1), date(2024, 3, 7))
    assert ev.age == (date(2024, 3, 9) - date(2024, 1, 1)).days == 68
    # realized: the first pending estimate (ids 1, 2 -> one hit of two); the second is still waiting
    assert [(r["metric"], r["realized"], r["n"]) for r in ev.realized] == [("accuracy", 0.5, 2)]
    assert set(ev.interp) == {"f1", "f2"} and ev.interp["f1"]["rank"] == 1
    assert ev.interp["f1"]["gain"] + ev.interp["f2"]["gain"] == pytest.approx(1.0)
