"""External models in the ModelWatch API, as Airflow's API server serves them: registering one from a spec and a
reference Parquet (users who may edit ingest_predictions; a viewer gets 403 and nothing changes; a bad spec or
reference is answered 422 naming the field), the model list showing origin and owner, and the batch list."""

from __future__ import annotations

import io
import json

from include.modelwatch.data import storage
from include.modelwatch.external import example as X
from include.modelwatch.external import feed
from tests.db import test_api_app as app_fixtures

airflow_app, client, tokens = app_fixtures.airflow_app, app_fixtures.client, app_fixtures.tokens
auth = app_fixtures.auth
P = "/modelwatch"


def _parquet(df) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _register(client, token, spec: dict, reference: bytes, name: str = "reference.parquet"):
    return client.post(
        f"{P}/external-models",
        headers=auth(token),
        data={"spec": json.dumps(spec)},
        files={"reference": (name, reference, "application/octet-stream")},
    )


def _versions(db) -> int:
    n = storage.fetch_dicts(db, "SELECT count(*) AS n FROM model_versions")[0]["n"]
    db.rollback()
    return n


def test_register_list_and_batches(client, tokens, db, tmp_path):
    ref = _parquet(X.reference())
    refused = _register(client, tokens["vera"], X.spec(), ref)
    assert refused.status_code == 403 and _versions(db) == 0

    res = _register(client, tokens["ed"], X.spec(), ref)
    assert res.status_code == 200, res.text
    body = res.json()
    assert {
        k: body[k] for k in ("model", "version", "alias", "previous_version", "classes", "reference_rows", "by")
    } == {
        "model": "fx_direction",
        "version": 1,
        "alias": "champion",
        "previous_version": None,
        "classes": ["down", "up"],
        "reference_rows": 1500,
        "by": "api:ed",
    }
    assert body["reference_period"] == ["2008-01-02", "2008-03-01"]
    assert [f["name"] for f in body["feature_schema"]] == ["ret_5d", "vol_21d", "venue"]

    models = client.get(f"{P}/models", headers=auth(tokens["vera"])).json()
    (fx,) = [m for m in models if m["model"] == "fx_direction"]
    assert (fx["origin"], fx["owner"], fx["aliases"]) == ("external", "fx-desk@example.com", {"champion": 1})
    assert fx["versions"][0]["algorithm"] == "external"

    bad = _register(client, tokens["ed"], X.spec(classes=["up"]), ref)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("spec: fx_direction: 'classes' must list")
    torn = _register(client, tokens["ed"], X.spec(), ref[:100])
    assert torn.status_code == 422 and torn.json()["detail"].startswith("reference.parquet: cannot be read as parquet")
    wrong = _register(client, tokens["ed"], X.spec(), b"a,b\n1,2\n", name="ref.xlsx")
    assert wrong.status_code == 422 and "unsupported file type '.xlsx'" in wrong.json()["detail"]
    assert _versions(db) == 1

    inbox = tmp_path / "inbox"
    X.write(X.predictions_of(X.live(0)), inbox / "predictions" / "good.parquet")
    nan = X.predictions_of(X.live(1))
    nan.loc[3, "p_up"] = float("nan")
    X.write(nan, inbox / "predictions" / "nan.parquet")
    for f in feed.pending_files(inbox):
        feed.ingest(db, f, inbox, run_id="r1")
    page = client.get(f"{P}/ingest/batches", headers=auth(tokens["vera"]), params={"model": "fx_direction"}).json()
    assert page["total"] == 2
    assert [(b["name"], b["status"], b["n_written"]) for b in page["items"]] == [
        ("nan.parquet", "quarantined", 0),
        ("good.parquet", "loaded", 25),
    ]
    assert page["items"][0]["error"].startswith("nan.parquet: column p_up: empty (null/NaN) values at row 3")
    only = client.get(f"{P}/ingest/batches", headers=auth(tokens["vera"]), params={"status": "quarantined"}).json()
    assert [b["name"] for b in only["items"]] == ["nan.parquet"]
    bad_kind = client.get(f"{P}/ingest/batches", headers=auth(tokens["vera"]), params={"kind": "bars"})
    assert bad_kind.status_code == 422
