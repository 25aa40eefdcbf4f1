"""Performance monitoring of models with their own class list (external models): a binary
``down``/``up`` model and a three-regime ``LOW``/``NORMAL``/``HIGH`` model, hand-computed
metrics, no trading metrics, CBPE over the model's classes, ``evaluate_window`` without a
model artifact; and the default SELL/HOLD/BUY results unchanged."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_recall_fscore_support

from include.modelwatch.monitoring.performance import (
    CLASSES,
    DAILY_COLUMNS,
    TRADING_METRICS,
    Calibrator,
    calibration_check,
    compare_to_baseline,
    daily_columns,
    daily_stats,
    degradation_decision,
    estimate_label_free,
    estimate_performance,
    evaluate_window,
    fit_calibrator,
    live_metrics,
    metrics_from_daily,
    trade_classes,
    window_interpretability,
)
from include.modelwatch.monitoring.performance.frames import prob_matrix
from include.modelwatch.monitoring.performance.store import PREDICTION_COLUMNS, prediction_columns

BINARY = ["down", "up"]
REGIMES = ["LOW", "NORMAL", "HIGH"]


def _frame(rows, classes, with_return: bool = True) -> pd.DataFrame:
    """rows: (day, predicted, realized, probabilities in ``classes`` order)."""
    df = pd.DataFrame(
        {
            "ts": pd.to_datetime([r[0] for r in rows]).tz_localize("UTC") + pd.Timedelta(hours=21),
            "predicted_label": [r[1] for r in rows],
            "realized_label": [r[2] for r in rows],
            **{f"p_{c}": [r[3][i] for r in rows] for i, c in enumerate(classes)},
            "horizon_days": 1,
        }
    )
    if with_return:
        df["realized_return"] = None  # an external model's outcomes carry no return (NULL)
    return df


def _binary() -> pd.DataFrame:
    return _frame(
        [
            ("2024-03-04", "up", "up", (0.3, 0.7)),
            ("2024-03-04", "down", "up", (0.6, 0.4)),
            ("2024-03-05", "down", "down", (0.8, 0.2)),
            ("2024-03-05", "up", "down", (0.45, 0.55)),
            ("2024-03-06", "up", "up", (0.1, 0.9)),
            ("2024-03-06", "up", "down", (0.35, 0.65)),
        ],
        BINARY,
    )


def _regimes() -> pd.DataFrame:
    return _frame(
        [
            ("2024-03-04", "NORMAL", "NORMAL", (0.2, 0.6, 0.2)),
            ("2024-03-04", "HIGH", "HIGH", (0.1, 0.3, 0.6)),
            ("2024-03-05", "LOW", "NORMAL", (0.5, 0.4, 0.1)),
            ("2024-03-05", "NORMAL", "LOW", (0.3, 0.5, 0.2)),
            ("2024-03-06", "NORMAL", "NORMAL", (0.1, 0.7, 0.2)),
        ],
        REGIMES,
    )


def _no_trading(m) -> None:
    assert m["n_trades"] == 0
    for key in TRADING_METRICS:
        assert m[key] is None, key


# --------------------------------------------------------------------------- live metrics, hand computed


def test_binary_model_hand_computed():
    m = live_metrics(_binary(), classes=BINARY)
    assert (m["n"], m["n_days"], m["horizon"]) == (6, 3, 1)
    # correct rows 1, 3, 5 -> 3/6
    assert m["accuracy"] == pytest.approx(0.5)
    # true x pred: up -> {up 2, down 1}; down -> {down 1, up 2}
    # down: predicted rows 2, 3 (TP row 3) -> P 1/2; true rows 3, 4, 6 -> R 1/3; F1 2/5
    # up  : predicted rows 1, 4, 5, 6 (TP 1, 5) -> P 1/2; true rows 1, 2, 5 -> R 2/3; F1 4/7
    assert (m["precision_down"], m["recall_down"], m["f1_down"]) == pytest.approx((0.5, 1 / 3, 0.4))
    assert (m["precision_up"], m["recall_up"], m["f1_up"]) == pytest.approx((0.5, 2 / 3, 4 / 7))
    assert (m["support_down"], m["support_up"]) == (3, 3)
    assert m["macro_precision"] == pytest.approx(0.5)
    assert m["macro_recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(17 / 35)  # (2/5 + 4/7) / 2
    # Brier, same formula as 3 classes: sum over both classes = 2 (1 - p_true)^2 per row
    # .18 + .72 + .08 + .605 + .02 + .845 = 2.45
    assert m["brier"] == pytest.approx(2.45 / 6)
    # confidence = max probability: .7 .6 .8 .55 .9 .65 -> 4.2 / 6
    assert m["avg_confidence"] == pytest.approx(0.7)
    # ECE: bin .5 (row 4, wrong) .55; bin .6 (rows 2, 6, wrong) 2 * .625; bins .7 .8 .9 correct: .3 .2 .1
    assert m["ece"] == pytest.approx((0.55 + 1.25 + 0.3 + 0.2 + 0.1) / 6)
    _no_trading(m)
    assert "precision_SELL" not in m and "f1_BUY" not in m


def test_three_regime_model_hand_computed_and_matches_sklearn():
    df = _regimes()
    m = live_metrics(df, classes=REGIMES)
    assert (m["n"], m["n_days"]) == (5, 3)
    assert m["accuracy"] == pytest.approx(0.6)  # rows 1, 2, 5
    # LOW: predicted row 3 (wrong), true row 4 -> P 0, R 0; NORMAL: predicted 1, 4, 5 (TP 1, 5), true 1, 3, 5
    # -> P 2/3, R 2/3; HIGH: row 2 only -> P 1, R 1
    assert (m["precision_LOW"], m["recall_LOW"], m["f1_LOW"]) == (0.0, 0.0, 0.0)
    assert (m["precision_NORMAL"], m["recall_NORMAL"], m["f1_NORMAL"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert (m["precision_HIGH"], m["recall_HIGH"], m["f1_HIGH"]) == (1.0, 1.0, 1.0)
    assert (m["support_LOW"], m["support_NORMAL"], m["support_HIGH"]) == (1, 3, 1)
    assert m["macro_precision"] == pytest.approx(5 / 9)
    assert m["macro_recall"] == pytest.approx(5 / 9)
    assert m["macro_f1"] == pytest.approx(5 / 9)
    prec, rec, f1, sup = precision_recall_fscore_support(
        df["realized_label"], df["predicted_label"], labels=REGIMES, zero_division=0
    )
    for i, c in enumerate(REGIMES):
        assert (m[f"precision_{c}"], m[f"recall_{c}"], m[f"f1_{c}"]) == pytest.approx((prec[i], rec[i], f1[i]))
        assert m[f"support_{c}"] == sup[i]
    # Brier: .24 + .26 + .62 + .78 + .14 = 2.04
    assert m["brier"] == pytest.approx(2.04 / 5)
    _no_trading(m)


def test_per_day_statistics_use_the_models_classes():
    cols = daily_columns(REGIMES)
    assert cols[:2] == ("n", "n_correct")
    assert cols[2:11] == tuple(f"cm_{t}_{p}" for t in REGIMES for p in REGIMES)
    daily = daily_stats(_regimes(), classes=REGIMES)
    assert list(daily.index.strftime("%Y-%m-%d")) == ["2024-03-04", "2024-03-05", "2024-03-06"]
    assert daily["n"].tolist() == [2, 2, 1]
    assert daily["cm_NORMAL_LOW"].tolist() == [0, 1, 0] and daily["cm_LOW_NORMAL"].tolist() == [0, 1, 0]
    assert daily["n_trades"].sum() == 0 and daily["day_return"].tolist() == [0.0, 0.0, 0.0]
    # the daily route gives the same numbers as the row route
    again = metrics_from_daily(daily, classes=REGIMES)
    direct = live_metrics(_regimes(), classes=REGIMES)
    assert {k: again[k] for k in again if k != "ece"} == {k: direct[k] for k in direct if k != "ece"}


def test_no_trade_classes_need_no_return_and_ignore_one():
    # no realized_return column at all
    m = live_metrics(_binary().drop(columns="realized_return"), classes=BINARY)
    assert m["accuracy"] == pytest.approx(0.5)
    _no_trading(m)
    # returns present (even NaN ones) never make trades of down/up
    df = _binary()
    df["realized_return"] = [0.01, -0.02, np.nan, 0.03, 0.01, -0.01]
    m = live_metrics(df, classes=BINARY)
    _no_trading(m)
    assert m["accuracy"] == pytest.approx(0.5) and m["brier"] == pytest.approx(2.45 / 6)
    assert trade_classes(BINARY) == () and trade_classes(REGIMES) == ()
    assert trade_classes(CLASSES) == ("SELL", "BUY")


def test_trade_classes_still_need_a_finite_return():
    # a class list with BUY/SELL keeps the native rule: a trade without a return is an error
    df = _frame(
        [("2024-03-04", "BUY", "BUY", (0.2, 0.8)), ("2024-03-05", "SELL", "BUY", (0.6, 0.4))],
        ["SELL", "BUY"],
    )
    df["realized_return"] = [0.02, np.nan]
    with pytest.raises(ValueError, match="realized_return must be finite"):
        live_metrics(df, classes=["SELL", "BUY"])
    df["realized_return"] = [0.02, 0.01]
    m = live_metrics(df, classes=["SELL", "BUY"])
    # BUY +.02 wins, SELL on +.01 loses -> hit rate 1/2, profit factor .02/.01
    assert (m["n_trades"], m["hit_rate"], m["profit_factor"]) == (2, 0.5, pytest.approx(2.0))
    # ... and a class list with trades needs the column
    with pytest.raises(ValueError, match="realized_return"):
        live_metrics(df.drop(columns="realized_return"), classes=["SELL", "BUY"])


def test_labels_and_columns_must_match_the_class_list():
    df = _binary()
    df.loc[0, "predicted_label"] = "BUY"
    with pytest.raises(ValueError, match="BUY"):
        live_metrics(df, classes=BINARY)
    with pytest.raises(ValueError, match="missing columns"):
        live_metrics(_binary(), classes=REGIMES)  # p_LOW... absent
    with pytest.raises(ValueError, match="distinct"):
        live_metrics(_binary(), classes=["up", "up"])
    with pytest.raises(ValueError, match="empty"):
        daily_columns([])
    assert prob_matrix(_binary(), BINARY).tolist()[0] == [0.3, 0.7]


def test_empty_external_frame():
    m = live_metrics(_binary().iloc[:0], classes=BINARY)
    assert m["n"] == 0 and m["accuracy"] is None and m["macro_f1"] is None
    assert "f1_up" in m and m["f1_up"] is None
    assert daily_stats(_binary().iloc[:0], classes=BINARY).empty


# --------------------------------------------------------------------------- default classes unchanged


def _native() -> pd.DataFrame:
    df = _frame(
        [
            ("2024-03-04", "BUY", "BUY", (0.1, 0.2, 0.7)),
            ("2024-03-04", "SELL", "BUY", (0.6, 0.3, 0.1)),
            ("2024-03-05", "HOLD", "HOLD", (0.2, 0.5, 0.3)),
            ("2024-03-05", "BUY", "SELL", (0.3, 0.1, 0.6)),
            ("2024-03-06", "SELL", "SELL", (0.8, 0.1, 0.1)),
        ],
        CLASSES,
    )
    df["realized_return"] = [0.02, 0.01, 0.001, -0.03, -0.02]
    return df


def test_default_class_list_is_the_native_one():
    assert daily_columns() == DAILY_COLUMNS == daily_columns(CLASSES)
    assert "cm_SELL_BUY" in DAILY_COLUMNS and len(DAILY_COLUMNS) == 2 + 9 + 12
    assert prediction_columns() == PREDICTION_COLUMNS
    assert [c for c in PREDICTION_COLUMNS if c.startswith("p_")] == ["p_SELL", "p_HOLD", "p_BUY"]
    assert [c for c in prediction_columns(BINARY) if c.startswith("p_")] == ["p_down", "p_up"]
    assert live_metrics(_native()) == live_metrics(_native(), classes=CLASSES)
    m = live_metrics(_native())
    assert m["n_trades"] == 4 and m["hit_rate"] == pytest.approx(0.5) and m["max_drawdown"] is not None


def test_class_order_changes_no_number():
    a = live_metrics(_native())
    b = live_metrics(_native(), classes=["BUY", "HOLD", "SELL"])
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k]) if a[k] is not None else b[k] is None, k


# --------------------------------------------------------------------------- live vs backtest


def _regime_days(n_days: int, seed: int = 0) -> pd.DataFrame:
    """Four regime predictions per business day, about 60 % right."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2024-01-01", periods=n_days)
    n = 4 * n_days
    true = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < 0.6, true, (true + 1 + rng.integers(0, 2, n)) % 3)
    p = np.full((n, 3), 0.2)
    p[np.arange(n), pred] = 0.6
    cls = np.array(REGIMES)
    df = pd.DataFrame(
        {
            "ts": np.repeat(days, 4).tz_localize("UTC") + pd.Timedelta(hours=21),
            "predicted_label": cls[pred],
            "realized_label": cls[true],
            "realized_return": np.nan,
            "horizon_days": 1,
        }
    )
    for i, c in enumerate(REGIMES):
        df[f"p_{c}"] = p[:, i]
    return df


def test_external_comparisons_without_trading_baselines_are_no_baseline():
    df = _regime_days(20)
    baseline = {"accuracy": 0.5, "macro_f1": 0.5}  # an external baseline: no trading metrics
    acc = compare_to_baseline(df, baseline, "accuracy", 0.1, n_boot=200, classes=REGIMES)
    assert acc["live"] == pytest.approx(live_metrics(df, classes=REGIMES)["accuracy"])
    assert acc["n_days"] == 20 and acc["status"] in ("ok", "degraded") and acc["ci_low"] is not None
    for metric in ("hit_rate", "profit_factor", "sharpe"):
        c = compare_to_baseline(df, baseline, metric, 0.1, n_boot=200, classes=REGIMES)
        assert (c["status"], c["live"], c["baseline"], c["degraded"]) == ("no_baseline", None, None, None)
        assert (c["ci_low"], c["ci_high"], c["rel_diff"]) == (None, None, None)
        d = degradation_decision(c)
        assert (d.action, d.score) == ("keep", None) and "no_baseline" in d.reason
    # a trading baseline the model cannot have a live value for: undecidable, never degraded
    c = compare_to_baseline(df, {"profit_factor": 1.2}, "profit_factor", 0.1, n_boot=200, classes=REGIMES)
    assert (c["status"], c["live"], c["baseline"], c["degraded"]) == ("insufficient_data", None, 1.2, None)


def test_missing_baseline_is_no_baseline_for_the_native_model_too():
    c = compare_to_baseline(_native(), {"accuracy": 0.5}, "profit_factor", 0.1, n_boot=50)
    assert (c["status"], c["baseline"], c["degraded"]) == ("no_baseline", None, None)
    assert c["live"] == pytest.approx(live_metrics(_native())["profit_factor"])


# --------------------------------------------------------------------------- label-free estimate


def test_estimate_performance_binary_hand_computed():
    # identity calibration maps: q = p
    cal = Calibrator(x={"down": [0.0, 1.0], "up": [0.0, 1.0]}, y={"down": [0.0, 1.0], "up": [0.0, 1.0]}, n_fit=0)
    assert cal.classes == ("down", "up")
    unlabeled = pd.DataFrame(
        {"predicted_label": ["up", "down", "up"], "p_down": [0.3, 0.6, 0.1], "p_up": [0.7, 0.4, 0.9]}
    )
    est = estimate_performance(unlabeled, cal, classes=BINARY)
    assert est["status"] == "unchecked" and est["n"] == 3
    assert est["expected_accuracy"] == pytest.approx(2.2 / 3)  # .7 + .6 + .9
    # expected confusion (true x pred): down->down .6, up->down .4, down->up .4, up->up 1.6
    assert est["expected_f1_down"] == pytest.approx(0.6)
    assert est["expected_f1_up"] == pytest.approx(0.8)
    assert est["expected_macro_f1"] == pytest.approx(0.7)
    assert est["expected_macro_precision"] == pytest.approx(0.7)
    assert "expected_f1_BUY" not in est
    with pytest.raises(ValueError, match="calibrator fitted on classes"):
        estimate_performance(unlabeled, cal)  # default classes: not this calibrator's
    empty = estimate_performance(unlabeled.iloc[:0], cal, classes=BINARY)
    assert empty["status"] == "empty" and set(k for k in empty if k.startswith("expected_f1_")) == {
        "expected_f1_down",
        "expected_f1_up",
    }


def _simulated_binary(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p_up = rng.uniform(0.05, 0.95, n)
    up = rng.random(n) < p_up  # calibrated by construction
    return pd.DataFrame(
        {
            "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) // 10, unit="D"),
            "predicted_label": np.where(p_up > 0.5, "up", "down"),
            "p_down": 1 - p_up,
            "p_up": p_up,
            "realized_label": np.where(up, "up", "down"),
            "realized_return": np.nan,
        }
    )


def test_calibrator_on_a_binary_model():
    ref, recent, live = _simulated_binary(5000, 1), _simulated_binary(2000, 2), _simulated_binary(5000, 3)
    cal = fit_calibrator(ref, classes=BINARY)
    assert cal.classes == ("down", "up") and cal.n_fit == 5000
    q = cal.transform(prob_matrix(live, BINARY))
    assert q.shape == (5000, 2) and np.allclose(q.sum(axis=1), 1.0)
    check = calibration_check(recent, cal, classes=BINARY)
    assert check["reliable"] is True
    est = estimate_performance(live.drop(columns="realized_label"), cal, check, classes=BINARY)
    realized = live_metrics(live, classes=BINARY)
    assert est["status"] == "ok"
    assert abs(est["expected_accuracy"] - realized["accuracy"]) < 0.02
    assert abs(est["expected_macro_f1"] - realized["macro_f1"]) < 0.02
    lfe = estimate_label_free(ref, live.drop(columns="realized_label").iloc[:50], classes=BINARY)
    assert lfe.check["n_fit"] == 5000 - 126 and lfe.estimate["n"] == 50
    assert set(lfe.unchecked) >= {"expected_f1_down", "expected_f1_up"}
    with pytest.raises(ValueError, match="fitted on classes"):
        calibration_check(recent, cal)  # SELL/HOLD/BUY against a down/up calibrator


# --------------------------------------------------------------------------- one window, no artifact


def _external_window_frame() -> pd.DataFrame:
    """``store.load_predictions`` shape for a binary external model: ids 0..5 over the
    business days 03-01..03-08 matured one business day later, id 6 without an outcome;
    every realized_return NULL."""
    rows = [
        ("2024-03-01", "SPX", "up", "up", 0.7),  # before the window
        ("2024-03-04", "SPX", "up", "up", 0.8),
        ("2024-03-04", "NDX", "down", "up", 0.4),
        ("2024-03-05", "SPX", "down", "down", 0.3),
        ("2024-03-06", "NDX", "up", "down", 0.6),
        ("2024-03-07", "SPX", "up", "up", 0.9),
        ("2024-03-08", "NDX", "down", None, 0.2),  # not matured
    ]
    df = pd.DataFrame(
        {
            "prediction_id": range(len(rows)),
            "ts": pd.to_datetime([r[0] for r in rows]).tz_localize("UTC") + pd.Timedelta(hours=21),
            "symbol": [r[1] for r in rows],
            "timeframe": "1d",
            "predicted_label": [r[2] for r in rows],
            "confidence": [max(r[4], 1 - r[4]) for r in rows],
            "realized_label": [r[3] for r in rows],
            "realized_return": np.nan,
            "r_multiple": np.nan,
            "horizon_days": [1] * 6 + [None],
            "p_down": [1 - r[4] for r in rows],
            "p_up": [r[4] for r in rows],
            "features": [None] + [{"x": float(i)} for i in range(1, len(rows))],
        }
    )
    df["matured_at"] = [t + pd.offsets.BDay(1) for t in df["ts"]]
    df.loc[6, "matured_at"] = pd.NaT
    return df


def test_evaluate_window_external_model_without_artifact():
    start, end = pd.Timestamp("2024-03-04", tz="UTC"), pd.Timestamp("2024-03-09", tz="UTC")
    pending = [
        {"window_end": end - pd.Timedelta(days=7), "metric": "macro_f1", "n_predictions": 2, "n_matured": 2,
         "prediction_ids": [1, 2]},
    ]  # fmt: skip
    ev = evaluate_window(
        _external_window_frame(),
        start=start.to_pydatetime(),
        end=end.to_pydatetime(),
        baseline={"accuracy": 0.6, "macro_f1": 0.6},
        pending_estimates=pending,
        model=None,
        features=["x"],
        tolerance=0.1,
        train_end=date(2024, 1, 1),
        label="ext v1",
        classes=BINARY,
        n_boot=200,
        min_days=3,
    )
    # matured before the end: ids 0..5 (the last, Thu 03-07, on Fri 03-08); hits: ids 0, 1, 3, 5 -> 4 of 6
    o = ev.overall
    assert (o["n"], o["n_days"], o["accuracy"]) == (6, 5, pytest.approx(4 / 6))
    # down: predicted 2, 3 (TP 3) -> P 1/2; true 3, 4 -> R 1/2. up: predicted 0, 1, 4, 5 (TP 0, 1, 5) -> P 3/4;
    # true 0, 1, 2, 5 -> R 3/4
    assert (o["f1_down"], o["f1_up"], o["macro_f1"]) == pytest.approx((0.5, 0.75, 0.625))
    assert (o["support_down"], o["support_up"]) == (2, 4)
    _no_trading(o)
    by_symbol = {s: m for s, _, m in ev.snapshots}
    assert (by_symbol["SPX"]["n"], by_symbol["SPX"]["accuracy"]) == (4, 1.0)  # ids 0, 1, 3, 5
    assert (by_symbol["NDX"]["n"], by_symbol["NDX"]["accuracy"]) == (2, 0.0)  # ids 2, 4
    cmp = {c["metric"]: c for c in ev.comparisons}
    assert ev.primary["metric"] == "accuracy" and cmp["accuracy"]["baseline"] == 0.6
    assert cmp["accuracy"]["live"] == pytest.approx(4 / 6) and cmp["accuracy"]["status"] in ("ok", "degraded")
    assert ev.rel_drop == pytest.approx(-(4 / 6 - 0.6) / 0.6)
    for metric in ("hit_rate", "profit_factor", "sharpe"):
        assert (cmp[metric]["status"], cmp[metric]["live"], cmp[metric]["degraded"]) == ("no_baseline", None, None)
    assert ev.interp == {}  # no artifact: no interpretability
    assert ev.unlabeled["prediction_id"].tolist() == [6]
    assert ev.estimate["status"] == "unreliable" and "expected_f1_up" in ev.estimate
    # realized macro F1 of ids 1 (up/up) and 2 (down/up): up P 1 R 1/2 F1 2/3, down P 0 -> (2/3 + 0) / 2
    assert [(r["metric"], r["n"]) for r in ev.realized] == [("macro_f1", 2)]
    assert ev.realized[0]["realized"] == pytest.approx(1 / 3)
    assert (ev.eval_start, ev.eval_end) == (date(2024, 3, 1), date(2024, 3, 7))


def test_no_model_no_interpretability():
    assert window_interpretability(None, ["x", "y"], [{"x": 1.0, "y": 2.0}]) == {}
