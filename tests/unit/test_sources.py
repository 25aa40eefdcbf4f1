"""Market data sources of include.modelwatch.data.sources: arch, a folder of CSV / Parquet files, specs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.modelwatch.data import market
from include.modelwatch.data.market import BAR_COLUMNS, BarsDataError, BarsPolicy, clean_bars, load_arch_bars
from include.modelwatch.data.sources import (
    ArchSource,
    FolderSource,
    MarketSource,
    UnknownSymbolError,
    load_clean,
    source_from_spec,
)


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return load_arch_bars("SPX")


@pytest.fixture(scope="module")
def window(spx) -> pd.DataFrame:
    """SPX bars of 2008-09-02..2008-11-28 (63 sessions), real values."""
    return spx[spx["date"].between("2008-09-01", "2008-11-28")].reset_index(drop=True)


def _as(window: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return window.assign(symbol=symbol)[BAR_COLUMNS]


# --------------------------------------------------------------------------- folder round trips


def test_csv_round_trip_with_title_case_headers(tmp_path, window):
    # headers as Yahoo-style exports write them, no symbol column, shuffled rows
    out = window.drop(columns=["symbol"]).rename(columns=str.title).sample(frac=1.0, random_state=3)
    out.to_csv(tmp_path / "SPY.csv", index=False)
    src = FolderSource(tmp_path)
    assert src.symbols() == ["SPY"]

    raw = src.load("SPY")
    assert list(raw.columns) == BAR_COLUMNS and len(raw) == 63
    assert raw["date"].dtype == "datetime64[ns]" and raw["close"].dtype == "float64"
    assert set(raw["symbol"]) == {"SPY"}

    bars, reports = load_clean(src, ["SPY"])
    expected, _ = clean_bars(_as(window, "SPY"))
    pd.testing.assert_frame_equal(bars, expected)
    # lookup is case-insensitive and the bars carry the symbol as asked for (as the model's setting names it)
    lower, _ = load_clean(src, ["spy"])
    assert set(lower["symbol"]) == {"spy"} and len(lower) == len(bars)
    assert bars.set_index("date").loc["2008-10-10", "close"] == pytest.approx(899.219971, abs=0)
    assert bars.set_index("date").loc["2008-10-10", "volume"] == 11456230000
    rep = reports["SPY"]
    assert rep.reordered and rep.n_rows_out == 63
    assert rep.missing_sessions == [] and rep.extra_sessions == []


def test_parquet_round_trip_symbol_column_and_missing_volume(tmp_path, window):
    frame = window.drop(columns=["volume"]).assign(symbol="qqq")  # symbol column, other case, no volume
    frame.columns = [c.upper() for c in frame.columns]
    frame.to_parquet(tmp_path / "QQQ.parquet", index=False)

    bars, reports = load_clean(FolderSource(tmp_path), ["QQQ"])
    expected, _ = clean_bars(_as(window, "QQQ").assign(volume=np.nan))
    pd.testing.assert_frame_equal(bars, expected)
    assert bars["volume"].isna().all()
    assert reports["QQQ"].missing_volume_dates == list(window["date"])


def test_parquet_with_date_index_and_extra_columns(tmp_path, window):
    frame = window.drop(columns=["symbol"]).set_index("date").assign(adj_close=1.0)
    frame.to_parquet(tmp_path / "IDX.parquet")  # date stored as the index
    bars, _ = load_clean(FolderSource(tmp_path), ["IDX"])
    pd.testing.assert_frame_equal(bars, clean_bars(_as(window, "IDX"))[0])


def test_headers_are_case_insensitive_and_blank_cells_follow_the_policy(tmp_path):
    (tmp_path / "ABC.csv").write_text(
        " DATE ,Open,HIGH,low,Close,VoLuMe\n"
        "2024-01-02,10,11,9,10.5,100\n"
        "2024-01-03,10.5,12,10,11.5,\n"  # blank volume -> NaN, flagged
        "2024-01-04,,,,,0\n"  # blank prices -> one flat bar at the previous close (policy)
        "2024-01-05,11.5,12.5,11,12,300\n"
    )
    raw = FolderSource(tmp_path).load("ABC")
    assert raw["open"].tolist()[:2] == [10.0, 10.5] and np.isnan(raw.loc[1, "volume"])
    bars, reports = load_clean(FolderSource(tmp_path), ["ABC"])
    assert bars["close"].tolist() == [10.5, 11.5, 11.5, 12.0]
    assert bars.loc[2, ["open", "high", "low", "close", "volume"]].tolist() == [11.5, 11.5, 11.5, 11.5, 0.0]
    rep = reports["ABC"]
    assert rep.filled_dates == [pd.Timestamp("2024-01-04")]
    assert rep.missing_volume_dates == [pd.Timestamp("2024-01-03")]


def test_duplicate_headers_after_case_folding_are_an_error(tmp_path):
    (tmp_path / "ABC.csv").write_text("date,open,high,low,close,Close\n2024-01-02,10,11,9,10.5,10.5\n")
    with pytest.raises(BarsDataError, match=r"ABC -: ABC.csv: column\(s\) \['close'\] appear more than once"):
        FolderSource(tmp_path).load("ABC")


def test_missing_required_column(tmp_path):
    (tmp_path / "ABC.csv").write_text("date,open,high,close\n2024-01-02,10,11,10.5\n")
    with pytest.raises(BarsDataError, match=r"ABC.csv: missing column\(s\) \['low'\]"):
        FolderSource(tmp_path).load("ABC")


def test_symbol_column_mismatch_names_file_and_row(tmp_path, window):
    frame = window.assign(symbol="SPY")
    frame.loc[7, "symbol"] = "QQQ"
    frame.loc[9, "symbol"] = "IWM"
    frame.to_csv(tmp_path / "SPY.csv", index=False)
    with pytest.raises(
        BarsDataError, match=r"SPY -: SPY.csv line 9: symbol column 'QQQ' does not match the file name \(2 row"
    ):
        FolderSource(tmp_path).load("SPY")

    frame.to_parquet(tmp_path / "IWM.parquet", index=False)
    with pytest.raises(BarsDataError, match=r"IWM.parquet row 0: symbol column 'SPY' does not match"):
        FolderSource(tmp_path).load("IWM")


def test_bad_cells_name_the_line(tmp_path):
    (tmp_path / "ABC.csv").write_text("date,open,high,low,close\n2024-01-02,10,11,9,10.5\n2024-01-03,10,11,9,n/a!\n")
    with pytest.raises(BarsDataError, match=r"ABC.csv line 3: close 'n/a!' is not a number"):
        FolderSource(tmp_path).load("ABC")
    (tmp_path / "ABC.csv").write_text("date,open,high,low,close\n2024-01-02,10,11,9,10.5\nsoon,10,11,9,10\n")
    with pytest.raises(BarsDataError, match=r"ABC.csv line 3: unparseable date 'soon'"):
        FolderSource(tmp_path).load("ABC")
    (tmp_path / "ABC.csv").write_text("date,open,high,low,close\n2024-01-02,10,11,9,10.5\n,10,11,9,10\n")
    with pytest.raises(BarsDataError, match=r"ABC.csv line 3: missing date"):
        FolderSource(tmp_path).load("ABC")
    (tmp_path / "ABC.csv").write_text("")
    with pytest.raises(BarsDataError, match=r"ABC -: ABC.csv: empty file"):
        FolderSource(tmp_path).load("ABC")


def test_header_only_file_is_no_bars(tmp_path):
    (tmp_path / "ABC.csv").write_text("date,open,high,low,close\n")
    assert FolderSource(tmp_path).load("ABC").empty
    with pytest.raises(BarsDataError, match=r"ABC -: no bars in source 'folder:"):
        load_clean(FolderSource(tmp_path), ["ABC"])


def test_unknown_symbol_lists_what_the_source_has(tmp_path, window):
    window.drop(columns=["symbol"]).to_csv(tmp_path / "SPY.csv", index=False)
    window.drop(columns=["symbol"]).to_parquet(tmp_path / "QQQ.parquet", index=False)
    (tmp_path / "notes.txt").write_text("not bars")
    src = FolderSource(tmp_path)
    assert src.symbols() == ["QQQ", "SPY"]
    with pytest.raises(UnknownSymbolError) as ei:
        src.load("DAX")
    msg = str(ei.value)
    assert msg.startswith(f"unknown symbol 'DAX' for source 'folder:{tmp_path}'; it has: QQQ, SPY")
    assert isinstance(ei.value, BarsDataError) and isinstance(ei.value, ValueError)
    assert ei.value.symbol == "DAX" and ei.value.source == f"folder:{tmp_path}"
    assert ei.value.available == ["QQQ", "SPY"]

    with pytest.raises(
        UnknownSymbolError, match=r"unknown symbol 'DAX' for source 'arch'; it has: IXIC, SPX \(aliases"
    ):
        ArchSource().load("DAX")
    with pytest.raises(UnknownSymbolError, match="it has: QQQ, SPY"):
        load_clean(src, ["SPY", "DAX"])


def test_same_symbol_in_two_files_and_missing_folder(tmp_path, window):
    window.to_csv(tmp_path / "SPY.csv", index=False)
    window.to_parquet(tmp_path / "spy.parquet", index=False)
    with pytest.raises(BarsDataError, match=r"several files for one symbol .*SPY.csv, spy.parquet"):
        FolderSource(tmp_path).load("SPY")
    gone = FolderSource(tmp_path / "nope")  # constructing reads nothing
    with pytest.raises(FileNotFoundError, match="nope"):
        gone.symbols()


# --------------------------------------------------------------------------- arch, specs, load_clean


def test_arch_source_gives_the_same_bars_as_load_arch_bars(spx):
    src = ArchSource()
    assert src.name == "arch" and src.symbols() == ["IXIC", "SPX"]
    pd.testing.assert_frame_equal(src.load("SPX"), spx)  # the shipped data is already clean
    bars, reports = load_clean(src, ["SPX"])
    pd.testing.assert_frame_equal(bars, spx)
    assert reports["SPX"].ok and reports["SPX"].n_rows_out == 5031
    # the arch frame is cached; a caller mutating a loaded frame does not change the next load
    first = src.load("SPX")
    first.loc[0, "close"] = -1.0
    assert src.load("SPX").loc[0, "close"] == spx.loc[0, "close"]


def test_load_clean_aliases_are_loaded_once():
    bars, reports = load_clean(ArchSource(), ["spx", "SP500", "ndx"])
    assert list(reports) == ["IXIC", "SPX"]
    assert bars.groupby("symbol").size().to_dict() == {"IXIC": 5031, "SPX": 5031}
    assert reports["SPX"].duplicates_dropped == []
    single, _ = load_clean(ArchSource(), "SPX")  # a bare string is one symbol, not its letters
    assert set(single["symbol"]) == {"SPX"}
    with pytest.raises(ValueError, match="no symbols requested"):
        load_clean(ArchSource(), [])


def test_load_clean_as_of_future_bars(tmp_path, window):
    window.assign(symbol="SPY").to_csv(tmp_path / "SPY.csv", index=False)
    src = FolderSource(tmp_path)
    # 2008-11-27 is Thanksgiving: the bars after 2008-11-25 are the 26th and the 28th
    with pytest.raises(BarsDataError, match=r"SPY 2008-11-26: bar dated after as_of 2008-11-25 \(2 future bar"):
        load_clean(src, ["SPY"], as_of="2008-11-25")
    bars, reports = load_clean(src, ["SPY"], as_of="2008-11-25", policy=BarsPolicy(on_future="drop"))
    assert bars["date"].max() == pd.Timestamp("2008-11-25") and len(bars) == 61
    assert reports["SPY"].future_dropped == [pd.Timestamp("2008-11-26"), pd.Timestamp("2008-11-28")]
    assert not reports["SPY"].ok
    bars_all, reports_all = load_clean(src, ["SPY"], as_of="2008-11-28")
    assert len(bars_all) == 63 and reports_all["SPY"].ok


def test_source_from_spec(tmp_path, window):
    assert isinstance(source_from_spec("arch"), ArchSource)
    assert isinstance(source_from_spec("  ARCH "), ArchSource)
    src = source_from_spec(f"folder:{tmp_path}")
    assert isinstance(src, FolderSource) and src.root == tmp_path
    assert src.name == f"folder:{tmp_path}"
    assert source_from_spec(src.name).root == src.root  # the name round-trips
    window.to_csv(tmp_path / "SPY.csv", index=False)
    assert src.symbols() == ["SPY"]
    for bad, why in [
        ("folder:relative/path", "must be absolute"),
        ("folder:", "folder path is empty"),
        ("s3://bucket/bars", "expected 'arch' or 'folder:/abs/path'"),
        ("", "unknown market source spec ''"),
        ("yahoo", "unknown market source spec 'yahoo'"),
    ]:
        with pytest.raises(ValueError, match=why):
            source_from_spec(bad)


def test_sources_satisfy_the_protocol_and_custom_sources_work(tmp_path, window):
    assert isinstance(ArchSource(), MarketSource) and isinstance(FolderSource(tmp_path), MarketSource)

    class Memory:
        name = "memory"

        def symbols(self) -> list[str]:
            return ["M"]

        def load(self, symbol: str) -> pd.DataFrame:
            return _as(window, "M")

    mem = Memory()
    assert isinstance(mem, MarketSource)
    bars, reports = load_clean(mem, ["M"])
    assert len(bars) == 63 and reports["M"].ok
    assert market.validate_bars(bars).ok


def test_date_parsing_variants(tmp_path):
    # ISO dates of differing precision and stray blanks parse; a tz-aware parquet column keeps its wall-clock date
    (tmp_path / "A.csv").write_text(
        "date,open,high,low,close\n2024-01-02 ,10 ,11,9,10.5\n2024-01-03T00:00:00,1e1,11,9,10\n"
    )
    raw = FolderSource(tmp_path).load("A")
    assert raw["date"].tolist() == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]
    assert raw["open"].tolist() == [10.0, 10.0]
    ts = pd.to_datetime(["2024-01-02 16:00", "2024-01-03 16:00"]).tz_localize("Asia/Tokyo")
    pd.DataFrame({"Date": ts, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}).to_parquet(tmp_path / "B.parquet")
    assert FolderSource(tmp_path).load("B")["date"].tolist() == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]
    pd.DataFrame({"date": [20240102], "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}).to_parquet(
        tmp_path / "C.parquet"
    )
    with pytest.raises(BarsDataError, match=r"C.parquet: date column is int64, expected dates"):
        FolderSource(tmp_path).load("C")
