"""Live metrics of matured predictions and their per-entry-day sufficient statistics.

Every function takes the model's class list ``classes`` (default
:data:`include.modelwatch.vocabulary.CLASSES`, SELL/HOLD/BUY): it orders the
probability columns ``p_<class>``, the confusion matrix and the per-class
metrics ``precision_/recall_/f1_/support_<class>``. Classification metrics
(accuracy, macro averages, Brier, ECE, confidence) are defined for any class list.

* A *trade* is a prediction of a class with a non-zero :data:`DIRECTION`
  (BUY +1, SELL -1). HOLD, and every class not in :data:`DIRECTION` (an external
  model's ``down``/``up`` or ``LOW``/``NORMAL``/``HIGH``), has direction 0: flat,
  not a trade. Its *signed return* is ``direction * realized_return``
  (``realized_return`` is the forward log return over the horizon).
* A model whose class list has no trade class (:func:`trade_classes` empty) has
  no trading metrics: ``hit_rate``, ``win_rate``, ``profit_factor``, ``avg_rr``,
  ``sharpe`` and ``max_drawdown`` (:data:`TRADING_METRICS`) are always None,
  ``n_trades`` is 0, and ``realized_return`` may be NULL/NaN or absent. A model
  whose classes include BUY/SELL needs a finite ``realized_return`` for every
  BUY/SELL prediction (ValueError otherwise, as for the native model); a flat
  prediction's return is never read.
* The *daily strategy return* of an entry day is the mean signed return of the
  trades entered that day (0.0 when the day only had flat predictions; days
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

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.monitoring.performance.frames import (
    as_classes,
    entry_day,
    expected_calibration_error,
    horizon_of,
    prob_matrix,
)
from include.modelwatch.vocabulary import CLASSES, TRADING_DAYS, brier_rows, label_to_index, prob_columns

DIRECTION: dict[str, int] = {"SELL": -1, "HOLD": 0, "BUY": 1}
TRADING_DAYS_PER_YEAR = TRADING_DAYS
#: Metrics defined by the trades (None for a model without a trade class).
TRADING_METRICS: tuple[str, ...] = ("hit_rate", "win_rate", "profit_factor", "avg_rr", "sharpe", "max_drawdown")


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def trade_classes(classes: Sequence[str] = CLASSES) -> tuple[str, ...]:
    """The classes of ``classes`` that are trades (non-zero :data:`DIRECTION`), in order."""
    return tuple(c for c in as_classes(classes) if DIRECTION.get(c, 0) != 0)


# --------------------------------------------------------------------------- per-day sufficient statistics

_COUNT_COLUMNS = ("n", "n_correct")
_TRADE_COLUMNS = (
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


@dataclass(frozen=True)
class _Layout:
    """Column layout of the per-day statistics of one class list."""

    classes: tuple[str, ...]
    columns: tuple[str, ...]
    col: dict[str, int]
    cm_start: int  # first confusion-matrix column (true x predicted, row-major)
    direction: np.ndarray  # DIRECTION per class (0 for a class not in DIRECTION)
    trades: bool  # the class list has a trade class


@functools.lru_cache(maxsize=64)
def _layout_of(classes: tuple[str, ...]) -> _Layout:
    cm = tuple(f"cm_{t}_{p}" for t in classes for p in classes)
    columns = (*_COUNT_COLUMNS, *cm, *_TRADE_COLUMNS)
    if len(set(columns)) != len(columns):
        raise ValueError(f"classes {list(classes)} give ambiguous confusion-matrix column names")
    direction = np.array([DIRECTION.get(c, 0) for c in classes], dtype=int)
    return _Layout(
        classes=classes,
        columns=columns,
        col={c: i for i, c in enumerate(columns)},
        cm_start=len(_COUNT_COLUMNS),
        direction=direction,
        trades=bool(np.any(direction != 0)),
    )


def _layout(classes: Sequence[str]) -> _Layout:
    return _layout_of(as_classes(classes))


def daily_columns(classes: Sequence[str] = CLASSES) -> tuple[str, ...]:
    """The additive per-day statistics of ``daily_stats`` for a class list: ``n``, ``n_correct``,
    the confusion matrix ``cm_<true>_<predicted>`` (row-major in ``classes`` order), the trade
    sums, ``conf_sum`` and ``brier_sum``."""
    return _layout(classes).columns


#: :func:`daily_columns` of the default class list (SELL/HOLD/BUY).
DAILY_COLUMNS: tuple[str, ...] = daily_columns()


def _prepare(df: pd.DataFrame, lay: _Layout) -> pd.DataFrame:
    """Validated copy with only matured rows (non-null realized_label), sorted by ts.

    ``realized_return`` is required only when the class list has a trade class."""
    need = ["ts", "predicted_label", "realized_label", *(["realized_return"] if lay.trades else [])]
    need += prob_columns(lay.classes)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"missing columns {missing}")
    out = df.loc[df["realized_label"].notna()].copy()
    return out.sort_values("ts", kind="stable").reset_index(drop=True)


def _row_features(df: pd.DataFrame, lay: _Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row matrix in the layout's column order, predicted codes, realized codes."""
    n = len(df)
    k = len(lay.classes)
    col = lay.col
    pred = label_to_index(df["predicted_label"], lay.classes, what="predicted_label")
    true = label_to_index(df["realized_label"], lay.classes, what="realized_label")
    p = prob_matrix(df, lay.classes)
    if "realized_return" in df.columns:
        ret = pd.to_numeric(df["realized_return"], errors="coerce").to_numpy(dtype=float)
    else:
        ret = np.full(n, np.nan)
    r = df["r_multiple"].to_numpy(dtype=float) if "r_multiple" in df.columns else np.full(n, np.nan)
    conf = df["confidence"].to_numpy(dtype=float) if "confidence" in df.columns else p.max(axis=1)
    direction = lay.direction[pred]
    trade = direction != 0
    if np.any(trade & ~np.isfinite(ret)):
        raise ValueError("realized_return must be finite for BUY/SELL predictions")
    signed = np.where(trade, direction * np.nan_to_num(ret), 0.0)

    m = np.zeros((n, len(lay.columns)))
    m[:, col["n"]] = 1.0
    m[:, col["n_correct"]] = pred == true
    m[np.arange(n), lay.cm_start + true * k + pred] = 1.0
    m[:, col["n_trades"]] = trade
    m[:, col["n_hits"]] = trade & (np.sign(np.nan_to_num(ret)) == direction)
    m[:, col["n_wins"]] = trade & (signed > 0)
    m[:, col["trade_return_sum"]] = signed
    m[:, col["gross_profit"]] = np.where(signed > 0, signed, 0.0)
    m[:, col["gross_loss"]] = np.where(signed < 0, -signed, 0.0)
    r_ok = trade & np.isfinite(r)
    win_r = r_ok & (r > 0)
    loss_r = r_ok & (r < 0)
    m[:, col["r_win_sum"]] = np.where(win_r, r, 0.0)
    m[:, col["r_win_n"]] = win_r
    m[:, col["r_loss_sum"]] = np.where(loss_r, -r, 0.0)
    m[:, col["r_loss_n"]] = loss_r
    m[:, col["conf_sum"]] = conf
    m[:, col["brier_sum"]] = brier_rows(p, true)
    return m, pred, true


def daily_stats(
    df: pd.DataFrame, days: Sequence[Any] | None = None, *, classes: Sequence[str] = CLASSES
) -> pd.DataFrame:
    """Per-entry-day sufficient statistics of matured predictions (input of the bootstrap).

    One row per entry day (index ``day``, ascending) with the additive counts in
    ``daily_columns(classes)`` plus ``day_return`` (the daily strategy return, NaN when
    the day has no matured prediction) and ``horizon_days`` (median of the day,
    when the input has that column). ``days`` optionally reindexes onto a full
    calendar: days without matured outcomes get zero counts and NaN return, so
    they change no metric. Rows with null ``realized_label`` are ignored.
    """
    lay = _layout(classes)
    cols = list(lay.columns)
    data = _prepare(df, lay)
    if data.empty:
        out = pd.DataFrame(columns=cols, dtype=float, index=pd.DatetimeIndex([], name="day"))
    else:
        m, _, _ = _row_features(data, lay)
        frame = pd.DataFrame(m, columns=cols)
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
        out[cols] = out[cols].fillna(0.0)
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


def _class_scores(cm: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
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
    for i, c in enumerate(classes):
        out[f"precision_{c}"] = float(prec[i])
        out[f"recall_{c}"] = float(rec[i])
        out[f"f1_{c}"] = float(f1[i])
        out[f"support_{c}"] = int(round(true_n[i]))
    present = (pred_n + true_n) > 0
    out["macro_precision"] = float(prec[present].mean())
    out["macro_recall"] = float(rec[present].mean())
    out["macro_f1"] = float(f1[present].mean())
    return out


def _metric_names(classes: Sequence[str]) -> list[str]:
    names = ["n", "n_trades", "n_days", "accuracy"]
    for c in classes:
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


def metrics_from_array(
    arr: np.ndarray, day_returns: np.ndarray, horizon: int, *, classes: Sequence[str] = CLASSES
) -> dict[str, Any]:
    """All day-additive metrics from a (days x ``daily_columns(classes)``) array and its day returns."""
    lay = _layout(classes)
    col = lay.col
    k = len(lay.classes)
    tot = arr.sum(axis=0) if arr.size else np.zeros(len(lay.columns))
    n = int(round(tot[col["n"]]))
    out: dict[str, Any] = dict.fromkeys(_metric_names(lay.classes))
    out.update(
        n=n, n_trades=int(round(tot[col["n_trades"]])), n_days=int(np.isfinite(day_returns).sum()), horizon=horizon
    )
    if n == 0:
        return out
    cm = tot[lay.cm_start : lay.cm_start + k * k].reshape(k, k)
    out["accuracy"] = float(tot[col["n_correct"]] / n)
    out.update(_class_scores(cm, lay.classes))
    if lay.trades:
        trades = tot[col["n_trades"]]
        out["hit_rate"] = _ratio(tot[col["n_hits"]], trades)
        out["win_rate"] = _ratio(tot[col["n_wins"]], trades)
        out["profit_factor"] = _ratio(tot[col["gross_profit"]], tot[col["gross_loss"]])
        if tot[col["r_win_n"]] > 0 and tot[col["r_loss_n"]] > 0 and tot[col["r_loss_sum"]] > 0:
            win = tot[col["r_win_sum"]] / tot[col["r_win_n"]]
            loss = tot[col["r_loss_sum"]] / tot[col["r_loss_n"]]
            out["avg_rr"] = float(win / loss)
        out["sharpe"] = _sharpe(day_returns, horizon)
        out["max_drawdown"] = _max_drawdown(day_returns, horizon)
    out["brier"] = float(tot[col["brier_sum"]] / n)
    out["avg_confidence"] = float(tot[col["conf_sum"]] / n)
    return out


def metrics_from_daily(
    daily: pd.DataFrame, horizon: int | None = None, *, classes: Sequence[str] = CLASSES
) -> dict[str, Any]:
    """``live_metrics`` recomputed from ``daily_stats`` output (everything except ``ece``)."""
    h = horizon_of(daily, horizon)
    cols = list(daily_columns(classes))
    arr = daily[cols].to_numpy(dtype=float) if len(daily) else np.zeros((0, len(cols)))
    ret = daily["day_return"].to_numpy(dtype=float) if len(daily) else np.zeros(0)
    return metrics_from_array(arr, ret, h, classes=classes)


def live_metrics(df: pd.DataFrame, horizon: int | None = None, *, classes: Sequence[str] = CLASSES) -> dict[str, Any]:
    """Realized metrics of predictions joined to their MATURED outcomes.

    Input columns: ts, predicted_label, ``p_<class>`` per class of ``classes`` (default
    p_SELL, p_HOLD, p_BUY), realized_label, realized_return (optional, and may be NaN,
    for a class list without a trade class); optional confidence (default: max
    probability), r_multiple, matured_at, horizon_days. Rows with null
    ``realized_label`` (not matured) are dropped. ``horizon`` defaults to the median
    ``horizon_days``, else 1. Labels outside ``classes`` raise ValueError.

    Returns a flat dict (``None`` where undefined; every key present):

    * ``n``, ``n_trades`` (BUY/SELL rows), ``n_days`` (entry days), ``horizon``
    * ``accuracy``; ``precision_/recall_/f1_/support_<class>`` per class of ``classes``;
      ``macro_precision/recall/f1`` (sklearn semantics, zero_division=0,
      macro over classes present in realized or predicted labels)
    * ``hit_rate``: share of trades whose realized_return sign equals the
      direction (zero return = miss); ``win_rate``: share of trades with signed
      return > 0 (the two coincide for this outcome model; both kept for the
      baseline table); these and the following trading metrics are None for a class
      list without a trade class (see module docstring)
    * ``profit_factor``: sum of positive signed returns / |sum of negative|;
      None when there is no losing trade (or no trade)
    * ``avg_rr``: mean R of winning trades / |mean R of losing trades| (by sign
      of r_multiple); None unless both exist
    * ``sharpe``, ``max_drawdown``: see module docstring (entry-day cohorts)
    * ``brier``: mean over rows of sum_k (p_k - onehot_k)^2 (0 best, 2 worst), the
      same formula for any number of classes (for 2 classes twice the binary Brier)
    * ``ece``: top-label ECE over 10 equal-width confidence bins, correctness =
      predicted_label == realized_label
    * ``avg_confidence``
    """
    lay = _layout(classes)
    data = _prepare(df, lay)
    if data.empty:
        out: dict[str, Any] = dict.fromkeys(_metric_names(lay.classes))
        out.update(n=0, n_trades=0, n_days=0)
        out["horizon"] = horizon_of(df, horizon)
        return out
    h = horizon_of(data, horizon)
    out = metrics_from_daily(daily_stats(data, classes=lay.classes), h, classes=lay.classes)
    m, pred, true = _row_features(data, lay)
    out["ece"] = expected_calibration_error(m[:, lay.col["conf_sum"]], pred == true)
    return out
