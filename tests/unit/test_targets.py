"""Targets: what a native model predicts. The direction target is the BUY/HOLD/SELL labelling it always was; the
volatility-regime target labels and realizes outcomes exactly as data/regime.py defines them, on real bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.modelwatch.data import features, market, regime
from include.modelwatch.training import targets


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    bars = market.load_arch_bars("SPX")
    return bars[(bars["date"] >= "2006-01-01") & (bars["date"] < "2009-01-01")].reset_index(drop=True)


def test_target_of_params():
    assert targets.target_of({}).name == "direction"
    assert targets.target_of(None).classes == ("SELL", "HOLD", "BUY")
    vol = targets.target_of({"target": "vol_regime"})
    assert (vol.classes, vol.trading, vol.horizon) == (("LOW", "HIGH"), False, 5)
    with pytest.raises(ValueError, match="spx_x: unknown target 'price'; expected one of"):
        targets.target_of({"target": "price"}, "spx_x")


def test_direction_labels_are_make_labels(spx):
    got = targets.TARGETS["direction"].labels(spx)
    want = features.make_labels(spx, horizon=5, k=0.5, vol_window=21)
    pd.testing.assert_series_equal(got["label"], want["label"])
    pd.testing.assert_series_equal(got["threshold"], want["threshold"])


def test_vol_regime_labels_and_outcomes_follow_regime(spx):
    t = targets.TARGETS["vol_regime"]
    lab = t.labels(spx)
    want = regime.regime_labels(spx)
    pd.testing.assert_series_equal(lab["label"], want["label"])
    close = spx.set_index("date")["close"]
    day = pd.Timestamp("2008-09-12")
    assert lab.loc[day, "r_fwd"] == pytest.approx(np.log(close.shift(-5)[day] / close[day]))
    # 2008-09-12: the week of the Lehman failure follows; realized volatility jumps above its trailing median
    assert lab.loc[day, "label"] == "HIGH"
    preds = pd.DataFrame(
        {
            "prediction_id": [1, 2, 3],
            "date": pd.to_datetime(["2008-09-12", "2008-12-23", "2008-12-29"]),
            "predicted_label": ["LOW", "HIGH", "LOW"],
        }
    )
    out = t.outcomes(preds, spx)
    assert list(out["prediction_id"]) == [1, 2]  # 2008-12-29 has not matured in bars ending 2008-12-31
    for _, r in out.iterrows():
        real = regime.realized_regime(r["date"], spx)
        assert r["realized_label"] == real["realized_label"]
        assert r["matured_at"] == real["matured_at"]
    assert out["r_multiple"].isna().all()
    with pytest.raises(ValueError, match="unknown predicted_label 'BUY'"):
        t.outcomes(preds.assign(predicted_label="BUY"), spx)
