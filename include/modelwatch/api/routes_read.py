"""Read routes: the monitoring data as JSON, one route per query of :mod:`include.modelwatch.api.queries`.

A route only checks the caller's read access (``GET`` on the DAG that produces the data) and passes the
parameters through; the query validates them and raises ``ApiInputError`` (answered 422 with the field).
Times are ISO 8601 with a timezone; ranges are ``[start, end)``; pages hold ``limit`` (1..500) items.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from include.modelwatch.api import models as m
from include.modelwatch.api import queries as q
from include.modelwatch.api import queries_ab, queries_labels, queries_ops
from include.modelwatch.api.auth import (
    ABReader,
    DriftReader,
    LabelReader,
    MaintenanceReader,
    PerformanceReader,
    RetrainReader,
    ScoringReader,
)
from include.modelwatch.api.routes_common import DbDep, WindowFilter

router = APIRouter()
LIMIT = q.DEFAULT_LIMIT


@router.get("/health", tags=["models"], summary="Current health of every model version")
def health(user: ScoringReader, conn: DbDep, model: str | None = None, version: int | None = None) -> list[m.HealthRow]:
    return q.health(conn, model=model, version=version)


@router.get("/models", tags=["models"], summary="Registered models, their versions and aliases")
def models(user: ScoringReader, conn: DbDep) -> list[m.ModelSummary]:
    return q.models(conn)


@router.get("/models/{model}/aliases", tags=["models"], summary="Alias changes of a model, newest first")
def alias_history(
    model: str, user: ScoringReader, conn: DbDep, limit: int = LIMIT, offset: int = 0
) -> m.Page[m.AliasChange]:
    return q.alias_history(conn, model=model, limit=limit, offset=offset)


@router.get("/drift/windows", tags=["drift"], summary="Drift windows")
def drift_windows(
    user: DriftReader,
    conn: DbDep,
    filters: WindowFilter,
) -> m.Page[m.DriftWindow]:
    return q.drift_windows(conn, **filters)


@router.get(
    "/drift/windows/{model}/{version}/{window_start}",
    tags=["drift"],
    summary="One drift window with its per-feature results",
)
def drift_window_features(
    model: str, version: int, window_start: datetime, user: DriftReader, conn: DbDep
) -> m.DriftWindowDetail:
    return q.drift_window_features(conn, model=model, version=version, window_start=window_start)


@router.get("/performance", tags=["performance"], summary="Live vs baseline metric comparisons")
def performance(
    user: PerformanceReader,
    conn: DbDep,
    filters: WindowFilter,
) -> m.Page[m.PerformanceComparison]:
    return q.performance(conn, **filters)


@router.get("/estimates", tags=["performance"], summary="Label-free performance estimates")
def estimates(
    user: PerformanceReader,
    conn: DbDep,
    filters: WindowFilter,
) -> m.Page[m.Estimate]:
    return q.estimates(conn, **filters)


@router.get("/confidence", tags=["performance"], summary="Prediction confidence per model version and day")
def confidence(
    user: ScoringReader,
    conn: DbDep,
    filters: WindowFilter,
) -> m.Page[m.ConfidenceDay]:
    return q.confidence(conn, **filters)


@router.get("/interpretability", tags=["performance"], summary="Feature importance per window")
def interpretability(
    user: PerformanceReader,
    conn: DbDep,
    filters: WindowFilter,
) -> m.Page[m.InterpretabilityRow]:
    return q.interpretability(conn, **filters)


@router.get("/alerts", tags=["alerts"], summary="Alerts")
def alerts(
    user: PerformanceReader,
    conn: DbDep,
    model: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = LIMIT,
    offset: int = 0,
) -> m.Page[m.Alert]:
    return q.alerts(conn, model=model, kind=kind, status=status, start=start, end=end, limit=limit, offset=offset)


@router.get("/triggers", tags=["retraining"], summary="Retraining triggers")
def triggers(
    user: RetrainReader,
    conn: DbDep,
    model: str | None = None,
    status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = LIMIT,
    offset: int = 0,
) -> m.Page[m.Trigger]:
    return q.triggers(conn, model=model, status=status, start=start, end=end, limit=limit, offset=offset)


@router.get("/training-jobs", tags=["retraining"], summary="Training jobs with their quality gates")
def training_jobs(
    user: RetrainReader,
    conn: DbDep,
    model: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = LIMIT,
    offset: int = 0,
) -> m.Page[m.TrainingJob]:
    return q.training_jobs(conn, model=model, start=start, end=end, limit=limit, offset=offset)


__all__ = ["router"]


@router.get("/ab-tests", tags=["ab"], summary="A/B tests of champion against challenger, newest first")
def ab_tests(user: ABReader, conn: DbDep, model: str | None = None) -> list[m.ABTestRow]:
    return queries_ab.ab_tests(conn, model=model)


@router.get("/ab-tests/{test_id}/compare", tags=["ab"], summary="Per-arm comparison on the latest evaluation day")
def ab_compare(test_id: int, user: ABReader, conn: DbDep) -> m.ABCompare:
    return queries_ab.ab_compare(conn, test_id)


@router.get("/ab-tests/{test_id}/traffic", tags=["ab"], summary="Assigned units per arm and session vs the split")
def ab_traffic(test_id: int, user: ABReader, conn: DbDep) -> m.ABTraffic:
    return queries_ab.ab_traffic(conn, test_id)


@router.get(
    "/active-learning/items",
    tags=["active-learning"],
    summary="Items of the active-learning queue by priority, then age (default: pending)",
)
def active_learning_items(
    user: LabelReader,
    conn: DbDep,
    status: str = "pending",
    model: str | None = None,
    limit: int = LIMIT,
    offset: int = 0,
) -> m.Page[m.LabelItem]:
    return queries_labels.items(conn, model=model, status=status, limit=limit, offset=offset)


@router.get(
    "/active-learning/stats",
    tags=["active-learning"],
    summary="Queue counts per model, and each labeller's agreement with the outcome next to the model's",
)
def active_learning_stats(user: LabelReader, conn: DbDep, model: str | None = None) -> m.LabelStats:
    return queries_labels.stats(conn, model=model)


@router.get(
    "/maintenance/runs",
    tags=["maintenance"],
    summary="What maintenance_daily did per data interval: retention applied, partitions created (newest first)",
)
def maintenance_runs(
    user: MaintenanceReader,
    conn: DbDep,
    table: str | None = None,
    action: str | None = None,
    run_id: str | None = None,
    limit: int = LIMIT,
    offset: int = 0,
) -> m.Page[m.MaintenanceRun]:
    return queries_ops.maintenance_runs(conn, table=table, action=action, run_id=run_id, limit=limit, offset=offset)
