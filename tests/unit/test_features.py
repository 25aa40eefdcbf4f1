"""Features without look-ahead, labels and outcomes, checked on real S&P 500 bars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.modelwatch.data.features import (
    FEATURE_COLUMNS,
    WARMUP_BARS,
    compute_features,
    compute_outcome,
    compute_outcomes,
    make_labels,
    rsi_wilder,
)
from include.modelwatch.data.market import load_arch_bars
from include.modelwatch.vocabulary import CLASSES


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return load_arch_bars("SPX")


@pytest.fixture(scope="module")
def spx_features(spx) -> pd.DataFrame:
    return compute_features(spx)


@pytest.fixture(scope="module")
def raw_close() -> pd.Series:
    """Closes straight from the arch data set, independent of market.py."""
    import arch.data.sp500

    return arch.data.sp500.load()["Adj Close"]


def _bar(spx: pd.DataFrame, date: str) -> int:
    return int(np.flatnonzero(spx["date"].to_numpy() == np.datetime64(date))[0])


def test_columns_index_and_warmup(spx, spx_features):
    f = spx_features
    assert list(f.columns) == FEATURE_COLUMNS
    assert f.index.name == "date" and len(f) == len(spx)
    assert f.index.equals(pd.DatetimeIndex(spx["date"]))
    # the longest look-back is the 252-bar drawdown: complete from bar 251 on
    assert WARMUP_BARS - 1 == 251
    assert f.iloc[:251]["drawdown_252"].isna().all()
    assert not f.iloc[251:].isna().any().any()
    assert len(compute_features(spx, dropna=True)) == len(spx) - 251
    assert f["rsi_14"].dropna().between(0, 100).all()
    assert (f["drawdown_252"].dropna() <= 0).all()


def test_hand_checked_values_on_2008_10_10(spx, spx_features):
    r = spx_features.loc["2008-10-10"]
    # closes 2008-10-03 .. 2008-10-10 and the bar of 2008-10-10
    c_1003, c_1009, c_1010 = 1099.229980, 909.919983, 899.219971
    o, h, lo = 902.309998, 936.359985, 839.799988
    assert r["ret_1d"] == pytest.approx(math.log(c_1010 / c_1009), rel=1e-9)
    assert r["ret_5d"] == pytest.approx(math.log(c_1010 / c_1003), rel=1e-9)
    assert r["hl_range"] == pytest.approx(math.log(h / lo), rel=1e-9)
    assert r["overnight_gap"] == pytest.approx(math.log(o / c_1009), rel=1e-9)
    assert r["day_of_week"] == 4 and r["month"] == 10
    i = _bar(spx, "2008-10-10")
    last50 = spx["close"].iloc[i - 49 : i + 1].to_numpy()
    assert r["dist_sma_50"] == pytest.approx(c_1010 / (sum(last50) / 50) - 1, rel=1e-9)
    rets = np.diff(np.log(spx["close"].iloc[i - 21 : i + 1].to_numpy()))
    assert r["vol_21d"] == pytest.approx(np.std(rets, ddof=1) * math.sqrt(252), rel=1e-9)


def test_rsi_wilder_hand_example():
    # diffs +1, -0.5, +1, -0.5; n=2: seeds gain 0.5 / loss 0.25 at bar 2
    rsi = rsi_wilder(pd.Series([10.0, 11.0, 10.5, 11.5, 11.0]), n=2).to_numpy()
    assert np.isnan(rsi[:2]).all()
    assert rsi[2] == pytest.approx(100 - 100 / (1 + 0.5 / 0.25))
    assert rsi[3] == pytest.approx(100 - 100 / (1 + 0.75 / 0.125))
    assert rsi[4] == pytest.approx(100 - 100 / (1 + 0.375 / 0.3125))


def test_zero_volume_day_gets_nan_volume_z():
    ixic = compute_features(load_arch_bars("IXIC"))
    z = ixic.loc["2015-05-08":"2015-05-14", "volume_z_20"]
    assert np.isnan(z.loc["2015-05-12"])
    assert np.isfinite(z.drop(pd.Timestamp("2015-05-12"))).all()


def test_truncation_gives_identical_rows(spx, spx_features):
    """Features at t computed from bars[:t+1] equal those from the whole history."""
    for t in (30, 300, 1234, 2458, len(spx) - 2):
        part = compute_features(spx.iloc[: t + 1])
        pd.testing.assert_frame_equal(part, spx_features.iloc[: t + 1], check_exact=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(t=st.integers(min_value=0, max_value=5029), seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_no_look_ahead_when_the_future_changes(spx, spx_features, t, seed):
    """Perturb every bar after t (prices and volume); every row <= t stays exactly the same."""
    rng = np.random.default_rng(seed)
    fut = spx.copy()
    n_after = len(spx) - t - 1
    scale = np.exp(rng.normal(0.0, 0.05, n_after))
    for col in ("open", "high", "low", "close"):
        fut.loc[fut.index[t + 1 :], col] = fut[col].iloc[t + 1 :].to_numpy() * scale
    fut.loc[fut.index[t + 1 :], "high"] = fut["high"].iloc[t + 1 :].to_numpy() * 1.01
    fut.loc[fut.index[t + 1 :], "volume"] = rng.integers(0, 5_000_000_000, n_after).astype(float)
    g = compute_features(fut)
    pd.testing.assert_series_equal(g.iloc[t], spx_features.iloc[t], check_exact=True)
    pd.testing.assert_frame_equal(g.iloc[: t + 1], spx_features.iloc[: t + 1], check_exact=True)
    if n_after > 300:  # and the perturbation did reach the later rows
        assert not g.iloc[t + 300].equals(spx_features.iloc[t + 300])


# --------------------------------------------------------------------------- labels


def _sigma_by_hand(raw_close: pd.Series, date: str, window: int = 21) -> float:
    i = raw_close.index.get_loc(pd.Timestamp(date))
    closes = raw_close.iloc[i - window : i + 1].to_numpy()  # 22 closes -> 21 log returns ending at t
    r = [math.log(b / a) for a, b in zip(closes[:-1], closes[1:], strict=True)]
    m = sum(r) / len(r)
    return math.sqrt(sum((x - m) ** 2 for x in r) / (len(r) - 1))


@pytest.mark.parametrize(
    ("date", "close_t", "date_fwd", "close_fwd", "expected"),
    [
        ("2008-10-10", 899.219971, "2008-10-17", 940.549988, "BUY"),
        ("2008-10-01", 1161.060059, "2008-10-08", 984.940002, "SELL"),
        ("2005-07-11", 1219.439941, "2005-07-18", 1221.130005, "HOLD"),
        ("2005-07-01", 1194.439941, "2005-07-11", 1219.439941, "BUY"),  # July 4th: 5 bars = 10 days
    ],
)
def test_labels_on_real_dates(spx, raw_close, date, close_t, date_fwd, close_fwd, expected):
    assert raw_close.loc[date] == pytest.approx(close_t) and raw_close.loc[date_fwd] == pytest.approx(close_fwd)
    lab = make_labels(spx, horizon=5, k=0.5, vol_window=21).loc[date]
    r = math.log(close_fwd / close_t)
    sigma = _sigma_by_hand(raw_close, date)
    thr = 0.5 * sigma * math.sqrt(5)
    assert lab["r_fwd"] == pytest.approx(r, rel=1e-7)
    assert lab["sigma_daily"] == pytest.approx(sigma, rel=1e-9)
    assert lab["threshold"] == pytest.approx(thr, rel=1e-9)
    assert lab["matured_at"] == pd.Timestamp(date_fwd)
    assert lab["label"] == expected
    assert expected == ("BUY" if r > thr else "SELL" if r < -thr else "HOLD")


def test_last_horizon_labels_unknown(spx):
    lab = make_labels(spx, horizon=5)
    assert lab["label"].iloc[-5:].isna().all() and lab["r_fwd"].iloc[-5:].isna().all()
    assert lab["matured_at"].iloc[-5:].isna().all()
    assert lab["label"].iloc[-6] in CLASSES
    assert lab["label"].iloc[:21].isna().all()  # no trailing vol yet
    assert set(lab["label"].dropna()) == set(CLASSES)


def test_labels_do_not_change_sigma_with_the_future(spx):
    a = make_labels(spx).loc[:"2010-06-30", "sigma_daily"]
    b = make_labels(spx[spx["date"] <= "2010-06-30"]).loc[:, "sigma_daily"]
    pd.testing.assert_series_equal(a, b, check_exact=True)


# --------------------------------------------------------------------------- outcomes


def test_outcomes_by_hand(spx, raw_close):
    preds = pd.DataFrame(
        {
            "prediction_id": [1, 2, 3, 4],
            "date": ["2008-10-10", "2008-10-10", "2008-10-01", "2018-12-24"],
            "predicted_label": ["BUY", "SELL", "HOLD", "BUY"],
        }
    )
    out = compute_outcomes(preds, spx, horizon=5, k=0.5)
    assert out["prediction_id"].tolist() == [1, 2, 3]  # 2018-12-24 + 5 bars does not exist yet
    r = math.log(940.549988 / 899.219971)
    risk = 0.5 * _sigma_by_hand(raw_close, "2008-10-10") * math.sqrt(5)
    buy, sell, hold = out.iloc[0], out.iloc[1], out.iloc[2]
    assert buy["realized_return"] == pytest.approx(r, rel=1e-7)
    assert buy["realized_label"] == "BUY"
    assert buy["matured_at"] == pd.Timestamp("2008-10-17")
    assert buy["risk_unit"] == pytest.approx(risk, rel=1e-9)
    assert buy["r_multiple"] == pytest.approx(r / risk, rel=1e-7)
    assert sell["r_multiple"] == pytest.approx(-r / risk, rel=1e-7)
    assert hold["r_multiple"] == 0.0 and hold["realized_label"] == "SELL"
    assert hold["realized_return"] == pytest.approx(math.log(984.940002 / 1161.060059), rel=1e-7)


def test_compute_outcome_single(spx):
    one = compute_outcome("2008-10-01", "SELL", spx, horizon=5)
    assert one is not None and one["r_multiple"] > 0 and one["realized_label"] == "SELL"
    assert compute_outcome("2018-12-21", "BUY", spx, horizon=5)["matured_at"] == pd.Timestamp("2018-12-31")
    assert compute_outcome("2018-12-24", "BUY", spx, horizon=5) is None


def test_outcome_errors(spx):
    with pytest.raises(ValueError, match="not bar dates, first 2008-10-11"):
        compute_outcome("2008-10-11", "BUY", spx)  # a Saturday
    with pytest.raises(ValueError, match="unknown predicted_label"):
        compute_outcome("2008-10-10", "STRONG_BUY", spx)
    with pytest.raises(ValueError, match="bars of history"):
        compute_outcome("1999-01-06", "BUY", spx)


def test_features_reject_bad_input(spx):
    with pytest.raises(ValueError, match="duplicated bar date"):
        compute_features(pd.concat([spx.iloc[:50], spx.iloc[[10]]]).sort_values("date"))
    with pytest.raises(ValueError, match="not ascending"):
        compute_features(spx.iloc[:50].iloc[::-1])
    two = pd.concat([spx.iloc[:50], spx.iloc[:50].assign(symbol="IXIC")])
    with pytest.raises(ValueError, match="2 symbols"):
        compute_features(two)
