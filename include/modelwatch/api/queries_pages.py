"""Read queries only the HTML pages need (:mod:`include.modelwatch.api.pages`); everything else comes from
:mod:`include.modelwatch.api.queries`. Reads only, named parameters, never commits or rolls back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from include.modelwatch.api import models as m
from include.modelwatch.api.queries_common import check_model, run, text
from include.modelwatch.api.queries_monitoring import COMPARISON_COLUMNS, DRIFT_WINDOW_COLUMNS, ESTIMATE_COLUMNS

#: the model page draws at most about this many points per series (drift windows, comparisons, estimates); a longer
#: history is cut into equal time buckets per version and each bucket shows one row (see :func:`thinned`)
MAX_TIMELINE_POINTS = 1000
#: (source table, filter, the column whose highest value picks a bucket's row, the column that with the version
#: identifies a row of the filtered series)
#: the scored drift windows of a model (the drift timeline reads them directly or through the daily rollup)
DRIFT_WHERE = "model_name = %(model)s AND drift_score IS NOT NULL"
COMPARISON_SERIES = ("live_vs_backtest_comparison", "model_name = %(model)s AND is_primary", "window_end", "window_end")
ESTIMATE_SERIES = (
    "performance_estimates",
    "model_name = %(model)s AND metric IN (SELECT c.metric FROM live_vs_backtest_comparison c "
    "WHERE c.model_name = %(model)s AND c.is_primary)",
    "window_end",
    "window_end",
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


BUCKET = "floor(extract(epoch FROM window_end - %(lo)s) / %(width)s)"
#: a long history's drift windows per (version, bucket of whole days) as one point, from the daily rollup that
#: triggers keep exact (migration 013): the highest score and level, the bucket's first window start and last
#: window end
DRIFT_BUCKETS = (
    "SELECT model_name AS model, model_version AS version, min(first_window_start) AS window_start, "
    "max(last_window_end) AS window_end, 'evaluated' AS status, sum(n_rows)::int AS n_rows, "
    "max(max_drift_score) AS drift_score, (ARRAY['none', 'warning', 'critical'])[1 + max(level_rank)] AS level, "
    "max(max_n_drifted) AS n_drifted, bool_or(any_drifted) AS drifted, NULL::text AS alert_state, "
    "NULL::text AS run_id FROM drift_windows_daily WHERE {where} GROUP BY model_name, model_version, "
    "floor(extract(epoch FROM first_window_start - %(lo)s) / %(width)s) ORDER BY window_end, version"
)
DAILY_EXTENT = (
    "SELECT coalesce(sum(n_windows), 0) AS n, min(first_window_start) AS lo, "
    "count(DISTINCT model_version) AS versions, "
    "extract(epoch FROM max(last_window_end) - min(first_window_start))::float AS span "
    "FROM drift_windows_daily WHERE {where}"
)
DAY = 86400.0


def _extent(
    conn, table: str, where: str, model: str, start: datetime | None, end: datetime | None
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The series' filter with the optional range, its parameters, and its rows' count, versions and time span."""
    params: dict[str, Any] = {"model": model, "start": start, "end": end}
    if start is not None:
        where += " AND window_end >= %(start)s"
    if end is not None:
        where += " AND window_end < %(end)s"
    stats = run(
        conn,
        text(
            "SELECT count(*) AS n, min(window_end) AS lo, count(DISTINCT model_version) AS versions, "
            "extract(epoch FROM max(window_end) - min(window_end))::float AS span FROM " + table + " WHERE " + where
        ),
        params,
    )[0]
    return where, params, stats


def _width(stats: dict[str, Any], max_points: int) -> float:
    """Bucket width in seconds: the span cut into ``max_points / versions`` buckets, at least an hour."""
    return max(3600.0, stats["span"] * stats["versions"] / max_points)


def thinned(
    conn,
    series: tuple[str, str, str, str],
    columns: str,
    model: str,
    max_points: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> tuple[list[dict[str, Any]], float | None]:
    """Rows of one timeline series of ``model``, oldest first, and the bucket width in seconds (None: every row).

    Up to ``max_points`` (default :data:`MAX_TIMELINE_POINTS`) rows all are returned. Beyond, the series' time
    span is cut into buckets of ``span x versions / max_points`` seconds (at least an hour) per version and each
    (version, bucket) shows the row with the highest value of the series' pick column (the latest comparison or
    estimate). ``start``/``end``: only rows whose window ends
    in ``[start, end)``."""
    table, where, pick, key = series
    max_points = max_points or MAX_TIMELINE_POINTS
    where, params, stats = _extent(conn, table, where, model, start, end)
    order = " ORDER BY window_end, model_version"
    if stats["n"] <= max_points:
        return run(conn, text("SELECT " + columns + " FROM " + table + " WHERE " + where + order), params), None
    width = _width(stats, max_points)
    # sort only the narrow keys of the whole history, then read the picked rows (at most ~max_points) by key
    picked = (
        f"SELECT DISTINCT ON (model_version, {BUCKET}) model_version, {key} FROM {table} WHERE {where} "
        f"ORDER BY model_version, {BUCKET}, {pick} DESC, window_start"
    )
    query = f"SELECT {columns} FROM {table} WHERE {where} AND (model_version, {key}) IN ({picked}){order}"
    return run(conn, text(query), {**params, "lo": stats["lo"], "width": width}), width


def drift_timeline(
    conn, *, model: str, start: datetime | None = None, end: datetime | None = None
) -> tuple[list[m.DriftWindow], float | None]:
    """Scored drift windows of every version of ``model`` over its whole life or ``[start, end)``, oldest first,
    and the bucket width in seconds (None: every window). Up to :data:`MAX_TIMELINE_POINTS` windows each is a
    point; beyond, each (version, bucket of whole days) is one point summarising its windows, read from the daily
    rollup (:data:`DRIFT_BUCKETS`; a range then counts the days it touches)."""
    params: dict[str, Any] = {"model": model, "start": start, "end": end}
    daily = "model_name = %(model)s"
    if start is not None:
        daily += " AND last_window_end > %(start)s"
    if end is not None:
        daily += " AND first_window_start < %(end)s"
    stats = run(conn, text(DAILY_EXTENT.format(where=daily)), params)[0]
    if stats["n"] <= MAX_TIMELINE_POINTS:
        table, where = "drift_windows", DRIFT_WHERE
        if start is not None:
            where += " AND window_end >= %(start)s"
        if end is not None:
            where += " AND window_end < %(end)s"
        query = f"SELECT {DRIFT_WINDOW_COLUMNS} FROM {table} WHERE {where} ORDER BY window_end, model_version"
        return [m.DriftWindow.model_validate(r) for r in run(conn, text(query), params)], None
    width = max(DAY, _width(stats, MAX_TIMELINE_POINTS))
    rows = run(conn, text(DRIFT_BUCKETS.format(where=daily)), {**params, "lo": stats["lo"], "width": width})
    return [m.DriftWindow.model_validate(r) for r in rows], width


def primary_history(
    conn, *, model: str, start: datetime | None = None, end: datetime | None = None
) -> tuple[list[m.PerformanceComparison], list[m.Estimate]]:
    """The primary metric's comparisons and label-free estimates of every version of ``model`` (:func:`thinned`),
    what the model page's performance panel draws."""
    comparisons, _ = thinned(conn, COMPARISON_SERIES, COMPARISON_COLUMNS, model, start=start, end=end)
    estimates, _ = thinned(conn, ESTIMATE_SERIES, ESTIMATE_COLUMNS, model, start=start, end=end)
    return (
        [m.PerformanceComparison.model_validate(r) for r in comparisons],
        [m.Estimate.model_validate(r) for r in estimates],
    )


__all__ = [
    "FEATURE_SEVERITY",
    "DAILY_EXTENT",
    "DRIFT_BUCKETS",
    "MAX_TIMELINE_POINTS",
    "drift_timeline",
    "feature_severity",
    "primary_history",
    "thinned",
]
