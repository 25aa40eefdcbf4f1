"""Live performance of trading-signal models: metrics, label delay, bootstrap, CBPE, health.

Pure functions on pandas/numpy objects (no Airflow); the database reads and
writes of ``performance_daily`` are in :mod:`.store`. The package is cut by concept:

* :mod:`.frames`   label delay (``filter_matured``), evaluation period, shared validation
* :mod:`.metrics`  live metrics and their per-entry-day sufficient statistics
* :mod:`.compare`  block bootstrap, live vs backtest, degradation decision
* :mod:`.estimate` calibrator and the label-free (CBPE) estimate
* :mod:`.health`   model health
* :mod:`.interpretability` gain share and mean |SHAP| per feature
* :mod:`.window`   one evaluation window of ``performance_daily`` (``evaluate_window``)
* :mod:`.alerting` what happens to the ``performance`` alert (``alert_plan``: champion only, same version)

Every computation takes the model's class list ``classes`` (default
:data:`~include.modelwatch.vocabulary.CLASSES`, SELL/HOLD/BUY), so a model ModelWatch did
not train (an *external* model with its own labels, e.g. ``["down", "up"]``) is
monitored the same way: probability columns ``p_<class>``, a confusion matrix and
per-class metrics over its classes. Trading metrics need trade classes (BUY/SELL, see
:mod:`.metrics`): for a class list without them they are None and ``realized_return``
may be NULL. A model without an artifact (``model=None``) has no interpretability.

``from include.modelwatch.monitoring import performance as perf`` gives the public API below.
"""

from __future__ import annotations

from include.modelwatch.monitoring.performance.alerting import (
    CHAMPION,
    PerformanceAlertPlan,
    alert_plan,
    counts_for_alert,
)
from include.modelwatch.monitoring.performance.compare import (
    COMPARABLE_METRICS,
    COMPARED_METRICS,
    PRIMARY_METRIC,
    AlertDecision,
    block_bootstrap_ci,
    compare_to_baseline,
    comparison_block_length,
    default_block_length,
    degradation_decision,
)
from include.modelwatch.monitoring.performance.estimate import (
    CHECK_MIN_ROWS,
    CHECK_ROWS,
    DEFAULT_ECE_THRESHOLD,
    DEFAULT_MIN_CHECK_ROWS,
    FIT_MIN_ROWS,
    Calibrator,
    LabelFreeEstimate,
    calibration_check,
    calibration_split,
    ece_null_quantile,
    estimate_label_free,
    estimate_performance,
    fit_calibrator,
)
from include.modelwatch.monitoring.performance.frames import (
    N_BINS,
    expected_calibration_error,
    filter_matured,
    trailing_period,
)
from include.modelwatch.monitoring.performance.health import HEALTH_CODES, HealthThresholds, health_status
from include.modelwatch.monitoring.performance.interpretability import importance_shares, window_interpretability
from include.modelwatch.monitoring.performance.metrics import (
    DAILY_COLUMNS,
    DIRECTION,
    TRADING_DAYS_PER_YEAR,
    TRADING_METRICS,
    daily_columns,
    daily_stats,
    live_metrics,
    metrics_from_daily,
    trade_classes,
)
from include.modelwatch.monitoring.performance.window import (
    ALPHA,
    EVAL_DAYS,
    MIN_DAYS,
    N_BOOT,
    WindowEvaluation,
    evaluate_window,
    matured_predictions,
    optional_float,
    realizations,
)
from include.modelwatch.vocabulary import CLASSES, PROB_COLUMNS

__all__ = [
    "ALPHA",
    "EVAL_DAYS",
    "MIN_DAYS",
    "N_BOOT",
    "WindowEvaluation",
    "evaluate_window",
    "matured_predictions",
    "optional_float",
    "realizations",
    "CHECK_MIN_ROWS",
    "CHECK_ROWS",
    "CLASSES",
    "COMPARABLE_METRICS",
    "COMPARED_METRICS",
    "DAILY_COLUMNS",
    "DEFAULT_ECE_THRESHOLD",
    "DEFAULT_MIN_CHECK_ROWS",
    "DIRECTION",
    "FIT_MIN_ROWS",
    "HEALTH_CODES",
    "N_BINS",
    "PRIMARY_METRIC",
    "PROB_COLUMNS",
    "TRADING_DAYS_PER_YEAR",
    "TRADING_METRICS",
    "AlertDecision",
    "Calibrator",
    "HealthThresholds",
    "LabelFreeEstimate",
    "block_bootstrap_ci",
    "calibration_check",
    "calibration_split",
    "compare_to_baseline",
    "comparison_block_length",
    "daily_columns",
    "daily_stats",
    "default_block_length",
    "degradation_decision",
    "ece_null_quantile",
    "estimate_performance",
    "expected_calibration_error",
    "filter_matured",
    "fit_calibrator",
    "health_status",
    "importance_shares",
    "estimate_label_free",
    "live_metrics",
    "metrics_from_daily",
    "trade_classes",
    "trailing_period",
    "window_interpretability",
    "CHAMPION",
    "PerformanceAlertPlan",
    "alert_plan",
    "counts_for_alert",
]
