"""Daily market bars: the real index data the ``arch`` package ships, and bar validation.

Other bar sources (a folder of per-symbol CSV / Parquet files, and the ``arch`` data
behind one interface) live in :mod:`include.modelwatch.data.sources`; they all return
raw bars in the convention below and are cleaned by :func:`clean_bars`.

Bar frame convention (what every function here returns and what
:mod:`include.modelwatch.data.features` consumes)::

    symbol  str
    date    datetime64[ns], tz-naive, normalized to midnight (the session date)
    open, high, low, close  float64
    volume  float64 (0 = no reported volume; NaN = volume missing)

One row per (symbol, date), sorted by symbol then date.

Data-problem policy of :func:`clean_bars` / :func:`validate_bars`
(per symbol; every error is a :class:`BarsDataError` naming symbol and date):

==============================  =================================================================
problem                         handling
==============================  =================================================================
missing column / no rows        error
unparseable date                error (names the row position)
duplicated date, identical row  drop the repeats, note
duplicated date, conflicting    error naming symbol and date
dates not ascending             sort + note (``policy.on_unsorted="error"`` raises instead)
NaN in open/high/low/close      a run of at most ``policy.max_ffill_days`` (default 1) bars is
                                replaced by a flat bar at the previous close with volume 0
                                (flagged as zero volume) + note; longer runs, or NaN on the
                                first bar, are an error naming the first date
non-positive price               error
high < low                      error
open or close outside [low, high]  error (relative tolerance 1e-9)
zero volume                     kept, flagged in ``zero_volume_dates`` (the feature volume
                                z-score is NaN on those days)
NaN / negative volume           NaN kept and flagged in ``missing_volume_dates``; negative -> error
gap between consecutive bars    longest gap reported; a gap > ``policy.max_gap_days`` (default 10)
                                calendar days is an error naming both dates
missing NYSE sessions           listed in ``missing_sessions`` (weekdays that are neither NYSE
                                holidays nor known special closures, but have no bar) + note
bars on non-session days        listed in ``extra_sessions`` + note (kept)
bar dated after ``as_of``       only checked when ``clean_bars(..., as_of=...)`` is given (the data
                                interval's end / the replay clock; compared as a calendar date):
                                error naming the first such date (``policy.on_future="error"``,
                                default); ``"drop"`` drops them, lists them in ``future_dropped``
                                + note; all bars in the future is an error
late correction (stored bar)    :func:`corrections` compares incoming bars with already-stored bars
                                of the same (symbol, date), fields open/high/low/close/volume
                                (NaN == NaN, relative tolerance 1e-9);
                                ``policy.on_correction="accept"`` (default): the caller overwrites
                                the stored bar and records the :class:`Correction` list;
                                ``"error"``: :func:`apply_correction_policy` raises naming symbol,
                                date, field, old and new value
==============================  =================================================================
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)
from pandas.tseries.offsets import DateOffset

BAR_COLUMNS: list[str] = ["symbol", "date", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS: list[str] = ["open", "high", "low", "close"]

#: Canonical symbol -> arch.data module that ships it. The arch "nasdaq" data set
#: is the NASDAQ Composite (^IXIC, ~2200 in Jan 1999), hence "IXIC".
ARCH_SYMBOLS: dict[str, str] = {"SPX": "arch.data.sp500", "IXIC": "arch.data.nasdaq"}
#: Accepted alternative names, mapped to the canonical symbol (the returned frame
#: always carries the canonical one).
SYMBOL_ALIASES: dict[str, str] = {
    "SP500": "SPX",
    "GSPC": "SPX",
    "^GSPC": "SPX",
    "S&P500": "SPX",
    "NASDAQ": "IXIC",
    "NDX": "IXIC",
    "^IXIC": "IXIC",
    "COMP": "IXIC",
}

_REL_TOL = 1e-9


class BarsDataError(ValueError):
    """A data problem in market bars that has no safe automatic handling."""

    def __init__(self, symbol: str, date: object, problem: str) -> None:
        self.symbol = symbol
        self.date = _fmt_date(date)
        self.problem = problem
        super().__init__(f"{symbol} {self.date}: {problem}")


def _fmt_date(d: object) -> str:
    if d is None:
        return "-"
    try:
        return pd.Timestamp(d).strftime("%Y-%m-%d")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(d)


# --------------------------------------------------------------------------- calendar


class NYSEHolidayCalendar(AbstractHolidayCalendar):
    """Full-day NYSE holidays (rules valid from 1998; early closes are sessions).

    New Year's Day falling on a Saturday is not moved to Friday (NYSE rule);
    other Saturday holidays close the Friday before, Sunday ones the Monday after.
    """

    rules = [
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        Holiday(
            "Martin Luther King Jr. Day",
            month=1,
            day=1,
            offset=DateOffset(weekday=0, weeks=2),
            start_date=pd.Timestamp("1998-01-01"),
        ),
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, observance=nearest_workday, start_date=pd.Timestamp("2022-01-01")),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas Day", month=12, day=25, observance=nearest_workday),
    ]


#: Unscheduled full-day NYSE closures since 1999.
NYSE_SPECIAL_CLOSURES: tuple[pd.Timestamp, ...] = tuple(
    pd.Timestamp(d)
    for d in (
        "2001-09-11",
        "2001-09-12",
        "2001-09-13",
        "2001-09-14",  # September 11
        "2004-06-11",  # President Reagan's funeral
        "2007-01-02",  # President Ford's funeral
        "2012-10-29",
        "2012-10-30",  # Hurricane Sandy
        "2018-12-05",  # President G. H. W. Bush's funeral
        "2025-01-09",  # President Carter's funeral
    )
)


def nyse_sessions(start: object, end: object) -> pd.DatetimeIndex:
    """Expected NYSE full-day sessions between ``start`` and ``end`` inclusive."""
    s, e = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()  # type: ignore[arg-type]
    days = pd.bdate_range(s, e)
    hol = NYSEHolidayCalendar().holidays(s, e)
    closed = hol.union(pd.DatetimeIndex(NYSE_SPECIAL_CLOSURES))
    return pd.DatetimeIndex(days.difference(closed).astype("datetime64[ns]"))


# --------------------------------------------------------------------------- loading


def canonical_symbol(symbol: str) -> str:
    """Map a symbol or alias (case-insensitive) to its canonical arch symbol."""
    s = symbol.strip().upper()
    s = SYMBOL_ALIASES.get(s, s)
    if s not in ARCH_SYMBOLS:
        known = sorted(ARCH_SYMBOLS) + sorted(SYMBOL_ALIASES)
        raise KeyError(f"unknown arch symbol {symbol!r}; known: {', '.join(known)}")
    return s


@functools.cache
def _arch_raw_cached(sym: str) -> pd.DataFrame:
    return importlib.import_module(ARCH_SYMBOLS[sym]).load()


def _arch_raw(sym: str) -> pd.DataFrame:
    return _arch_raw_cached(sym).copy()


def arch_raw_bars(symbol: str) -> pd.DataFrame:
    """Uncleaned bars of one ``arch`` data set in this module's bar convention.

    Same frame :func:`load_arch_bars` returns before :func:`clean_bars` (the raw
    ``arch`` frame is cached per process; every call returns a fresh copy).
    Raises ``KeyError`` for an unknown symbol (see :func:`canonical_symbol`).
    """
    sym = canonical_symbol(symbol)
    raw = _arch_raw(sym)
    factor = raw["Adj Close"] / raw["Close"] if "Adj Close" in raw.columns else pd.Series(1.0, index=raw.index)
    return pd.DataFrame(
        {
            "symbol": sym,
            "date": pd.DatetimeIndex(raw.index).normalize().astype("datetime64[ns]"),
            "open": (raw["Open"] * factor).to_numpy(dtype="float64"),
            "high": (raw["High"] * factor).to_numpy(dtype="float64"),
            "low": (raw["Low"] * factor).to_numpy(dtype="float64"),
            "close": (raw["Adj Close"] if "Adj Close" in raw.columns else raw["Close"]).to_numpy(dtype="float64"),
            "volume": raw["Volume"].to_numpy(dtype="float64"),
        }
    )


def load_arch_bars(symbol: str = "SPX") -> pd.DataFrame:
    """Real daily OHLCV bars shipped by ``arch`` (1999-01-04 .. 2018-12-31).

    ``symbol``: ``"SPX"`` (S&P 500, ``arch.data.sp500``) or ``"IXIC"`` (NASDAQ
    Composite, ``arch.data.nasdaq``); aliases in :data:`SYMBOL_ALIASES`.

    Prices: ``close`` is ``Adj Close`` when present, and open/high/low are
    multiplied by the same per-day factor ``Adj Close / Close`` so the bar stays
    internally consistent (for these price indices the factor is exactly 1).
    Returns the bar frame convention of this module, passed through
    :func:`clean_bars` with the default policy (raises :class:`BarsDataError`
    if the shipped data had a problem).
    """
    clean, _ = clean_bars(arch_raw_bars(symbol))
    return clean


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class BarsPolicy:
    """How :func:`clean_bars` treats fixable problems (see the module table)."""

    on_unsorted: Literal["sort", "error"] = "sort"
    max_ffill_days: int = 1
    max_gap_days: int = 10
    check_sessions: bool = True
    #: bars dated after ``as_of`` (only checked when :func:`clean_bars` gets ``as_of``)
    on_future: Literal["error", "drop"] = "error"
    #: late corrections of already-stored bars (see :func:`apply_correction_policy`)
    on_correction: Literal["accept", "error"] = "accept"

    def __post_init__(self) -> None:
        if self.on_future not in ("error", "drop"):
            raise ValueError(f"BarsPolicy.on_future must be 'error' or 'drop', got {self.on_future!r}")
        if self.on_correction not in ("accept", "error"):
            raise ValueError(f"BarsPolicy.on_correction must be 'accept' or 'error', got {self.on_correction!r}")


DEFAULT_POLICY = BarsPolicy()


@dataclass
class BarsReport:
    """What :func:`clean_bars` found and did for one symbol."""

    symbol: str
    n_rows_in: int = 0
    n_rows_out: int = 0
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    duplicates_dropped: list[pd.Timestamp] = field(default_factory=list)
    future_dropped: list[pd.Timestamp] = field(default_factory=list)
    reordered: bool = False
    filled_dates: list[pd.Timestamp] = field(default_factory=list)
    zero_volume_dates: list[pd.Timestamp] = field(default_factory=list)
    missing_volume_dates: list[pd.Timestamp] = field(default_factory=list)
    longest_gap_days: int = 0
    longest_gap: tuple[pd.Timestamp, pd.Timestamp] | None = None
    missing_sessions: list[pd.Timestamp] = field(default_factory=list)
    extra_sessions: list[pd.Timestamp] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the bars needed no change and nothing was flagged."""
        return not (
            self.duplicates_dropped
            or self.future_dropped
            or self.reordered
            or self.filled_dates
            or self.zero_volume_dates
            or self.missing_volume_dates
            or self.missing_sessions
            or self.extra_sessions
        )


def _short(dates: Iterable[object], k: int = 5) -> str:
    ds = [_fmt_date(d) for d in dates]
    return ", ".join(ds[:k]) + (f" (+{len(ds) - k} more)" if len(ds) > k else "")


def _rows_equal(g: pd.DataFrame) -> bool:
    vals = g[PRICE_COLUMNS + ["volume"]].to_numpy(dtype="float64")
    first = vals[0]
    same = (vals == first) | (np.isnan(vals) & np.isnan(first))
    return bool(same.all())


def _as_of_date(as_of: object) -> pd.Timestamp:
    """The calendar date of ``as_of`` (a tz-aware value keeps its own wall-clock date)."""
    try:
        ts = pd.Timestamp(as_of)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"as_of must be a date or timestamp, got {as_of!r}") from exc
    if ts is pd.NaT:
        raise ValueError(f"as_of must be a date or timestamp, got {as_of!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize().as_unit("ns")


def _clean_one(
    df: pd.DataFrame, symbol: str, policy: BarsPolicy, as_of: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, BarsReport]:
    rep = BarsReport(symbol=symbol, n_rows_in=len(df))
    if df.empty:
        raise BarsDataError(symbol, None, "no bars")

    # future-dated bars (only with an as_of clock)
    if as_of is not None:
        future = (df["date"] > as_of).to_numpy()
        if future.any():
            fdates = pd.DatetimeIndex(df.loc[future, "date"]).unique().sort_values()
            if policy.on_future == "error":
                raise BarsDataError(
                    symbol,
                    fdates[0],
                    f"bar dated after as_of {_fmt_date(as_of)} ({int(future.sum())} future bar(s); "
                    "policy on_future='error')",
                )
            if future.all():
                raise BarsDataError(symbol, fdates[0], f"all {len(df)} bar(s) are dated after as_of {_fmt_date(as_of)}")
            rep.future_dropped = [pd.Timestamp(d) for d in fdates]
            df = df.loc[~future]
            rep.notes.append(
                f"dropped {int(future.sum())} bar(s) dated after as_of {_fmt_date(as_of)}: {_short(fdates)}"
            )

    # order
    if not df["date"].is_monotonic_increasing:
        if policy.on_unsorted == "error":
            diffs = df["date"].diff()
            bad = df["date"][diffs < pd.Timedelta(0)].iloc[0]
            raise BarsDataError(symbol, bad, "dates are not in ascending order")
        rep.reordered = True
        rep.notes.append("dates were not ascending; sorted")
        df = df.sort_values("date", kind="stable")

    # duplicates
    dup_mask = df["date"].duplicated(keep=False)
    if dup_mask.any():
        for d in pd.DatetimeIndex(df.loc[dup_mask, "date"]).unique().sort_values():
            g = df[df["date"] == d]
            if not _rows_equal(g):
                raise BarsDataError(symbol, d, f"{len(g)} conflicting bars for the same date")
            rep.duplicates_dropped.append(d)
        df = df.drop_duplicates("date", keep="first")
        rep.notes.append(f"dropped identical duplicate bars on {_short(rep.duplicates_dropped)}")
    df = df.reset_index(drop=True)

    # NaN prices: flat bar at the previous close for short runs
    nan_rows = df[PRICE_COLUMNS].isna().any(axis=1).to_numpy()
    if nan_rows.any():
        idx = np.flatnonzero(nan_rows)
        if idx[0] == 0:
            raise BarsDataError(symbol, df["date"].iloc[0], "NaN price on the first bar (nothing to forward-fill from)")
        run_start = idx[0]
        run_len = 0
        prev = None
        for i in idx:
            run_start, run_len = (run_start, run_len + 1) if prev is not None and i == prev + 1 else (i, 1)
            if run_len > policy.max_ffill_days:
                raise BarsDataError(
                    symbol,
                    df["date"].iloc[run_start],
                    f"NaN open/high/low/close on {run_len} consecutive bars from this date "
                    f"(forward-fill limit {policy.max_ffill_days})",
                )
            prev = i
        closes = df["close"].to_numpy(dtype="float64", copy=True)
        for i in idx:
            prev_close = float(closes[i - 1])
            closes[i] = prev_close  # a run of NaN bars carries the last real close forward
            df.loc[i, PRICE_COLUMNS] = prev_close
            df.loc[i, "volume"] = 0.0
        rep.filled_dates = [pd.Timestamp(d) for d in df["date"].iloc[idx]]
        rep.notes.append(f"forward-filled NaN prices with the previous close on {_short(rep.filled_dates)}")

    o, h, lo, c = (df[k].to_numpy(dtype="float64") for k in PRICE_COLUMNS)
    dates = df["date"]
    tol = _REL_TOL * np.abs(h)
    checks = [
        (~np.isfinite(np.stack([o, h, lo, c])).all(axis=0), "non-finite price"),
        (~(np.minimum.reduce([o, h, lo, c]) > 0), "non-positive price"),
        (h < lo - tol, "high < low"),
        ((c > h + tol) | (c < lo - tol), "close outside [low, high]"),
        ((o > h + tol) | (o < lo - tol), "open outside [low, high]"),
    ]
    for mask, what in checks:
        if mask.any():
            j = int(np.flatnonzero(mask)[0])
            raise BarsDataError(
                symbol,
                dates.iloc[j],
                f"{what} (open={o[j]:g} high={h[j]:g} low={lo[j]:g} close={c[j]:g}; {int(mask.sum())} bar(s) affected)",
            )

    vol = df["volume"].to_numpy(dtype="float64")
    if (vol < 0).any():
        j = int(np.flatnonzero(vol < 0)[0])
        raise BarsDataError(symbol, dates.iloc[j], f"negative volume {vol[j]:g}")
    rep.zero_volume_dates = [pd.Timestamp(d) for d in dates[vol == 0]]
    rep.missing_volume_dates = [pd.Timestamp(d) for d in dates[np.isnan(vol)]]
    if rep.zero_volume_dates:
        rep.notes.append(f"zero volume on {_short(rep.zero_volume_dates)} (kept; volume z-score NaN there)")
    if rep.missing_volume_dates:
        rep.notes.append(f"missing volume on {_short(rep.missing_volume_dates)} (kept as NaN)")

    # gaps
    if len(df) > 1:
        gaps = dates.diff().dt.days.to_numpy()[1:]
        j = int(np.argmax(gaps))
        rep.longest_gap_days = int(gaps[j])
        rep.longest_gap = (pd.Timestamp(dates.iloc[j]), pd.Timestamp(dates.iloc[j + 1]))
        if rep.longest_gap_days > policy.max_gap_days:
            big = np.flatnonzero(gaps > policy.max_gap_days)[0]
            a, b = dates.iloc[big], dates.iloc[big + 1]
            raise BarsDataError(
                symbol,
                a,
                f"gap of {int(gaps[big])} calendar days to the next bar on {_fmt_date(b)} "
                f"(limit {policy.max_gap_days})",
            )
    if policy.check_sessions:
        expected = nyse_sessions(dates.iloc[0], dates.iloc[-1])
        have = pd.DatetimeIndex(dates)
        rep.missing_sessions = list(expected.difference(have))
        rep.extra_sessions = list(have.difference(expected))
        if rep.missing_sessions:
            rep.notes.append(
                f"{len(rep.missing_sessions)} NYSE session(s) without a bar: {_short(rep.missing_sessions)}"
            )
        if rep.extra_sessions:
            rep.notes.append(f"{len(rep.extra_sessions)} bar(s) on non-session days: {_short(rep.extra_sessions)}")

    rep.n_rows_out = len(df)
    rep.start, rep.end = pd.Timestamp(dates.iloc[0]), pd.Timestamp(dates.iloc[-1])
    return df, rep


def _coerce(df: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"bars must be a pandas DataFrame, got {type(df).__name__}")
    d = df.copy()
    if "date" not in d.columns and d.index.name == "date":
        d = d.reset_index()
    missing = [c for c in BAR_COLUMNS if c not in d.columns]
    if missing:
        who = str(d["symbol"].iloc[0]) if "symbol" in d.columns and len(d) else "?"
        raise BarsDataError(who, None, f"missing column(s) {missing}")
    d = d[BAR_COLUMNS]
    try:
        dt = pd.to_datetime(d["date"])
    except (TypeError, ValueError) as exc:
        raise BarsDataError(str(d["symbol"].iloc[0]), None, f"unparseable date: {exc}") from exc
    if getattr(dt.dt, "tz", None) is not None:
        dt = dt.dt.tz_convert(None)
    if dt.isna().any():
        i = int(np.flatnonzero(dt.isna().to_numpy())[0])
        raise BarsDataError(str(d["symbol"].iloc[i]), None, f"missing date at row position {i}")
    d["date"] = dt.dt.normalize().astype("datetime64[ns]")
    d["symbol"] = d["symbol"].astype(str)
    for k in PRICE_COLUMNS + ["volume"]:
        d[k] = pd.to_numeric(d[k], errors="coerce").astype("float64")
    return d


def clean_bars(
    df: pd.DataFrame, policy: BarsPolicy | None = None, as_of: object | None = None
) -> tuple[pd.DataFrame, dict[str, BarsReport]]:
    """Apply the data-problem policy of this module to bars of one or more symbols.

    Returns ``(clean_bars, {symbol: BarsReport})``; the frame follows the module's
    bar convention (sorted by symbol, date; fresh RangeIndex). Raises
    :class:`BarsDataError` (a ``ValueError``) naming symbol and date for
    problems without a safe automatic handling.

    ``as_of`` (the data interval's end / the replay clock; a date, timestamp or
    ISO string) enables the future-dated-bar rule: a bar whose session date is
    after the calendar date of ``as_of`` is an error (``policy.on_future="error"``)
    or dropped with a note (``"drop"``). Without ``as_of`` nothing is checked.
    """
    pol = policy or DEFAULT_POLICY
    clock = None if as_of is None else _as_of_date(as_of)
    d = _coerce(df)
    if d.empty:
        raise BarsDataError("?", None, "no bars")
    parts: list[pd.DataFrame] = []
    reports: dict[str, BarsReport] = {}
    for sym, g in d.groupby("symbol", sort=True):
        cg, rep = _clean_one(g, str(sym), pol, clock)
        parts.append(cg)
        reports[str(sym)] = rep
    out = pd.concat(parts, ignore_index=True)[BAR_COLUMNS]
    return out, reports


def validate_bars(
    df: pd.DataFrame, policy: BarsPolicy | None = None, as_of: object | None = None
) -> BarsReport | dict[str, BarsReport]:
    """Check bars without returning the cleaned frame.

    Same checks and errors as :func:`clean_bars`. Returns the
    :class:`BarsReport` for a single-symbol frame, a ``{symbol: report}`` dict
    for a multi-symbol frame. A report with ``ok == True`` means the bars were
    already clean (nothing dropped, sorted, filled or flagged).
    """
    _, reports = clean_bars(df, policy, as_of)
    return next(iter(reports.values())) if len(reports) == 1 else reports


# --------------------------------------------------------------------------- late corrections

#: Bar fields compared by :func:`corrections`, in report order.
CORRECTION_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, eq=False)
class Correction:
    """One field of an already-stored bar that an incoming bar changes (``old`` -> ``new``; NaN = missing).

    Equality treats NaN as equal to NaN (like :func:`corrections` does).
    """

    symbol: str
    date: pd.Timestamp
    field: str
    old: float
    new: float

    def _key(self) -> tuple[object, ...]:
        def v(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return (self.symbol, pd.Timestamp(self.date), self.field, v(self.old), v(self.new))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Correction):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return f"{self.symbol} {_fmt_date(self.date)} {self.field}: {_fmt_num(self.old)} -> {_fmt_num(self.new)}"


def _fmt_num(x: float) -> str:
    if np.isnan(x):
        return "NaN"
    if float(x).is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(float(x))


def _keyed(df: pd.DataFrame, which: str) -> pd.DataFrame:
    d = _coerce(df)
    dup = d.duplicated(["symbol", "date"], keep=False)
    if dup.any():
        r = d[dup].iloc[0]
        raise BarsDataError(str(r["symbol"]), r["date"], f"{int(dup.sum())} bars for the same date in the {which} bars")
    return d.set_index(["symbol", "date"])


def corrections(new: pd.DataFrame, stored: pd.DataFrame, rel_tol: float = _REL_TOL) -> list[Correction]:
    """Fields of already-stored bars that ``new`` bars of the same (symbol, date) change.

    Both frames follow the module's bar convention (``date`` may be date objects,
    numbers may be ``Decimal``, as a DB driver returns them). Only (symbol, date)
    pairs present in both are compared, on :data:`CORRECTION_FIELDS`: two NaN are
    equal, a NaN against a number is a correction, two numbers differ when
    ``|new - old| > rel_tol * max(|old|, |new|)`` (``rel_tol=0``: exact).
    An empty frame on either side gives ``[]``; several bars for the same
    (symbol, date) on one side are a :class:`BarsDataError`.
    Returns the corrections sorted by symbol, date, then field order.
    """
    if rel_tol < 0:
        raise ValueError(f"rel_tol must be >= 0, got {rel_tol!r}")
    if len(new) == 0 or len(stored) == 0:
        return []
    n, s = _keyed(new, "new"), _keyed(stored, "stored")
    common = n.index.intersection(s.index).sort_values()
    if common.empty:
        return []
    nv = n.loc[common, list(CORRECTION_FIELDS)].to_numpy(dtype="float64")
    sv = s.loc[common, list(CORRECTION_FIELDS)].to_numpy(dtype="float64")
    both_nan = np.isnan(nv) & np.isnan(sv)
    with np.errstate(invalid="ignore"):
        close = np.abs(nv - sv) <= rel_tol * np.maximum(np.abs(nv), np.abs(sv))
    changed = ~(both_nan | close)  # a NaN on one side only compares False -> changed
    out: list[Correction] = []
    for i, j in zip(*np.nonzero(changed), strict=True):
        sym, day = common[i]
        out.append(Correction(str(sym), pd.Timestamp(day), CORRECTION_FIELDS[j], float(sv[i, j]), float(nv[i, j])))
    return out


def apply_correction_policy(found: Iterable[Correction], policy: BarsPolicy | None = None) -> list[Correction]:
    """Apply ``policy.on_correction`` to the output of :func:`corrections`.

    ``"accept"`` (default): returns the corrections as a list (the caller
    overwrites the stored bars and records them). ``"error"``: raises a
    :class:`BarsDataError` naming symbol, date, field, old and new value of the
    first correction (and listing up to five) when there is any.
    """
    pol = policy or DEFAULT_POLICY
    found = list(found)
    if found and pol.on_correction == "error":
        first = found[0]
        more = f"; {len(found)} correction(s): " + "; ".join(str(c) for c in found[:5]) if len(found) > 1 else ""
        if len(found) > 5:
            more += f" (+{len(found) - 5} more)"
        raise BarsDataError(
            first.symbol,
            first.date,
            f"late correction of an already-stored bar: {first.field} {_fmt_num(first.old)} -> "
            f"{_fmt_num(first.new)} (policy on_correction='error'{more})",
        )
    return found
