"""The ModelWatch API as Airflow's API server serves it: the plugin loaded by Airflow's plugins manager, its app
mounted at /modelwatch in Airflow's own FastAPI app, users logged in through the simple auth manager's
``POST /auth/token`` (the JWT the UI and API clients get), the monitoring data in the throwaway PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from include.modelwatch import registry
from include.modelwatch.api import urls
from include.modelwatch.data import storage
from include.modelwatch.loop import alerts, triggers

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2008, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
USERS = {"vera": "viewer", "ed": "user", "ada": "admin"}  # viewer: read only; user: may edit DAGs
P = "/modelwatch"


@pytest.fixture(scope="module")
def airflow_app(airflow_db):
    """Airflow's API server app (core), built as `airflow api-server` builds it, with three users."""
    from airflow import plugins_manager
    from airflow.api_fastapi import app as airflow_api

    saved = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS")
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = ",".join(f"{u}:{r}" for u, r in USERS.items())
    airflow_api.purge_cached_app()
    try:
        yield airflow_api.create_app(apps="core")
    finally:
        airflow_api.purge_cached_app()
        for cached in (plugins_manager._get_plugins, plugins_manager.get_fastapi_plugins):
            cached.cache_clear()
        if saved is None:
            os.environ.pop("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", None)
        else:
            os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = saved


@pytest.fixture(scope="module")
def client(airflow_app):
    from fastapi.testclient import TestClient

    with TestClient(airflow_app) as c:
        yield c


@pytest.fixture(scope="module")
def tokens(client) -> dict[str, str]:
    """A real JWT per user, from the auth manager's login endpoint with the user's generated password."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    passwords = SimpleAuthManager.get_passwords()
    out = {}
    for user in USERS:
        res = client.post("/auth/token", json={"username": user, "password": passwords[user]})
        assert res.status_code == 201, res.text
        out[user] = res.json()["access_token"]
    return out


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def deny_dag(monkeypatch, username: str, dag_id: str) -> None:
    """``username`` loses every access to ``dag_id`` (and only to it) for the test."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    real = SimpleAuthManager.is_authorized_dag

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None):
        if user.get_name() == username and details is not None and details.id == dag_id:
            return False
        return real(self, method=method, user=user, access_entity=access_entity, details=details)

    monkeypatch.setattr(SimpleAuthManager, "is_authorized_dag", is_authorized_dag)


def champion(db, tmp_path, model="m") -> int:
    mv = registry.register_version(
        db,
        model_name=model,
        algorithm="lightgbm",
        artifact=b"v1",
        artifact_dir=tmp_path,
        features=["f"],
        classes=["SELL", "HOLD", "BUY"],
        train_end=date(2008, 9, 1),
    )
    registry.set_alias(db, model, "champion", mv.version, reason="test", changed_at=T0 - timedelta(days=30))
    return mv.version


def open_alert(db, model="m", kind="drift") -> int:
    with storage.transaction(db) as cur:
        ch = alerts.raise_alert(
            cur,
            model_name=model,
            model_version=1,
            kind=kind,
            severity="critical",
            title=f"{kind} alert",
            message="test",
            window_start=T0 - H,
            window_end=T0,
            score=0.4,
        )
    return ch.alert_id


def row(db, sql: str, params: dict) -> dict:
    rows = storage.fetch_dicts(db, sql, params)
    db.rollback()
    assert len(rows) == 1, rows
    return rows[0]


def api_routes(client) -> list[tuple[str, str]]:
    """(method, path) of every ModelWatch endpoint, from the app's own OpenAPI schema."""
    spec = client.get(f"{P}/openapi.json").json()
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]


# ------------------------------------------------------------------ plugin


def test_plugin_is_loaded_with_its_app_and_nav_entry(airflow_app):
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    assert errors == {}
    info = {p["name"]: p for p in plugins_manager.get_plugin_info()}
    mw = info["modelwatch"]
    assert [(a["url_prefix"], a["name"]) for a in mw["fastapi_apps"]] == [(P, "ModelWatch API")]
    assert mw["external_views"] == [
        {"name": "ModelWatch", "href": f"{P}/", "destination": "nav", "url_route": "modelwatch", "nav_top_level": True},
        {
            "name": "ModelWatch",
            "href": f"{P}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "modelwatch_run",
        },
    ]
    assert P == urls.PREFIX  # the pages' links and the task logs' URLs use the plugin's prefix
    # mounted by the API server at /modelwatch
    assert P in [getattr(r, "path", None) for r in airflow_app.routes]


def plugin_load_probe(plugins_folder: Path) -> dict:
    """Plugins loaded the way a task run loads them, in a fresh interpreter: names, errors, modules imported."""
    probe = (
        "import sys, json; before = set(sys.modules); "
        "from airflow.sdk.plugins_manager import _get_plugins; plugins, errors = _get_plugins(); "
        "print('@@' + json.dumps({'names': [p.name for p in plugins], 'errors': errors, "
        "'new': sorted(set(sys.modules) - before)}))"
    )
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder)}
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(next(ln for ln in res.stdout.splitlines() if ln.startswith("@@"))[2:])


def test_loading_the_plugin_imports_nothing_heavy(tmp_path):
    """Every Airflow process (scheduler, DAG processor, each task run) imports the plugins folder: the app,
    FastAPI, psycopg and the query layer are only imported when the API server first routes a request to it."""
    ours = plugin_load_probe(ROOT / "plugins")
    empty = plugin_load_probe(tmp_path)
    assert (ours["names"], ours["errors"]) == (["modelwatch"], {})
    assert sorted(set(ours["new"]) - set(empty["new"])) == ["modelwatch_plugin"]


def test_the_ui_gets_the_nav_entry_from_airflows_plugins_api(client, tokens):
    res = client.get("/api/v2/plugins", headers=auth(tokens["vera"]))
    assert res.status_code == 200, res.text
    mw = next(p for p in res.json()["plugins"] if p["name"] == "modelwatch")
    assert [
        (v["name"], v["href"], v["destination"], v["url_route"], v["nav_top_level"]) for v in mw["external_views"]
    ] == [
        ("ModelWatch", f"{P}/", "nav", "modelwatch", True),
        ("ModelWatch", f"{P}/runs/{{DAG_ID}}/{{RUN_ID}}", "dag_run", "modelwatch_run", False),
    ]
    assert [(a["url_prefix"], a["name"], a["app"]) for a in mw["fastapi_apps"]] == [
        (P, "ModelWatch API", "modelwatch_plugin.LazyApp")
    ]


def test_docs_and_schema_are_public_like_airflows_and_list_every_endpoint(client):
    assert client.get("/openapi.json").status_code == 200  # Airflow's own schema needs no login either
    spec = client.get(f"{P}/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "ModelWatch API"
    paths = set(spec.json()["paths"])
    assert {
        "/",
        "/health",
        "/models",
        "/models/{model}/aliases",
        "/drift/windows",
        "/drift/windows/{model}/{version}/{window_start}",
        "/performance",
        "/estimates",
        "/interpretability",
        "/confidence",
        "/alerts",
        "/triggers",
        "/training-jobs",
        "/alerts/{alert_id}/acknowledge",
        "/alerts/{alert_id}/resolve",
        "/triggers/{trigger_id}/cancel",
        "/rollbacks",
        "/monitoring/health",
        "/monitoring/drift-alerts",
        "/monitoring/performance-alerts",
        "/monitoring/interpretability",
        "/monitoring/metrics",
        "/api/ml/monitor/accuracy",
        "/api/ml/monitor/drift",
        "/api/ml/monitor/summary",
        "/api/ml/monitor/confidence-trend",
        "/ab-tests",
        "/ab-tests/{test_id}/compare",
        "/ab-tests/{test_id}/traffic",
        "/active-learning/items",
        "/active-learning/stats",
        "/active-learning/items/{item_id}/label",
        "/active-learning/items/{item_id}/skip",
        "/external-models",
        "/ingest/batches",
        "/maintenance/runs",
    } == paths
    docs = client.get(f"{P}/docs")
    assert docs.status_code == 200 and "/modelwatch/openapi.json" in docs.text


# ------------------------------------------------------------------ authentication


def test_anonymous_gets_401_on_every_endpoint(client, db):
    routes = api_routes(client)
    assert len(routes) == 37
    for method, path in routes:
        url = P + path.format(
            model="m", version=1, window_start="2008-10-01T00:00:00Z", alert_id=1, trigger_id=1, test_id=1, item_id=1
        )
        res = client.request(method, url, json={})
        assert (method, path, res.status_code, res.json()) == (method, path, 401, {"detail": "Not authenticated"})


def test_forged_token_is_refused(client, db):
    res = client.get(f"{P}/models", headers=auth("eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"))
    assert (res.status_code, res.json()) == (403, {"detail": "Invalid JWT token"})


def test_index_page_lists_the_endpoints_for_a_logged_in_user_with_the_ui_cookie(client, tokens, db):
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    client.cookies.set(COOKIE_NAME_JWT_TOKEN, tokens["vera"])
    try:
        res = client.get(f"{P}/")
    finally:
        client.cookies.clear()
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    assert "<code>/modelwatch/alerts/{alert_id}/resolve</code>" in res.text
    assert "<code>GET</code></td><td><code>/modelwatch/training-jobs</code>" in res.text
    assert "href='docs'" in res.text


# ------------------------------------------------------------------ reads


def test_viewer_reads_the_data(client, tokens, db, tmp_path):
    version = champion(db, tmp_path)
    alert_id = open_alert(db)
    h = auth(tokens["vera"])

    models = client.get(f"{P}/models", headers=h)
    assert models.status_code == 200, models.text
    assert [(m["model"], m["aliases"], [v["version"] for v in m["versions"]]) for m in models.json()] == [
        ("m", {"champion": version}, [version])
    ]

    res = client.get(f"{P}/alerts", headers=h, params={"model": "m", "status": "open"})
    assert res.status_code == 200, res.text
    page = res.json()
    assert (page["total"], page["limit"], page["offset"]) == (1, 50, 0)
    a = page["items"][0]
    assert (a["alert_id"], a["kind"], a["status"], a["severity"], a["score"]) == (
        alert_id,
        "drift",
        "open",
        "critical",
        0.4,
    )

    aliases = client.get(f"{P}/models/m/aliases", headers=h).json()
    assert [(c["alias"], c["to_version"], c["reason"]) for c in aliases["items"]] == [("champion", version, "test")]

    for path in ("/drift/windows", "/performance", "/estimates", "/interpretability", "/triggers", "/training-jobs"):
        res = client.get(P + path, headers=h)
        assert (path, res.status_code, res.json()["total"], res.json()["items"]) == (path, 200, 0, [])
    assert client.get(f"{P}/health", headers=h).json() == []


def test_bad_input_is_422_naming_the_field(client, tokens, db):
    h = auth(tokens["vera"])
    res = client.get(f"{P}/alerts", headers=h, params={"limit": 501})
    assert res.status_code == 422
    assert res.json()["field"] == "limit" and res.json()["detail"].startswith("limit: ")
    res = client.get(f"{P}/alerts", headers=h, params={"kind": "weather"})
    assert (res.status_code, res.json()["field"]) == (422, "kind")
    res = client.get(f"{P}/drift/windows", headers=h, params={"model": "nope"})
    assert (res.status_code, res.json()["field"]) == (422, "model")


# ------------------------------------------------------------------ writes


def test_viewer_cannot_write_and_nothing_changes(client, tokens, db, tmp_path):
    champion(db, tmp_path)
    alert_id = open_alert(db)
    tid = triggers.create_manual_trigger(db, "m", "seed", requested_by="seed", as_of=T0)
    h = auth(tokens["vera"])
    calls = [
        (f"{P}/alerts/{alert_id}/acknowledge", {}),
        (f"{P}/alerts/{alert_id}/resolve", {"note": "fixed"}),
        (f"{P}/triggers", {"model": "m", "reason": "because"}),
        (f"{P}/triggers/{tid}/cancel", {"reason": "no"}),
        (f"{P}/rollbacks", {"model": "m", "target_version": 1, "reason": "r"}),
    ]
    for url, body in calls:
        res = client.post(url, headers=h, json=body)
        assert (url, res.status_code, res.json()) == (url, 403, {"detail": "Forbidden"})
    assert row(db, "SELECT status, acknowledged_by FROM alerts WHERE alert_id = %(a)s", {"a": alert_id}) == {
        "status": "open",
        "acknowledged_by": None,
    }
    assert row(db, "SELECT count(*) AS n, min(status) AS s FROM retraining_triggers", {}) == {"n": 1, "s": "pending"}


def test_editor_acknowledges_and_resolves_an_alert_as_themselves(client, tokens, db):
    alert_id = open_alert(db)
    h = auth(tokens["ed"])
    res = client.post(f"{P}/alerts/{alert_id}/acknowledge", headers=h)
    assert res.status_code == 200, res.text
    assert (res.json()["status"], res.json()["by"], res.json()["model"]) == ("acknowledged", "ed", "m")
    got = row(db, "SELECT status, acknowledged_by, acknowledged_at FROM alerts WHERE alert_id = %(a)s", {"a": alert_id})
    assert (got["status"], got["acknowledged_by"]) == ("acknowledged", "ed")
    assert got["acknowledged_at"] == datetime.fromisoformat(res.json()["at"])

    again = client.post(f"{P}/alerts/{alert_id}/acknowledge", headers=h)
    assert again.status_code == 409 and "acknowledged" in again.json()["detail"]

    assert client.post(f"{P}/alerts/{alert_id}/resolve", headers=h, json={"note": "  "}).status_code == 422
    assert client.post(f"{P}/alerts/{alert_id}/resolve", headers=h, json={}).status_code == 422
    res = client.post(f"{P}/alerts/{alert_id}/resolve", headers=h, json={"note": "feature pipeline fixed"})
    assert res.status_code == 200, res.text
    got = row(db, "SELECT status, resolution FROM alerts WHERE alert_id = %(a)s", {"a": alert_id})
    assert got == {"status": "resolved", "resolution": "by ed: feature pipeline fixed"}
    # the "resolved" mail is queued with the change (the next monitoring or healthcheck run sends it)
    mail = row(db, "SELECT dedupe_key, status, subject, body FROM notifications WHERE kind = 'alert'", {})
    assert (mail["dedupe_key"], mail["status"]) == (f"alert:{alert_id}:resolved", "pending")
    assert "resolved" in mail["subject"].lower() and "by ed: feature pipeline fixed" in mail["body"]
    assert client.post(f"{P}/alerts/{alert_id}/resolve", headers=h, json={"note": "x"}).status_code == 409
    assert client.post(f"{P}/alerts/999999/acknowledge", headers=h).status_code == 404


def test_editor_requests_and_cancels_retraining(client, tokens, db, tmp_path):
    version = champion(db, tmp_path)
    h = auth(tokens["ed"])
    assert client.post(f"{P}/triggers", headers=h, json={"model": "m"}).status_code == 422  # no reason
    bad = client.post(f"{P}/triggers", headers=h, json={"model": "m", "reason": "x", "mode": "partial"})
    assert bad.status_code == 422

    res = client.post(
        f"{P}/triggers",
        headers=h,
        json={"model": "m", "reason": "new regime", "mode": "incremental", "priority": "low"},
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["status"] == "pending" and body["requested_by"].startswith("api:ed:")
    tid = body["trigger_id"]
    got = row(
        db,
        "SELECT model_version, trigger_type, retrain_mode, priority, reason, created_by, status "
        "FROM retraining_triggers WHERE trigger_id = %(t)s",
        {"t": tid},
    )
    assert got["created_by"] == body["requested_by"]
    assert (got["model_version"], got["trigger_type"], got["retrain_mode"], got["priority"], got["status"]) == (
        version,
        "manual",
        "incremental",
        "low",
        "pending",
    )
    assert "new regime" in got["reason"]

    # another request while that one is pending is refused, naming it; the listing shows the one trigger
    key = {"model": "m", "reason": "new regime", "request_id": "k1"}
    again = client.post(f"{P}/triggers", headers=h, json=key)
    assert again.status_code == 409, again.text
    assert f"a manual retrain is already pending: trigger {tid}" in again.json()["detail"]
    listed = client.get(f"{P}/triggers", headers=h, params={"model": "m"}).json()
    assert [(t["trigger_id"], t["status"]) for t in listed["items"]] == [(tid, "pending")]

    assert client.post(f"{P}/triggers/{tid}/cancel", headers=h, json={}).status_code == 422  # reason required
    res = client.post(f"{P}/triggers/{tid}/cancel", headers=h, json={"reason": "data late"})
    assert res.status_code == 200, res.text
    assert (res.json()["status"], res.json()["by"]) == ("cancelled", "ed")
    got = row(db, "SELECT status, outcome FROM retraining_triggers WHERE trigger_id = %(t)s", {"t": tid})
    assert got["status"] == "cancelled" and "by ed: data late" in got["outcome"]
    again = client.post(f"{P}/triggers/{tid}/cancel", headers=h, json={"reason": "again"})
    assert again.status_code == 409 and "only a pending trigger" in again.json()["detail"]
    assert client.post(f"{P}/triggers/999999/cancel", headers=h, json={"reason": "x"}).status_code == 404


def test_trigger_for_a_model_without_champion_is_409(client, tokens, db):
    res = client.post(f"{P}/triggers", headers=auth(tokens["ada"]), json={"model": "ghost", "reason": "r"})
    assert res.status_code == 409 and "no champion" in res.json()["detail"]
    assert row(db, "SELECT count(*) AS n FROM retraining_triggers", {}) == {"n": 0}


# ------------------------------------------------------------------ rollbacks (a rollback_model DAG run)


@pytest.fixture(scope="module")
def rollback_dag(airflow_db):
    """The rollback_model DAG parsed and stored in Airflow's DB, as the DAG processor stores it."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(ROOT / "dags" / "rollback_model.py"))
    assert bag.import_errors == {} and list(bag.dags) == ["rollback_model"]
    sync_bag_to_db(bag, "dags-folder", None)
    return "rollback_model"


def rollback_runs(dag_id: str) -> list[tuple]:
    """(run_id, conf, run_type, triggered_by, triggering user, state) of every run of ``dag_id`` in Airflow's DB."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id)).all()
        return [
            (r.run_id, r.conf, str(r.run_type), r.triggered_by.value, r.triggering_user_name, str(r.state))
            for r in runs
        ]


def two_versions(db, tmp_path, model: str) -> None:
    """Version 1 served and was replaced (retired), version 2 is the champion, version 3 a candidate."""
    for n in (1, 2, 3):
        registry.register_version(
            db,
            model_name=model,
            algorithm="lightgbm",
            artifact=f"v{n}".encode(),
            artifact_dir=tmp_path,
            features=["f"],
            classes=["SELL", "HOLD", "BUY"],
            train_end=date(2008, 9, n),
        )
    registry.set_alias(db, model, "champion", 1, reason="first", changed_at=T0 - timedelta(days=60))
    registry.set_alias(db, model, "champion", 2, reason="retrained", changed_at=T0 - timedelta(days=30))
    assert registry.version_statuses(db, model) == {1: "retired", 2: "active", 3: "candidate"}
    db.rollback()


def test_editor_requests_a_rollback_as_a_rollback_model_run(client, tokens, db, tmp_path, rollback_dag):
    from include.modelwatch.defaults import MODEL_NAME

    two_versions(db, tmp_path, MODEL_NAME)
    before = rollback_runs(rollback_dag)
    body = {"model": MODEL_NAME, "target_version": 1, "reason": "  v2 lost money since the regime change "}
    res = client.post(f"{P}/rollbacks", headers=auth(tokens["ed"]), json=body)
    assert res.status_code == 200, res.text
    got = res.json()
    assert (got["model"], got["target_version"], got["requested_by"]) == (MODEL_NAME, 1, "ed")
    runs = rollback_runs(rollback_dag)
    assert runs[: len(before)] == before and len(runs) == len(before) + 1
    assert runs[-1] == (
        got["dag_run_id"],
        {
            "model_name": MODEL_NAME,
            "target_version": 1,
            "reason": "v2 lost money since the regime change",
            "requested_by": "ed",
        },
        "manual",
        "rest_api",
        "ed",
        "queued",
    )
    assert got["dag_run_id"].startswith("manual__")


def test_rollback_refuses_bad_input_and_unknown_targets_without_a_run(client, tokens, db, tmp_path, rollback_dag):
    from include.modelwatch.defaults import MODEL_NAME

    two_versions(db, tmp_path, MODEL_NAME)
    before = rollback_runs(rollback_dag)
    h = auth(tokens["ada"])

    def post(**body):
        return client.post(f"{P}/rollbacks", headers=h, json={"model": MODEL_NAME, "reason": "r", **body})

    for body, field in (
        ({"target_version": 1, "reason": "  "}, "reason"),
        ({"target_version": "one"}, "target_version"),
        ({"target_version": 0}, "target_version"),
        ({}, "target_version"),
    ):
        res = post(**body)
        assert res.status_code == 422, res.text
        assert [e["loc"][-1] for e in res.json()["detail"]] == [field]
    res = post(target_version=3)  # a candidate never served
    assert (res.status_code, res.json()["field"]) == (422, "target_version")
    assert "candidate" in res.json()["detail"]
    res = post(target_version=9)
    assert (res.status_code, res.json()) == (404, {"detail": f"model {MODEL_NAME} has no version 9"})
    res = client.post(f"{P}/rollbacks", headers=h, json={"model": "ghost", "target_version": 1, "reason": "r"})
    assert (res.status_code, res.json()) == (404, {"detail": "model ghost does not exist"})
    viewer = {"model": MODEL_NAME, "target_version": 1, "reason": "r"}
    res = client.post(f"{P}/rollbacks", headers=auth(tokens["vera"]), json=viewer)
    assert (res.status_code, res.json()) == (403, {"detail": "Forbidden"})
    assert rollback_runs(rollback_dag) == before


# ------------------------------------------------------------------ predecessor-compatible reads


def test_predecessor_paths_answer_like_their_new_routes(client, tokens, db, tmp_path):
    version = champion(db, tmp_path)
    drift_id = open_alert(db, kind="drift")
    perf_id = open_alert(db, kind="performance")
    h = auth(tokens["vera"])

    def get(path, **params):
        res = client.get(P + path, headers=h, params=params)
        assert res.status_code == 200, (path, res.text)
        return res.json()

    drift = get("/monitoring/drift-alerts", model="m")
    assert [(a["alert_id"], a["kind"], a["status"], a["score"]) for a in drift["items"]] == [
        (drift_id, "drift", "open", 0.4)
    ]
    assert drift == get("/alerts", model="m", kind="drift")
    perf = get("/monitoring/performance-alerts")
    assert [(a["alert_id"], a["kind"]) for a in perf["items"]] == [(perf_id, "performance")]
    assert perf["total"] == 1
    assert get("/monitoring/health") == get("/api/ml/monitor/summary") == get("/health")
    for old, new in (
        ("/monitoring/metrics", "/performance"),
        ("/api/ml/monitor/accuracy", "/performance"),
        ("/api/ml/monitor/drift", "/drift/windows"),
        ("/monitoring/interpretability", "/interpretability"),
    ):
        assert get(old, model="m", version=version) == get(new, model="m", version=version)
    # same validation: 422 naming the field
    res = client.get(f"{P}/monitoring/drift-alerts", headers=h, params={"limit": 0})
    assert (res.status_code, res.json()["field"]) == (422, "limit")
    res = client.get(f"{P}/api/ml/monitor/drift", headers=h, params={"model": "nope"})
    assert (res.status_code, res.json()["field"]) == (422, "model")
    assert client.get(f"{P}/monitoring/health").status_code == 401


def test_confidence_per_day_and_its_predecessor_path(client, tokens, db, tmp_path):
    version = champion(db, tmp_path)
    day1, day2 = datetime(2008, 10, 6, tzinfo=UTC), datetime(2008, 10, 7, tzinfo=UTC)
    values = {day1: [0.4, 0.5, 0.6, 0.9], day2: [0.35]}
    with storage.transaction(db) as cur:
        for day, confs in values.items():
            for i, c in enumerate(confs):  # one bar per symbol and hour of the day
                cur.execute(
                    "INSERT INTO predictions (model_name, model_version, ts, symbol, features, predicted_label, "
                    "probabilities, confidence) VALUES ('m', %s, %s, %s, '{}', 'BUY', '{}', %s)",
                    (version, day + timedelta(hours=13 + i), f"S{i}", c),
                )
    h = auth(tokens["vera"])
    res = client.get(f"{P}/confidence", headers=h, params={"model": "m"})
    assert res.status_code == 200, res.text
    page = res.json()
    assert page["total"] == 2
    newest, older = page["items"]
    assert (newest["window_start"], newest["window_end"], newest["n"]) == (
        "2008-10-07T00:00:00Z",
        "2008-10-08T00:00:00Z",
        1,
    )
    assert older["n"] == 4 and older["min"] == 0.4 and older["max"] == 0.9
    assert abs(older["mean"] - 0.6) < 1e-12 and abs(older["median"] - 0.55) < 1e-12
    assert abs(older["p10"] - 0.43) < 1e-12 and abs(older["p90"] - 0.81) < 1e-12  # linear interpolation
    # the time range is on the day's end; the predecessor's path answers the same
    only = client.get(f"{P}/confidence", headers=h, params={"model": "m", "end": "2008-10-07T12:00:00Z"}).json()
    assert [d["window_start"] for d in only["items"]] == ["2008-10-06T00:00:00Z"]
    assert client.get(f"{P}/api/ml/monitor/confidence-trend", headers=h, params={"model": "m"}).json() == page
    res = client.get(f"{P}/confidence", headers=h, params={"model": "m", "version": 9})
    assert (res.status_code, res.json()["field"]) == (422, "version")


def test_ab_compare_and_traffic(client, tokens, db, tmp_path):
    from include.modelwatch.ab import store as ab_store

    v1 = champion(db, tmp_path)
    v2 = registry.register_version(
        db,
        model_name="m",
        algorithm="lightgbm",
        artifact=b"v2",
        artifact_dir=tmp_path,
        features=["f"],
        classes=["SELL", "HOLD", "BUY"],
    ).version
    tid = ab_store.start_test(
        db, model_name="m", challenger_version=v2, started_at=T0, started_by="t", reason="try v2", split=0.25
    )
    test = ab_store.get_test(db, tid)
    days = [(T0 + timedelta(days=i)).date() for i in range(8)]
    with storage.transaction(db) as cur:
        arms = ab_store.assign_units(cur, test, [(s, d) for s in ("SPX", "IXIC") for d in days])
        ab_store.record_day(
            cur,
            tid,
            days[-1],
            {
                "days_elapsed": 7,
                "matured_rows": 10,
                "both_right": 4,
                "champion_only": 1,
                "challenger_only": 3,
                "both_wrong": 2,
                "n_champion": 7,
                "hits_champion": 4,
                "n_challenger": 3,
                "hits_challenger": 2,
                "z": 0.3,
                "z_p_value": 0.76,
                "mcnemar_p_value": 0.62,
                "seq_log_lr": -1.2,
                "seq_log_threshold": 3.69,
                "seq_decision": "continue",
                "srm_p_value": 0.5,
                "srm_mismatch": False,
                "next_split": 0.25,
                "arm_metrics": {
                    "champion": {
                        "rows": 7,
                        "accuracy": 4 / 7,
                        "n_trades": 5,
                        "win_rate": 0.6,
                        "profit_factor": 1.5,
                        "avg_rr": 1.2,
                    }
                },
                "decision": "continue",
                "reason": "no decision yet",
                "run_id": "r1",
            },
        )
    h = auth(tokens["vera"])
    listed = client.get(f"{P}/ab-tests", params={"model": "m"}, headers=h)
    assert listed.status_code == 200 and [(t["test_id"], t["status"], t["split"]) for t in listed.json()] == [
        (tid, "running", 0.25)
    ]
    cmp = client.get(f"{P}/ab-tests/{tid}/compare", headers=h).json()
    assert cmp["test"]["champion_version"] == v1 and cmp["latest"]["paired"] == {
        "both_right": 4,
        "champion_only": 1,
        "challenger_only": 3,
        "both_wrong": 2,
    }
    assert cmp["latest"]["arms"]["champion"]["win_rate"] == 0.6 and cmp["latest"]["decision"] == "continue"
    traffic = client.get(f"{P}/ab-tests/{tid}/traffic", headers=h).json()
    n_chal = sum(a == "challenger" for a in arms.values())
    assert (traffic["champion_units"], traffic["challenger_units"]) == (16 - n_chal, n_chal)
    assert traffic["observed_split"] == pytest.approx(n_chal / 16) and traffic["configured_split"] == 0.25
    assert [d["champion"] + d["challenger"] for d in traffic["days"]] == [2] * 8
    assert {d["split"] for d in traffic["days"]} == {0.25}  # the split each session's units were assigned with
    assert (cmp["latest"]["n_champion"], cmp["latest"]["hits_challenger"], cmp["latest"]["run_id"]) == (7, 2, "r1")
    missing = client.get(f"{P}/ab-tests/999/compare", headers=h)
    assert missing.status_code == 422 and missing.json()["field"] == "test_id"
    assert client.get(f"{P}/ab-tests/{tid}/traffic").status_code == 401  # no token, no data
