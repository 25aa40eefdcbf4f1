"""The ModelWatch FastAPI app that Airflow's API server mounts at ``/modelwatch`` (see plugins/modelwatch_plugin.py).

``create_app()`` builds it: the HTML pages with charts (:mod:`.pages`: fleet overview at ``/``, model and drift
window pages, alerts and triggers, labelling, the vendored chart library under ``/static``), the read routes
(:mod:`.routes_read`), the write routes (:mod:`.routes_write`) and the external models' routes
(:mod:`.routes_external`). Every route needs an Airflow user (:mod:`.auth`); ``/docs`` and ``/openapi.json``
are public, as Airflow's own are (and ``/docs`` exists when Airflow's does: ``[api] enable_swagger_ui``).

Database: one connection per request (:mod:`.routes_common`), through the ``monitoring_db`` Airflow connection.
"""

from __future__ import annotations

from airflow.configuration import conf
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from include.modelwatch.api import pages, routes_external, routes_legacy, routes_read, routes_write
from include.modelwatch.api.errors import ApiInputError
from include.modelwatch.api.routes_common import Opener, default_opener

TITLE = "ModelWatch API"


def input_error(request: Request, exc: Exception) -> JSONResponse:
    """422 naming the refused parameter: ``{"detail": "<field>: <reason>", "field": "<field>"}``."""
    assert isinstance(exc, ApiInputError)
    return JSONResponse(status_code=422, content={"detail": str(exc), "field": exc.field})


def create_app(open_db: Opener | None = None) -> FastAPI:
    """The ModelWatch API; ``open_db`` returns a context manager yielding a monitoring-DB connection
    (default: the ``monitoring_db`` Airflow connection, see the module docstring)."""
    app = FastAPI(
        title=TITLE,
        description="Read the monitoring data of the ModelWatch DAGs; acknowledge and resolve alerts, "
        "request and cancel retraining, label what the models could not decide. Authenticate as in Airflow's "
        "API: a JWT in `Authorization: Bearer` (from `POST /auth/token`) or the Airflow UI's session cookie.",
        version="1",
        # Swagger/ReDoc exactly when Airflow serves its own (the schema is public there too)
        docs_url="/docs" if conf.getboolean("api", "enable_swagger_ui") else None,
        redoc_url="/redoc" if conf.getboolean("api", "enable_swagger_ui") else None,
    )
    app.state.open_db = open_db or default_opener
    app.add_exception_handler(ApiInputError, input_error)

    app.include_router(pages.router)
    app.include_router(routes_read.router)
    app.include_router(routes_write.router)
    app.include_router(routes_external.router)
    app.include_router(routes_legacy.router)
    return app


__all__ = ["TITLE", "create_app", "input_error"]
