"""Features, labels and realized outcomes from daily bars of one symbol (pure pandas/numpy).

No look-ahead: every feature of the row dated ``t`` is computed from bars dated
``<= t`` only (rolling windows end at ``t``, exponential/Wilder smoothings are
recursive from the first bar forward). Labels and outcomes are the only
forward-looking quantities and are kept apart in :func:`make_labels` /
:func:`compute_outcomes`.

Conventions
-----------
* Input bars: columns ``date, open, high, low, close, volume`` (``symbol``
  optional; a single symbol), or a ``DatetimeIndex`` named ``date``; see
  :mod:`include.modelwatch.data.market` (run :func:`~include.modelwatch.data.market.clean_bars`
  first: dates must be unique, ascending, and closes non-NaN).
* Output frames are indexed by a tz-naive ``DatetimeIndex`` named ``date``.
* Returns are natural-log returns; volatilities are sample standard deviations
  (ddof=1) of daily log returns, annualized with ``sqrt(252)``.
* Rows with insufficient history are **kept with NaN** in the affected
  columns (e.g. ``dist_sma_200`` is NaN on the first 199 bars); pass
  ``dropna=True`` to :func:`compute_features` to keep only complete rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from include.modelwatch import vocabulary

TRADING_DAYS = vocabulary.TRADING_DAYS
#: Bars (including t) after which every feature is defined on clean bars: the
#: 252-bar drawdown is the longest look-back. A row with fewer bars before it
#: has NaN features because history is missing, not because its bar is bad.
WARMUP_BARS: int = TRADING_DAYS

#: Feature columns in model input order.
FEATURE_COLUMNS: list[str] = [
    "ret_1d",
    "ret_5d",
    "ret_10d",
    "ret_21d",
    "ret_63d",
    "vol_5d",
    "vol_21d",
    "vol_63d",
    "vol_ratio_5_21",
    "rsi_14",
    "macd_line",
    "macd_signal",
    "macd_hist",
    "bb_pctb_20",
    "dist_sma_50",
    "dist_sma_200",
    "atr_14_pct",
    "volume_z_20",
    "hl_range",
    "overnight_gap",
    "drawdown_252",
    "day_of_week",
    "month",
]

#: Extra features of the volatility-regime target (``training/targets.py``): each volatility relative to the
#: trailing one-year median of ``vol_5d``, the very threshold the regime label compares the next week against.
REGIME_FEATURES: list[str] = ["vol_5d_rel", "vol_21d_rel", "vol_63d_rel"]

_RET_WINDOWS = (1, 5, 10, 21, 63)
_VOL_WINDOWS = (5, 21, 63)


def prepare_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars of one symbol as float OHLCV indexed by a sorted unique ``DatetimeIndex`` named ``date``.

    Raises ``ValueError`` for several symbols, missing columns, duplicated or
    unsorted dates, or NaN / non-positive closes.
    """
    if not isinstance(bars, pd.DataFrame):
        raise TypeError(f"bars must be a DataFrame, got {type(bars).__name__}")
    df = bars
    if "symbol" in df.columns:
        syms = pd.unique(df["symbol"])
        if len(syms) > 1:
            raise ValueError(f"bars hold {len(syms)} symbols ({', '.join(map(str, syms[:5]))}); pass one symbol")
    if "date" in df.columns:
        df = df.set_index("date")
    need = ["open", "high", "low", "close", "volume"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"bars lack column(s) {missing}")
    idx = pd.DatetimeIndex(pd.to_datetime(df.index))
    if idx.tz is not None:
        idx = idx.tz_convert(None)
    out = pd.DataFrame(
        {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float64") for c in need},
        index=idx.normalize().astype("datetime64[ns]"),
    )
    out.index.name = "date"
    if out.index.has_duplicates:
        d = out.index[out.index.duplicated()][0]
        raise ValueError(f"duplicated bar date {d:%Y-%m-%d}; run market.clean_bars first")
    if not out.index.is_monotonic_increasing:
        raise ValueError("bar dates are not ascending; run market.clean_bars first")
    close = out["close"].to_numpy()
    bad = ~(close > 0)
    if bad.any():
        d = out.index[np.flatnonzero(bad)[0]]
        raise ValueError(f"NaN or non-positive close on {d:%Y-%m-%d}; run market.clean_bars first")
    return out


def _wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing: seed = mean of the first ``n`` values, then ``s += (x - s) / n``.

    Leading NaNs in ``x`` are skipped; the output is NaN before the seed.
    """
    out = np.full(x.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(x))
    if valid.size < n:
        return out
    start = int(valid[0])
    seed_end = start + n - 1
    if np.isnan(x[start : seed_end + 1]).any():
        raise ValueError("Wilder smoothing input has interior NaN")
    s = float(np.mean(x[start : seed_end + 1]))
    out[seed_end] = s
    for i in range(seed_end + 1, x.size):
        s = s + (x[i] - s) / n
        out[i] = s
    return out


def _ema(s: pd.Series, span: int) -> pd.Series:
    """Recursive EMA (alpha = 2/(span+1)) started at the first value; NaN for the first span-1 rows."""
    e = s.ewm(span=span, adjust=False).mean()
    e.iloc[: span - 1] = np.nan
    return e


def rsi_wilder(close: pd.Series, n: int = 14) -> pd.Series:
    """Wilder's RSI in [0, 100]; 100 when there was no loss in the smoothing, 50 when flat."""
    diff = close.diff().to_numpy()
    gain = _wilder(np.where(np.isnan(diff), np.nan, np.maximum(diff, 0.0)), n)
    loss = _wilder(np.where(np.isnan(diff), np.nan, np.maximum(-diff, 0.0)), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + gain / loss)
    rsi = np.where((loss == 0) & (gain > 0), 100.0, rsi)
    rsi = np.where((loss == 0) & (gain == 0), 50.0, rsi)
    return pd.Series(rsi, index=close.index)


def compute_features(bars: pd.DataFrame, dropna: bool = False, columns: list[str] | None = None) -> pd.DataFrame:
    """The features ``columns`` (default :data:`FEATURE_COLUMNS`; any of those and :data:`REGIME_FEATURES`) for
    every bar of one symbol, indexed by date.

    ===================  ====================================================================
    ret_Nd               log(close_t / close_{t-N}), N in 1, 5, 10, 21, 63
    vol_Nd               std(ddof=1) of the last N daily log returns * sqrt(252), N in 5, 21, 63
    vol_ratio_5_21       vol_5d / vol_21d
    rsi_14               Wilder RSI (seeded with the simple mean of the first 14 changes)
    macd_*               EMA12 - EMA26 (line), EMA9 of the line (signal), line - signal (hist),
                         each divided by close_t; NaN until 26 / 34 / 34 bars exist
    bb_pctb_20           (close - lower) / (upper - lower), bands SMA20 +/- 2 population std
    dist_sma_N           close / SMA_N - 1, N in 50, 200
    atr_14_pct           Wilder ATR(14) of the true range / close
    volume_z_20          z-score of log(volume_t) against the last 20 bars' log volumes (incl. t);
                         zero or missing volume is NaN and skipped (at least 10 valid of 20)
    hl_range             log(high / low)
    overnight_gap        log(open_t / close_{t-1})
    drawdown_252         close / max(close over the last 252 bars) - 1
    day_of_week, month   calendar (Mon = 0; 1..12)
    vol_Nd_rel           vol_Nd / median(vol_5d over the last 252 bars), N in 5, 21, 63
                         (:data:`REGIME_FEATURES`; NaN until 257 bars exist)
    ===================  ====================================================================
    """
    columns = list(FEATURE_COLUMNS if columns is None else columns)
    unknown = sorted(set(columns) - set(FEATURE_COLUMNS) - set(REGIME_FEATURES))
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}")
    b = prepare_bars(bars)
    c, o, h, lo, v = b["close"], b["open"], b["high"], b["low"], b["volume"]
    logc = pd.Series(np.log(c.to_numpy()), index=b.index)
    r1 = logc.diff()
    f = pd.DataFrame(index=b.index)
    for n in _RET_WINDOWS:
        f[f"ret_{n}d"] = logc - logc.shift(n)
    for n in _VOL_WINDOWS:
        f[f"vol_{n}d"] = r1.rolling(n, min_periods=n).std(ddof=1) * np.sqrt(TRADING_DAYS)
    with np.errstate(divide="ignore", invalid="ignore"):
        f["vol_ratio_5_21"] = f["vol_5d"] / f["vol_21d"]
    f["rsi_14"] = rsi_wilder(c, 14)

    line = _ema(c, 12) - _ema(c, 26)
    line.iloc[:25] = np.nan
    signal = line.ewm(span=9, adjust=False, ignore_na=True).mean()
    signal.iloc[:33] = np.nan
    f["macd_line"] = line / c
    f["macd_signal"] = signal / c
    f["macd_hist"] = (line - signal) / c

    sma20 = c.rolling(20, min_periods=20).mean()
    sd20 = c.rolling(20, min_periods=20).std(ddof=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f["bb_pctb_20"] = ((c - (sma20 - 2 * sd20)) / (4 * sd20)).replace([np.inf, -np.inf], np.nan)
    for n in (50, 200):
        f[f"dist_sma_{n}"] = c / c.rolling(n, min_periods=n).mean() - 1.0

    prev_c = c.shift(1)
    tr = pd.concat([h - lo, (h - prev_c).abs(), (lo - prev_c).abs()], axis=1).max(axis=1, skipna=True)
    f["atr_14_pct"] = _wilder(tr.to_numpy(dtype="float64"), 14) / c.to_numpy()

    lv = pd.Series(
        np.where(v.to_numpy() > 0, np.log(np.where(v.to_numpy() > 0, v.to_numpy(), 1.0)), np.nan), index=b.index
    )
    m = lv.rolling(20, min_periods=10).mean()
    s = lv.rolling(20, min_periods=10).std(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f["volume_z_20"] = ((lv - m) / s).replace([np.inf, -np.inf], np.nan)

    f["hl_range"] = np.log(h / lo)
    f["overnight_gap"] = np.log(o / prev_c)
    f["drawdown_252"] = c / c.rolling(TRADING_DAYS, min_periods=TRADING_DAYS).max() - 1.0
    dates = pd.DatetimeIndex(b.index)
    f["day_of_week"] = dates.day_of_week.astype("float64")
    f["month"] = dates.month.astype("float64")
    if set(columns) & set(REGIME_FEATURES):
        median_vol = f["vol_5d"].rolling(TRADING_DAYS, min_periods=TRADING_DAYS).median()
        with np.errstate(divide="ignore", invalid="ignore"):
            for n in _VOL_WINDOWS:
                f[f"vol_{n}d_rel"] = (f[f"vol_{n}d"] / median_vol).replace([np.inf, -np.inf], np.nan)
    f = f[columns].astype("float64")
    return f.dropna() if dropna else f


def trailing_daily_vol(close: pd.Series, vol_window: int = 21) -> pd.Series:
    """Sample std (ddof=1) of the last ``vol_window`` daily log returns ending at t (not annualized)."""
    r1 = pd.Series(np.log(close.to_numpy(dtype="float64")), index=close.index).diff()
    return r1.rolling(vol_window, min_periods=vol_window).std(ddof=1)


def make_labels(bars: pd.DataFrame, horizon: int = 5, k: float = 0.5, vol_window: int = 21) -> pd.DataFrame:
    """Forward-return labels, indexed by date.

    Columns:

    * ``r_fwd``: ``log(close_{t+horizon} / close_t)`` with ``t+horizon`` counted in
      bars (NaN for the last ``horizon`` bars: not known yet);
    * ``sigma_daily``: :func:`trailing_daily_vol` at t (known at t);
    * ``threshold``: ``k * sigma_daily * sqrt(horizon)`` = the risk unit;
    * ``label``: ``"BUY"`` if ``r_fwd > threshold``, ``"SELL"`` if ``r_fwd < -threshold``,
      else ``"HOLD"``; missing (NaN, pandas ``str`` dtype) where r_fwd or sigma is NaN;
    * ``matured_at``: date of the bar ``t+horizon`` (NaT if it does not exist yet).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if vol_window < 2:
        raise ValueError(f"vol_window must be >= 2, got {vol_window}")
    if not k > 0:
        raise ValueError(f"k must be > 0, got {k}")
    b = prepare_bars(bars)
    c = b["close"]
    logc = pd.Series(np.log(c.to_numpy()), index=b.index)
    r_fwd = logc.shift(-horizon) - logc
    sigma = trailing_daily_vol(c, vol_window)
    thr = k * sigma * np.sqrt(horizon)
    rv, tv = r_fwd.to_numpy(), thr.to_numpy()
    known = ~(np.isnan(rv) | np.isnan(tv))
    lab = np.where(rv > tv, "BUY", np.where(rv < -tv, "SELL", "HOLD")).astype(object)
    lab[~known] = None
    matured = pd.Series(b.index, index=b.index).shift(-horizon)
    return pd.DataFrame(
        {"r_fwd": r_fwd, "sigma_daily": sigma, "threshold": thr, "label": lab, "matured_at": matured},
        index=b.index,
    )


_DIRECTION = {"BUY": 1.0, "SELL": -1.0, "HOLD": 0.0}


def entry_label_rows(labels: pd.DataFrame, entry_dates: pd.Series) -> tuple[pd.DatetimeIndex, pd.DataFrame]:
    """The entry dates (normalized) and the rows of per-bar ``labels`` (indexed by date) at them; a ValueError
    names how many entry dates are not bar dates, and the first."""
    entry = pd.DatetimeIndex(pd.DatetimeIndex(pd.to_datetime(entry_dates)).normalize().astype("datetime64[ns]"))
    pos = labels.index.get_indexer(entry)
    if (pos < 0).any():
        missing = entry[pos < 0]
        raise ValueError(f"{len(missing)} entry date(s) are not bar dates, first {missing[0]:%Y-%m-%d}")
    return entry, labels.iloc[pos]


def compute_outcomes(
    predictions: pd.DataFrame,
    bars: pd.DataFrame,
    horizon: int = 5,
    k: float = 0.5,
    vol_window: int = 21,
) -> pd.DataFrame:
    """Realized outcomes of the matured predictions of one symbol.

    ``predictions`` needs an entry-date column (``entry_date``, else ``date``)
    and ``predicted_label`` (one of :data:`~include.modelwatch.vocabulary.CLASSES`); other columns (e.g.
    ``prediction_id``) are carried through. A prediction is *matured* when the
    bar ``horizon`` bars after its entry bar exists in ``bars``; immature rows
    are excluded. Added columns:

    * ``realized_return``: forward log return ``log(close_{t+h} / close_t)``;
    * ``realized_label``: the label :func:`make_labels` gives that bar;
    * ``matured_at``: date of the bar ``t+h``;
    * ``risk_unit``: ``k * sigma_daily_t * sqrt(h)`` (the label threshold at entry);
    * ``trade_return``: ``+realized_return`` for BUY, ``-realized_return`` for SELL, 0 for HOLD;
    * ``r_multiple``: ``trade_return / risk_unit`` (0.0 for HOLD: no trade).

    Raises ``ValueError`` if an entry date is not a bar date, a label is not in
    :data:`~include.modelwatch.vocabulary.CLASSES`, or a matured entry lacks the ``vol_window + 1`` bars of
    history its risk unit needs.
    """
    date_col = "entry_date" if "entry_date" in predictions.columns else "date"
    for col in (date_col, "predicted_label"):
        if col not in predictions.columns:
            raise ValueError(f"predictions lack column {col!r}")
    labels = make_labels(bars, horizon=horizon, k=k, vol_window=vol_window)
    out = predictions.copy()
    bad_lab = ~out["predicted_label"].isin(vocabulary.CLASSES)
    if bad_lab.any():
        raise ValueError(
            f"unknown predicted_label {out['predicted_label'][bad_lab].iloc[0]!r}; "
            f"expected one of {list(vocabulary.CLASSES)}"
        )
    entry, lab = entry_label_rows(labels, out[date_col])
    matured = lab["matured_at"].notna().to_numpy()
    no_sigma = matured & lab["sigma_daily"].isna().to_numpy()
    if no_sigma.any():
        d = entry[no_sigma][0]
        raise ValueError(f"entry {d:%Y-%m-%d} has fewer than {vol_window + 1} bars of history for its risk unit")
    out = out.loc[matured].copy()
    lab = lab.iloc[np.flatnonzero(matured)]
    direction = out["predicted_label"].map(_DIRECTION).to_numpy(dtype="float64")
    ret = lab["r_fwd"].to_numpy()
    risk = lab["threshold"].to_numpy()
    trade = direction * ret
    out["realized_return"] = ret
    out["realized_label"] = lab["label"].to_numpy()
    out["matured_at"] = lab["matured_at"].to_numpy()
    out["risk_unit"] = risk
    out["trade_return"] = trade
    out["r_multiple"] = trade / risk
    out["horizon"] = horizon
    return out


def compute_outcome(
    entry_date: object,
    predicted_label: str,
    bars: pd.DataFrame,
    horizon: int = 5,
    k: float = 0.5,
    vol_window: int = 21,
) -> dict[str, object] | None:
    """Outcome of one prediction as a dict (keys of :func:`compute_outcomes`), or None if not matured."""
    df = compute_outcomes(
        pd.DataFrame({"entry_date": [entry_date], "predicted_label": [predicted_label]}),
        bars,
        horizon=horizon,
        k=k,
        vol_window=vol_window,
    )
    if df.empty:
        return None
    return {str(k): v for k, v in df.iloc[0].to_dict().items()}
