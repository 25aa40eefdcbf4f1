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
    Correction,
    apply_correction_policy,
    arch_raw_bars,
    clean_bars,
    corrections,
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


# --------------------------------------------------------------------------- future-dated bars


def test_without_as_of_nothing_changes(spx):
    w = _window(spx)
    out, reps = clean_bars(w)
    pd.testing.assert_frame_equal(out, w)
    assert reps["SPX"].future_dropped == [] and reps["SPX"].ok
    assert BarsPolicy().on_future == "error" and BarsPolicy().on_correction == "accept"
    pd.testing.assert_frame_equal(arch_raw_bars("sp500"), spx)  # the raw arch frame is already clean


def test_future_dated_bar_is_an_error_naming_symbol_and_date(spx):
    w = _window(spx)
    # as_of on the last bar's date (any time of that day): nothing is in the future
    out, reps = clean_bars(w, as_of=pd.Timestamp("2008-11-28 23:59"))
    pd.testing.assert_frame_equal(out, w)
    assert reps["SPX"].ok
    with pytest.raises(BarsDataError, match=r"^SPX 2008-11-21: bar dated after as_of 2008-11-20 \(5 future bar") as ei:
        clean_bars(w, as_of="2008-11-20")
    assert ei.value.symbol == "SPX" and ei.value.date == "2008-11-21"
    # the first future date is named even when the rows are not in order
    with pytest.raises(BarsDataError, match=r"SPX 2008-11-21: bar dated after"):
        clean_bars(w.iloc[::-1], as_of=dt.date(2008, 11, 20))
    assert validate_bars(w, as_of="2008-12-01").ok


def test_future_dated_bars_dropped_with_a_note(spx):
    w = _window(spx)
    out, reps = clean_bars(w, BarsPolicy(on_future="drop"), as_of="2008-11-20")
    rep = reps["SPX"]
    pd.testing.assert_frame_equal(out, w[w["date"] <= "2008-11-20"].reset_index(drop=True))
    assert rep.future_dropped == [
        pd.Timestamp(d) for d in ("2008-11-21", "2008-11-24", "2008-11-25", "2008-11-26", "2008-11-28")
    ]  # 2008-11-27 is Thanksgiving
    assert rep.n_rows_in == 63 and rep.n_rows_out == 58 and rep.end == pd.Timestamp("2008-11-20")
    assert not rep.ok
    assert rep.notes == [
        "dropped 5 bar(s) dated after as_of 2008-11-20: 2008-11-21, 2008-11-24, 2008-11-25, 2008-11-26, 2008-11-28"
    ]


def test_future_rule_details(spx):
    w = _window(spx)
    # a tz-aware clock keeps its own wall-clock date (early morning in Tokyo is still 2008-11-21 there)
    out, _ = clean_bars(w, BarsPolicy(on_future="drop"), as_of=pd.Timestamp("2008-11-21 01:00", tz="Asia/Tokyo"))
    assert out["date"].max() == pd.Timestamp("2008-11-21")
    # a future bar with NaN prices is dropped before the forward-fill rule sees it
    w2 = w.copy()
    w2.loc[[61, 62], "close"] = np.nan
    out2, reps2 = clean_bars(w2, BarsPolicy(on_future="drop"), as_of="2008-11-25")
    assert reps2["SPX"].filled_dates == [] and len(out2) == 61
    with pytest.raises(BarsDataError, match=r"SPX 2008-09-02: all 63 bar\(s\) are dated after as_of 2008-08-29"):
        clean_bars(w, BarsPolicy(on_future="drop"), as_of="2008-08-29")
    with pytest.raises(ValueError, match="on_future must be 'error' or 'drop'"):
        BarsPolicy(on_future="keep")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="as_of must be a date"):
        clean_bars(w, as_of="not a date")


# --------------------------------------------------------------------------- late corrections


def test_corrections_detects_changed_fields_only_on_shared_dates(spx):
    stored = _window(spx).iloc[:30]
    new = _window(spx).iloc[25:40].copy()  # 5 dates overlap the stored ones
    new.loc[27, "close"] = 1111.5
    new.loc[28, ["high", "volume"]] = [new.loc[28, "high"] + 10.0, 123.0]
    new.loc[35, "close"] = 1.0  # not stored yet: a new bar, not a correction
    found = corrections(new, stored)
    d27, d28 = stored.loc[27, "date"], stored.loc[28, "date"]
    assert found == [
        Correction("SPX", d27, "close", float(stored.loc[27, "close"]), 1111.5),
        Correction("SPX", d28, "high", float(stored.loc[28, "high"]), float(stored.loc[28, "high"]) + 10.0),
        Correction("SPX", d28, "volume", float(stored.loc[28, "volume"]), 123.0),
    ]
    assert str(found[0]) == f"SPX {d27:%Y-%m-%d} close: {float(stored.loc[27, 'close'])!r} -> 1111.5"
    assert corrections(stored, stored) == []
    assert corrections(new.iloc[:0], stored) == [] and corrections(new, pd.DataFrame()) == []


def test_corrections_nan_equality_and_tolerance(spx):
    stored = _window(spx).iloc[:5].copy()
    stored.loc[1, "volume"] = np.nan
    new = stored.copy()
    assert corrections(new, stored) == []  # NaN volume == NaN volume
    new.loc[1, "volume"] = 5.0e9  # a missing volume delivered later is a correction
    new.loc[2, "volume"] = np.nan  # ... and so is a volume that went missing
    new.loc[3, "close"] = stored.loc[3, "close"] * (1 + 1e-12)  # float noise within 1e-9
    found = corrections(new, stored)
    assert [(c.date, c.field) for c in found] == [(stored.loc[1, "date"], "volume"), (stored.loc[2, "date"], "volume")]
    assert np.isnan(found[0].old) and found[0].new == 5.0e9
    assert found[1].old == stored.loc[2, "volume"] and np.isnan(found[1].new)
    exact = corrections(new, stored, rel_tol=0.0)
    assert [c.field for c in exact] == ["volume", "volume", "close"]
    assert corrections(new, stored, rel_tol=1e-3) == found
    new.loc[4, "open"] = stored.loc[4, "open"] * (1 + 2e-9)  # beyond the default tolerance
    assert [c.field for c in corrections(new, stored)][-1] == "open"


def test_corrections_accept_db_shaped_frames(spx):
    from decimal import Decimal

    stored = _window(spx).iloc[:3].copy()
    stored["date"] = [d.date() for d in stored["date"]]  # what the DB driver returns
    stored["close"] = [Decimal(repr(x)) for x in stored["close"]]
    new = _window(spx).iloc[:3].copy()
    assert corrections(new, stored) == []
    new.loc[0, "close"] = 1300.0
    assert corrections(new, stored) == [Correction("SPX", pd.Timestamp("2008-09-02"), "close", 1277.579956, 1300.0)]
    with pytest.raises(BarsDataError, match=r"SPX 2008-09-02: 2 bars for the same date in the stored bars"):
        corrections(new, pd.concat([stored, stored.iloc[[0]]]))


def test_correction_policy_accept_and_error(spx):
    stored = _window(spx).iloc[:10]
    new = stored.copy()
    new.loc[4, "close"] = 1250.0
    new.loc[6, "volume"] = 7.0e9
    found = corrections(new, stored)
    assert apply_correction_policy(found) == found
    assert apply_correction_policy(iter(found), BarsPolicy(on_correction="accept")) == found
    assert apply_correction_policy([], BarsPolicy(on_correction="error")) == []
    old_close = float(stored.loc[4, "close"])
    with pytest.raises(BarsDataError) as ei:
        apply_correction_policy(found, BarsPolicy(on_correction="error"))
    msg = str(ei.value)
    assert msg.startswith(
        f"SPX 2008-09-08: late correction of an already-stored bar: close {old_close!r} -> 1250 "
        "(policy on_correction='error'; 2 correction(s): "
    )
    assert f"SPX 2008-09-10 volume: {int(stored.loc[6, 'volume'])} -> 7000000000" in msg
    assert ei.value.symbol == "SPX" and ei.value.date == "2008-09-08"
    with pytest.raises(ValueError, match="on_correction must be 'accept' or 'error'"):
        BarsPolicy(on_correction="overwrite")  # type: ignore[arg-type]
