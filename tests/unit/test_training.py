"""Purged walk-forward splits, boosters (LightGBM / XGBoost), serialization and metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.modelwatch.data.features import FEATURE_COLUMNS, compute_features, make_labels
from include.modelwatch.data.market import load_arch_bars
from include.modelwatch.training.training import (
    balanced_sample_weights,
    classification_metrics,
    deserialize_model,
    feature_importance_gain,
    predict_proba,
    purged_walk_forward_splits,
    serialize_model,
    sha256_bytes,
    shap_contributions,
    trading_metrics,
    train_model,
    walk_forward_evaluate,
)
from include.modelwatch.vocabulary import CLASSES

ALGOS = ["lightgbm", "xgboost"]


@pytest.fixture(scope="module")
def spx_dates() -> pd.DatetimeIndex:
    return pd.DatetimeIndex(load_arch_bars("SPX")["date"])


@pytest.fixture(scope="module")
def toy() -> tuple[pd.DataFrame, np.ndarray]:
    """x0 decides the class (SELL < -0.5 < HOLD < 0.5 < BUY) up to 10% label noise; x1..x3 are noise."""
    rng = np.random.default_rng(7)
    n = 900
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["x0", "x1", "x2", "x3"])
    y = np.where(X["x0"] < -0.5, "SELL", np.where(X["x0"] > 0.5, "BUY", "HOLD")).astype(object)
    flip = rng.random(n) < 0.1
    y[flip] = rng.choice(CLASSES, flip.sum())
    return X, y


# --------------------------------------------------------------------------- splits


def test_splits_hand_example():
    dates = pd.bdate_range("2024-01-01", periods=20)
    folds = purged_walk_forward_splits(dates, n_splits=3, horizon=2, embargo=1)
    assert [te.tolist() for _, te in folds] == [list(range(5, 10)), list(range(10, 15)), list(range(15, 20))]
    assert folds[0][0].tolist() == [0, 1, 2]  # 3 and 4 purged: their windows reach bar 5
    assert folds[1][0].tolist() == list(range(8))
    assert folds[2][0].tolist() == list(range(10)) + [11, 12]  # bar 10 embargoed after fold 0's test block


def _check_folds(dates: pd.DatetimeIndex, folds, horizon: int, embargo: int) -> None:
    uniq = dates.unique().sort_values()
    pos = uniq.get_indexer(dates)
    prev_train: set[int] = set()
    embargoed: set[int] = set()
    for tr, te in folds:
        test_pos = pos[te]
        a, b = test_pos.min(), test_pos.max()
        assert set(test_pos) == set(range(a, b + 1))  # contiguous block, all rows of its dates
        # no training label window [p, p + horizon] overlaps the test span [a, b]
        train_pos = pos[tr]
        assert not np.any((train_pos + horizon >= a) & (train_pos <= b))
        assert not set(train_pos) & embargoed
        assert prev_train <= set(tr.tolist())  # expanding
        prev_train = set(tr.tolist())
        embargoed |= set(range(b + 1, b + 1 + embargo))


@settings(max_examples=30, deadline=None)
@given(n_splits=st.integers(1, 8), horizon=st.integers(0, 21), embargo=st.integers(0, 21))
def test_no_train_label_window_overlaps_test_real_dates(spx_dates, n_splits, horizon, embargo):
    d = spx_dates[:1500]
    folds = purged_walk_forward_splits(d, n_splits, horizon, embargo)
    assert len(folds) == n_splits
    _check_folds(d, folds, horizon, embargo)
    covered = np.concatenate([te for _, te in folds])
    assert covered.tolist() == list(range(len(d) - covered.size, len(d)))


def test_panel_with_repeated_dates_and_unsorted_rows(spx_dates):
    d = spx_dates[:400]
    panel = pd.DatetimeIndex(np.concatenate([d, d]))[np.random.default_rng(0).permutation(800)]
    folds = purged_walk_forward_splits(panel, n_splits=3, horizon=5, embargo=3, min_train_size=100)
    _check_folds(panel, folds, 5, 3)
    tr0, te0 = folds[0]
    assert te0.size == 2 * 100 and tr0.size == 2 * 95  # first test block: 100 dates after the first 100


def test_splits_errors():
    d = pd.bdate_range("2024-01-01", periods=10)
    with pytest.raises(ValueError, match="empty training set"):
        purged_walk_forward_splits(d, n_splits=4, horizon=5, embargo=0)
    with pytest.raises(ValueError, match="too few"):
        purged_walk_forward_splits(d[:3], n_splits=4, horizon=0)


# --------------------------------------------------------------------------- models


def test_balanced_weights():
    w = balanced_sample_weights(np.array([0, 0, 0, 1, 2, 2]))
    assert w.tolist() == pytest.approx([6 / 9, 6 / 9, 6 / 9, 2.0, 1.0, 1.0])
    assert w.sum() == pytest.approx(6)


@pytest.mark.parametrize("algo", ALGOS)
def test_train_predict_class_order_and_determinism(toy, algo):
    X, y = toy
    m1 = train_model(algo, X, y, params={"num_boost_round": 40}, seed=3)
    m2 = train_model(algo, X, y, num_boost_round=40, seed=3)
    probe = pd.DataFrame({"x0": [-2.0, 0.0, 2.0], "x1": 0.0, "x2": 0.0, "x3": 0.0})
    p = predict_proba(m1, probe)
    assert p.shape == (3, 3) and np.allclose(p.sum(axis=1), 1.0)
    assert np.argmax(p, axis=1).tolist() == [0, 1, 2]  # SELL, HOLD, BUY columns
    assert serialize_model(m1) == serialize_model(m2)
    assert np.array_equal(predict_proba(m1, X), predict_proba(m2, X))
    # column order of X does not matter for a DataFrame
    assert np.array_equal(predict_proba(m1, X[["x3", "x2", "x1", "x0"]]), predict_proba(m1, X))
    with pytest.raises(ValueError, match="lacks feature"):
        predict_proba(m1, X.drop(columns=["x2"]))


@pytest.mark.parametrize("algo", ALGOS)
def test_warm_start_continues_boosting(toy, algo):
    X, y = toy
    base = train_model(algo, X.iloc[:600], y[:600], num_boost_round=20)
    more = train_model(algo, X.iloc[600:], y[600:], num_boost_round=15, init_model=base)
    if algo == "lightgbm":
        assert base.num_trees() == 20 * 3 and more.num_trees() == 35 * 3
    else:
        assert base.num_boosted_rounds() == 20 and more.num_boosted_rounds() == 35
    assert not np.array_equal(predict_proba(base, X), predict_proba(more, X))
    # the init model is not modified
    assert serialize_model(base) == serialize_model(deserialize_model(serialize_model(base)))
    with pytest.raises(ValueError, match="init_model is"):
        train_model("xgboost" if algo == "lightgbm" else "lightgbm", X, y, num_boost_round=2, init_model=base)


@pytest.mark.parametrize("algo", ALGOS)
def test_serialization_round_trip_is_bit_identical(toy, algo):
    X, y = toy
    m = train_model(algo, X, y, num_boost_round=30)
    blob = serialize_model(m)
    m2 = deserialize_model(blob)
    assert np.array_equal(predict_proba(m, X), predict_proba(m2, X))
    assert serialize_model(m2) == blob
    assert sha256_bytes(blob) == sha256_bytes(serialize_model(m2)) and len(sha256_bytes(blob)) == 64
    assert sha256_bytes(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(ValueError, match="not a serialized"):
        deserialize_model(b"pickle?")


@pytest.mark.parametrize("algo", ALGOS)
def test_importance_and_shap(toy, algo):
    X, y = toy
    m = train_model(algo, X, y, num_boost_round=30)
    gain = feature_importance_gain(m, ["x0", "x1", "x2", "x3", "unused"])
    assert list(gain) == ["x0", "x1", "x2", "x3", "unused"] and gain["unused"] == 0.0
    assert max(gain, key=gain.get) == "x0"
    shap = shap_contributions(m, X)
    assert shap.shape == (4,) and np.argmax(shap) == 0 and (shap >= 0).all()


def test_native_contributions_layout_adds_up(toy):
    """The (class, feature+bias) reshape used by shap_contributions reproduces the raw scores."""
    import xgboost as xgb

    X, y = toy
    lgbm = train_model("lightgbm", X, y, num_boost_round=10)
    c = np.asarray(lgbm.predict(X, pred_contrib=True)).reshape(len(X), 3, 5)
    assert np.allclose(c.sum(axis=2), lgbm.predict(X, raw_score=True))
    xg = train_model("xgboost", X, y, num_boost_round=10)
    dm = xgb.DMatrix(X)
    c = np.asarray(xg.predict(dm, pred_contribs=True)).reshape(len(X), 3, 5)
    assert np.allclose(c.sum(axis=2), xg.predict(dm, output_margin=True), atol=1e-5)


def test_walk_forward_on_real_spx():
    bars = load_arch_bars("SPX")
    df = compute_features(bars).join(make_labels(bars)).loc["2000-01-01":"2003-12-31"]
    df = df.dropna(subset=FEATURE_COLUMNS + ["label"])
    res = walk_forward_evaluate(
        df[FEATURE_COLUMNS], df["label"].to_numpy(), df.index, n_splits=3, horizon=5, embargo=5, num_boost_round=30
    )
    assert len(res.folds) == 3 and res.train_seconds > 0
    assert res.oof.index.is_unique and res.oof.index.isin(df.index).all()
    assert res.oof["date"].min() > df.index[len(df) // 4 - 1]  # only held-out periods
    assert np.allclose(res.proba.sum(axis=1), 1.0)
    assert [c for c in res.oof.columns if c.startswith("p")] == ["p_SELL", "p_HOLD", "p_BUY"]  # the one vocabulary
    for f in res.folds:
        assert f["train_end"] < f["test_start"] - pd.Timedelta(days=5)
    m = classification_metrics(res.oof["y_true"], res.oof["y_pred"], res.proba)
    assert 0 <= m["accuracy"] <= 1 and m["n"] == len(res.oof)


# --------------------------------------------------------------------------- metrics

LABELS = ["BUY", "SELL", "HOLD", "BUY", "SELL"]
RETURNS = [0.02, 0.01, 0.05, -0.01, -0.03]


def test_trading_metrics_hand_computed():
    days = pd.bdate_range("2024-01-01", periods=5)
    m = trading_metrics(LABELS, RETURNS, risk_units=[0.01] * 5, entry_dates=days)
    # trade pnl: +0.02, -0.01, (HOLD), -0.01, +0.03
    assert m["n_predictions"] == 5 and m["n_trades"] == 4
    assert m["hit_rate"] == 0.5 and m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(0.05 / 0.02)
    assert m["avg_rr"] == pytest.approx(0.025 / 0.01)
    assert m["avg_r_multiple"] == pytest.approx((2 - 1 - 1 + 3) / 4)
    # daily series 0.02, -0.01, 0, -0.01, 0.03: mean 0.006, sample var 0.00132 / 4
    assert m["sharpe"] == pytest.approx(0.006 / math.sqrt(0.00132 / 4) * math.sqrt(252))
    # equity peaks at e^0.02 (day 1), falls to e^0 (day 4)
    assert m["max_drawdown"] == pytest.approx(1 - math.exp(-0.02))
    assert m["total_return"] == pytest.approx(math.exp(0.03) - 1)


def test_trading_metrics_cost_separates_hit_and_win_rate():
    m = trading_metrics(LABELS, RETURNS, cost=0.025)
    # pnl: -0.005, -0.035, -0.035, +0.005
    assert m["hit_rate"] == 0.5 and m["win_rate"] == 0.25
    assert m["profit_factor"] == pytest.approx(0.005 / 0.075)
    assert math.isnan(m["avg_r_multiple"])


def test_trading_metrics_same_day_trades_are_summed_and_edge_cases():
    d = pd.to_datetime(["2024-01-02", "2024-01-02", "2024-01-03"])
    m = trading_metrics(["BUY", "SELL", "BUY"], [0.01, 0.01, 0.02], entry_dates=d)
    # daily: 0.01 - 0.01 = 0, then 0.02 -> mean 0.01, sd sqrt(0.0002)
    assert m["sharpe"] == pytest.approx(0.01 / math.sqrt(0.0002) * math.sqrt(252))
    none = trading_metrics(["HOLD", "HOLD"], [0.01, -0.02])
    assert none["n_trades"] == 0 and math.isnan(none["hit_rate"]) and math.isnan(none["profit_factor"])
    assert none["max_drawdown"] == 0.0
    allwin = trading_metrics(["BUY", "SELL"], [0.01, -0.02])
    assert allwin["profit_factor"] == math.inf and math.isnan(allwin["avg_rr"])
    with pytest.raises(ValueError, match="NaN"):
        trading_metrics(["BUY"], [float("nan")])


def test_classification_metrics_hand_computed():
    y_true = ["SELL", "SELL", "HOLD", "BUY", "BUY", "BUY"]
    y_pred = ["SELL", "HOLD", "HOLD", "BUY", "SELL", "BUY"]
    proba = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.3, 0.6, 0.1],
            [0.2, 0.5, 0.3],
            [0.1, 0.1, 0.8],
            [0.5, 0.1, 0.4],
            [0.0, 0.4, 0.6],
        ]
    )
    m = classification_metrics(y_true, y_pred, proba)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # precision S 1/2, H 1/2, B 2/2; recall S 1/2, H 1/1, B 2/3
    assert m["macro_precision"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert m["macro_recall"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    f1 = {"SELL": 0.5, "HOLD": 2 * 0.5 * 1 / 1.5, "BUY": 2 * 1 * (2 / 3) / (1 + 2 / 3)}
    for c, v in f1.items():
        assert m[f"f1_{c}"] == pytest.approx(v)
    assert m["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    p_true = [0.7, 0.3, 0.5, 0.8, 0.4, 0.6]
    assert m["log_loss"] == pytest.approx(-sum(math.log(p) for p in p_true) / 6)
    brier_rows = [
        0.3**2 + 0.2**2 + 0.1**2,
        0.7**2 + 0.6**2 + 0.1**2,
        0.2**2 + 0.5**2 + 0.3**2,
        0.1**2 + 0.1**2 + 0.2**2,
        0.5**2 + 0.1**2 + 0.6**2,
        0.0**2 + 0.4**2 + 0.4**2,
    ]
    assert m["brier"] == pytest.approx(sum(brier_rows) / 6)


def test_classification_metrics_agree_with_sklearn():
    from sklearn.metrics import f1_score, log_loss, precision_score, recall_score

    rng = np.random.default_rng(1)
    yt = rng.choice(CLASSES, 200)
    yp = rng.choice(CLASSES, 200)
    pr = rng.dirichlet([1, 1, 1], 200)
    m = classification_metrics(yt, yp, pr)
    kw = {"labels": CLASSES, "average": "macro", "zero_division": 0}
    assert m["macro_precision"] == pytest.approx(precision_score(yt, yp, **kw))
    assert m["macro_recall"] == pytest.approx(recall_score(yt, yp, **kw))
    assert m["macro_f1"] == pytest.approx(f1_score(yt, yp, **kw))
    codes = np.array([CLASSES.index(c) for c in yt])  # sklearn orders string labels alphabetically
    assert m["log_loss"] == pytest.approx(log_loss(codes, pr, labels=[0, 1, 2]))


def test_macro_auc_ovr_equals_sklearn_and_needs_two_classes() -> None:
    from sklearn.metrics import roc_auc_score

    from include.modelwatch.training.training import CLASSES, classification_metrics, macro_auc_ovr

    rng = np.random.default_rng(4)
    y = rng.choice(CLASSES, size=300)
    raw = rng.random((300, 3)) + 0.5 * (y[:, None] == np.array(CLASSES)[None, :])
    proba = np.round(raw / raw.sum(axis=1, keepdims=True), 2)  # rounding makes ties
    proba[:, 2] = 1.0 - proba[:, 0] - proba[:, 1]
    order = np.argsort(CLASSES)  # sklearn wants sorted labels, columns to match
    expected = roc_auc_score(
        y, proba[:, order], multi_class="ovr", average="macro", labels=list(np.array(CLASSES)[order])
    )
    assert abs(macro_auc_ovr(y, proba) - expected) < 1e-12
    assert 0.6 < expected < 0.99
    m = classification_metrics(y, np.array(CLASSES)[proba.argmax(axis=1)], proba)
    assert m["roc_auc_ovr"] == macro_auc_ovr(y, proba)
    assert np.isnan(macro_auc_ovr(np.array(["BUY"] * 5), proba[:5]))


def test_classification_metrics_use_the_canonical_macro_names():
    from include.modelwatch.vocabulary import MACRO_METRICS

    m = classification_metrics(["BUY", "SELL", "HOLD"], ["BUY", "HOLD", "HOLD"])
    assert set(MACRO_METRICS) <= set(m) and not {"f1_macro", "precision_macro", "recall_macro"} & set(m)
    assert m["macro_recall"] == pytest.approx(2 / 3)


def test_train_time_is_sent_in_milliseconds():
    """Defect 2: a statsd timer takes milliseconds; 2.5 s of training must read 2500 ms."""
    from include.modelwatch.metrics import get_metrics
    from include.modelwatch.training.candidate import record_train_time

    record_train_time("spx_signal", "lightgbm", 2.5)
    assert get_metrics().sent[-1] == "modelwatch.retrain.train_seconds.spx_signal.lightgbm:2500|ms"


# --------------------------------------------------------------------------- one candidate of a trigger (no Airflow)


def _evaluation(model=None):
    from include.modelwatch.training.candidate import CandidateEvaluation
    from include.modelwatch.training.gates import GateSummary

    return CandidateEvaluation(
        model=model,
        results=[],
        summary=GateSummary("review", ("business",), ("calibration",)),
        oos_accuracy=0.61234,
        oos_candidate={"sharpe": 1.0},
        oos_champion={"sharpe": 0.5},
        baseline={"accuracy": 0.55},
        baseline_period=(None, None, 0),
        importance={"x0": 3.0},
        profile={"n_rows": 10},
    )


def test_candidate_algorithm_and_job_params():
    from include.modelwatch.training.candidate import algorithm_named, job_params
    from include.modelwatch.training.dataset import SplitSettings

    assert algorithm_named("spx_signal", "xgboost") == "xgboost"
    expected = r"spx_signal: unknown algorithm 'catboost'; expected one of \['lightgbm', 'xgboost'\]"
    with pytest.raises(ValueError, match=expected):
        algorithm_named("spx_signal", "catboost")
    split = SplitSettings(eval_sessions=40, embargo=3, shuffle_labels=True)
    assert job_params(num_boost_round="20", retrain_mode="incremental", split=split) == {
        "num_boost_round": 20,
        "retrain_mode": "incremental",
        "embargo": 3,
        "eval_sessions": 40,
        "shuffle_labels": True,
    }


def test_candidate_records_and_summary():
    from include.modelwatch.training.candidate import candidate_result, job_error, job_metrics, summary_line

    ev = _evaluation()
    info = {"eval_start": "2020-01-02", "eval_end": "2020-06-30"}
    assert job_metrics(ev, info) == {"oos_accuracy": 0.61234, "gates": "review", **info}
    assert candidate_result(ev, algorithm="xgboost", job_id=7, version=3, champion_version=2) == {
        "algorithm": "xgboost",
        "job_id": 7,
        "version": 3,
        "status": "review",
        "failing": ["business"],
        "borderline": ["calibration"],
        "oos_accuracy": 0.61234,
        "champion_version": 2,
    }
    assert job_error(ValueError("x" * 2000)) == ("ValueError: " + "x" * 2000)[:1000]
    assert summary_line(ev, algorithm="xgboost", label="spx_signal v3", info=info, seconds=12.34) == (
        "xgboost candidate spx_signal v3 (status candidate): out-of-sample accuracy 0.6123 on 2020-01-02..2020-06-30; "
        f"gates -> review ({ev.summary.message}); trained in 12.3 s"
    )


def test_candidate_registration_fields(toy):
    from include.modelwatch.training.candidate import registration
    from include.modelwatch.training.dataset import fingerprint

    X, y = toy
    model = train_model("lightgbm", X, y, num_boost_round=5)
    train = pd.DataFrame(0.5, index=range(4), columns=list(FEATURE_COLUMNS)).assign(
        symbol="SPX", date=pd.date_range("2020-01-01", periods=4), label=["BUY", "SELL", "HOLD", "BUY"]
    )
    fields = registration(
        _evaluation(model),
        train,
        params={"embargo": 3},
        champion_params={"symbols": ["SPX"], "embargo": 5},
        trigger_id=9,
        horizon=5,
    )
    assert predict_proba(deserialize_model(fields["artifact"]), X.iloc[:3]).shape == (3, 3)
    assert fields["params"] == {"symbols": ["SPX"], "embargo": 3, "trigger_id": 9}
    assert (str(fields["train_start"]), str(fields["train_end"])) == ("2020-01-01", "2020-01-04")
    assert fields["dataset_fingerprint"] == fingerprint(train) and fields["horizon_days"] == 5
    assert fields["metrics"] == {
        "walk_forward": {"accuracy": 0.55},
        "out_of_sample": {"candidate": {"sharpe": 1.0}, "champion": {"sharpe": 0.5}},
        "gates": "review",
        "train_rows": 4,
    }
    assert fields["classes"] == list(CLASSES) and fields["feature_importance"] == {"x0": 3.0}


# --------------------------------------------------------------------------- any class list (2 classes)

TWO = ("LOW", "HIGH")


@pytest.fixture(scope="module")
def toy2() -> tuple[pd.DataFrame, np.ndarray]:
    """x0 > 0 is HIGH up to 10% label noise; x1, x2 are noise."""
    rng = np.random.default_rng(11)
    n = 600
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x0", "x1", "x2"])
    y = np.where(X["x0"] > 0, "HIGH", "LOW").astype(object)
    flip = rng.random(n) < 0.1
    y[flip] = np.where(y[flip] == "HIGH", "LOW", "HIGH")
    return X, y


@pytest.mark.parametrize("algo", ALGOS)
def test_two_class_model_trains_predicts_and_round_trips(toy2, algo):
    from include.modelwatch.training.training import model_num_classes, predict_labels, row_contributions

    X, y = toy2
    m = train_model(algo, X, y, num_boost_round=25, classes=TWO)
    assert model_num_classes(m) == 2
    if algo == "lightgbm":
        assert m.num_trees() == 25 * 2  # a 2-class softmax, not a binary objective
    p = predict_proba(m, X)  # the model knows it has 2 classes
    assert p.shape == (len(X), 2) and np.allclose(p.sum(axis=1), 1.0)
    probe = pd.DataFrame({"x0": [-2.0, 2.0], "x1": 0.0, "x2": 0.0})
    assert predict_labels(predict_proba(m, probe), TWO).tolist() == ["LOW", "HIGH"]
    assert np.mean(predict_labels(p, TWO) == y) > 0.8
    blob = serialize_model(m)
    m2 = deserialize_model(blob)
    assert model_num_classes(m2) == 2
    assert np.array_equal(predict_proba(m2, X), p)  # bit-identical
    assert serialize_model(m2) == blob
    assert row_contributions(m, X.iloc[:5]).shape == (5, 2, 3)
    assert shap_contributions(m, X).shape == (3,) and np.argmax(shap_contributions(m, X)) == 0
    with pytest.raises(ValueError, match="the model has 2 classes, not 3"):
        predict_proba(m, X, classes=CLASSES)
    with pytest.raises(ValueError, match="proba must have 3 columns"):
        predict_labels(p)  # the default class list is SELL/HOLD/BUY
    # codes 0..1 are accepted, 2 is not; a warm start keeps the class count
    codes = (y == "HIGH").astype(np.int64)
    assert np.array_equal(predict_proba(train_model(algo, X, codes, num_boost_round=25, classes=TWO), X), p)
    with pytest.raises(ValueError, match=r"integer labels must be in 0\.\.1"):
        train_model(algo, X, codes + 1, num_boost_round=2, classes=TWO)
    with pytest.raises(ValueError, match="init_model has 2 classes, not 3"):
        train_model(algo, X, np.zeros(len(X), dtype=np.int64), num_boost_round=2, init_model=m)
    more = train_model(algo, X, y, num_boost_round=5, init_model=m, classes=TWO)
    assert predict_proba(more, X).shape == (len(X), 2)
    with pytest.raises(ValueError, match="unknown class 'SELL'"):
        train_model(algo, X, np.array(["SELL"] * len(X), dtype=object), num_boost_round=2, classes=TWO)


def test_two_class_walk_forward_and_weights(toy2):
    X, y = toy2
    dates = pd.bdate_range("2020-01-01", periods=len(X))
    res = walk_forward_evaluate(X, y, dates, n_splits=2, horizon=2, embargo=2, num_boost_round=15, classes=TWO)
    assert res.classes == TWO and res.proba.shape == (len(res.oof), 2)
    assert [c for c in res.oof.columns if c.startswith("p_")] == ["p_LOW", "p_HIGH"]
    assert set(res.oof["y_pred"]) <= set(TWO) and np.allclose(res.proba.sum(axis=1), 1.0)
    m = classification_metrics(res.oof["y_true"], res.oof["y_pred"], res.proba, classes=TWO)
    assert m["accuracy"] > 0.8 and m["roc_auc_ovr"] > 0.85
    w = balanced_sample_weights(np.array([0, 0, 0, 1]), classes=TWO)
    assert w.tolist() == pytest.approx([4 / 6, 4 / 6, 4 / 6, 2.0])
    with pytest.raises(ValueError, match=r"class codes must be in 0\.\.1"):
        balanced_sample_weights(np.array([0, 2]), classes=TWO)


def test_classification_metrics_two_classes_hand_computed():
    from sklearn.metrics import roc_auc_score

    from include.modelwatch.training.training import macro_auc_ovr

    y_true = ["LOW", "LOW", "LOW", "HIGH", "HIGH"]
    y_pred = ["LOW", "HIGH", "LOW", "HIGH", "LOW"]
    proba = np.array([[0.8, 0.2], [0.4, 0.6], [0.7, 0.3], [0.1, 0.9], [0.6, 0.4]])
    m = classification_metrics(y_true, y_pred, proba, classes=TWO)
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion_matrix"] == [[2, 1], [1, 1]]  # rows true LOW, HIGH; columns predicted
    # precision LOW 2/3, HIGH 1/2; recall LOW 2/3, HIGH 1/2 -> F1 LOW 2/3, HIGH 1/2
    assert m["f1_LOW"] == pytest.approx(2 / 3) and m["f1_HIGH"] == pytest.approx(1 / 2)
    assert m["macro_f1"] == pytest.approx(7 / 12)
    assert m["macro_precision"] == pytest.approx(7 / 12) and m["macro_recall"] == pytest.approx(7 / 12)
    assert "f1_BUY" not in m
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.4, 0.7, 0.9, 0.4])))
    assert m["brier"] == pytest.approx((0.08 + 0.72 + 0.18 + 0.02 + 0.72) / 5)
    # p_HIGH of the HIGH rows (0.9, 0.4) beats the LOW rows' (0.2, 0.6, 0.3) in 5 of 6 pairs
    assert m["roc_auc_ovr"] == pytest.approx(5 / 6)
    assert m["roc_auc_ovr"] == pytest.approx(roc_auc_score(np.array(y_true) == "HIGH", proba[:, 1]))
    assert macro_auc_ovr(y_true, proba, classes=TWO) == m["roc_auc_ovr"]
    with pytest.raises(ValueError, match="unknown class"):
        classification_metrics(y_true, y_pred, proba)  # LOW/HIGH are not the default classes
    with pytest.raises(ValueError, match=r"proba must have shape \(5, 2\)"):
        classification_metrics(y_true, y_pred, np.c_[proba, proba[:, :1]], classes=TWO)
