"""Live performance of trading-signal models: metrics, label delay, bootstrap, CBPE, health.

Pure functions on pandas/numpy objects: no Airflow, no database access.

Conventions used throughout
---------------------------
* Three classes ``CLASSES = ("SELL", "HOLD", "BUY")``; probability columns are
  ``p_SELL, p_HOLD, p_BUY`` in that order.
* A *trade* is a BUY or SELL prediction. Its *signed return* is
  ``direction * realized_return`` with direction +1 for BUY, -1 for SELL
  (``realized_return`` is the forward log return over the horizon). HOLD is flat
  and is not a trade.
* The *entry day* of a prediction is its ``ts`` floored to the calendar day
  (UTC when ``ts`` is tz-aware).
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

CLASSES: tuple[str, ...] = ("SELL", "HOLD", "BUY")
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in CLASSES)
DIRECTION: dict[str, int] = {"SELL": -1, "HOLD": 0, "BUY": 1}
TRADING_DAYS_PER_YEAR = 252
N_BINS = 10
DEFAULT_ECE_THRESHOLD = 0.05
DEFAULT_MIN_CHECK_ROWS = 200

_K = len(CLASSES)
_CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}

# Names the backtest baseline (training.classification_metrics) uses for the same metrics.
BASELINE_ALIASES: dict[str, str] = {"macro_f1": "f1_macro", "macro_precision": "precision_macro",
                                    "macro_recall": "recall_macro"}

# Metrics supported by compare_to_baseline; all are "higher is better".
COMPARABLE_METRICS: tuple[str, ...] = (
    "accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "hit_rate",
    "win_rate",
    "profit_factor",
    "avg_rr",
    "sharpe",
)

# --------------------------------------------------------------------------- helpers


def _none_if_bad(x: Any) -> float | None:
    """``float(x)`` or ``None`` when x is None, NaN or infinite."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _to_utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _utc_series(s: pd.Series) -> pd.Series:
    s = pd.to_datetime(s)
    return s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")


def _entry_day(ts: pd.Series) -> pd.Series:
    s = pd.to_datetime(ts)
    if s.dt.tz is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.dt.floor("D")


def _label_codes(labels: pd.Series, name: str) -> np.ndarray:
    codes = labels.map(_CLASS_INDEX)
    if codes.isna().any():
        bad = sorted({str(v) for v in labels[codes.isna()].unique()})
        raise ValueError(f"{name} holds labels outside {list(CLASSES)}: {bad}")
    return codes.to_numpy(dtype=int)


def _prob_matrix(df: pd.DataFrame) -> np.ndarray:
    missing = [c for c in PROB_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"missing probability columns {missing}")
    p = df[list(PROB_COLUMNS)].to_numpy(dtype=float)
    if not np.all(np.isfinite(p)):
        raise ValueError("probability columns must be finite")
    return p


def _horizon_of(df: pd.DataFrame, horizon: int | None) -> int:
    """Explicit ``horizon``; else the median of a ``horizon_days`` column; else 1."""
    if horizon is not None:
        h = int(horizon)
    elif "horizon_days" in df.columns and df["horizon_days"].notna().any():
        h = int(round(float(df["horizon_days"].median())))
    else:
        h = 1
    if h < 1:
        raise ValueError(f"horizon must be >= 1, got {h}")
    return h


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float | None:
    """Top-label ECE: sum over equal-width bins [k/n, (k+1)/n) (1.0 in the last bin)
    of ``share_of_rows * |accuracy_in_bin - mean_confidence_in_bin|``. None when empty."""
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return None
    idx = np.minimum(np.floor(conf * n_bins).astype(int), n_bins - 1)
    idx = np.maximum(idx, 0)
    ece = 0.0
    for k in range(n_bins):
        mask = idx == k
        if mask.any():
            ece += mask.mean() * abs(hit[mask].mean() - conf[mask].mean())
    return float(ece)


def _brier_rows(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return np.sum((p - onehot) ** 2, axis=1)


# --------------------------------------------------------------------------- label delay


def filter_matured(
    predictions: pd.DataFrame,
    outcomes: pd.DataFrame,
    as_of: Any,
    horizon: int | None = None,
) -> pd.DataFrame:
    """Predictions joined to the outcomes that had matured by ``as_of``.

    Inner join on ``prediction_id``. A row is kept only when its outcome exists,
    ``matured_at < as_of`` (as of = the run's exclusive window end) and ``matured_at >= ts + horizon business days``.
    Trading days are a subset of business days, so the second condition can
    never drop a genuine outcome; it rejects corrupt outcomes stamped before the
    horizon could have elapsed, so a prediction never counts before its horizon.
    The horizon per row is the outcome's ``horizon_days`` (else the prediction's,
    else ``horizon``, else 1). Naive timestamps are taken as UTC. Result is
    sorted by ``ts``; predictions without a (matured) outcome are simply absent.
    """
    if "prediction_id" not in predictions.columns or "prediction_id" not in outcomes.columns:
        raise ValueError("predictions and outcomes both need a prediction_id column")
    pred = predictions.copy()
    outc = outcomes.copy()
    if "horizon_days" in pred.columns and "horizon_days" in outc.columns:
        pred = pred.rename(columns={"horizon_days": "_pred_horizon"})
    overlap = [c for c in outc.columns if c in pred.columns and c != "prediction_id"]
    outc = outc.drop(columns=overlap)
    merged = pred.merge(outc, on="prediction_id", how="inner")
    if "_pred_horizon" in merged.columns:
        merged["horizon_days"] = merged["horizon_days"].fillna(merged["_pred_horizon"])
        merged = merged.drop(columns="_pred_horizon")
    if merged.empty:
        return merged.reset_index(drop=True)
    if "horizon_days" not in merged.columns:
        merged["horizon_days"] = 1 if horizon is None else int(horizon)
    elif horizon is not None:
        merged["horizon_days"] = merged["horizon_days"].fillna(int(horizon))
    merged["horizon_days"] = merged["horizon_days"].fillna(1).astype(int)

    cutoff = _to_utc(as_of)
    matured_at = _utc_series(merged["matured_at"])
    ts = _utc_series(merged["ts"])
    earliest = pd.Series(
        [t + pd.offsets.BDay(int(h)) for t, h in zip(ts, merged["horizon_days"], strict=True)],
        index=merged.index,
    )
    keep = matured_at.notna() & (matured_at < cutoff) & (matured_at >= earliest)
    return merged.loc[keep].sort_values("ts", kind="stable").reset_index(drop=True)


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
    pred = _label_codes(df["predicted_label"], "predicted_label")
    true = _label_codes(df["realized_label"], "realized_label")
    p = _prob_matrix(df)
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
    m[np.arange(n), _COL[_CM_COLS[0]] + true * _K + pred] = 1.0
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
    m[:, _COL["brier_sum"]] = _brier_rows(p, true)
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
        frame["day"] = _entry_day(data["ts"]).to_numpy()
        out = frame.groupby("day", sort=True).sum()
        if "horizon_days" in data.columns:
            out["horizon_days"] = data.groupby(_entry_day(data["ts"]).to_numpy())["horizon_days"].median()
    if days is not None:
        idx = pd.DatetimeIndex(pd.to_datetime(list(days)))
        if idx.tz is not None:
            idx = idx.tz_convert("UTC").tz_localize(None)
        idx = idx.floor("D").union(out.index)
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
        "macro_precision", "macro_recall", "macro_f1", "hit_rate", "win_rate", "profit_factor",
        "avg_rr", "sharpe", "max_drawdown", "brier", "ece", "avg_confidence", "horizon",
    ]
    return names


def _metrics_from_array(arr: np.ndarray, day_returns: np.ndarray, horizon: int) -> dict[str, Any]:
    """All day-additive metrics from a (days x DAILY_COLUMNS) array and its day returns."""
    tot = arr.sum(axis=0) if arr.size else np.zeros(len(DAILY_COLUMNS))
    n = int(round(tot[_COL["n"]]))
    out: dict[str, Any] = dict.fromkeys(_metric_names())
    out.update(n=n, n_trades=int(round(tot[_COL["n_trades"]])), n_days=int(np.isfinite(day_returns).sum()),
               horizon=horizon)
    if n == 0:
        return out
    cm = tot[_COL[_CM_COLS[0]]: _COL[_CM_COLS[-1]] + 1].reshape(_K, _K)
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
    h = _horizon_of(daily, horizon)
    arr = daily[list(DAILY_COLUMNS)].to_numpy(dtype=float) if len(daily) else np.zeros((0, len(DAILY_COLUMNS)))
    ret = daily["day_return"].to_numpy(dtype=float) if len(daily) else np.zeros(0)
    return _metrics_from_array(arr, ret, h)


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
        out["horizon"] = _horizon_of(df, horizon)
        return out
    h = _horizon_of(data, horizon)
    out = metrics_from_daily(daily_stats(data), h)
    m, pred, true = _row_features(data)
    out["ece"] = expected_calibration_error(m[:, _COL["conf_sum"]], pred == true)
    return out


# --------------------------------------------------------------------------- block bootstrap


def default_block_length(n: int) -> int:
    """Default block length: ``max(1, round(n ** (1/3)))`` (the classic n^(1/3) rate)."""
    return max(1, int(round(n ** (1.0 / 3.0)))) if n > 0 else 1


def block_bootstrap_ci(
    values_by_day: Any,
    stat_fn: Callable[[np.ndarray], float | None],
    block: int | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float | None, float | None, float | None]:
    """Percentile CI of ``stat_fn`` by the circular block bootstrap.

    ``values_by_day`` is a time-ordered 1-D series or 2-D array (one row per
    day). Each replicate concatenates ``ceil(n / block)`` blocks of ``block``
    consecutive days whose starts are uniform on 0..n-1, wrapping around the
    end (circular), truncated to n rows; blocks keep short-range serial
    dependence that an iid bootstrap would destroy. ``block`` defaults to
    ``default_block_length(n)`` = round(n^(1/3)).

    Returns ``(point, lo, hi)`` with ``point = stat_fn(values)`` and
    ``[lo, hi]`` the ``alpha/2`` and ``1 - alpha/2`` quantiles of the finite
    replicates. Replicates where ``stat_fn`` returns None/NaN/inf are dropped;
    if fewer than half are finite, or n < 2, ``lo = hi = None``.
    """
    x = np.asarray(values_by_day, dtype=float)
    n = x.shape[0] if x.ndim else 0
    if n == 0:
        return None, None, None
    point = _none_if_bad(stat_fn(x))
    if n < 2 or n_boot < 1:
        return point, None, None
    b = default_block_length(n) if block is None else int(block)
    b = min(max(b, 1), n)
    rng = np.random.default_rng(seed)
    n_blocks = -(-n // b)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = ((starts[:, :, None] + np.arange(b)) % n).reshape(n_boot, n_blocks * b)[:, :n]
    reps = np.array([_none_if_bad(stat_fn(x[i])) for i in idx], dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size < 0.5 * n_boot:
        return point, None, None
    lo, hi = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0])
    return point, float(lo), float(hi)


def compare_to_baseline(
    live_daily: pd.DataFrame,
    baseline: Mapping[str, Any],
    metric: str,
    tolerance_rel: float = 0.10,
    *,
    horizon: int | None = None,
    block: int | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    min_days: int = 10,
) -> dict[str, Any]:
    """Live metric vs its backtest baseline with a block-bootstrap CI over entry days.

    ``live_daily`` is ``daily_stats`` output (a predictions+outcomes frame with a
    ``predicted_label`` column is accepted and aggregated first). ``baseline``
    maps metric name -> value (a number, or a mapping with key ``value``);
    ``macro_f1`` etc. are also found under their baseline names
    (``BASELINE_ALIASES``, e.g. ``f1_macro``). ``metric`` is one of ``COMPARABLE_METRICS`` (all higher-is-better).

    ``threshold = baseline - tolerance_rel * |baseline|`` (= baseline*(1-tol)
    for a positive baseline). ``degraded`` is True only when the whole CI of the
    live metric lies below the threshold (``ci_high < threshold``), False when
    it does not, and None when undecidable (no baseline, fewer than
    ``min_days`` days with matured outcomes, or no CI). ``rel_diff =
    (live - baseline) / |baseline|`` (None for a zero baseline); ``rel_ci_*`` is
    the same transform of the CI. ``status`` is one of ``ok``, ``degraded``,
    ``insufficient_data``, ``no_baseline``.
    """
    if metric not in COMPARABLE_METRICS:
        raise ValueError(f"metric {metric!r} not in {COMPARABLE_METRICS}")
    if tolerance_rel < 0:
        raise ValueError("tolerance_rel must be >= 0")
    daily = daily_stats(live_daily) if "predicted_label" in live_daily.columns else live_daily
    if len(daily):
        daily = daily.loc[daily["n"] > 0]
    h = _horizon_of(daily, horizon)
    raw = baseline.get(metric)
    if raw is None:
        raw = baseline.get(BASELINE_ALIASES.get(metric, metric))
    if isinstance(raw, Mapping):
        raw = raw.get("value")
    base = _none_if_bad(raw)

    arr = daily[list(DAILY_COLUMNS)].to_numpy(dtype=float) if len(daily) else np.zeros((0, len(DAILY_COLUMNS)))
    ret = daily["day_return"].to_numpy(dtype=float) if len(daily) else np.zeros(0)
    values = np.column_stack([arr, ret]) if len(daily) else np.zeros((0, len(DAILY_COLUMNS) + 1))

    def stat(v: np.ndarray) -> float | None:
        return _metrics_from_array(v[:, :-1], v[:, -1], h)[metric]

    n_days = len(daily)
    b = default_block_length(n_days) if block is None else int(block)
    if n_days >= min_days:
        live, lo, hi = block_bootstrap_ci(values, stat, block=b, n_boot=n_boot, alpha=alpha, seed=seed)
    else:
        live = _none_if_bad(stat(values)) if n_days else None
        lo = hi = None

    out: dict[str, Any] = {
        "metric": metric, "live": live, "baseline": base, "rel_diff": None,
        "ci_low": lo, "ci_high": hi, "rel_ci_low": None, "rel_ci_high": None,
        "threshold": None, "tolerance_rel": tolerance_rel, "degraded": None,
        "n_days": n_days, "block": b, "alpha": alpha, "status": "insufficient_data",
    }
    if base is None:
        out["status"] = "no_baseline"
        return out
    scale = abs(base)
    out["threshold"] = base - tolerance_rel * scale
    if scale > 0:
        if live is not None:
            out["rel_diff"] = (live - base) / scale
        if lo is not None and hi is not None:
            out["rel_ci_low"] = (lo - base) / scale
            out["rel_ci_high"] = (hi - base) / scale
    if hi is not None and n_days >= min_days:
        out["degraded"] = bool(hi < out["threshold"])
        out["status"] = "degraded" if out["degraded"] else "ok"
    return out


# --------------------------------------------------------------------------- label-free estimate (CBPE)


@dataclass(frozen=True)
class Calibrator:
    """Per-class one-vs-rest isotonic maps p_k -> P(y = k), renormalised per row.

    ``x[c]``/``y[c]`` are the isotonic knots of class ``c``; between knots the
    map is linear, outside it is clipped (sklearn ``IsotonicRegression``
    semantics). Plain lists so it round-trips through JSON (``to_dict``).
    """

    x: dict[str, list[float]]
    y: dict[str, list[float]]
    n_fit: int
    method: str = "isotonic"
    fitted_until: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def transform(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (rows sum to 1) for raw (n x 3) probabilities."""
        p = np.asarray(probs, dtype=float)
        q = np.column_stack([np.interp(p[:, i], self.x[c], self.y[c]) for i, c in enumerate(CLASSES)])
        q = np.clip(q, 0.0, 1.0)
        s = q.sum(axis=1, keepdims=True)
        raw = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
        return np.where(s > 1e-12, q / np.where(s > 1e-12, s, 1.0), raw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"x": self.x, "y": self.y, "n_fit": self.n_fit, "method": self.method,
                "fitted_until": self.fitted_until, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibrator:
        """Inverse of ``to_dict``."""
        return cls(x={k: list(v) for k, v in d["x"].items()}, y={k: list(v) for k, v in d["y"].items()},
                   n_fit=int(d["n_fit"]), method=str(d.get("method", "isotonic")),
                   fitted_until=d.get("fitted_until"), extra=dict(d.get("extra") or {}))


def fit_calibrator(matured_df: pd.DataFrame, min_rows: int = 100) -> Calibrator:
    """Fit per-class isotonic calibration on matured predictions.

    For each class k an increasing ``IsotonicRegression`` (clipped to [0, 1])
    regresses 1[realized_label == k] on p_k; ``Calibrator.transform`` applies
    the maps and renormalises rows to sum 1. Raises ValueError with fewer than
    ``min_rows`` matured rows.

    Give it as much matured data of the model as its premise allows: the
    estimate rests on the map p -> P(y | p) being stable (``calibration_check``
    on recent outcomes tests that), and under that premise every extra row only
    lowers the variance. Rows are far from independent (symbols that move
    together share an entry day; overlapping horizons make neighbouring days
    alike), so a few hundred rows carry the information of far fewer: on the
    SPX/IXIC replay a 500-row fit moves the estimated accuracy of a month by
    about 0.03 (10-day block bootstrap) against about 0.01 for a fit on the
    whole history (out-of-fold reference plus live, 2,700-3,600 rows).
    """
    from sklearn.isotonic import IsotonicRegression

    data = matured_df.loc[matured_df["realized_label"].notna()]
    if len(data) < min_rows:
        raise ValueError(f"need at least {min_rows} matured rows to fit a calibrator, got {len(data)}")
    p = _prob_matrix(data)
    y = _label_codes(data["realized_label"], "realized_label")
    xs: dict[str, list[float]] = {}
    ys: dict[str, list[float]] = {}
    for i, c in enumerate(CLASSES):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(p[:, i], (y == i).astype(float))
        xs[c] = [float(v) for v in iso.X_thresholds_]
        ys[c] = [float(v) for v in iso.y_thresholds_]
    until = None
    if "matured_at" in data.columns and data["matured_at"].notna().any():
        until = str(pd.Timestamp(data["matured_at"].max()))
    return Calibrator(x=xs, y=ys, n_fit=len(data), fitted_until=until)


def _calibrated_top(df: pd.DataFrame, calibrator: Calibrator) -> tuple[np.ndarray, np.ndarray]:
    q = calibrator.transform(_prob_matrix(df))
    pred = _label_codes(df["predicted_label"], "predicted_label")
    return q, pred


def calibration_check(
    matured_recent_df: pd.DataFrame,
    calibrator: Calibrator,
    threshold: float = DEFAULT_ECE_THRESHOLD,
    min_rows: int = DEFAULT_MIN_CHECK_ROWS,
    null_draws: int = 200,
) -> dict[str, Any]:
    """Is the calibrator still trustworthy on recently matured outcomes?

    ECE (10 equal-width bins) of the calibrated probability of the *predicted*
    label against ``predicted_label == realized_label`` (what
    ``estimate_performance`` relies on). ``reliable`` is True iff at least
    ``min_rows`` (default 200) rows exist and ``ece <= limit`` where
    ``limit = max(threshold, ece_null_q95)`` (threshold default 0.05;
    ``ece_null_q95``: see ``ece_null_quantile``, skipped when ``null_draws=0``). Use data NOT used to fit the calibrator. Also reports
    ``ece_raw`` (same statistic on uncalibrated probabilities),
    ``accuracy``, ``expected_accuracy`` and ``reason``.
    """
    data = matured_recent_df.loc[matured_recent_df["realized_label"].notna()] if len(matured_recent_df) else matured_recent_df
    n = len(data)
    out: dict[str, Any] = {"n": n, "ece": None, "ece_raw": None, "accuracy": None, "expected_accuracy": None,
                           "ece_null_q95": None, "limit": threshold, "threshold": threshold, "min_rows": min_rows, "reliable": False, "reason": ""}
    if n == 0:
        out["reason"] = "no recently matured outcomes"
        return out
    q, pred = _calibrated_top(data, calibrator)
    true = _label_codes(data["realized_label"], "realized_label")
    correct = pred == true
    top = q[np.arange(n), pred]
    raw = _prob_matrix(data)[np.arange(n), pred]
    out["ece"] = expected_calibration_error(top, correct)
    out["ece_raw"] = expected_calibration_error(raw, correct)
    out["accuracy"] = float(correct.mean())
    out["expected_accuracy"] = float(top.mean())
    out["ece_null_q95"] = ece_null_quantile(top, draws=null_draws) if null_draws > 0 else None
    limit = max(threshold, out["ece_null_q95"] or 0.0)
    out["limit"] = limit
    if n < min_rows:
        out["reason"] = f"only {n} matured rows (< {min_rows})"
    elif out["ece"] > limit:
        out["reason"] = (f"calibration decayed: calibrated ECE {out['ece']:.3f} > {limit:.3f} "
                         f"(max of {threshold:.3f} and the 95% ECE of a calibrated model on {n} rows)")
    else:
        out["reliable"] = True
        out["reason"] = f"calibrated ECE {out['ece']:.3f} <= {limit:.3f}"
    return out


def ece_null_quantile(confidence: np.ndarray, q: float = 0.95, draws: int = 200, seed: int = 0) -> float | None:
    """The ``q`` quantile of the ECE a *perfectly calibrated* model would show on
    these confidences: each draw sets ``correct ~ Bernoulli(confidence)`` and
    computes ``expected_calibration_error``. On a few hundred rows the ECE of a
    calibrated model is itself 0.05-0.10 (binning noise), so a fixed ECE limit
    alone would call every small sample "decayed"; ``calibration_check`` uses
    ``max(threshold, this quantile)``."""
    conf = np.asarray(confidence, dtype=float)
    if conf.size == 0:
        return None
    rng = np.random.default_rng(seed)
    sims = rng.random((draws, conf.size)) < conf
    vals = [expected_calibration_error(conf, s) for s in sims]
    return float(np.quantile(np.asarray(vals, dtype=float), q))


def estimate_performance(
    unlabeled_df: pd.DataFrame,
    calibrator: Calibrator,
    check: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Confidence-based performance estimate (CBPE idea) for predictions without labels.

    With calibrated probabilities q (rows of ``calibrator.transform``) and
    predicted class j_i of each row:

    * ``expected_accuracy`` = mean_i q[i, j_i]
    * expected confusion matrix ``E[C[k, j]] = sum_{i: j_i = j} q[i, k]`` so per
      class ``TP_j = sum_{i: j_i=j} q[i, j]``, ``FP_j = n_pred_j - TP_j``,
      ``FN_j = sum_{i: j_i != j} q[i, j]``; precision/recall/F1 per class from
      these expectations (zero_division=0), macro over classes that are
      predicted or have expected support >= 1.

    ``status``: ``empty`` (n = 0); ``unreliable`` when ``check`` (a
    ``calibration_check`` result) says not reliable — then every ``expected_*``
    value is None and the reason is given; ``ok`` when the check passed;
    ``unchecked`` when no check was supplied (numbers returned, not vouched for).
    """
    n = len(unlabeled_df)
    keys = ["expected_accuracy", "expected_macro_precision", "expected_macro_recall", "expected_macro_f1"]
    keys += [f"expected_f1_{c}" for c in CLASSES]
    out: dict[str, Any] = dict.fromkeys(keys)
    out.update(n=n, status="empty", reason="", ece=None if check is None else check.get("ece"))
    if n == 0:
        out["reason"] = "no predictions"
        return out
    if check is not None and not check.get("reliable", False):
        out["status"] = "unreliable"
        out["reason"] = str(check.get("reason") or "calibration check failed")
        return out
    q, pred = _calibrated_top(unlabeled_df, calibrator)
    rows = np.arange(n)
    out["expected_accuracy"] = float(q[rows, pred].mean())
    cm = np.zeros((_K, _K))
    for j in range(_K):
        cm[:, j] = q[pred == j].sum(axis=0)
    tp = np.diag(cm)
    pred_n = cm.sum(axis=0)
    true_n = cm.sum(axis=1)
    prec = np.where(pred_n > 0, tp / np.where(pred_n > 0, pred_n, 1), 0.0)
    rec = np.where(true_n > 0, tp / np.where(true_n > 0, true_n, 1), 0.0)
    den = prec + rec
    f1 = np.where(den > 0, 2 * prec * rec / np.where(den > 0, den, 1), 0.0)
    present = (pred_n > 0) | (true_n >= 1.0)
    out["expected_macro_precision"] = float(prec[present].mean())
    out["expected_macro_recall"] = float(rec[present].mean())
    out["expected_macro_f1"] = float(f1[present].mean())
    for i, c in enumerate(CLASSES):
        out[f"expected_f1_{c}"] = float(f1[i])
    out["status"] = "unchecked" if check is None else "ok"
    out["reason"] = "no calibration check supplied" if check is None else str(check.get("reason", ""))
    return out


# --------------------------------------------------------------------------- model health


@dataclass(frozen=True)
class HealthThresholds:
    """Limits for ``health_status`` (a value equal to a limit triggers it for drift;
    the others trigger strictly above the limit).

    drift_warning=0.10, drift_critical=0.25 (drift score, e.g. max PSI);
    perf_drop_warning=0.05 (relative drop below baseline, 0.05 = 5 %);
    perf_drop_critical=None (disabled: a significant drop is signalled by
    ``perf_degraded``); dq_failures_warning=0 (any failure warns),
    dq_failures_critical=None (disabled); age_warning_days=30,
    age_critical_days=90.
    """

    drift_warning: float = 0.10
    drift_critical: float = 0.25
    perf_drop_warning: float = 0.05
    perf_drop_critical: float | None = None
    dq_failures_warning: int = 0
    dq_failures_critical: int | None = None
    age_warning_days: int = 30
    age_critical_days: int = 90


_SEVERITY = {"healthy": 0, "warning": 1, "critical": 2}


def health_status(
    drift_score: float | None,
    perf_degraded: bool | None,
    perf_rel_drop: float | None,
    dq_failures: int,
    model_age_days: int,
    thresholds: HealthThresholds = HealthThresholds(),
) -> tuple[str, list[str]]:
    """Overall model health: the worst of the individual signals.

    * drift_score >= drift_critical -> critical; >= drift_warning -> warning
    * perf_degraded True (bootstrap CI wholly below tolerated baseline) -> critical
    * perf_rel_drop (positive = live below baseline, relative) > perf_drop_critical
      -> critical (if set); > perf_drop_warning -> warning
    * dq_failures > dq_failures_critical -> critical (if set); > dq_failures_warning -> warning
    * model_age_days > age_critical_days -> critical; > age_warning_days -> warning

    ``None`` inputs are not evaluated. Returns ``(status, reasons)`` with status
    in healthy | warning | critical and one human-readable reason per
    triggered signal (empty for healthy).
    """
    t = thresholds
    found: list[tuple[str, str]] = []
    if drift_score is not None and math.isfinite(drift_score):
        if drift_score >= t.drift_critical:
            found.append(("critical", f"drift score {drift_score:.3f} >= {t.drift_critical:g}"))
        elif drift_score >= t.drift_warning:
            found.append(("warning", f"drift score {drift_score:.3f} >= {t.drift_warning:g}"))
    if perf_degraded:
        found.append(("critical", "performance degraded: CI below tolerated baseline"))
    if perf_rel_drop is not None and math.isfinite(perf_rel_drop):
        if t.perf_drop_critical is not None and perf_rel_drop > t.perf_drop_critical:
            found.append(("critical", f"performance {perf_rel_drop:.1%} below baseline (> {t.perf_drop_critical:.0%})"))
        elif perf_rel_drop > t.perf_drop_warning:
            found.append(("warning", f"performance {perf_rel_drop:.1%} below baseline (> {t.perf_drop_warning:.0%})"))
    if t.dq_failures_critical is not None and dq_failures > t.dq_failures_critical:
        found.append(("critical", f"{dq_failures} data-quality failures (> {t.dq_failures_critical})"))
    elif dq_failures > t.dq_failures_warning:
        found.append(("warning", f"{dq_failures} data-quality failure(s)"))
    if model_age_days > t.age_critical_days:
        found.append(("critical", f"model is {model_age_days} days old (> {t.age_critical_days})"))
    elif model_age_days > t.age_warning_days:
        found.append(("warning", f"model is {model_age_days} days old (> {t.age_warning_days})"))
    status = max((s for s, _ in found), key=_SEVERITY.__getitem__, default="healthy")
    return status, [f"{s}: {msg}" for s, msg in found]


# --------------------------------------------------------------------------- degradation decision

#: The metric whose live-vs-backtest comparison drives the ``performance`` alert:
#: classification accuracy of matured predictions (the one metric that is also
#: estimated label-free, and the "performance_drop" the response rules read).
PRIMARY_METRIC = "accuracy"
#: Metrics compared with the baseline every run (the primary one first).
COMPARED_METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "hit_rate", "profit_factor", "sharpe")


def comparison_block_length(n_days: int, horizon: int) -> int:
    """Bootstrap block length in entry days: ``max(round(n^(1/3)), horizon)``.

    Entry-day cohorts overlap for ``horizon`` days (a 5-day return entered on
    Monday shares four days with Tuesday's), so blocks shorter than the horizon
    would cut that dependence and make the interval too narrow."""
    return max(default_block_length(n_days), int(horizon), 1)


@dataclass(frozen=True)
class AlertDecision:
    action: str  # 'raise' | 'resolve' | 'keep'
    severity: str | None
    score: float | None  # relative drop of the primary metric (positive = below baseline)
    reason: str


def degradation_decision(comparison: Mapping[str, Any], critical_multiple: float = 2.0) -> AlertDecision:
    """What to do with the ``performance`` alert given the primary comparison.

    * ``degraded`` True (the whole CI lies below ``baseline * (1 - tolerance)``)
      -> ``raise``; severity ``critical`` when even the CI's upper end is more
      than ``critical_multiple * tolerance`` below the baseline, else ``warning``;
    * ``degraded`` False (the CI reaches the tolerated level) -> ``resolve``;
    * ``degraded`` None (too few days, no baseline) -> ``keep`` (no evidence
      either way: an open alert stays open, none is opened).

    ``score`` = ``-rel_diff`` of the point estimate, i.e. 0.15 means the live
    metric is 15 % below its backtest value.
    """
    rel = comparison.get("rel_diff")
    score = None if rel is None else float(-rel)
    metric = comparison.get("metric")
    degraded = comparison.get("degraded")
    lo, hi = comparison.get("ci_low"), comparison.get("ci_high")
    ci = "n/a" if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]"
    base = comparison.get("baseline")
    live = comparison.get("live")
    desc = (f"live {metric} {live:.3f} (95% CI {ci}) vs backtest {base:.3f}"
            if live is not None and base is not None else f"{metric}: {comparison.get('status')}")
    if degraded is None:
        return AlertDecision("keep", None, score, f"undecidable ({comparison.get('status')}): {desc}")
    if degraded:
        tol = float(comparison.get("tolerance_rel") or 0.0)
        rel_hi = comparison.get("rel_ci_high")
        critical = rel_hi is not None and -rel_hi > critical_multiple * tol
        return AlertDecision("raise", "critical" if critical else "warning", score,
                             f"{desc}: the whole interval is below the tolerated {tol:.0%} drop")
    return AlertDecision("resolve", None, score, f"{desc}: the interval reaches the tolerated level")


HEALTH_CODES: dict[str, int] = dict(_SEVERITY)


# --------------------------------------------------------------------------- evaluation period and calibration data


def trailing_period(matured: pd.DataFrame, n_days: int) -> pd.DataFrame:
    """Matured predictions of the last ``n_days`` entry days that have any (sorted by ts).

    Days without a matured prediction are not counted, so the period always
    holds ``n_days`` days of evidence when that much exists."""
    if matured.empty:
        return matured
    day = _entry_day(matured["ts"])
    keep = set(sorted(day.unique())[-int(n_days):])
    return matured.loc[day.isin(keep).to_numpy()].sort_values("ts", kind="stable").reset_index(drop=True)


def calibration_split(matured: pd.DataFrame, check_rows: int,
                      fit_rows: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(fit, check)`` for the label-free estimator, by time: ``check`` is the
    ``check_rows`` most recently matured predictions (the estimator's own
    calibration is judged there), ``fit`` every prediction matured before them
    (``fit_rows=None``, the default) or only the ``fit_rows`` most recent of
    those. Disjoint, so the check is out of sample."""
    order = "matured_at" if "matured_at" in matured.columns else "ts"
    data = matured.sort_values([order, "ts"], kind="stable").reset_index(drop=True)
    n_before = max(0, len(data) - check_rows)
    check = data.iloc[n_before:]
    fit = data.iloc[0 if fit_rows is None else max(0, n_before - fit_rows): n_before]
    return fit.reset_index(drop=True), check.reset_index(drop=True)


def importance_shares(values: Mapping[str, float]) -> dict[str, float]:
    """Non-negative importances scaled to sum 1 (all 0.0 when the total is 0)."""
    total = float(sum(max(0.0, float(v)) for v in values.values()))
    return {k: (max(0.0, float(v)) / total if total > 0 else 0.0) for k, v in values.items()}
