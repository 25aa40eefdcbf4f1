"""Read queries of the ModelWatch monitoring API: the one import the API app needs.

This module holds the registry and health reads and re-exports the others
(:mod:`.queries_monitoring`: drift, performance, estimates, interpretability;
:mod:`.queries_loop`: alerts, triggers, training jobs). Every function takes a psycopg 3
connection first, only reads (never commits or rolls back), validates its input and raises
:class:`~include.modelwatch.api.errors.ApiInputError` naming the bad field.
"""

from __future__ import annotations

from include.modelwatch.api import models as m
from include.modelwatch.api.errors import ApiInputError
from include.modelwatch.api.queries_common import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    check_model,
    common_filters,
    equals,
    fetch_page,
    run,
    text,
    where,
)
from include.modelwatch.api.queries_loop import alerts, training_jobs, triggers
from include.modelwatch.api.queries_monitoring import (
    confidence,
    drift_window_features,
    drift_windows,
    estimates,
    interpretability,
    performance,
)

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ApiInputError",
    "alerts",
    "alias_history",
    "confidence",
    "drift_window_features",
    "drift_windows",
    "estimates",
    "health",
    "interpretability",
    "models",
    "performance",
    "training_jobs",
    "triggers",
]

HEALTH_COLUMNS = (
    "model_name AS model, model_version AS version, as_of AS window_end, status, reasons, drift_score, perf_metric, "
    "perf_rel_drop, perf_degraded, dq_failures, model_age_days, coalesce(aliases, '{}'::text[]) AS aliases "
    "FROM model_health_current"
)
VERSIONS = (
    "SELECT v.model_name AS model, v.version, v.algorithm, v.status, v.train_start, v.train_end, v.created_at, "
    "coalesce((SELECT array_agg(a.alias ORDER BY a.alias) FROM model_aliases a "
    "WHERE a.model_name = v.model_name AND a.version = v.version), '{}'::text[]) AS aliases, "
    "coalesce(mm.origin, 'native') AS origin, mm.owner "
    "FROM model_versions v LEFT JOIN monitored_models mm ON mm.model_name = v.model_name "
    "ORDER BY v.model_name, v.version DESC"
)
ALIAS_COLUMNS = "id, model_name AS model, alias, from_version, to_version, changed_at, reason, run_id, recorded_at"


def health(conn, *, model: str | None = None, version: int | None = None) -> list[m.HealthRow]:
    """Latest health row of each model version (view ``model_health_current``), by model then newest version."""
    check_model(conn, model, version)
    clause, params = where([equals("model_name", "model", model), equals("model_version", "version", version)])
    query = text("SELECT ") + text(HEALTH_COLUMNS) + clause + text(" ORDER BY model_name, model_version DESC")
    rows = run(conn, query, params)
    return [m.HealthRow.model_validate(r) for r in rows]


def models(conn) -> list[m.ModelSummary]:
    """Every registered model with its versions (newest first) and its aliases ``{alias: version}``."""
    by_model: dict[str, list[m.VersionSummary]] = {}
    aliases: dict[str, dict[str, int]] = {}
    about: dict[str, tuple[str, str | None]] = {}
    for r in run(conn, text(VERSIONS), {}):
        name = r.pop("model")
        about[name] = (r.pop("origin"), r.pop("owner"))
        v = m.VersionSummary.model_validate(r)
        by_model.setdefault(name, []).append(v)
        for a in v.aliases:
            aliases.setdefault(name, {})[a] = v.version
    return [
        m.ModelSummary(
            model=name,
            origin=about[name][0],
            owner=about[name][1],
            versions=versions,
            aliases=dict(sorted(aliases.get(name, {}).items())),
        )
        for name, versions in by_model.items()
    ]


def alias_history(conn, *, model: str, limit: int = DEFAULT_LIMIT, offset: int = 0) -> m.Page[m.AliasChange]:
    """Alias changes of ``model`` (every alias), newest first."""
    check_model(conn, model)
    rows, total = fetch_page(
        conn,
        columns=ALIAS_COLUMNS,
        source="model_alias_history",
        predicates=common_filters(model=model, time_column="changed_at"),
        order_by="changed_at DESC, id DESC",
        limit=limit,
        offset=offset,
    )
    return m.Page[m.AliasChange](
        items=[m.AliasChange.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )
