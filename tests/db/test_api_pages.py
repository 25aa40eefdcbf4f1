"""The ModelWatch HTML pages as Airflow's API server serves them: a small known dataset, each page read as a
viewer, the embedded Vega-Lite specs parsed back and checked for the data points; auth, 404s and the vendored
chart library."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from include.modelwatch import registry
from include.modelwatch.data import storage
from include.modelwatch.loop import alerts as alert_store
from tests.db import test_api_app as app_fixtures

# the Airflow API server app, its client and the users' JWTs, as tests/db/test_api_app.py builds them
airflow_app, client, tokens = app_fixtures.airflow_app, app_fixtures.client, app_fixtures.tokens
auth = app_fixtures.auth
T0 = datetime(2008, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
P = "/modelwatch"
SPEC = re.compile(r'<script type="application/json" class="vl-spec" id="spec-([\w-]+)"[^>]*>(.*?)</script>', re.S)


def insert(cur, table: str, row: dict[str, Any]) -> None:
    cols = ", ".join(row)
    vals = ", ".join(f"%({k})s" for k in row)
    cur.execute(
        f"INSERT INTO {table} ({cols}) VALUES ({vals})",
        {k: Jsonb(v) if isinstance(v, dict) else v for k, v in row.items()},
    )


def specs(html: str) -> dict[str, dict]:
    return {name: json.loads(text) for name, text in SPEC.findall(html)}


def layer_values(spec: dict, mark: str) -> list[dict]:
    return [v for layer in spec["layer"] for v in layer["data"]["values"] if (layer["mark"]["type"] == mark)]


WINDOW_BINS = {
    ("f", "psi"): {"window_bins": [2, 8, 30]},
    ("c", "psi"): {"window_bins": [5, 30, 5], "unseen_levels": ["z"]},
}
# bins only (the drift task's profile also holds samples and nulls, which the page never reads)
PROFILE = {
    "numeric": {"f": {"edges": [0.0, 1.5], "counts": [10, 20, 10], "sample": [0.1, 0.2]}},
    "categorical": {"c": {"levels": {"x": 30, "y": 10}, "n": 40}},
}


@pytest.fixture()
def data(db, tmp_path):
    for payload in (b"v1", b"v2"):
        registry.register_version(
            db,
            model_name="m",
            algorithm="lightgbm",
            artifact=payload,
            artifact_dir=tmp_path,
            features=["f", "g"],
            classes=["SELL", "HOLD", "BUY"],
            train_end=date(2008, 9, 1),
            reference_profile=PROFILE,
        )
    registry.set_alias(db, "m", "champion", 1, reason="bootstrap", changed_at=T0 - 10 * D)
    registry.set_alias(db, "m", "champion", 2, reason="retrained", changed_at=T0 - 5 * D)
    registry.set_alias(db, "m", "champion", 1, reason="v2 worse", changed_at=T0 - 2 * D)
    with storage.transaction(db) as cur:
        for start, score, level in ((T0 - 2 * H, 0.05, "none"), (T0 - H, 0.6, "critical")):
            insert(
                cur,
                "drift_windows",
                {
                    "model_name": "m",
                    "model_version": 1,
                    "window_start": start,
                    "window_end": start + H,
                    "status": "evaluated",
                    "n_rows": 40,
                    "drift_score": score,
                    "level": level,
                    "n_drifted": 1 if level != "none" else 0,
                    "drifted": level != "none",
                    "summary": {},
                    "run_id": f"scheduled__{start:%H}",
                },
            )
        for start, feature, test, stat, p, sev, drifted, padj in (
            (T0 - H, "f", "ks", 0.41, 0.001, 90.0, True, 0.002),
            (T0 - H, "f", "psi", 0.35, None, 90.0, True, 0.002),
            (T0 - H, "c", "chi2", 3.1, 0.08, 20.0, False, 0.1),
            (T0 - H, "c", "psi", 0.2, None, 20.0, False, 0.1),
            (T0 - H, "g", "ks", 0.05, 0.6, 5.0, False, 0.6),
            (T0 - 2 * H, "f", "ks", 0.02, 0.9, 1.0, False, 0.9),
        ):
            insert(
                cur,
                "drift_results",
                {
                    "model_name": "m",
                    "model_version": 1,
                    "window_start": start,
                    "window_end": start + H,
                    "kind": "feature",
                    "feature": feature,
                    "test": test,
                    "statistic": stat,
                    "p_value": p,
                    "severity": sev,
                    "drifted": drifted,
                    "n_current": 40,
                    "details": {"p_adjusted": padj, **WINDOW_BINS.get((feature, test), {})},
                },
            )
        alert_store.raise_alert(
            cur,
            model_name="m",
            model_version=1,
            kind="drift",
            severity="critical",
            title="drift",
            message="msg",
            window_start=T0 - H,
            window_end=T0,
            score=0.6,
        )
        for end, live in ((T0 - D, 0.52), (T0, 0.45)):
            insert(
                cur,
                "live_vs_backtest_comparison",
                {
                    "model_name": "m",
                    "model_version": 1,
                    "window_start": end - 30 * D,
                    "window_end": end,
                    "metric": "accuracy",
                    "is_primary": True,
                    "live_value": live,
                    "baseline_value": 0.5,
                    "rel_diff": (live - 0.5) / 0.5,
                    "ci_low": live - 0.05,
                    "ci_high": live + 0.05,
                    "threshold": 0.45,
                    "tolerance_rel": 0.1,
                    "degraded": False,
                    "status": "ok",
                    "n_days": 30,
                    "n": 300,
                    "block_length": 5,
                    "n_boot": 1000,
                    "alpha": 0.05,
                },
            )
        insert(
            cur,
            "performance_estimates",
            {
                "model_name": "m",
                "model_version": 1,
                "window_start": T0 - D,
                "window_end": T0,
                "metric": "accuracy",
                "n_predictions": 10,
                "prediction_ids": [1],
                "estimate": 0.55,
                "estimate_unchecked": 0.55,
                "status": "ok",
            },
        )
        insert(
            cur,
            "retraining_triggers",
            {
                "trigger_id": 1,
                "model_name": "m",
                "model_version": 1,
                "trigger_type": "drift",
                "retrain_mode": "full",
                "priority": "high",
                "reason": "drift",
                "status": "pending",
                "triggered_at": T0 - 6 * D,
            },
        )
        insert(
            cur,
            "retraining_triggers",
            {
                "trigger_id": 2,
                "model_name": "m",
                "model_version": 1,
                "trigger_type": "manual",
                "retrain_mode": "full",
                "priority": "medium",
                "reason": "by hand",
                "status": "done",
                "triggered_at": T0 - 20 * D,
                "claimed_by": "manual__retrain",
                "outcome": "rejected: business",
            },
        )
        insert(
            cur,
            "training_jobs",
            {
                "job_id": 7,
                "trigger_id": 1,
                "model_name": "m",
                "algorithm": "lightgbm",
                "retrain_mode": "full",
                "status": "succeeded",
                "candidate_version": 2,
                "started_at": T0 - 6 * D + H,
                "finished_at": T0 - 6 * D + 2 * H,
            },
        )
        insert(
            cur,
            "quality_gate_results",
            {
                "trigger_id": 1,
                "job_id": 7,
                "model_name": "m",
                "candidate_version": 2,
                "champion_version": 1,
                "gate": "beats_champion",
                "status": "fail",
                "value": 0.48,
                "threshold": 0.5,
                "message": "below champion",
                "evaluated_at": T0 - 6 * D + 3 * H,
            },
        )
    return db


def test_fleet_overview(client, tokens, data):
    res = client.get(f"{P}/", headers=auth(tokens["vera"]))
    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("text/html")
    assert f'<a href="{P}/models/m">m</a>' in res.text
    assert f'<script src="{P}/static/vendor/vega-embed.min.js">' in res.text
    got = specs(res.text)
    assert list(got) == ["spark-0"]  # only v1 carries an alias (champion)
    assert [(v["t"], v["drift_score"]) for v in got["spark-0"]["data"]["values"]] == [
        ("2008-09-30T23:00:00+00:00", 0.05),
        ("2008-10-01T00:00:00+00:00", 0.6),
    ]
    assert got["spark-0"]["encoding"]["x"]["type"] == "temporal"
    assert "accuracy 0.450 vs 0.500" in res.text


def test_model_page(client, tokens, data):
    res = client.get(f"{P}/models/m", headers=auth(tokens["vera"]))
    assert res.status_code == 200, res.text
    spec = specs(res.text)["timeline"]
    drift, perf = spec["vconcat"]
    assert [(v["t"], v["drift_score"]) for v in layer_values(drift, "line")] == [
        ("2008-09-30T23:00:00+00:00", 0.05),
        ("2008-10-01T00:00:00+00:00", 0.6),
    ]
    assert [(v["t"], v["t2"]) for v in layer_values(drift, "rect")] == [
        ("2008-09-30T23:00:00+00:00", "2008-09-30T23:00:00+00:00")
    ]
    band = perf["layer"][0]
    assert (band["mark"]["type"], band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == (
        "area",
        "ci_low",
        "ci_high",
    )
    assert [(v["live"], round(v["ci_low"], 3), round(v["ci_high"], 3)) for v in band["data"]["values"]] == [
        (0.52, 0.47, 0.57),
        (0.45, 0.4, 0.5),
    ]
    rules = {(v["series"], v["value"]) for v in perf["layer"][2]["data"]["values"]}
    assert rules == {("backtest baseline", 0.5), ("alert threshold", 0.45)}
    assert [(v["t"], v["estimate"]) for v in layer_values(perf, "point")] == [("2008-10-01T00:00:00+00:00", 0.55)]
    markers = [(v["kind"], v["t"]) for v in perf["layer"][4]["data"]["values"]]
    assert markers == [
        ("trigger", "2008-09-11T00:00:00+00:00"),  # the manual trigger claimed by manual__retrain
        ("deployment", "2008-09-21T00:00:00+00:00"),
        ("trigger", "2008-09-25T00:00:00+00:00"),
        ("retrain", "2008-09-25T02:00:00+00:00"),
        ("rejection", "2008-09-25T03:00:00+00:00"),
        ("deployment", "2008-09-26T00:00:00+00:00"),
        ("rollback", "2008-09-29T00:00:00+00:00"),
    ]
    assert (
        '<td>beats_champion</td><td class="fail">fail</td><td>0.480</td><td>0.500</td><td>below champion</td>'
        in res.text
    )
    assert "<td>v2 worse</td>" in res.text
    drifted = re.search(r'<h2 id="drifted">.*?</table>', res.text, re.S).group(0)
    assert re.findall(r'<a href="([^"]+)">', drifted) == [f"{P}/drift/m/1/2008-09-30T23%3A00%3A00Z"]
    assert '<td class="critical">critical</td>' in drifted


def test_drift_window_page(client, tokens, data):
    res = client.get(f"{P}/drift/m/1/2008-10-01T00:00:00Z", headers=auth(tokens["vera"]))
    assert res.status_code == 404  # no window starts at T0 (they end there)
    res = client.get(f"{P}/drift/m/1/2008-09-30T23:00:00Z", headers=auth(tokens["vera"]))
    assert res.status_code == 200, res.text
    row = '<td>feature</td><td><a href="?feature=f#distribution">f</a></td><td>ks</td><td>0.4100</td><td>0.001</td>'
    assert row + "<td>0.002</td><td>90.0</td>" in res.text
    assert "psi=0.35" in res.text
    heat = specs(res.text)["heatmap"]
    cells = [(v["t"], v["feature"], v["severity"]) for v in heat["layer"][0]["data"]["values"]]
    assert cells == [
        ("2008-09-30T22:00:00+00:00", "f", 1.0),
        ("2008-09-30T23:00:00+00:00", "c", 20.0),
        ("2008-09-30T23:00:00+00:00", "f", 90.0),
        ("2008-09-30T23:00:00+00:00", "g", 5.0),
    ]
    assert heat["layer"][1]["data"]["values"] == [{"t": "2008-09-30T23:00:00+00:00"}]
    # the distribution overlay, from the stored bins: the most severe drifted feature first
    overlay = specs(res.text)["overlay"]
    assert overlay["params"][0]["value"] == "f" and overlay["params"][0]["bind"]["options"] == ["c", "f"]
    shares = {(v["feature"], v["bin"], v["series"]): round(v["share"], 4) for v in overlay["data"]["values"]}
    assert shares == {
        ("f", "< 0", "reference"): 0.25,
        ("f", "0 to 1.5", "reference"): 0.5,
        ("f", ">= 1.5", "reference"): 0.25,
        ("f", "< 0", "window"): 0.05,
        ("f", "0 to 1.5", "window"): 0.2,
        ("f", ">= 1.5", "window"): 0.75,
        ("c", "x", "reference"): 0.75,
        ("c", "y", "reference"): 0.25,
        ("c", "z", "reference"): 0.0,
        ("c", "x", "window"): 0.125,
        ("c", "y", "window"): 0.75,
        ("c", "z", "window"): 0.125,
    }
    assert '<a href="?feature=c#distribution">c</a>' in res.text
    chosen = client.get(f"{P}/drift/m/1/2008-09-30T23:00:00Z?feature=c", headers=auth(tokens["vera"]))
    assert specs(chosen.text)["overlay"]["params"][0]["value"] == "c"
    # a window without stored bins says so instead of drawing an empty chart
    older = client.get(f"{P}/drift/m/1/2008-09-30T22:00:00Z", headers=auth(tokens["vera"]))
    assert "overlay" not in specs(older.text) and "No stored bins for this window" in older.text


def test_anonymous_401_unknown_404_and_static(client, tokens, data):
    for path in ("/", "/models/m", "/drift/m/1/2008-09-30T23:00:00Z", "/static/vendor/vega.min.js"):
        assert client.get(P + path).status_code == 401, path
    h = auth(tokens["vera"])
    res = client.get(f"{P}/models/nope", headers=h)
    assert res.status_code == 404 and "Unknown model &#39;nope&#39;" in res.text
    res = client.get(f"{P}/drift/m/9/2008-09-30T23:00:00Z", headers=h)
    assert res.status_code == 404 and "unknown version 9 of model &#39;m&#39;" in res.text
    res = client.get(f"{P}/static/vendor/vega-lite.min.js", headers=h)
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/javascript")
    assert "vegaLite" in res.text[:2000]
    assert client.get(f"{P}/static/../pages.py", headers=h).status_code == 404
    assert client.get(f"{P}/static/vendor/nope.js", headers=h).status_code == 404


def test_run_links_redirect_to_what_the_run_wrote(client, tokens, data):
    h = auth(tokens["vera"])
    res = client.get(f"{P}/runs/drift_hourly/scheduled__23", headers=h, follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == f"{P}/drift/m/1/2008-09-30T23%3A00%3A00Z"
    assert client.get(res.headers["location"], headers=h).status_code == 200  # the target page exists
    res = client.get(f"{P}/runs/retrain_gated/manual__retrain", headers=h, follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == f"{P}/models/m#jobs"
    res = client.get(f"{P}/runs/drift_hourly/scheduled__nothing", headers=h)
    assert res.status_code == 200 and "has recorded nothing ModelWatch shows" in res.text
    res = client.get(f"{P}/runs/score_signals/any", headers=h)
    assert res.status_code == 200 and "ModelWatch has no page for runs of the DAG" in res.text
    assert client.get(f"{P}/runs/drift_hourly/scheduled__23", follow_redirects=False).status_code == 401


def test_alerts_page_lists_alerts_and_triggers_with_their_actions(client, tokens, data):
    res = client.get(f"{P}/alerts-and-triggers", headers=auth(tokens["vera"]))
    assert res.status_code == 200, res.text
    rows = re.findall(r'<tr id="(alert|trigger)-(\d+)">(.*?)</tr>', res.text, re.S)
    assert [(kind, int(i)) for kind, i, _ in rows] == [("alert", 1), ("trigger", 1), ("trigger", 2)]
    alert, pending, done = (body for _, _, body in rows)
    assert 'class="status">open<' in alert and f'data-url="{P}/alerts/1/acknowledge"' in alert
    assert f'data-url="{P}/alerts/1/resolve"' in alert and 'name="note" required' in alert
    assert f'data-url="{P}/triggers/1/cancel"' in pending and 'name="reason" required' in pending
    assert "cancel" not in done and "rejected: business" in done and "manual__retrain" in done
    assert f'data-url="{P}/triggers" data-done="Retraining requested"' in res.text
    # filters: by trigger status, by alert status; a bad value is refused naming the field
    res = client.get(f"{P}/alerts-and-triggers?trigger_status=done&status=resolved", headers=auth(tokens["vera"]))
    assert re.findall(r'<tr id="((?:alert|trigger)-\d+)">', res.text) == ["trigger-2"]
    assert "No alert matches." in res.text
    res = client.get(f"{P}/alerts-and-triggers?kind=weather", headers=auth(tokens["vera"]))
    assert res.status_code == 422 and res.json()["field"] == "kind"
    assert client.get(f"{P}/static/actions.js", headers=auth(tokens["vera"])).status_code == 200


def daily(db) -> list[tuple]:
    return [
        tuple(r.values())
        for r in storage.fetch_dicts(
            db,
            "SELECT day, n_windows, n_rows, max_drift_score, level_rank, max_n_drifted, any_drifted, "
            "first_window_start, last_window_end FROM drift_windows_daily WHERE model_name = 'm' ORDER BY day",
        )
    ]


def test_the_daily_drift_rollup_follows_every_write(data, db):
    """Migration 013's triggers keep drift_windows_daily exact through inserts, updates and deletes."""
    assert daily(db) == [(date(2008, 9, 30), 2, 80, 0.6, 2, 1, True, T0 - 2 * H, T0)]
    with storage.transaction(db) as cur:  # a third window that day, and one the next day without a score
        for start, score in ((T0 - 3 * H, 0.3), (T0, None)):
            insert(cur, "drift_windows", {"model_name": "m", "model_version": 1, "window_start": start,
                   "window_end": start + H, "status": "evaluated" if score else "empty", "n_rows": 40,
                   "drift_score": score, "level": "warning" if score else None, "n_drifted": 3 if score else 0,
                   "drifted": bool(score), "summary": {}})  # fmt: skip
    assert daily(db) == [(date(2008, 9, 30), 3, 120, 0.6, 2, 3, True, T0 - 3 * H, T0)]
    with storage.transaction(db) as cur:  # a re-run rewrites the critical window as calm
        cur.execute("UPDATE drift_windows SET drift_score = 0.01, level = 'none', n_drifted = 0, drifted = false "
                    "WHERE model_name = 'm' AND window_start = %s", (T0 - H,))  # fmt: skip
    assert daily(db) == [(date(2008, 9, 30), 3, 120, 0.3, 1, 3, True, T0 - 3 * H, T0)]
    with storage.transaction(db) as cur:
        cur.execute("DELETE FROM drift_windows WHERE model_name = 'm' AND window_start < %s", (T0 - H,))
    assert daily(db) == [(date(2008, 9, 30), 1, 40, 0.01, 0, 0, False, T0 - H, T0)]
    with storage.transaction(db) as cur:
        cur.execute("DELETE FROM drift_windows WHERE model_name = 'm'")
    assert daily(db) == []


def test_a_long_history_is_summarised_per_bucket_of_days(client, tokens, data, db, monkeypatch):
    from include.modelwatch.api import queries_pages

    with storage.transaction(db) as cur:  # a window on 2008-10-02, so the history spans two days
        insert(cur, "drift_windows", {"model_name": "m", "model_version": 1, "window_start": T0 + D,
               "window_end": T0 + D + H, "status": "evaluated", "n_rows": 40, "drift_score": 0.2,
               "level": "warning", "n_drifted": 1, "drifted": True, "summary": {}})  # fmt: skip
    windows, width = queries_pages.drift_timeline(db, model="m")
    assert width is None and [w.drift_score for w in windows] == [0.05, 0.6, 0.2]
    # two points allowed: the version's span (27 hours) in two buckets, but a bucket is at least a day
    monkeypatch.setattr(queries_pages, "MAX_TIMELINE_POINTS", 2)
    windows, width = queries_pages.drift_timeline(db, model="m")
    assert width == 24 * 3600
    assert [(w.window_start, w.window_end, w.drift_score, w.level, w.n_rows) for w in windows] == [
        (T0 - 2 * H, T0, 0.6, "critical", 80),  # the two windows of 2008-09-30
        (T0 + D, T0 + D + H, 0.2, "warning", 40),
    ]
    comparisons, estimates = queries_pages.primary_history(db, model="m")
    assert [c.live_value for c in comparisons] == [0.52, 0.45] and [e.estimate for e in estimates] == [0.55]
    res = client.get(f"{P}/models/m", headers=auth(tokens["vera"]))
    assert "each drift point summarises its version's windows in a 24-hour" in res.text
    assert "Too many windows to list" in res.text
    drawn = layer_values(specs(res.text)["timeline"]["vconcat"][0], "line")
    # a bucket opens the page zoomed to its windows, where each window links to its own page
    assert [(v["drift_score"], v["level"], v["href"]) for v in drawn] == [
        (0.6, "critical", f"{P}/models/m?start=2008-09-30T22%3A00%3A00Z&end=2008-10-01T00%3A00%3A00Z#timeline"),
        (0.2, "warning", f"{P}/models/m?start=2008-10-02T00%3A00%3A00Z&end=2008-10-02T01%3A00%3A00Z#timeline"),
    ]


def test_model_page_range_links_and_a_chosen_range(client, tokens, data):
    h = auth(tokens["vera"])
    res = client.get(f"{P}/models/m", headers=h)
    ranges = re.search(r"Range: .*?</p>", res.text, re.S).group(0)
    whole, episode = re.findall(r'<a href="([^"]+)">([^<]+)</a>', ranges)
    assert whole == (f"{P}/models/m#timeline", "whole life")
    # the alert's windows (first and last window start 2008-09-30 23:00) with two months either side
    assert episode == (
        f"{P}/models/m?start=2008-07-30T23%3A00%3A00Z&amp;end=2008-12-01T23%3A00%3A00Z#timeline",
        "drift alert #1 (critical, 2008-09-30 to 2008-09-30)",
    )
    chosen = {"start": "2008-09-30T23:30:00Z", "end": "2008-10-02T00:00:00Z"}
    res = client.get(f"{P}/models/m", headers=h, params=chosen)
    assert res.status_code == 200, res.text
    assert "Drift and live performance from 2008-09-30 23:30 UTC to 2008-10-02 00:00 UTC" in res.text
    drift, perf = specs(res.text)["timeline"]["vconcat"]
    assert [v["drift_score"] for v in layer_values(drift, "line")] == [0.6]  # the window ending 2008-10-01 00:00
    assert [v["live"] for v in layer_values(perf, "line")] == [0.45]
    assert perf["layer"][4]["data"]["values"] == []  # every event (2008-09-11..29) is before the range
    res = client.get(f"{P}/models/m", headers=h, params={"start": "2008-10-01T00:00:00"})
    assert res.status_code == 422 and res.json()["field"] == "start"
