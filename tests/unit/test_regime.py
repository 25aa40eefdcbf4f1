"""Volatility-regime labels: hand-computed values, no look-ahead in the threshold, persistence, realized regime."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from include.modelwatch.data import market
from include.modelwatch.data.features import compute_features
from include.modelwatch.data.regime import (
    REGIME_CLASSES,
    persistence_labels,
    realized_regime,
    regime_labels,
)

# daily log returns r_1..r_11 of the toy series (bar 0 has none)
R = [0.0, 0.01, -0.01, 0.025, 0.025, 0.065, -0.01, 0.0, 0.004, 0.004, 0.001]
H, L = 2, 3
# The sample std (ddof=1) of two returns a, b is |a - b| / sqrt(2); annualized * sqrt(252): |a - b| * sqrt(126).
S = math.sqrt(126)
# d_t = |r_t - r_{t-1}|, t = 2..11: rv_trailing[t] = d_t * S
D = {2: 0.01, 3: 0.02, 4: 0.035, 5: 0.0, 6: 0.04, 7: 0.075, 8: 0.01, 9: 0.004, 10: 0.0, 11: 0.003}
# threshold[t] = median(d_{t-2}, d_{t-1}, d_t) * S, defined from t = H + L - 1 = 4
THR = {4: 0.02, 5: 0.02, 6: 0.035, 7: 0.04, 8: 0.04, 9: 0.01, 10: 0.004, 11: 0.003}
# rv_fwd[t] = d_{t+2} * S for t = 0..9; label HIGH iff rv_fwd > threshold
LABELS = [None, None, None, None, "HIGH", "HIGH", "LOW", "LOW", "LOW", "LOW", None, None]
# persistence: d_t vs threshold[t]; t = 11 is a tie (d_11 is its own window's median) -> LOW
PERSIST = [None, None, None, None, "HIGH", "LOW", "HIGH", "HIGH", "LOW", "LOW", "LOW", "LOW"]


def _bars(returns: list[float]) -> pd.DataFrame:
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    return pd.DataFrame(
        {
            "date": pd.bdate_range("2024-01-01", periods=close.size),
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1e6,
        }
    )


def _labels(frame: pd.DataFrame) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in frame["label"]]


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    bars, _ = market.clean_bars(market.load_arch_bars("SPX"))
    return bars.reset_index(drop=True)


def test_classes():
    assert REGIME_CLASSES == ("LOW", "HIGH")


def test_hand_computed_labels():
    bars = _bars(R)
    lab = regime_labels(bars, horizon=H, lookback=L)
    assert list(lab.index) == list(pd.DatetimeIndex(bars["date"])) and lab.index.name == "date"
    assert _labels(lab) == LABELS
    for t, d in D.items():
        assert lab["rv_trailing"].iloc[t] == pytest.approx(d * S, abs=1e-12)
    assert lab["rv_trailing"].iloc[:2].isna().all()
    for t in range(12):
        if t in THR:
            assert lab["threshold"].iloc[t] == pytest.approx(THR[t] * S, abs=1e-12)
        else:
            assert np.isnan(lab["threshold"].iloc[t])
        if t + H <= 11:
            assert lab["rv_fwd"].iloc[t] == pytest.approx(D[t + H] * S, abs=1e-12)
            assert lab["matured_at"].iloc[t] == bars["date"].iloc[t + H]
    # the last `horizon` labels are unknown: their future has not happened
    assert lab["rv_fwd"].iloc[-H:].isna().all() and lab["matured_at"].iloc[-H:].isna().all()


def test_persistence_hand_computed():
    p = persistence_labels(_bars(R), horizon=H, lookback=L)
    assert _labels(p) == PERSIST
    assert list(p.columns) == ["label", "rv_trailing", "threshold"]


def test_changing_a_future_bar_never_changes_the_threshold_at_t():
    bars = _bars(R)
    base = regime_labels(bars, horizon=H, lookback=L)
    k = 9
    bumped = bars.copy()
    bumped.loc[k, "close"] *= 1.07  # changes r_9 and r_10
    new = regime_labels(bumped, horizon=H, lookback=L)
    assert np.array_equal(new["threshold"].to_numpy()[:k], base["threshold"].to_numpy()[:k], equal_nan=True)
    assert new["threshold"].iloc[k] != base["threshold"].iloc[k]
    # labels before t = k - horizon do not look at bar k; t = 7 does (r_8, r_9) and flips
    assert _labels(new)[: k - H] == LABELS[: k - H]
    assert new["rv_fwd"].iloc[k - H] != base["rv_fwd"].iloc[k - H]
    assert _labels(new)[k - H] == "HIGH"


def test_real_bars_no_look_ahead_and_vol_5d(spx):
    full = regime_labels(spx)
    # the default horizon-5 trailing vol is the vol_5d feature
    vol = compute_features(spx)["vol_5d"]
    assert np.allclose(full["rv_trailing"], vol, rtol=1e-10, atol=0, equal_nan=True)
    first = int(np.flatnonzero(full["threshold"].notna().to_numpy())[0])
    assert first == 5 + 252 - 1  # 5 returns for the first vol, 252 vols for the first median
    cut = 2400  # bars 0..cut only: everything known at cut is identical, bit for bit
    part = regime_labels(spx.iloc[: cut + 1])
    assert np.array_equal(part["threshold"].to_numpy(), full["threshold"].to_numpy()[: cut + 1], equal_nan=True)
    assert part["label"].iloc[: cut + 1 - 5].equals(full["label"].iloc[: cut + 1 - 5])
    assert part["label"].iloc[-5:].isna().all() and full["label"].iloc[cut - 4 : cut + 1].notna().all()
    shares = full["label"].value_counts(normalize=True)
    assert 0.4 < shares["HIGH"] < 0.5  # the median split is roughly balanced (vol is right-skewed)


def test_realized_regime_toy():
    bars = _bars(R)
    out = realized_regime(bars["date"].iloc[5], bars, horizon=H, lookback=L)
    assert out is not None and out["realized_label"] == "HIGH"
    assert out["rv_fwd"] == pytest.approx(0.075 * S) and out["threshold"] == pytest.approx(0.02 * S)
    assert out["matured_at"] == bars["date"].iloc[7] and out["horizon"] == H
    assert out["entry_date"] == bars["date"].iloc[5]
    # bars up to the horizon suffice; one bar short is not matured
    assert realized_regime(bars["date"].iloc[5], bars.iloc[:8], horizon=H, lookback=L) == out
    assert realized_regime(bars["date"].iloc[5], bars.iloc[:7], horizon=H, lookback=L) is None
    assert realized_regime(bars["date"].iloc[9], bars, horizon=H, lookback=L)["realized_label"] == "LOW"
    with pytest.raises(ValueError, match="not a bar date"):
        realized_regime("2024-01-06", bars, horizon=H, lookback=L)  # a Saturday
    with pytest.raises(ValueError, match="threshold needs 4"):
        realized_regime(bars["date"].iloc[3], bars, horizon=H, lookback=L)


def test_realized_regime_matches_the_full_history(spx):
    full = regime_labels(spx)
    for pos in (300, 2450, 4000):
        day = spx["date"].iloc[pos]
        out = realized_regime(day, spx.iloc[: pos + 6])  # bars up to the prediction's horizon
        row = full.iloc[pos]
        assert out["realized_label"] == row["label"]
        assert out["rv_fwd"] == row["rv_fwd"] and out["threshold"] == row["threshold"]  # bit-identical
        assert out["matured_at"] == spx["date"].iloc[pos + 5]


def test_bad_arguments():
    with pytest.raises(ValueError, match="horizon must be >= 2"):
        regime_labels(_bars(R), horizon=1)
    with pytest.raises(ValueError, match="lookback must be >= 1"):
        persistence_labels(_bars(R), lookback=0)
