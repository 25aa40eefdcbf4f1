"""Volatility-regime labels of one symbol's daily bars: will the next ``horizon`` sessions be calm or turbulent?

The second native model (next to the BUY/HOLD/SELL ``spx_signal``) predicts the realized-volatility regime
of the next ``horizon`` (= 5) sessions. Volatility clusters, so this target has real skill, unlike the
direction of returns. Pure pandas/numpy: no Airflow, no database.

Definitions (``h`` = ``horizon``, ``L`` = ``lookback``; bars counted in sessions, returns are daily
natural-log close-to-close returns, ``r_t = log(close_t / close_{t-1})``):

* ``rv_trailing[t]``: sample standard deviation (ddof=1) of ``r_{t-h+1} .. r_t`` annualized with
  ``sqrt(252)``; for ``h = 5`` this is the ``vol_5d`` feature of
  :func:`~include.modelwatch.data.features.compute_features` (same returns, same convention). Known at ``t``.
* ``rv_fwd[t]``: the same statistic over the NEXT ``h`` returns ``r_{t+1} .. r_{t+h}`` (= ``rv_trailing[t+h]``).
  Known only at the close of bar ``t+h`` (``matured_at``); NaN for the last ``h`` bars.
* ``threshold[t]``: the median of ``rv_trailing`` over the ``L`` sessions ``t-L+1 .. t``, i.e. from bars up
  to ``t`` only (no look-ahead: changing a later bar never changes it). NaN until ``L`` values of
  ``rv_trailing`` exist (the first ``h + L - 1`` bars).
* ``label[t]``: ``"HIGH"`` when ``rv_fwd[t] > threshold[t]``, else ``"LOW"`` (a tie is LOW); missing (None)
  where either is NaN. About half of the sessions of a stable year are HIGH; after a volatility shift the
  share moves until the trailing median catches up.

Every window is computed on its own (numpy over the window's values, not a running sum), so the value at a
date is bit-identical whether the bars start years earlier or just ``h + L - 1`` bars before it: what
:func:`realized_regime` relies on.

Why two regimes (``LOW``/``HIGH``) and not terciles: on SPX+IXIC 2003-2018 (``python -m bench.regime_skill``,
purged walk-forward, LightGBM on the ``vol_regime`` target's features) the median split gives an out-of-fold AUC
of 0.760 and 69% accuracy (majority share 54%, persistence 65%); trailing terciles ``LOW/NORMAL/HIGH`` give a
macro AUC of 0.697 and 51% accuracy against persistence's 48%, the middle class being the hard one. Two classes
are the clearer, still honest, target.

:func:`persistence_labels` is the naive baseline (today's trailing regime persists);
:func:`realized_regime` is the realized label of one prediction date (for outcomes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from include.modelwatch.data.features import prepare_bars
from include.modelwatch.vocabulary import TRADING_DAYS

#: The regime classes, in the order of every probability vector (``p_LOW``, ``p_HIGH``).
REGIME_CLASSES: tuple[str, ...] = ("LOW", "HIGH")
#: Sessions of the forward realized-volatility window (the label horizon).
REGIME_HORIZON = 5
#: Sessions of the trailing window whose median is the threshold.
REGIME_LOOKBACK = TRADING_DAYS


def _check(horizon: int, lookback: int) -> None:
    if int(horizon) < 2:
        raise ValueError(f"horizon must be >= 2 (a sample std of its returns), got {horizon}")
    if int(lookback) < 1:
        raise ValueError(f"lookback must be >= 1, got {lookback}")


def _trailing_rv(close: np.ndarray, horizon: int) -> np.ndarray:
    """``rv_trailing`` (see module docstring) of a close array; NaN for the first ``horizon`` bars."""
    out = np.full(close.size, np.nan)
    r = np.diff(np.log(close))
    if r.size >= horizon:
        out[horizon:] = sliding_window_view(r, horizon).std(axis=1, ddof=1) * np.sqrt(TRADING_DAYS)
    return out


def _trailing_median(x: np.ndarray, lookback: int) -> np.ndarray:
    """Median of ``x[t-lookback+1 .. t]``; NaN when the window is incomplete or holds a NaN."""
    out = np.full(x.size, np.nan)
    if x.size >= lookback:
        w = sliding_window_view(x, lookback)
        med = np.median(w, axis=1)
        med[np.isnan(w).any(axis=1)] = np.nan
        out[lookback - 1 :] = med
    return out


def _classify(rv: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    lab = np.where(rv > threshold, REGIME_CLASSES[1], REGIME_CLASSES[0]).astype(object)
    lab[np.isnan(rv) | np.isnan(threshold)] = None
    return lab


def regime_labels(
    bars_one_symbol: pd.DataFrame, horizon: int = REGIME_HORIZON, lookback: int = REGIME_LOOKBACK
) -> pd.DataFrame:
    """Volatility-regime labels of one symbol, indexed by date like
    :func:`~include.modelwatch.data.features.compute_features`.

    Columns ``label`` (``"LOW"``/``"HIGH"``, object dtype, None where the future is unknown or the lookback
    incomplete),
    ``rv_fwd``, ``rv_trailing``, ``threshold`` (annualized, see the module docstring) and ``matured_at``
    (date of bar ``t + horizon``, NaT for the last ``horizon`` bars). Bars as for
    :func:`~include.modelwatch.data.features.prepare_bars` (run ``market.clean_bars`` first).
    """
    _check(horizon, lookback)
    b = prepare_bars(bars_one_symbol)
    rv_t = _trailing_rv(b["close"].to_numpy(), int(horizon))
    thr = _trailing_median(rv_t, int(lookback))
    rv_f = np.full(rv_t.size, np.nan)
    rv_f[: max(rv_t.size - horizon, 0)] = rv_t[horizon:]
    matured = pd.Series(b.index, index=b.index).shift(-int(horizon))
    return pd.DataFrame(
        {
            "label": pd.Series(_classify(rv_f, thr), index=b.index, dtype=object),
            "rv_fwd": rv_f,
            "rv_trailing": rv_t,
            "threshold": thr,
            "matured_at": matured,
        },
        index=b.index,
    )


def persistence_labels(
    bars_one_symbol: pd.DataFrame, horizon: int = REGIME_HORIZON, lookback: int = REGIME_LOOKBACK
) -> pd.DataFrame:
    """The naive baseline: the regime of the TRAILING ``horizon`` sessions (``rv_trailing[t]`` against the same
    ``threshold[t]``) as the forecast for the next ``horizon``. Known at ``t`` (no NaN at the end).

    Columns ``label``, ``rv_trailing``, ``threshold``; indexed by date like :func:`regime_labels`.
    """
    lab = regime_labels(bars_one_symbol, horizon=horizon, lookback=lookback)
    rv_t, thr = lab["rv_trailing"].to_numpy(), lab["threshold"].to_numpy()
    label = pd.Series(_classify(rv_t, thr), index=lab.index, dtype=object)
    return pd.DataFrame({"label": label, "rv_trailing": rv_t, "threshold": thr}, index=lab.index)


def realized_regime(
    entry_date: Any,
    bars_one_symbol: pd.DataFrame,
    horizon: int = REGIME_HORIZON,
    lookback: int = REGIME_LOOKBACK,
) -> dict[str, Any] | None:
    """The realized regime of the prediction made at the close of ``entry_date``, or None when it has not
    matured (bar ``entry + horizon`` is not in ``bars_one_symbol`` yet).

    Returns ``{"entry_date", "realized_label", "rv_fwd", "threshold", "matured_at", "horizon"}`` with the
    values :func:`regime_labels` gives that date on any longer history (only the ``horizon + lookback - 1``
    bars before the entry and the ``horizon`` after it are read). Raises ValueError when ``entry_date`` is
    not a bar date or fewer than ``horizon + lookback - 1`` bars precede it (no threshold).
    """
    _check(horizon, lookback)
    h, n_back = int(horizon), int(horizon) + int(lookback) - 1
    b = prepare_bars(bars_one_symbol)
    day = pd.Timestamp(entry_date)
    day = (day.tz_convert(None) if day.tzinfo else day).normalize()
    pos = int(b.index.get_indexer(pd.DatetimeIndex([day]))[0])
    if pos < 0:
        raise ValueError(f"entry {day:%Y-%m-%d} is not a bar date")
    if pos < n_back:
        raise ValueError(f"entry {day:%Y-%m-%d} has {pos} bars before it; the regime threshold needs {n_back}")
    if pos + h >= len(b):
        return None
    row = regime_labels(b.iloc[pos - n_back : pos + h + 1], horizon=h, lookback=lookback).iloc[n_back]
    return {
        "entry_date": day,
        "realized_label": row["label"],
        "rv_fwd": float(row["rv_fwd"]),
        "threshold": float(row["threshold"]),
        "matured_at": pd.Timestamp(row["matured_at"]),
        "horizon": h,
    }
