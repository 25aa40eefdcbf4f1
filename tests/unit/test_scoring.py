"""The missing-feature policy of include.modelwatch.data.scoring (defect 7), on real IXIC bars."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from include.modelwatch.data import scoring, signals
from include.modelwatch.data.features import FEATURE_COLUMNS, WARMUP_BARS, compute_features, make_labels
from include.modelwatch.data.market import load_arch_bars
from include.modelwatch.training import training

MAY_2015 = (datetime(2015, 5, 1, tzinfo=UTC), datetime(2015, 6, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def ixic() -> pd.DataFrame:
    return load_arch_bars("IXIC")


@pytest.fixture(scope="module")
def model(ixic):
    """A small real LightGBM model on IXIC 2003-2006 (complete rows only, as in training)."""
    g = ixic[(ixic["date"] >= "2002-01-01") & (ixic["date"] < "2007-01-01")]
    f = compute_features(g).join(make_labels(g)["label"]).dropna()
    return training.train_model("lightgbm", f[FEATURE_COLUMNS], f["label"], num_boost_round=10)


def _may(ixic: pd.DataFrame) -> pd.DataFrame:
    return ixic[(ixic["date"] >= "2014-03-01") & (ixic["date"] < "2015-06-01")].reset_index(drop=True)


def test_nan_feature_row_is_scored_with_its_nan_and_marked(ixic, model):
    won = scoring.score_window(model, FEATURE_COLUMNS, _may(ixic), *MAY_2015, symbol="IXIC", label="m v1")
    assert len(won.rows) == 20  # May 2015 sessions
    assert [r["ts"] for r in won.flagged] == [datetime(2015, 5, 12, 21, tzinfo=UTC)]
    bad = won.flagged[0]
    assert bad["data_quality"] == "missing_features"
    assert bad["missing_features"] == ["volume_z_20"]
    assert bad["features"]["volume_z_20"] is None
    assert sum(v is None for v in bad["features"].values()) == 1
    # scored with the NaN, not imputed: same as the model on that row with NaN
    x = pd.DataFrame([{c: (np.nan if v is None else v) for c, v in bad["features"].items()}])
    p = training.predict_proba(model, x)[0]
    assert [bad["probabilities"][c] for c in ("SELL", "HOLD", "BUY")] == pytest.approx(list(p), abs=1e-12)
    assert bad["confidence"] == max(p)
    assert bad["predicted_label"] == ("SELL", "HOLD", "BUY")[int(np.argmax(p))]
    ok = [r for r in won.rows if r is not bad]
    assert all(r["data_quality"] == "ok" and r["missing_features"] is None for r in ok)
    assert all(math.isfinite(v) for r in ok for v in r["features"].values())
    counts = won.label_counts()
    assert sum(counts.values()) == 20
    assert won.summary().endswith(
        "; 1 with missing features (scored with NaN, marked missing_features: 2015-05-12 volume_z_20)"
    )
    assert won.summary().startswith("IXIC: 20 rows scored (SELL ")


def test_complete_window_is_all_ok_and_summary_says_so(ixic, model):
    june = (datetime(2015, 6, 1, tzinfo=UTC), datetime(2015, 7, 1, tzinfo=UTC))
    bars = ixic[(ixic["date"] >= "2014-03-01") & (ixic["date"] < "2015-07-01")]
    won = scoring.score_window(model, FEATURE_COLUMNS, bars, *june, symbol="IXIC")
    assert len(won.rows) == 22 and won.flagged == []
    assert won.summary().endswith("; 0 with missing features")


def test_missing_history_is_still_an_error_naming_model_symbol_window(ixic, model):
    bars = ixic[(ixic["date"] >= "2015-01-02") & (ixic["date"] < "2015-06-01")]
    with pytest.raises(
        ValueError,
        match=r"m v1 IXIC window 2015-05-01\.\.2015-06-01: only 82 bars of history "
        rf"before 2015-05-01 .* features need {WARMUP_BARS - 1}",
    ):
        scoring.score_window(model, FEATURE_COLUMNS, bars, *MAY_2015, symbol="IXIC", label="m v1")


def test_empty_inputs_score_nothing(ixic, model):
    assert scoring.score_window(model, FEATURE_COLUMNS, ixic.iloc[:0], *MAY_2015, symbol="IXIC").rows == []
    old = ixic[ixic["date"] < "2015-01-01"]
    assert scoring.score_window(model, FEATURE_COLUMNS, old, *MAY_2015, symbol="IXIC").rows == []


def test_missing_features_names_nan_none_and_inf_in_order():
    row = {"a": 1.0, "b": float("nan"), "c": None, "d": float("inf"), "e": 0}
    assert signals.missing_features(row) == ["b", "c", "d"]
    assert signals.missing_features({"a": 1.0}) == []
