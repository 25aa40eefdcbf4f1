"""Scoring one symbol's window of bars with a model (pure, except :func:`record_batch`; no Airflow).

Missing-feature policy (issue 12, defect 7)
-------------------------------------------
A bar can have a NaN feature on clean data: a zero-volume bar has no
``volume_z_20`` (IXIC 2015-05-12 and 2018-01-09). Such a row is **scored with
its NaN**: LightGBM and XGBoost route missing values natively, down the
default branch each split learnt in training, so the prediction is the model's
own answer for "this feature is unknown", not an imputation. The prediction is
marked ``data_quality = 'missing_features'`` with ``missing_features`` naming
the NaN features (the snapshot in ``predictions.features`` holds JSON null for
them); every other row is ``'ok'`` with ``missing_features`` NULL. One bad bar
never blocks a symbol's signals, and the drift checks of the window can count
the marked rows.

What is *not* covered by the policy: too little history. A window whose first
bar has fewer than :data:`~include.modelwatch.data.features.WARMUP_BARS` bars
before it in ``market_bars`` would have NaN in many features on every row; that
is a pipeline fault (bars not ingested), so :func:`score_window` raises a
``ValueError`` naming the model, symbol, window and the bar count instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.data import features, signals
from include.modelwatch.data.signals import DATA_QUALITY_MISSING, DATA_QUALITY_OK, missing_features
from include.modelwatch.vocabulary import CLASSES, finite_or_none


@dataclass(frozen=True)
class ScoredWindow:
    """The prediction rows of one symbol's window (input of ``signals.replace_predictions``)."""

    symbol: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    classes: tuple[str, ...] = tuple(CLASSES)

    @property
    def flagged(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["data_quality"] != DATA_QUALITY_OK]

    def label_counts(self) -> dict[str, int]:
        counts = {c: 0 for c in self.classes}
        for r in self.rows:
            counts[r["predicted_label"]] += 1
        return counts

    def summary(self) -> str:
        """One readable line: rows scored, label counts, rows with missing features and which."""
        labels = ", ".join(f"{c} {n}" for c, n in self.label_counts().items())
        head = f"{self.symbol}: {len(self.rows)} rows scored ({labels}); {len(self.flagged)} with missing features"
        if not self.flagged:
            return head
        which = "; ".join(f"{r['ts']:%Y-%m-%d} {', '.join(r['missing_features'])}" for r in self.flagged)
        return f"{head} (scored with NaN, marked {DATA_QUALITY_MISSING}: {which})"


def score_window(
    model: Any,
    feature_names: Sequence[str],
    bars: pd.DataFrame,
    start: datetime,
    end: datetime,
    *,
    symbol: str,
    label: str = "model",
    classes: Sequence[str] = CLASSES,
) -> ScoredWindow:
    """Predictions for the bars of ``symbol`` stamped in ``[start, end)``.

    ``bars`` must include the history the features need (:data:`features.WARMUP_BARS`
    bars before the window's first bar). ``model`` is a LightGBM / XGBoost booster
    trained on ``feature_names`` over ``classes`` (the version's, in its probability order). Rows with NaN
    features are scored and marked (see the module docstring); ``label`` names the model in errors.
    """
    from include.modelwatch.training import training

    classes = tuple(classes)
    if bars.empty:
        return ScoredWindow(symbol, classes=classes)
    feats = features.compute_features(bars, columns=list(feature_names))
    stamps = [signals.bar_ts(d) for d in pd.DatetimeIndex(feats.index)]
    inside = np.flatnonzero([start <= t < end for t in stamps])
    if inside.size == 0:
        return ScoredWindow(symbol, classes=classes)
    history = int(inside[0])
    if history < features.WARMUP_BARS - 1:
        raise ValueError(
            f"{label} {symbol} window {start:%Y-%m-%d}..{end:%Y-%m-%d}: only {history} bars of history before "
            f"{feats.index[inside[0]]:%Y-%m-%d} in market_bars, features need {features.WARMUP_BARS - 1} "
            "(were the bars ingested?)"
        )
    todo = feats.iloc[inside]
    proba = training.predict_proba(model, todo)
    if proba.shape[1] != len(classes):
        raise ValueError(f"{label}: the model predicts {proba.shape[1]} classes, the version names {list(classes)}")
    rows: list[dict[str, Any]] = []
    values = todo.to_numpy(dtype="float64")
    for i, pos in enumerate(inside):
        snapshot = {c: finite_or_none(values[i, j]) for j, c in enumerate(feature_names)}
        missing = missing_features(snapshot)
        p = proba[i]
        rows.append(
            {
                "ts": stamps[pos],
                "features": snapshot,
                "predicted_label": classes[int(np.argmax(p))],
                "probabilities": {c: float(p[j]) for j, c in enumerate(classes)},
                "confidence": float(np.max(p)),
                "data_quality": DATA_QUALITY_MISSING if missing else DATA_QUALITY_OK,
                "missing_features": missing or None,
            }
        )
    return ScoredWindow(symbol, rows, classes)


#: One scoring batch (a version scoring one symbol's window), replaced by a re-run of the window (migration 012).
UPSERT_SCORING_BATCH = """
INSERT INTO scoring_batches (model_name, model_version, symbol, timeframe, window_start, window_end, n_rows,
                             n_missing_features, duration_s, run_id, scored_at)
VALUES (%(model_name)s, %(model_version)s, %(symbol)s, %(timeframe)s, %(window_start)s, %(window_end)s, %(n_rows)s,
        %(n_missing_features)s, %(duration_s)s, %(run_id)s, now())
ON CONFLICT (model_name, model_version, symbol, timeframe, window_start, window_end) DO UPDATE
SET n_rows = EXCLUDED.n_rows, n_missing_features = EXCLUDED.n_missing_features, duration_s = EXCLUDED.duration_s,
    run_id = EXCLUDED.run_id, scored_at = EXCLUDED.scored_at
"""


def record_batch(
    cur,
    *,
    model_name: str,
    model_version: int,
    symbol: str,
    timeframe: str,
    window_start: datetime,
    window_end: datetime,
    n_rows: int,
    n_missing_features: int,
    duration_s: float,
    run_id: str | None,
) -> None:
    """Record one scoring batch in ``scoring_batches`` (the source of ``modelwatch_scoring_duration_seconds``).

    The one function of this module that writes: pass the cursor of the transaction that
    replaced the batch's predictions, so the batch row and its predictions commit together.
    A re-run of the same window replaces the row (latest duration and run id).
    """
    if not (duration_s >= 0 and np.isfinite(duration_s)):
        raise ValueError(
            f"{model_name} v{model_version} {symbol}: batch duration must be finite and >= 0, got {duration_s}"
        )
    cur.execute(
        UPSERT_SCORING_BATCH,
        {
            "model_name": model_name,
            "model_version": int(model_version),
            "symbol": symbol,
            "timeframe": timeframe,
            "window_start": window_start,
            "window_end": window_end,
            "n_rows": int(n_rows),
            "n_missing_features": int(n_missing_features),
            "duration_s": float(duration_s),
            "run_id": run_id,
        },
    )


def history_slice(bars: pd.DataFrame, start: date, end: date, history_days: int) -> tuple[pd.DataFrame, int]:
    """Bars with ``start - history_days <= date < end`` (the window plus the history its features need),
    and how many of them lie inside ``[start, end)``."""
    lo = pd.Timestamp(start - timedelta(days=history_days))
    sel = bars[(bars["date"] >= lo) & (bars["date"] < pd.Timestamp(end))]
    in_window = int(((sel["date"] >= pd.Timestamp(start)) & (sel["date"] < pd.Timestamp(end))).sum())
    return sel, in_window


def first_pending_day(pending: pd.DataFrame) -> date:
    """UTC date of the oldest prediction still waiting for its outcome."""
    return pd.Timestamp(pending["ts"].min()).tz_convert("UTC").date()


def outcome_rows(pending: pd.DataFrame, bars: pd.DataFrame, end: datetime, run_id: str | None) -> list[dict[str, Any]]:
    """Outcome rows of the ``pending`` predictions whose horizon closed before ``end``.

    ``pending`` is :func:`signals.predictions_awaiting_outcome`; outcomes depend on each
    version's target (``params["target"]``: the direction or the volatility regime) and its label parameters
    (horizon, ``k``, ``vol_window``), so predictions are grouped by them. Only bars that closed before ``end`` count.
    """
    import json

    from include.modelwatch.training import targets

    if pending.empty:
        return []
    bars = bars[[signals.bar_ts(d) < end for d in bars["date"]]]

    def horizon_of(h: Any, p: dict[str, Any] | None) -> int:  # the version's horizon_days, else params', target's
        if h is not None and not pd.isna(h):
            return int(h)
        return int((p or {}).get("horizon") or targets.target_of(p).horizon)

    keys = [
        json.dumps({**(p or {}), "horizon": horizon_of(h, p)}, sort_keys=True, default=str)
        for h, p in zip(pending["horizon_days"], pending["params"], strict=True)
    ]
    rows: list[dict[str, Any]] = []
    for key in sorted(set(keys)):
        params = json.loads(key)
        target = targets.target_of(params)
        horizon = int(params["horizon"])
        grp = pending[[k == key for k in keys]]
        preds = pd.DataFrame(
            {
                "prediction_id": grp["prediction_id"].to_numpy(),
                "date": [pd.Timestamp(t).tz_convert("UTC").tz_localize(None).normalize() for t in grp["ts"]],
                "predicted_label": grp["predicted_label"].to_numpy(),
            }
        )
        out = target.outcomes(preds, bars, params)
        rows.extend(
            {
                "prediction_id": int(r["prediction_id"]),
                "realized_return": float(r["realized_return"]),
                "realized_label": str(r["realized_label"]),
                "r_multiple": None if r["r_multiple"] is None else float(r["r_multiple"]),
                "horizon_days": horizon,
                "matured_at": signals.bar_ts(r["matured_at"]),
                "run_id": run_id,
            }
            for r in out.to_dict("records")
        )
    return rows
