"""Predecessor-compatible read routes: the old monitoring service's paths, as thin aliases of the read routes.

Each answers exactly what its new route answers (same query, parameters, paging, auth and 422s), so a client of
the predecessor only changes the base URL; the routes are marked deprecated in the OpenAPI schema and name
their replacement. The old service's ``/monitoring/metrics`` (latest daily live metrics) maps onto
``/performance`` (live vs baseline comparisons): there is no query over ``live_performance_daily`` yet.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter

from include.modelwatch.api import models as m
from include.modelwatch.api import queries as q
from include.modelwatch.api import routes_read
from include.modelwatch.api.auth import PerformanceReader
from include.modelwatch.api.routes_common import DbDep

router = APIRouter(tags=["predecessor-compatible"], deprecated=True)
LIMIT = q.DEFAULT_LIMIT


def kind_alerts(kind: str) -> Callable[..., m.Page[m.Alert]]:
    """The ``/alerts`` route with ``kind`` fixed (the predecessor had one path per alert kind)."""

    def route(
        user: PerformanceReader,
        conn: DbDep,
        model: str | None = None,
        status: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = LIMIT,
        offset: int = 0,
    ) -> m.Page[m.Alert]:
        return q.alerts(conn, model=model, kind=kind, status=status, start=start, end=end, limit=limit, offset=offset)

    return route


#: predecessor path -> (the read route that answers it, what it is an alias of)
ALIASES: tuple[tuple[str, Callable[..., Any], str], ...] = (
    ("/monitoring/health", routes_read.health, "/health"),
    ("/api/ml/monitor/summary", routes_read.health, "/health"),
    ("/monitoring/drift-alerts", kind_alerts("drift"), "/alerts?kind=drift"),
    ("/monitoring/performance-alerts", kind_alerts("performance"), "/alerts?kind=performance"),
    ("/monitoring/interpretability", routes_read.interpretability, "/interpretability"),
    ("/monitoring/metrics", routes_read.performance, "/performance (live vs baseline metrics)"),
    ("/api/ml/monitor/accuracy", routes_read.performance, "/performance (live vs baseline metrics)"),
    ("/api/ml/monitor/drift", routes_read.drift_windows, "/drift/windows"),
    ("/api/ml/monitor/confidence-trend", routes_read.confidence, "/confidence"),
)

for path, endpoint, target in ALIASES:
    router.add_api_route(path, endpoint, methods=["GET"], summary=f"Alias of {target}")


__all__ = ["ALIASES", "router"]
