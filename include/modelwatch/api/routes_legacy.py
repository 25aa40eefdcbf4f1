"""Predecessor-compatible read routes: the old monitoring service's paths, as thin aliases of the read routes.

Each answers exactly what its new route answers (same query, parameters, paging, auth and 422s), so a client of
the predecessor only changes the base URL; the routes are marked deprecated in the OpenAPI schema and name
their replacement. The old service's ``/monitoring/metrics`` (latest daily live metrics) maps onto
``/performance`` (live vs baseline comparisons): there is no query over ``live_performance_daily`` yet.
``/api/ml/monitor/confidence-trend`` has no equivalent yet.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from include.modelwatch.api import models as m
from include.modelwatch.api import queries as q
from include.modelwatch.api.auth import DriftReader, PerformanceReader, ScoringReader
from include.modelwatch.api.routes_common import DbDep

router = APIRouter(tags=["predecessor-compatible"], deprecated=True)
LIMIT = q.DEFAULT_LIMIT


@router.get("/monitoring/health", summary="Alias of /health")
@router.get("/api/ml/monitor/summary", summary="Alias of /health")
def health(user: ScoringReader, conn: DbDep, model: str | None = None, version: int | None = None) -> list[m.HealthRow]:
    return q.health(conn, model=model, version=version)


def kind_alerts(
    conn, kind: str, model: str | None, status: str | None, start: datetime | None, end: datetime | None, limit, offset
) -> m.Page[m.Alert]:
    return q.alerts(conn, model=model, kind=kind, status=status, start=start, end=end, limit=limit, offset=offset)


@router.get("/monitoring/drift-alerts", summary="Alias of /alerts?kind=drift")
def drift_alerts(
    user: PerformanceReader,
    conn: DbDep,
    model: str | None = None,
    status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = LIMIT,
    offset: int = 0,
) -> m.Page[m.Alert]:
    return kind_alerts(conn, "drift", model, status, start, end, limit, offset)


@router.get("/monitoring/performance-alerts", summary="Alias of /alerts?kind=performance")
def performance_alerts(
    user: PerformanceReader,
    conn: DbDep,
    model: str | None = None,
    status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = LIMIT,
    offset: int = 0,
) -> m.Page[m.Alert]:
    return kind_alerts(conn, "performance", model, status, start, end, limit, offset)


@router.get("/monitoring/interpretability", summary="Alias of /interpretability")
def interpretability(
    user: PerformanceReader,
    conn: DbDep,
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = LIMIT,
    offset: int = 0,
) -> m.Page[m.InterpretabilityRow]:
    return q.interpretability(conn, model=model, version=version, start=start, end=end, limit=limit, offset=offset)


@router.get("/monitoring/metrics", summary="Alias of /performance (live vs baseline metrics)")
@router.get("/api/ml/monitor/accuracy", summary="Alias of /performance (live vs baseline metrics)")
def performance(
    user: PerformanceReader,
    conn: DbDep,
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = LIMIT,
    offset: int = 0,
) -> m.Page[m.PerformanceComparison]:
    return q.performance(conn, model=model, version=version, start=start, end=end, limit=limit, offset=offset)


@router.get("/api/ml/monitor/drift", summary="Alias of /drift/windows")
def drift(
    user: DriftReader,
    conn: DbDep,
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = LIMIT,
    offset: int = 0,
) -> m.Page[m.DriftWindow]:
    return q.drift_windows(conn, model=model, version=version, start=start, end=end, limit=limit, offset=offset)


__all__ = ["router"]
