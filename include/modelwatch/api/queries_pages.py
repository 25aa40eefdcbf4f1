"""Read queries only the HTML pages need (:mod:`include.modelwatch.api.pages`); everything else comes from
:mod:`include.modelwatch.api.queries`. Reads only, named parameters, never commits or rolls back."""

from __future__ import annotations

from typing import Any

from include.modelwatch.api import models as m
from include.modelwatch.api.queries_common import check_model, run, text
from include.modelwatch.api.queries_monitoring import COMPARISON_COLUMNS, DRIFT_WINDOW_COLUMNS, ESTIMATE_COLUMNS

#: the model page draws every window up to this many; beyond, the worst window of each version and UTC day
MAX_TIMELINE_WINDOWS = 2000
#: at most this many points per performance series (daily comparisons: ~27 years of one version)
MAX_TIMELINE_DAYS = 10_000
SCORED_WINDOWS = "SELECT count(*) AS n FROM drift_windows WHERE model_name = %(model)s AND drift_score IS NOT NULL"
ALL_WINDOWS = (
    "SELECT " + DRIFT_WINDOW_COLUMNS + " FROM drift_windows WHERE model_name = %(model)s AND drift_score IS NOT NULL "
    "ORDER BY window_end, model_version"
)
#: the worst (highest-score) window of each version and UTC day, a real window the point can link to
DAILY_WORST_WINDOWS = (
    "SELECT * FROM (SELECT DISTINCT ON (model_version, date_trunc('day', window_end AT TIME ZONE 'UTC')) "
    + DRIFT_WINDOW_COLUMNS
    + " FROM drift_windows WHERE model_name = %(model)s AND drift_score IS NOT NULL "
    "ORDER BY model_version, date_trunc('day', window_end AT TIME ZONE 'UTC'), drift_score DESC, window_start) d "
    "ORDER BY window_end, version"
)
PRIMARY_COMPARISONS = (
    "SELECT " + COMPARISON_COLUMNS + " FROM live_vs_backtest_comparison WHERE model_name = %(model)s AND is_primary "
    "ORDER BY window_end DESC, model_version DESC LIMIT %(limit)s"
)
PRIMARY_ESTIMATES = (
    "SELECT " + ESTIMATE_COLUMNS + " FROM performance_estimates e WHERE model_name = %(model)s AND metric IN "
    "(SELECT metric FROM live_vs_backtest_comparison c WHERE c.model_name = %(model)s AND c.is_primary) "
    "ORDER BY window_end DESC, model_version DESC LIMIT %(limit)s"
)

#: per feature and window, the feature's verdict (every test row of a feature repeats it: take the max)
FEATURE_SEVERITY = (
    "SELECT r.window_start, max(r.window_end) AS window_end, r.feature, max(r.severity) AS severity, "
    "bool_or(r.drifted) AS drifted FROM drift_results r "
    "WHERE r.model_name = %(model)s AND r.model_version = %(version)s AND r.kind = 'feature' "
    "AND r.window_start IN (SELECT w.window_start FROM drift_windows w "
    "WHERE w.model_name = %(model)s AND w.model_version = %(version)s "
    "ORDER BY w.window_start DESC LIMIT %(max_windows)s) "
    "GROUP BY r.window_start, r.feature ORDER BY r.window_start, r.feature"
)


def feature_severity(conn, *, model: str, version: int, max_windows: int = 168) -> list[dict[str, Any]]:
    """Feature x window drift severity of ``model`` v``version`` over its latest ``max_windows`` windows:
    ``{"window_start", "window_end", "feature", "severity", "drifted"}`` rows, oldest window first."""
    check_model(conn, model, version)
    return run(conn, text(FEATURE_SEVERITY), {"model": model, "version": version, "max_windows": max_windows})


def drift_timeline(conn, *, model: str) -> tuple[list[m.DriftWindow], bool]:
    """The scored drift windows of every version of ``model`` over its whole life, oldest first, and whether they
    were thinned: up to :data:`MAX_TIMELINE_WINDOWS` windows all of them, beyond that the worst window of each
    version and UTC day (an hourly year of 20 versions: 7,300 points instead of 175,200)."""
    params = {"model": model}
    thinned = int(run(conn, text(SCORED_WINDOWS), params)[0]["n"]) > MAX_TIMELINE_WINDOWS
    rows = run(conn, text(DAILY_WORST_WINDOWS if thinned else ALL_WINDOWS), params)
    return [m.DriftWindow.model_validate(r) for r in rows], thinned


def primary_history(conn, *, model: str) -> tuple[list[m.PerformanceComparison], list[m.Estimate]]:
    """The primary metric's live-vs-backtest comparisons and label-free estimates of every version of ``model``
    (newest :data:`MAX_TIMELINE_DAYS` of each), what the model page's performance panel draws."""
    params = {"model": model, "limit": MAX_TIMELINE_DAYS}
    comparisons = [m.PerformanceComparison.model_validate(r) for r in run(conn, text(PRIMARY_COMPARISONS), params)]
    estimates = [m.Estimate.model_validate(r) for r in run(conn, text(PRIMARY_ESTIMATES), params)]
    return comparisons, estimates


__all__ = [
    "FEATURE_SEVERITY",
    "MAX_TIMELINE_WINDOWS",
    "drift_timeline",
    "feature_severity",
    "primary_history",
]
