"""Frames of matured predictions: validation helpers, the label delay, the evaluation period.

Conventions (shared by the whole package): a model's class list ``classes`` (default
:data:`include.modelwatch.vocabulary.CLASSES`, SELL/HOLD/BUY; an external model brings
its own, e.g. ``["down", "up"]``) fixes the order of every probability vector and
confusion matrix; its probability columns are ``p_<class>``
(:func:`include.modelwatch.vocabulary.prob_columns`, ``p_SELL, p_HOLD, p_BUY`` by
default); the *entry day* of a prediction is its ``ts`` floored to the calendar day
(UTC when tz-aware).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.vocabulary import CLASSES, prob_columns

N_BINS = 10


def to_utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def utc_series(s: pd.Series) -> pd.Series:
    s = pd.to_datetime(s)
    return s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")


def entry_day(ts: pd.Series) -> pd.Series:
    s = pd.to_datetime(ts)
    if s.dt.tz is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.dt.floor("D")


def as_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """A model's class list as a tuple of text; ValueError when it is empty or repeats a class."""
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of class names, got the string {classes!r}")
    out = tuple(str(c) for c in classes)
    if not out:
        raise ValueError("classes must not be empty")
    if len(set(out)) != len(out):
        raise ValueError(f"classes must be distinct, got {list(out)}")
    return out


def prob_matrix(df: pd.DataFrame, classes: Sequence[str] = CLASSES) -> np.ndarray:
    """The (n x len(classes)) probability matrix of ``df`` (columns ``p_<class>`` in ``classes`` order)."""
    cols = prob_columns(as_classes(classes))
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"missing probability columns {missing}")
    p = df[cols].to_numpy(dtype=float)
    if not np.all(np.isfinite(p)):
        raise ValueError("probability columns must be finite")
    return p


def horizon_of(df: pd.DataFrame, horizon: int | None) -> int:
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

    cutoff = to_utc(as_of)
    matured_at = utc_series(merged["matured_at"])
    ts = utc_series(merged["ts"])
    earliest = pd.Series(
        [t + pd.offsets.BDay(int(h)) for t, h in zip(ts, merged["horizon_days"], strict=True)],
        index=merged.index,
    )
    keep = matured_at.notna() & (matured_at < cutoff) & (matured_at >= earliest)
    return merged.loc[keep].sort_values("ts", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- evaluation period and calibration data


def trailing_period(matured: pd.DataFrame, n_days: int) -> pd.DataFrame:
    """Matured predictions of the last ``n_days`` entry days that have any (sorted by ts).

    Days without a matured prediction are not counted, so the period always
    holds ``n_days`` days of evidence when that much exists."""
    if matured.empty:
        return matured
    day = entry_day(matured["ts"])
    keep = set(sorted(day.unique())[-int(n_days) :])
    return matured.loc[day.isin(keep).to_numpy()].sort_values("ts", kind="stable").reset_index(drop=True)
