"""Read queries of the monitoring API over monitoring results: drift windows and their per-feature
results, live-vs-backtest comparisons, label-free estimates and the interpretability log.

Every list is newest first (by ``window_end``) and filters ``[start, end)`` on ``window_end``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from include.modelwatch.api import models as m
from include.modelwatch.api.errors import ApiInputError
from include.modelwatch.api.queries_common import (
    DEFAULT_LIMIT,
    check_model,
    check_range,
    check_time,
    common_filters,
    fetch_page,
    run,
    text,
)

DRIFT_WINDOW_COLUMNS = (
    "model_name AS model, model_version AS version, window_start, window_end, status, n_rows, drift_score, "
    "level, n_drifted, drifted, alert_state, run_id"
)
DRIFT_WINDOW_ONE = (
    "SELECT " + DRIFT_WINDOW_COLUMNS + ", summary FROM drift_windows "
    "WHERE model_name = %(model)s AND model_version = %(version)s AND window_start = %(window_start)s"
)
DRIFT_RESULTS = (
    "SELECT kind, feature, test, statistic, p_value, severity, drifted, n_current, details FROM drift_results "
    "WHERE model_name = %(model)s AND model_version = %(version)s AND window_start = %(window_start)s "
    "ORDER BY drifted DESC, severity DESC, kind, feature, test"
)
COMPARISON_COLUMNS = (
    "comparison_id, model_name AS model, model_version AS version, window_start, window_end, metric, is_primary, "
    "live_value, baseline_value, rel_diff, ci_low, ci_high, rel_ci_low, rel_ci_high, threshold, tolerance_rel, "
    "degraded, status, n_days, n"
)
ESTIMATE_COLUMNS = (
    "model_name AS model, model_version AS version, window_start, window_end, metric, n_predictions, estimate, "
    "estimate_unchecked, status, reason, realized, abs_error, abs_error_unchecked, realized_n, realized_as_of"
)
T = TypeVar("T", bound=BaseModel)
#: predictions per model version and UTC day (the model/version filters reach the predictions index through it)
CONFIDENCE_DAYS = (
    "(SELECT model_name, model_version, date_trunc('day', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS window_start, "
    "(date_trunc('day', ts AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC' AS window_end, "
    "count(*) AS n, avg(confidence) AS mean, min(confidence) AS min, "
    "percentile_cont(0.1) WITHIN GROUP (ORDER BY confidence) AS p10, "
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY confidence) AS median, "
    "percentile_cont(0.9) WITHIN GROUP (ORDER BY confidence) AS p90, max(confidence) AS max "
    "FROM predictions GROUP BY 1, 2, 3, 4) AS days"
)
CONFIDENCE_COLUMNS = (
    "model_name AS model, model_version AS version, window_start, window_end, n, mean, min, p10, median, p90, max"
)

INTERPRETABILITY_COLUMNS = (
    "model_name AS model, model_version AS version, window_start, window_end, feature, importance_gain, "
    "mean_abs_shap, shap_rank, n_predictions"
)


def _checked(conn, model: str | None, version: int | None, start: datetime | None, end: datetime | None) -> None:
    check_range(start, end)
    check_model(conn, model, version)


def _window_page(
    conn,
    item: type[T],
    *,
    columns: str,
    source: str,
    order_by: str,
    key: str | None,
    model: str | None,
    version: int | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> m.Page[T]:
    """One page of a per-window table, filtered on ``window_end`` in ``[start, end)`` (every list here)."""
    _checked(conn, model, version, start, end)
    rows, total = fetch_page(
        conn,
        columns=columns,
        source=source,
        predicates=common_filters(model=model, version=version, start=start, end=end, time_column="window_end"),
        order_by=order_by,
        limit=limit,
        offset=offset,
        key=key,
    )
    page: Any = m.Page  # parametrized at run time with the item class, which the type checker cannot follow
    return page[item](items=[item.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


def drift_windows(
    conn,
    *,
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.DriftWindow]:
    """Drift windows (one row per model version and window), newest window first."""
    return _window_page(
        conn,
        m.DriftWindow,
        columns=DRIFT_WINDOW_COLUMNS,
        source="drift_windows",
        key="model_name, model_version, window_start",
        order_by="window_end DESC, window_start DESC, model_name, model_version DESC",
        model=model,
        version=version,
        start=start,
        end=end,
        limit=limit,
        offset=offset,
    )


def drift_window_features(conn, *, model: str, version: int, window_start: datetime) -> m.DriftWindowDetail:
    """One drift window with its per-feature / prediction / concept results (drifted first, then by severity)."""
    check_time("window_start", window_start)
    check_model(conn, model, version)
    key = {"model": model, "version": version, "window_start": window_start}
    found = run(conn, text(DRIFT_WINDOW_ONE), key)
    if not found:
        raise ApiInputError(
            "window_start", f"model {model!r} v{version} has no drift window starting at {window_start.isoformat()}"
        )
    results = [m.DriftFeatureResult.model_validate(r) for r in run(conn, text(DRIFT_RESULTS), key)]
    return m.DriftWindowDetail.model_validate({**found[0], "results": results})


def performance(
    conn,
    *,
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.PerformanceComparison]:
    """Live vs backtest comparison rows, newest window first; per window the primary metric first."""
    return _window_page(
        conn,
        m.PerformanceComparison,
        columns=COMPARISON_COLUMNS,
        source="live_vs_backtest_comparison",
        key="model_name, model_version, window_end, metric",
        order_by="window_end DESC, model_name, model_version DESC, is_primary DESC, metric",
        model=model,
        version=version,
        start=start,
        end=end,
        limit=limit,
        offset=offset,
    )


def estimates(
    conn,
    *,
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.Estimate]:
    """Label-free performance estimates with their realized values and errors, newest window first."""
    return _window_page(
        conn,
        m.Estimate,
        columns=ESTIMATE_COLUMNS,
        source="performance_estimates",
        key="model_name, model_version, window_end, metric",
        order_by="window_end DESC, model_name, model_version DESC, metric",
        model=model,
        version=version,
        start=start,
        end=end,
        limit=limit,
        offset=offset,
    )


def confidence(
    conn,
    *,
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.ConfidenceDay]:
    """Confidence of the predictions (the top class probability) per model version and UTC day, newest day first:
    count, mean, min, 10th percentile, median, 90th percentile, max (the predecessor's confidence trend)."""
    return _window_page(
        conn,
        m.ConfidenceDay,
        columns=CONFIDENCE_COLUMNS,
        source=CONFIDENCE_DAYS,
        key=None,  # a per-day aggregate: deep pages read the plain OFFSET
        order_by="window_end DESC, model_name, model_version DESC",
        model=model,
        version=version,
        start=start,
        end=end,
        limit=limit,
        offset=offset,
    )


def interpretability(
    conn,
    *,
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> m.Page[m.InterpretabilityRow]:
    """Per-feature gain importance and mean |SHAP|, newest window first; per window by SHAP rank."""
    return _window_page(
        conn,
        m.InterpretabilityRow,
        columns=INTERPRETABILITY_COLUMNS,
        source="interpretability_log",
        key="model_name, model_version, window_end, feature",
        order_by="window_end DESC, model_name, model_version DESC, shap_rank NULLS LAST, feature",
        model=model,
        version=version,
        start=start,
        end=end,
        limit=limit,
        offset=offset,
    )
