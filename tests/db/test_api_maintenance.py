"""What maintenance_daily did, in the ModelWatch API as Airflow's API server serves it: the JSON list
(``/maintenance/runs``, filters refused by name), the maintenance page, the "ModelWatch" tab of a maintenance_daily
run, and read access on maintenance_daily enforced."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.modelwatch.ops import retention
from tests.db import test_api_app as app_fixtures
from tests.db import test_retention as seeded

airflow_app, client, tokens = app_fixtures.airflow_app, app_fixtures.client, app_fixtures.tokens
auth = app_fixtures.auth
P = "/modelwatch"
RUN = "scheduled__2008-06-01T00:00:00+00:00"
LATER = "scheduled__2008-06-02T00:00:00+00:00"


@pytest.fixture()
def maintained(db):
    """Two intervals of maintenance on rows on both sides of every cutoff: 2008-06-01 (retention + partitions),
    then 2008-06-02 (a second pass: retention removes nothing more)."""
    seeded._fill(db)
    first = seeded._apply_all(db, seeded.END, RUN)
    parts = retention.ensure_partitions(
        db, interval_start=datetime(2008, 5, 31, tzinfo=UTC), interval_end=seeded.END, run_id=RUN
    )
    later = datetime(2008, 6, 2, tzinfo=UTC)
    second = {t: retention.apply(db, t, days=seeded.DAYS[t], interval_end=later, run_id=LATER) for t in seeded.DAYS}
    return {"first": first, "partitions": parts, "second": second}


def test_the_json_list_reports_what_each_run_did(client, tokens, maintained):
    h = auth(tokens["vera"])
    page = client.get(f"{P}/maintenance/runs", headers=h).json()
    assert page["total"] == 4 + 4 + 2 and page["limit"] == 50
    newest = [(r["interval_end"], r["table"], r["action"], r["rows_affected"]) for r in page["items"][:4]]
    # the second interval: every policy applied again, the newer cutoff moved by a day
    assert newest == [
        ("2008-06-02T00:00:00Z", t, retention.policy(t).action, maintained["second"][t].rows_affected)
        for t in sorted(seeded.DAYS)
    ]
    first = {r["table"]: r for r in page["items"][4:] if r["action"] != "partitions"}
    assert {t: (r["rows_affected"], r["rows_written"]) for t, r in first.items()} == {
        t: (a.rows_affected, a.rows_written) for t, a in maintained["first"].items()
    }
    assert all(a.rows_affected > 0 for a in maintained["first"].values())  # rows outside every window were there
    drift = first["drift_results"]
    assert (drift["policy_variable"], drift["retention_days"], drift["cutoff"], drift["runs"], drift["run_id"]) == (
        "modelwatch_retention_drift_results_days",
        seeded.DAYS["drift_results"],
        seeded.CUT["drift_results"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        1,
        RUN,
    )
    parts = client.get(f"{P}/maintenance/runs", headers=h, params={"action": "partitions"}).json()
    assert [(r["table"], r["partitions"], r["policy_variable"]) for r in parts["items"]] == [
        (p.table, list(p.partitions), None) for p in sorted(maintained["partitions"], key=lambda p: p.table)
    ]
    assert parts["items"][0]["partitions"][0].endswith("_p200805")
    only = client.get(f"{P}/maintenance/runs", headers=h, params={"table": "notifications", "run_id": RUN}).json()
    assert [(r["table"], r["action"], r["run_id"]) for r in only["items"]] == [("notifications", "delete", RUN)]
    bad = client.get(f"{P}/maintenance/runs", headers=h, params={"table": "predictionz"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("table: unknown table 'predictionz'; expected one of")


def test_the_page_and_the_run_tab(client, tokens, maintained):
    h = auth(tokens["vera"])
    res = client.get(f"{P}/maintenance", headers=h)
    assert res.status_code == 200
    html = res.text
    assert "Maintenance: retention and partitions" in html and f'href="{P}/maintenance">Maintenance</a>' in html
    assert html.count('<tr class="maintenance-run">') == 10
    removed = maintained["first"]["predictions"].rows_affected
    assert f'<td class="affected">{removed}</td>' in html
    assert "<code>modelwatch_retention_notifications_days</code> = 180 days" in html
    assert ", ".join(maintained["partitions"][0].partitions) in html
    one = client.get(f"{P}/maintenance", headers=h, params={"run_id": LATER}).text
    assert one.count('<tr class="maintenance-run">') == 4 and f"run {LATER} only" in one
    assert client.get(f"{P}/maintenance", headers=h, params={"table": "x"}).status_code == 422

    res = client.get(f"{P}/runs/maintenance_daily/{RUN}", headers=h, follow_redirects=False)
    assert res.status_code == 303
    assert res.headers["location"] == f"{P}/maintenance?run_id=scheduled__2008-06-01T00%3A00%3A00%2B00%3A00"
    assert client.get(res.headers["location"], headers=h).text.count('<tr class="maintenance-run">') == 6
    nothing = client.get(f"{P}/runs/maintenance_daily/manual__none", headers=h)
    assert nothing.status_code == 200 and "has recorded nothing ModelWatch shows" in nothing.text


@pytest.fixture()
def no_maintenance_access(monkeypatch):
    """The viewer ``vera`` loses read access to ``maintenance_daily`` (and only to it)."""
    app_fixtures.deny_dag(monkeypatch, "vera", "maintenance_daily")


def test_reading_needs_access_to_maintenance_daily(client, tokens, maintained, no_maintenance_access):
    for url in (f"{P}/maintenance", f"{P}/maintenance/runs", f"{P}/runs/maintenance_daily/{RUN}"):
        assert client.get(url).status_code == 401, url
        res = client.get(url, headers=auth(tokens["vera"]))
        assert (url, res.status_code) == (url, 403)
        assert client.get(url, headers=auth(tokens["ada"]), follow_redirects=False).status_code in (200, 303), url
