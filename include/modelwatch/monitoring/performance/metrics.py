"""Live metrics of matured predictions and their per-entry-day sufficient statistics.

* A *trade* is a BUY or SELL prediction. Its *signed return* is
  ``direction * realized_return`` with direction +1 for BUY, -1 for SELL
  (``realized_return`` is the forward log return over the horizon). HOLD is flat
  and is not a trade.
* The *daily strategy return* of an entry day is the mean signed return of the
  trades entered that day (0.0 when the day only had HOLD predictions; days
  with no matured prediction at all are not part of the series). Each such
  value is an ``horizon``-day cohort return, so

      Sharpe = mean(daily) / std(daily, ddof=1) * sqrt(252 / horizon)

  (overlapping cohorts for horizon > 1 make this an approximation).
* The equity curve for max drawdown gives each daily cohort ``1/horizon`` of
  capital (so at most fully invested): ``cum = cumsum(daily / horizon)``, and
  ``max_drawdown = max_t(max(0, max_{s<=t} cum_s) - cum_t)`` in log-return units
  (a non-negative number; 0.0 when the curve never falls).
* Ratio metrics return ``None`` (never ``inf``/``nan``) when undefined, e.g.
  profit factor without losing trades.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.monitoring.performance.frames import (
    entry_day,
    expected_calibration_error,
    horizon_of,
    prob_matrix,
)
from include.modelwatch.vocabulary import CLASSES, PROB_COLUMNS, TRADING_DAYS, brier_rows, label_to_index

DIRECTION: dict[str, int] = {"SELL": -1, "HOLD": 0, "BUY": 1}
TRADING_DAYS_PER_YEAR = TRADING_DAYS


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


# --------------------------------------------------------------------------- per-day sufficient statistics

_CM_COLS = tuple(f"cm_{t}_{p}" for t in CLASSES for p in CLASSES)  # true x predicted, row-major
DAILY_COLUMNS: tuple[str, ...] = (
    "n",
    "n_correct",
    *_CM_COLS,
    "n_trades",
    "n_hits",
    "n_wins",
    "trade_return_sum",
    "gross_profit",
    "gross_loss",
    "r_win_sum",
    "r_win_n",
    "r_loss_sum",
    "r_loss_n",
    "conf_sum",
    "brier_sum",
)
_COL = {c: i for i, c in enumerate(DAILY_COLUMNS)}


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Validated copy with only matured rows (non-null realized_label), sorted by ts."""
    need = ["ts", "predicted_label", "realized_label", "realized_return", *PROB_COLUMNS]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"missing columns {missing}")
    out = df.loc[df["realized_label"].notna()].copy()
    return out.sort_values("ts", kind="stable").reset_index(drop=True)


def _row_features(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row matrix in DAILY_COLUMNS order, predicted codes, realized codes."""
    n = len(df)
    pred = label_to_index(df["predicted_label"], what="predicted_label")
    true = label_to_index(df["realized_label"], what="realized_label")
    p = prob_matrix(df)
    ret = df["realized_return"].to_numpy(dtype=float)
    r = df["r_multiple"].to_numpy(dtype=float) if "r_multiple" in df.columns else np.full(n, np.nan)
    conf = df["confidence"].to_numpy(dtype=float) if "confidence" in df.columns else p.max(axis=1)
    direction = np.array([DIRECTION[c] for c in CLASSES])[pred]
    trade = direction != 0
    if np.any(trade & ~np.isfinite(ret)):
        raise ValueError("realized_return must be finite for BUY/SELL predictions")
    signed = np.where(trade, direction * np.nan_to_num(ret), 0.0)

    m = np.zeros((n, len(DAILY_COLUMNS)))
    m[:, _COL["n"]] = 1.0
    m[:, _COL["n_correct"]] = pred == true
    m[np.arange(n), _COL[_CM_COLS[0]] + true * len(CLASSES) + pred] = 1.0
    m[:, _COL["n_trades"]] = trade
    m[:, _COL["n_hits"]] = trade & (np.sign(np.nan_to_num(ret)) == direction)
    m[:, _COL["n_wins"]] = trade & (signed > 0)
    m[:, _COL["trade_return_sum"]] = signed
    m[:, _COL["gross_profit"]] = np.where(signed > 0, signed, 0.0)
    m[:, _COL["gross_loss"]] = np.where(signed < 0, -signed, 0.0)
    r_ok = trade & np.isfinite(r)
    win_r = r_ok & (r > 0)
    loss_r = r_ok & (r < 0)
    m[:, _COL["r_win_sum"]] = np.where(win_r, r, 0.0)
    m[:, _COL["r_win_n"]] = win_r
    m[:, _COL["r_loss_sum"]] = np.where(loss_r, -r, 0.0)
    m[:, _COL["r_loss_n"]] = loss_r
    m[:, _COL["conf_sum"]] = conf
    m[:, _COL["brier_sum"]] = brier_rows(p, true)
    return m, pred, true


def daily_stats(df: pd.DataFrame, days: Sequence[Any] | None = None) -> pd.DataFrame:
    """Per-entry-day sufficient statistics of matured predictions (input of the bootstrap).

    One row per entry day (index ``day``, ascending) with the additive counts in
    ``DAILY_COLUMNS`` plus ``day_return`` (the daily strategy return, NaN when
    the day has no matured prediction) and ``horizon_days`` (median of the day,
    when the input has that column). ``days`` optionally reindexes onto a full
    calendar: days without matured outcomes get zero counts and NaN return, so
    they change no metric. Rows with null ``realized_label`` are ignored.
    """
    data = _prepare(df)
    if data.empty:
        out = pd.DataFrame(columns=list(DAILY_COLUMNS), dtype=float, index=pd.DatetimeIndex([], name="day"))
    else:
        m, _, _ = _row_features(data)
        frame = pd.DataFrame(m, columns=list(DAILY_COLUMNS))
        frame["day"] = entry_day(data["ts"]).to_numpy()
        out = frame.groupby("day", sort=True).sum()
        if "horizon_days" in data.columns:
            out["horizon_days"] = data.groupby(entry_day(data["ts"]).to_numpy())["horizon_days"].median()
    if days is not None:
        idx = pd.DatetimeIndex(pd.to_datetime(list(days)))
        if idx.tz is not None:
            idx = idx.tz_convert("UTC").tz_localize(None)
        idx = idx.floor("D").union(pd.DatetimeIndex(out.index))
        out = out.reindex(idx)
        out.index.name = "day"
        out[list(DAILY_COLUMNS)] = out[list(DAILY_COLUMNS)].fillna(0.0)
    n = out["n"].to_numpy(dtype=float) if len(out) else np.zeros(0)
    trades = out["n_trades"].to_numpy(dtype=float) if len(out) else np.zeros(0)
    tsum = out["trade_return_sum"].to_numpy(dtype=float) if len(out) else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        day_ret = np.where(trades > 0, tsum / np.where(trades > 0, trades, 1.0), 0.0)
    out["day_return"] = np.where(n > 0, day_ret, np.nan)
    return out


def _sharpe(day_returns: np.ndarray, horizon: int) -> float | None:
    r = day_returns[np.isfinite(day_returns)]
    if r.size < 2:
        return None
    sd = float(np.std(r, ddof=1))
    if not sd > 1e-15:
        return None
    return float(np.mean(r) / sd * math.sqrt(TRADING_DAYS_PER_YEAR / horizon))


def _max_drawdown(day_returns: np.ndarray, horizon: int) -> float | None:
    r = day_returns[np.isfinite(day_returns)]
    if r.size == 0:
        return None
    cum = np.concatenate([[0.0], np.cumsum(r / horizon)])
    return float(np.max(np.maximum.accumulate(cum) - cum))


def _class_scores(cm: np.ndarray) -> dict[str, Any]:
    """Per-class precision/recall/F1 and macro averages from a true x predicted matrix.

    Matches ``sklearn.metrics.precision_recall_fscore_support(..., zero_division=0)``
    without ``labels``: undefined ratios are 0 and the macro average runs over the
    classes that occur in y_true or y_pred.
    """
    tp = np.diag(cm)
    pred_n = cm.sum(axis=0)
    true_n = cm.sum(axis=1)
    out: dict[str, Any] = {}
    prec = np.where(pred_n > 0, tp / np.where(pred_n > 0, pred_n, 1), 0.0)
    rec = np.where(true_n > 0, tp / np.where(true_n > 0, true_n, 1), 0.0)
    den = prec + rec
    f1 = np.where(den > 0, 2 * prec * rec / np.where(den > 0, den, 1), 0.0)
    for i, c in enumerate(CLASSES):
        out[f"precision_{c}"] = float(prec[i])
        out[f"recall_{c}"] = float(rec[i])
        out[f"f1_{c}"] = float(f1[i])
        out[f"support_{c}"] = int(round(true_n[i]))
    present = (pred_n + true_n) > 0
    out["macro_precision"] = float(prec[present].mean())
    out["macro_recall"] = float(rec[present].mean())
    out["macro_f1"] = float(f1[present].mean())
    return out


def _metric_names() -> list[str]:
    names = ["n", "n_trades", "n_days", "accuracy"]
    for c in CLASSES:
        names += [f"precision_{c}", f"recall_{c}", f"f1_{c}", f"support_{c}"]
    names += [
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "hit_rate",
        "win_rate",
        "profit_factor",
        "avg_rr",
        "sharpe",
        "max_drawdown",
        "brier",
        "ece",
        "avg_confidence",
        "horizon",
    ]
    return names


def metrics_from_array(arr: np.ndarray, day_returns: np.ndarray, horizon: int) -> dict[str, Any]:
    """All day-additive metrics from a (days x DAILY_COLUMNS) array and its day returns."""
    tot = arr.sum(axis=0) if arr.size else np.zeros(len(DAILY_COLUMNS))
    n = int(round(tot[_COL["n"]]))
    out: dict[str, Any] = dict.fromkeys(_metric_names())
    out.update(
        n=n, n_trades=int(round(tot[_COL["n_trades"]])), n_days=int(np.isfinite(day_returns).sum()), horizon=horizon
    )
    if n == 0:
        return out
    cm = tot[_COL[_CM_COLS[0]] : _COL[_CM_COLS[-1]] + 1].reshape(len(CLASSES), len(CLASSES))
    out["accuracy"] = float(tot[_COL["n_correct"]] / n)
    out.update(_class_scores(cm))
    trades = tot[_COL["n_trades"]]
    out["hit_rate"] = _ratio(tot[_COL["n_hits"]], trades)
    out["win_rate"] = _ratio(tot[_COL["n_wins"]], trades)
    out["profit_factor"] = _ratio(tot[_COL["gross_profit"]], tot[_COL["gross_loss"]])
    if tot[_COL["r_win_n"]] > 0 and tot[_COL["r_loss_n"]] > 0 and tot[_COL["r_loss_sum"]] > 0:
        win = tot[_COL["r_win_sum"]] / tot[_COL["r_win_n"]]
        loss = tot[_COL["r_loss_sum"]] / tot[_COL["r_loss_n"]]
        out["avg_rr"] = float(win / loss)
    out["sharpe"] = _sharpe(day_returns, horizon)
    out["max_drawdown"] = _max_drawdown(day_returns, horizon)
    out["brier"] = float(tot[_COL["brier_sum"]] / n)
    out["avg_confidence"] = float(tot[_COL["conf_sum"]] / n)
    return out


def metrics_from_daily(daily: pd.DataFrame, horizon: int | None = None) -> dict[str, Any]:
    """``live_metrics`` recomputed from ``daily_stats`` output (everything except ``ece``)."""
    h = horizon_of(daily, horizon)
    arr = daily[list(DAILY_COLUMNS)].to_numpy(dtype=float) if len(daily) else np.zeros((0, len(DAILY_COLUMNS)))
    ret = daily["day_return"].to_numpy(dtype=float) if len(daily) else np.zeros(0)
    return metrics_from_array(arr, ret, h)


def live_metrics(df: pd.DataFrame, horizon: int | None = None) -> dict[str, Any]:
    """Realized metrics of predictions joined to their MATURED outcomes.

    Input columns: ts, predicted_label, p_SELL, p_HOLD, p_BUY, realized_label,
    realized_return; optional confidence (default: max probability), r_multiple,
    matured_at, horizon_days. Rows with null ``realized_label`` (not matured)
    are dropped. ``horizon`` defaults to the median ``horizon_days``, else 1.

    Returns a flat dict (``None`` where undefined; every key present):

    * ``n``, ``n_trades`` (BUY/SELL rows), ``n_days`` (entry days), ``horizon``
    * ``accuracy``; ``precision_/recall_/f1_/support_<CLASS>``;
      ``macro_precision/recall/f1`` (sklearn semantics, zero_division=0,
      macro over classes present in realized or predicted labels)
    * ``hit_rate``: share of trades whose realized_return sign equals the
      direction (zero return = miss); ``win_rate``: share of trades with signed
      return > 0 (the two coincide for this outcome model; both kept for the
      baseline table)
    * ``profit_factor``: sum of positive signed returns / |sum of negative|;
      None when there is no losing trade (or no trade)
    * ``avg_rr``: mean R of winning trades / |mean R of losing trades| (by sign
      of r_multiple); None unless both exist
    * ``sharpe``, ``max_drawdown``: see module docstring (entry-day cohorts)
    * ``brier``: mean over rows of sum_k (p_k - onehot_k)^2 (0 best, 2 worst)
    * ``ece``: top-label ECE over 10 equal-width confidence bins, correctness =
      predicted_label == realized_label
    * ``avg_confidence``
    """
    data = _prepare(df)
    if data.empty:
        out: dict[str, Any] = dict.fromkeys(_metric_names())
        out.update(n=0, n_trades=0, n_days=0)
        out["horizon"] = horizon_of(df, horizon)
        return out
    h = horizon_of(data, horizon)
    out = metrics_from_daily(daily_stats(data), h)
    m, pred, true = _row_features(data)
    out["ece"] = expected_calibration_error(m[:, _COL["conf_sum"]], pred == true)
    return out
