"""What every route shares: the request's monitoring-DB connection and the filters of the per-window lists.

One connection per request, opened through the Airflow connection ``monitoring_db`` exactly as tasks open it
(``include.tasks.common.monitoring_db``: PostgresHook, so an env var, a secrets backend or a connection stored
in Airflow's metadata DB all work, and the API reads the very database the DAGs write), closed when the request
ends. ``create_app(open_db=...)`` can replace the opener.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from include.modelwatch.api.queries_common import DEFAULT_LIMIT

Opener = Callable[[], AbstractContextManager[Any]]


def default_opener() -> AbstractContextManager[Any]:
    """A connection to the monitoring DB through the ``monitoring_db`` Airflow connection (as tasks do)."""
    from include.tasks.common import monitoring_db

    return monitoring_db()


def db(request: Request) -> Iterator[Any]:
    """Dependency: the request's monitoring-DB connection, closed after the response."""
    with request.app.state.open_db() as conn:
        yield conn


DbDep = Annotated[Any, Depends(db)]


def window_filter(
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> dict[str, Any]:
    """Dependency: the query parameters of every per-window list, as the query functions' keyword arguments."""
    return {"model": model, "version": version, "start": start, "end": end, "limit": limit, "offset": offset}


WindowFilter = Annotated[dict[str, Any], Depends(window_filter)]

__all__ = ["DbDep", "Opener", "WindowFilter", "db", "default_opener", "window_filter"]
