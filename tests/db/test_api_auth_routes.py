"""Every route of the ModelWatch app Airflow's API server mounts refuses an anonymous request: the JSON API, the HTML
pages and the static files, read from the mounted app's own route table (so a page left out of the OpenAPI schema,
``include_in_schema=False``, is covered too). Only the API description (``/openapi.json`` and its ``/docs``,
``/redoc`` viewers, no data) is public, as Airflow's own."""

from __future__ import annotations

import re

from tests.db.test_api_app import P, airflow_app, client  # noqa: F401 (module-scoped fixtures reused)

# public as Airflow's own /docs and /openapi.json are; nothing else
PUBLIC = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
SAMPLE = {
    "model": "m",
    "version": "1",
    "window_start": "2008-10-01T00:00:00Z",
    "path": "vega.min.js",
    "dag_id": "drift_hourly",
    "run_id": "manual__2008-10-01T00:00:00+00:00",
}


def _modelwatch_routes(airflow_app) -> list[tuple[str, str]]:  # noqa: F811
    from starlette.routing import Mount

    (mount,) = [r for r in airflow_app.routes if isinstance(r, Mount) and r.path == P]
    out = []
    app = getattr(mount.app, "app", mount.app)  # the plugin's LazyApp builds the FastAPI app on first use
    for route in app.routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                out.append((method, route.path))
    return out


def test_every_route_refuses_an_anonymous_request(client, db):  # noqa: F811
    routes = _modelwatch_routes(client.app)
    paths = {path for _, path in routes}
    # the JSON API (36 routes in its OpenAPI schema) and the pages and static files left out of it
    assert len(routes) > 45 and {"/", "/static/{path:path}", "/runs/{dag_id}/{run_id}"} <= paths, routes
    refused = []
    for method, path in routes:
        if path in PUBLIC:
            continue
        url = P + re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLE.get(m.group(1), "1"), path)
        res = client.request(method, url, json={}, follow_redirects=False)
        refused.append((method, path, res.status_code))
        assert res.status_code == 401, (method, path, res.status_code, res.text[:200])
    assert len(refused) == len([r for r in routes if r[1] not in PUBLIC])


def test_the_api_description_is_public(client):  # noqa: F811
    routes = {path for _, path in _modelwatch_routes(client.app)}
    assert "/openapi.json" in routes
    res = client.get(f"{P}/openapi.json")
    assert res.status_code == 200 and "/models" in res.json()["paths"]
