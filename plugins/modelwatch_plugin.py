"""ModelWatch's Airflow plugin: the monitoring API and pages at ``/modelwatch``, a "ModelWatch" nav-bar entry and a
"ModelWatch" tab on every DAG run page (the page of what that run wrote).

Airflow imports every file of the plugins folder in each process that loads plugins (the API server, the
scheduler, the DAG processor, every task run for macros), so this file stays import-light: the FastAPI app
(FastAPI, Airflow's API security, psycopg, the query layer) is built by :func:`create_app` on the first request
the API server routes to ``/modelwatch``. The API server mounts ``app`` as any ASGI app. ``AirflowPlugin`` comes
from the task SDK (the class task runs already import; Airflow's core plugins manager accepts it).
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

URL_PREFIX = "/modelwatch"


class LazyApp:
    """ASGI app that builds the ModelWatch FastAPI app on first use (thread-safe), then delegates to it."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from include.modelwatch.api.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


app = LazyApp()


class ModelWatchPlugin(AirflowPlugin):
    name = "modelwatch"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "ModelWatch API"}]
    external_views = [
        {
            "name": "ModelWatch",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "modelwatch",  # shown inside the Airflow UI at /plugin/modelwatch
            "nav_top_level": True,
        },
        {
            # a "ModelWatch" tab on every DAG run page: what that run wrote (a drift_hourly run: its window's page;
            # performance_daily: the model's timeline; retrain_gated: its jobs and gates; rollback_model: aliases)
            "name": "ModelWatch",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "modelwatch_run",
        },
    ]
