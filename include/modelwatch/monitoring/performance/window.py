"""One evaluation window of ``performance_daily``: the pure computation behind a run.

``evaluate_window`` takes what the task loaded (the version's predictions with their
outcomes, its backtest baseline, its pending estimates, its model) and returns every
number the task writes: per-symbol live metrics, live vs backtest, the label-free
estimate of the window's unmatured predictions, realized values of earlier estimates,
the health inputs and the window's interpretability. No database, no Airflow.

A model is described by its class list ``classes`` (default SELL/HOLD/BUY; an external
model's own labels otherwise, see :mod:`.metrics` for what happens to the trading
metrics) and ``model`` (None for a model without an artifact: no interpretability).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from include.modelwatch.monitoring.performance.compare import (
    COMPARED_METRICS,
    AlertDecision,
    compare_to_baseline,
    comparison_block_length,
    degradation_decision,
)
from include.modelwatch.monitoring.performance.estimate import estimate_label_free
from include.modelwatch.monitoring.performance.frames import filter_matured, trailing_period
from include.modelwatch.monitoring.performance.interpretability import window_interpretability
from include.modelwatch.monitoring.performance.metrics import daily_stats, live_metrics
from include.modelwatch.vocabulary import CLASSES

#: Evaluation period: the last EVAL_DAYS entry days with matured outcomes.
EVAL_DAYS = 63
#: Block bootstrap of the comparison.
N_BOOT, ALPHA, MIN_DAYS = 1000, 0.05, 10

#: Outcome columns of a loaded prediction frame (``store.load_predictions``).
OUTCOME_COLUMNS = ("prediction_id", "realized_label", "realized_return", "r_multiple", "horizon_days", "matured_at")


def optional_float(v: Any) -> float | None:
    """``None`` stays ``None``, anything else becomes a float (JSON / DB friendly)."""
    return None if v is None else float(v)


def matured_predictions(df: pd.DataFrame, end: Any) -> pd.DataFrame:
    """The rows of a loaded prediction frame whose outcome matured before ``end`` (see ``filter_matured``)."""
    cols = list(OUTCOME_COLUMNS)
    preds = df.drop(columns=[c for c in cols if c != "prediction_id"] + ["features"])
    outs = df.loc[df["realized_label"].notna(), cols]
    return filter_matured(preds, outs, end)


def realizations(
    pending: Sequence[Mapping[str, Any]], matured: pd.DataFrame, horizon: int, *, classes: Sequence[str] = CLASSES
) -> list[dict[str, Any]]:
    """Realized values of earlier estimates whose predictions have all matured by the window end."""
    out = []
    for p in pending:
        if p["n_predictions"] == 0 or int(p["n_matured"]) < p["n_predictions"]:
            continue
        rows = matured[matured["prediction_id"].isin(set(p["prediction_ids"]))]
        if len(rows) < p["n_predictions"]:  # older than the lookback or rejected by the horizon check
            continue
        value = live_metrics(rows, horizon, classes=classes)[p["metric"]]
        out.append(
            {"window_end": p["window_end"], "metric": p["metric"], "realized": optional_float(value), "n": len(rows)}
        )
    return out


@dataclass(frozen=True)
class WindowEvaluation:
    """Everything ``performance_daily`` writes for one version and window.

    ``snapshots``: (symbol, timeframe, live metrics), the version as a whole ``('*', '*')`` first;
    ``comparisons``: live vs backtest per compared metric, the primary first; ``decision``: the
    alert decision of the primary comparison; ``in_window`` / ``unlabeled``: the window's
    predictions and those of them without a matured outcome; ``estimate`` / ``unchecked`` /
    ``check``: the label-free estimate (see ``LabelFreeEstimate``); ``realized``: realized values
    of earlier estimates; ``age`` (days since train end) and ``rel_drop`` (relative drop of the
    primary metric): health inputs; ``interp``: per-feature gain / mean |SHAP| / rank;
    ``eval_start`` / ``eval_end``: first and last entry day of the evaluation period."""

    horizon: int
    snapshots: list[tuple[str, str, dict[str, Any]]]
    comparisons: list[dict[str, Any]]
    decision: AlertDecision
    in_window: pd.DataFrame
    unlabeled: pd.DataFrame
    estimate: dict[str, Any]
    unchecked: dict[str, Any]
    check: dict[str, Any]
    realized: list[dict[str, Any]]
    age: int | None
    rel_drop: float | None
    interp: dict[str, dict[str, Any]]
    eval_start: date | None
    eval_end: date | None

    @property
    def primary(self) -> dict[str, Any]:
        return self.comparisons[0]

    @property
    def overall(self) -> dict[str, Any]:
        return self.snapshots[0][2]


def evaluate_window(
    df: pd.DataFrame,
    *,
    start: datetime,
    end: datetime,
    baseline: Mapping[str, float | None],
    pending_estimates: Sequence[Mapping[str, Any]],
    model: Any | None,
    features: Sequence[str],
    tolerance: float,
    horizon_days: int | None = None,
    train_end: date | None = None,
    label: str = "model",
    eval_days: int = EVAL_DAYS,
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
    min_days: int = MIN_DAYS,
    classes: Sequence[str] = CLASSES,
) -> WindowEvaluation:
    """Evaluate one version's window [start, end) from its loaded predictions ``df``.

    ``df`` is ``store.load_predictions`` (predictions with outcomes, ``features`` per row);
    a prediction counts only when its outcome matured before ``end``. The evaluation period is
    the last ``eval_days`` entry days with matured outcomes; the horizon is ``horizon_days``, else
    the period's median outcome horizon, else 1. ``classes`` is the model's class list
    (probability columns ``p_<class>`` in ``df``); ``model`` None skips interpretability
    (``interp`` is empty)."""
    matured = matured_predictions(df, end)
    period = trailing_period(matured, eval_days)
    horizon = horizon_days or (int(period["horizon_days"].median()) if len(period) else 1)

    # 1. live metrics: the version as a whole ('*') and per symbol / timeframe
    snapshots: list[tuple[str, str, dict[str, Any]]] = [("*", "*", live_metrics(period, horizon, classes=classes))]
    for (sym, tf), part in period.groupby(["symbol", "timeframe"], sort=True) if len(period) else []:
        snapshots.append((str(sym), str(tf), live_metrics(part, horizon, classes=classes)))

    # 2. live vs backtest, block bootstrap over entry days
    daily = daily_stats(period, classes=classes)
    block = comparison_block_length(len(daily), horizon)
    comparisons = [
        compare_to_baseline(
            daily,
            baseline,
            m,
            tolerance,
            horizon=horizon,
            block=block,
            n_boot=n_boot,
            alpha=alpha,
            min_days=min_days,
            classes=classes,
        )
        for m in COMPARED_METRICS
    ]
    primary = comparisons[0]

    # 3. label-free estimate of the window's predictions without a matured outcome
    in_window = df[(df["ts"] >= pd.Timestamp(start)) & (df["ts"] < pd.Timestamp(end))]
    unlabeled = in_window[~in_window["prediction_id"].isin(set(matured["prediction_id"]))]
    lfe = estimate_label_free(matured, unlabeled, classes=classes)

    # 4. health inputs of this monitor (drift and data quality are read when the row is written)
    age = (end.date() - train_end).days if train_end else None
    rel_drop = None if primary["rel_diff"] is None else -primary["rel_diff"]

    # 5. interpretability of the window's predictions
    interp = window_interpretability(model, list(features), list(in_window["features"]), label=label)

    return WindowEvaluation(
        horizon=horizon,
        snapshots=snapshots,
        comparisons=comparisons,
        decision=degradation_decision(primary),
        in_window=in_window,
        unlabeled=unlabeled,
        estimate=lfe.estimate,
        unchecked=lfe.unchecked,
        check=lfe.check,
        realized=realizations(pending_estimates, matured, horizon, classes=classes),
        age=age,
        rel_drop=rel_drop,
        interp=interp,
        eval_start=daily.index.min().date() if len(daily) else None,
        eval_end=daily.index.max().date() if len(daily) else None,
    )
