"""Real arch bars and the data-problem policy of include.modelwatch.data.market."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.modelwatch.data.market import (
    BAR_COLUMNS,
    BarsDataError,
    BarsPolicy,
    clean_bars,
    load_arch_bars,
    nyse_sessions,
    validate_bars,
)


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return load_arch_bars("SPX")


def _window(spx: pd.DataFrame, start: str = "2008-09-01", end: str = "2008-11-28") -> pd.DataFrame:
    return spx[(spx["date"] >= start) & (spx["date"] <= end)].reset_index(drop=True)


def test_load_spx_shape_types_and_values(spx):
    assert list(spx.columns) == BAR_COLUMNS
    assert len(spx) == 5031
    assert spx["date"].dtype == "datetime64[ns]"
    assert (spx["date"] == spx["date"].dt.normalize()).all()
    assert spx["date"].iloc[0] == pd.Timestamp("1999-01-04") and spx["date"].iloc[-1] == pd.Timestamp("2018-12-31")
    assert set(spx["symbol"]) == {"SPX"}
    row = spx.set_index("date").loc["2008-10-10"]
    assert row["close"] == pytest.approx(899.219971) and row["low"] == pytest.approx(839.799988)
    assert row["volume"] == 11456230000


def test_real_data_is_clean_and_matches_the_nyse_calendar(spx):
    rep = validate_bars(spx)
    assert rep.ok and rep.notes == []
    assert rep.missing_sessions == [] and rep.extra_sessions == []
    assert rep.longest_gap_days == 7  # the September 11 closure
    assert rep.longest_gap == (pd.Timestamp("2001-09-10"), pd.Timestamp("2001-09-17"))


def test_nasdaq_alias_and_zero_volume_flag():
    ixic = load_arch_bars("ndx")
    assert set(ixic["symbol"]) == {"IXIC"} and len(ixic) == 5031
    rep = validate_bars(ixic)
    assert rep.zero_volume_dates == [pd.Timestamp("2015-05-12"), pd.Timestamp("2018-01-09")]
    assert not rep.ok and "zero volume" in rep.notes[0]
    # kept, not dropped
    assert (ixic["volume"] == 0).sum() == 2


def test_unknown_symbol():
    with pytest.raises(KeyError, match="unknown arch symbol"):
        load_arch_bars("DAX")


def test_identical_duplicates_are_dropped_with_a_note(spx):
    w = _window(spx)
    dup = pd.concat([w, w.iloc[[10, 11]]], ignore_index=True)
    out, reps = clean_bars(dup)
    rep = reps["SPX"]
    assert len(out) == len(w)
    pd.testing.assert_frame_equal(out, w)
    assert rep.duplicates_dropped == list(w["date"].iloc[[10, 11]])
    assert rep.reordered  # the appended rows were out of order
    assert any("duplicate" in n for n in rep.notes)


def test_conflicting_duplicate_names_symbol_and_date(spx):
    w = _window(spx)
    bad = w.iloc[[5]].copy()
    bad["close"] = bad["close"] * 1.001
    with pytest.raises(BarsDataError, match=r"SPX 2008-09-09: 2 conflicting bars") as ei:
        clean_bars(pd.concat([w, bad], ignore_index=True))
    assert ei.value.symbol == "SPX" and ei.value.date == "2008-09-09"
    assert isinstance(ei.value, ValueError)


def test_unsorted_dates_sorted_or_error(spx):
    w = _window(spx)
    shuffled = w.sample(frac=1.0, random_state=1)
    out, reps = clean_bars(shuffled)
    pd.testing.assert_frame_equal(out, w)
    assert reps["SPX"].reordered and "sorted" in reps["SPX"].notes[0]
    with pytest.raises(BarsDataError, match="not in ascending order"):
        clean_bars(shuffled, BarsPolicy(on_unsorted="error"))


def test_single_nan_bar_is_forward_filled_flat(spx):
    w = _window(spx)
    w.loc[20, ["open", "high", "close"]] = np.nan
    out, reps = clean_bars(w)
    prev_close = w.loc[19, "close"]
    assert out.loc[20, ["open", "high", "low", "close"]].tolist() == [prev_close] * 4
    assert out.loc[20, "volume"] == 0
    rep = reps["SPX"]
    assert rep.filled_dates == [w.loc[20, "date"]]
    assert rep.zero_volume_dates == [w.loc[20, "date"]]


def test_two_nan_bars_in_a_row_is_an_error(spx):
    w = _window(spx)
    w.loc[[20, 21], "close"] = np.nan
    day = w.loc[20, "date"].strftime("%Y-%m-%d")
    with pytest.raises(BarsDataError, match=f"SPX {day}: NaN open/high/low/close on 2 consecutive"):
        clean_bars(w)
    # allowed with a looser policy
    out, _ = clean_bars(w, BarsPolicy(max_ffill_days=2))
    assert out.loc[21, "close"] == w.loc[19, "close"]


def test_nan_on_first_bar_is_an_error(spx):
    w = _window(spx)
    w.loc[0, "low"] = np.nan
    with pytest.raises(BarsDataError, match="SPX 2008-09-02: NaN price on the first bar"):
        clean_bars(w)


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("high", 800.0, "high < low"),
        ("close", 2000.0, "close outside"),
        ("open", 1.0, "open outside"),
        ("low", -5.0, "non-positive price"),
    ],
)
def test_inconsistent_bars_are_errors(spx, column, value, problem):
    w = _window(spx)
    w.loc[30, column] = value
    day = w.loc[30, "date"].strftime("%Y-%m-%d")
    with pytest.raises(BarsDataError, match=f"SPX {day}: {problem}"):
        clean_bars(w)


def test_long_gap_is_an_error_naming_both_dates(spx):
    w = _window(spx)
    w = w[(w["date"] < "2008-10-01") | (w["date"] > "2008-10-14")]
    with pytest.raises(BarsDataError, match=r"SPX 2008-09-30: gap of 15 calendar days to the next bar on 2008-10-15"):
        clean_bars(w)


def test_missing_session_is_reported_not_raised(spx):
    w = _window(spx)
    w = w[w["date"] != "2008-10-15"]
    rep = validate_bars(w)
    assert rep.missing_sessions == [pd.Timestamp("2008-10-15")]
    assert rep.longest_gap_days == 3  # weekends; the removed Wednesday leaves a 2-day gap
    assert any("without a bar" in n for n in rep.notes)


def test_negative_volume_and_missing_column(spx):
    w = _window(spx)
    w.loc[3, "volume"] = -1
    with pytest.raises(BarsDataError, match="negative volume"):
        clean_bars(w)
    with pytest.raises(BarsDataError, match="missing column"):
        clean_bars(_window(spx).drop(columns=["volume"]))


def test_date_objects_and_multi_symbol_frames(spx):
    w = _window(spx)
    w["date"] = [d.date() for d in w["date"]]  # what a DB driver returns
    assert isinstance(w["date"].iloc[0], dt.date)
    ndx = load_arch_bars("IXIC")
    both = pd.concat([ndx[ndx["date"].between("2008-09-01", "2008-11-28")], w], ignore_index=True)
    out, reps = clean_bars(both)
    assert set(reps) == {"IXIC", "SPX"}
    assert out["date"].dtype == "datetime64[ns]"
    assert list(out["symbol"].unique()) == ["IXIC", "SPX"]
    assert isinstance(validate_bars(both), dict)


def test_nyse_sessions_known_holidays():
    s = nyse_sessions("2018-12-01", "2018-12-31")
    assert pd.Timestamp("2018-12-25") not in s and pd.Timestamp("2018-12-05") not in s
    assert pd.Timestamp("2018-12-24") in s
    # New Year's Day on a Saturday: Friday 2010-12-31 is a session
    assert pd.Timestamp("2010-12-31") in nyse_sessions("2010-12-30", "2011-01-03")
    assert pd.Timestamp("2021-07-05") not in nyse_sessions("2021-07-01", "2021-07-06")
