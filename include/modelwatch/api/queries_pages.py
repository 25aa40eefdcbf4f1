"""Read queries only the HTML pages need (:mod:`include.modelwatch.api.pages`); everything else comes from
:mod:`include.modelwatch.api.queries`. Reads only, named parameters, never commits or rolls back."""

from __future__ import annotations

from typing import Any

from include.modelwatch.api.queries_common import check_model, run, text

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


__all__ = ["FEATURE_SEVERITY", "feature_severity"]
