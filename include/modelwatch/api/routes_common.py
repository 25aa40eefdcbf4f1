"""What every route shares: the request's monitoring-DB connection.

One connection per request, opened through the Airflow connection ``monitoring_db`` exactly as tasks open it
(``include.tasks.common.monitoring_db``: PostgresHook, so an env var, a secrets backend or a connection stored
in Airflow's metadata DB all work, and the API reads the very database the DAGs write), closed when the request
ends. ``create_app(open_db=...)`` can replace the opener.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Annotated, Any

from fastapi import Depends, Request

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

__all__ = ["DbDep", "Opener", "db", "default_opener"]
